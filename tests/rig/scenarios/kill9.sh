# Issue 15 "Faults": kill -9 at random points, and graceful stops, judged
# from outside passage (L1). In one L1 boot, KILL9_COUNT passage runs (12
# here; kill9-full.sh: 120) are each ended by SIGKILL, the backend
# alternating every kill (edu by iommufd cdev / by the legacy container) and
# the aimed phase every two kills:
#   map      -m $MAP_MEM (1G): killed once the pinned pages have grown by a
#            random fraction of guest RAM (mapping into the IOAS/container),
#            -dma-map sync (the default: in set-up) and background (on
#            passage's mapping thread while L2 boots, a vCPU perhaps waiting
#            for it) taking turns
#   setup    -m 64M, -dma-map sync: killed a random 0..R ms after guest RAM
#            was pinned (the rest of device set-up: BARs, interrupts,
#            memslots, ACPI, vCPU creation); R adapts so kills land before
#            the vCPU starts
#   dma      L2 (200M) runs edu-test in a loop (MMIO, MSI, DMA into and out
#            of guest RAM); once the first edu-test passed, killed a random
#            0..3 s later
#   hotplug  passage with -qmp and no device; qmp-client adds edu (object-add
#            + device_add by host=): killed a random 0..R ms after passage
#            opened the first file, while the client awaits the reply; or
#            edu added, then killed while a device_del waits for
#            DEVICE_DELETED (L2 still booting: no eject yet); add and del
#            take turns on each backend
# The phase a kill is counted in is what L1 saw just before the kill, not the
# aim: vCPU threads started (comm "passage" besides the main thread) means
# set-up was over (unless pins are still growing: background mapping); pins
# between none and all of RAM means mapping; the
# client still waiting means hotplug in flight; anything else counts as
# "other" (and the count line names it).
# After every kill (and every graceful stop), from outside:
#   - passage's exit status is 137 (killed, not failed earlier)
#   - L1's pinned pages (nr_foll_pin_acquired - released) are back to the
#     baseline taken once before the first run (at most 60 s)
#   - no process holds /dev/iommu or /dev/vfio/* (iommufd frees its objects
#     when its fd closes; a leaked IOAS, bind or group user would keep one)
#   - edu works at once: rig-probe opens it the way passage had (cdev +
#     new iommufd, or group + new container), DMA round trip; the next kill's
#     passage opens it the other way; each dma kill's L2 edu-test passes
# Graceful stop (README "Faults"): SIGTERM and QMP quit, each while L2 runs
# edu-test and while a hotplug is in flight: exit 143 with passage's
# "terminating on signal 15" line, or exit 0 after SHUTDOWN, then the same
# checks.
# rig: bind=1234:11e8,1b36:0010
# rig: l2=yes
# rig: bin=$PASSAGE_BUILD_DIR/vmm/passage
# rig: bin=$PASSAGE_BUILD_DIR/guests/l2tests/edu-test:/rig/l2bin/edu-test
# rig: add=lib/passthrough.sh:/rig/passthrough.sh
# rig: add=../../qmp/qmp-client.py:/usr/local/bin/qmp-client
# rig: python=../../qmp/qmp-client.py
# rig: mem=2G
# One L1 vCPU, as in the passthrough scenarios (README "Known limits").
# rig: smp=1
# rig: stall=90
# rig: timeout=2400
# rig: expect=kill9.count,kill9.1.*
# rig: expect=stop.term_run.during,stop.quit_run.during,stop.term_hotplug.during,stop.quit_hotplug.during
# rig: expect=stop.term_run.exit,stop.term_run.line,stop.term_run.clean
# rig: expect=stop.quit_run.exit,stop.quit_run.clean
# rig: expect=stop.term_hotplug.exit,stop.term_hotplug.line,stop.term_hotplug.clean
# rig: expect=stop.quit_hotplug.exit,stop.quit_hotplug.clean

. /rig/lib.sh
. /rig/passthrough.sh

KILL9_COUNT=${KILL9_COUNT:-12}
MAP_MEM=${MAP_MEM:-1G}
MAP_PAGES=$(mem_pages $MAP_MEM)

# The dma image: L2 runs edu-test over and over, a marker after each.
mkdir -p /tmp/k9/rig
cat > /tmp/k9/rig/scenario.sh <<'L2'
n=0
while [ $n -lt 1000 ]; do
  n=$((n + 1))
  edu-test > /tmp/edu.out 2>&1
  rc=$?
  echo "KILL9-EDU $n rc=$rc $(grep -o '"name":"l2\.edu\.[a-z]*","ok":false' /tmp/edu.out | tr '\n' ' ')"
done
L2
cp /tmp/l2.img /tmp/k9.img
cpio_append /tmp/k9.img /tmp/k9 rig

# rnd N: a random number 0..N-1.
rnd() { echo $(( $(od -An -N4 -tu4 /dev/urandom | tr -d ' ') % $1 )); }

# ms_sleep MS
ms_sleep() { sleep "$(($1 / 1000)).$(printf '%03d' $(($1 % 1000)))"; }

# devfds PID: passage's open /dev/iommu and /dev/vfio/* files.
devfds() { ls -l "/proc/$1/fd" 2> /dev/null | grep -cE -- '-> /dev/(iommu|vfio/)'; }

# wait_devfd PID SECS: until PID holds a /dev/iommu or /dev/vfio file (0.05 s
# steps, at most SECS); returns 1 if it never did or PID ended.
wait_devfd() {
  _wd_n=0
  while [ "$(devfds $1)" = 0 ]; do
    kill -0 $1 2> /dev/null || return 1
    [ $_wd_n -ge $(($2 * 20)) ] && return 1
    sleep 0.05
    _wd_n=$((_wd_n + 1))
  done
}

# pins_at_baseline: waits (at most 60 s) for the pinned count to be BASE;
# prints pins_back's "COUNT after S s" of the last wait.
pins_at_baseline() {
  _pa_i=0
  while :; do
    _pa_got=$(pins_back "$BASE")
    [ "${_pa_got%% *}" = "$BASE" ] || [ $_pa_i -ge 5 ] && break
    _pa_i=$((_pa_i + 1))
  done
  [ $_pa_i -gt 0 ] && _pa_got="$_pa_got (+$((_pa_i * 10)) s)"
  echo "$_pa_got"
}

# leftovers BACKEND: after passage ended: pins back to BASE, no holder of
# /dev/iommu or /dev/vfio/*, edu used at once the way BACKEND opens it
# (rig-probe: iommufd -> cdev + new IOAS, legacy -> group + new container,
# DMA round trip). Sets LEFT (the account) and returns 0 when all hold.
leftovers() {
  _l_pins=$(pins_at_baseline)
  _l_h=$(holders)
  if [ "$1" = iommufd ]; then
    RIG_RESULTS= rig-probe cdev "$EDU_CDEV" --name reuse --edu > /tmp/k9.probe 2>&1
  else
    RIG_RESULTS= rig-probe group "$EDU" --name reuse --edu > /tmp/k9.probe 2>&1
  fi
  _l_probe=$?
  LEFT="pins $_l_pins (baseline $BASE); holders: ${_l_h:-none}; edu reused by $([ "$1" = iommufd ] && echo cdev || echo group): $([ $_l_probe = 0 ] && echo "DMA ok ($(grep -c '"ok":true' /tmp/k9.probe) checks)" || echo "FAILED: $(grep '"ok":false' /tmp/k9.probe | tr '\n' ' ') $(tail -n 2 /tmp/k9.probe)")"
  [ "${_l_pins%% *}" = "$BASE" ] && [ -z "$_l_h" ] && [ $_l_probe = 0 ]
}

# device_args BACKEND: passage's -object/-device for edu.
device_args() {
  if [ "$1" = iommufd ]; then
    echo "-object iommufd,id=io0 -device vfio-pci,host=$EDU,iommufd=io0,id=edu0"
  else
    echo "-device vfio-pci,host=$EDU,id=edu0"
  fi
}

# hot_cmds BACKEND: qmp-client commands hot-adding edu.
hot_add() {
  if [ "$1" = iommufd ]; then
    qmp-client "$2" --timeout 120 'object-add qom-type=iommufd id=io0' \
      "device_add driver=vfio-pci id=edu0 host=$EDU iommufd=io0"
  else
    qmp-client "$2" --timeout 120 "device_add driver=vfio-pci id=edu0 host=$EDU"
  fi
}

# start TAG MEM IMAGE [ARGS...]: passage in the background (PID), its console
# in /tmp/TAG.serial, stderr in /tmp/TAG.err.
start() {
  _s_tag=$1 _s_mem=$2 _s_img=$3
  shift 3
  : > "/tmp/$_s_tag.serial"
  passage -cpu $CPU -m "$_s_mem" -smp 1 -kernel $K -initrd "$_s_img" \
    -append "$APPEND rig.cpus=1 rig.mem=$_s_mem rig.pci=$HOST_BRIDGE" -serial "file:/tmp/$_s_tag.serial" \
    "$@" > "/tmp/$_s_tag.out" 2> "/tmp/$_s_tag.err" &
  PID=$!
}

# wait_sock SOCK PID: until the QMP socket exists (at most 60 s).
wait_sock() {
  _ws_n=0
  while [ ! -S "$1" ] && kill -0 "$2" 2> /dev/null && [ $_ws_n -lt 600 ]; do sleep 0.1; _ws_n=$((_ws_n + 1)); done
  [ -S "$1" ]
}

# sample PID: what L1 sees of passage right now (SAMPLE_* and SAMPLE).
sample() {
  SAMPLE_PINS=$(( $(pinned) - BASE ))
  SAMPLE_VCPUS=$(vcpus $1)
  SAMPLE_FDS=$(devfds $1)
  SAMPLE_ALIVE=$(kill -0 $1 2> /dev/null && echo yes || echo no)
  SAMPLE="pins +$SAMPLE_PINS, vCPU threads $SAMPLE_VCPUS, /dev/iommu+/dev/vfio fds $SAMPLE_FDS, alive $SAMPLE_ALIVE"
}

# setup_phase RAM_PAGES: the set-up phase from the sample: pins between none
# and RAM -> map (in set-up, or on the mapping thread with vCPUs running);
# else vCPUs running (or passage gone) -> other; else setup.
# /proc/vmstat lags the per-CPU counts by a few dozen pages: 128 pages short
# of RAM count as all.
setup_phase() {
  if [ "$SAMPLE_ALIVE" = yes ] && [ "$SAMPLE_PINS" -gt 0 ] && [ "$SAMPLE_PINS" -lt $(($1 - 128)) ]; then echo map
  elif [ "$SAMPLE_VCPUS" -gt 0 ] || [ "$SAMPLE_ALIVE" = no ]; then echo other
  else echo setup
  fi
}

SETUP_R=300
# The L2 kernel needs 53M to unpack (passage refuses less, exit 1).
SETUP_MEM=64M
SETUP_PAGES=$(mem_pages $SETUP_MEM)
HOT_R=400
HOT_N=0

# kill_map / kill_setup / kill_dma / kill_hotplug BACKEND: one passage run,
# ended by SIGKILL; set PHASE (observed), AT (what L1 saw, the aim) and OK_PRE
# (1 when the run failed before the kill, with WHY).
MAP_N=0
kill_map() {
  MAP_N=$((MAP_N + 1))
  _mode=sync
  # (MAP_N / 2) % 2: with the backends alternating, all four pairs come
  [ $(( (MAP_N / 2) % 2 )) = 1 ] && _mode=background
  start k9 $MAP_MEM /tmp/l2.img -dma-map $_mode $(device_args $1)
  pct=$(( $(rnd 98) + 1 ))
  target=$((MAP_PAGES * pct / 100))
  _n=0
  # Background mapping pins after the vCPUs start: wait on the pins alone.
  while kill -0 $PID 2> /dev/null && [ $(( $(pinned) - BASE )) -lt $target ] && [ $_n -lt 2400 ]; do
    sleep 0.05
    _n=$((_n + 1))
  done
  sample $PID
  kill -KILL $PID 2> /dev/null
  PHASE=$(setup_phase $MAP_PAGES)
  AT="-dma-map $_mode, aimed at ${pct}% of $MAP_PAGES pages pinned; $SAMPLE"
}

kill_setup() {
  # Set-up after the pinning and before the vCPUs exists with sync only.
  start k9 $SETUP_MEM /tmp/l2.img -dma-map sync $(device_args $1)
  # Under nested TCG the map takes most of set-up (64M: ~0.5 s): aim after
  # it, at the rest (BARs, interrupts, memslots, ACPI, vCPUs).
  _n=0
  while kill -0 $PID 2> /dev/null && [ $(( $(pinned) - BASE )) -lt $((SETUP_PAGES - 128)) ] && [ "$(vcpus $PID)" = 0 ] && [ $_n -lt 1200 ]; do
    sleep 0.02
    _n=$((_n + 1))
  done
  r=$(rnd $SETUP_R)
  ms_sleep $r
  sample $PID
  kill -KILL $PID 2> /dev/null
  PHASE=$(setup_phase $SETUP_PAGES)
  AT="${r} ms (of 0..$SETUP_R) after guest RAM ($SETUP_PAGES pages) was pinned; $SAMPLE"
  # Aim earlier after a late kill, later after an early one.
  if [ "$PHASE" = other ]; then SETUP_R=$((SETUP_R * 2 / 3 + 1)); else SETUP_R=$((SETUP_R * 5 / 4)); fi
}

kill_dma() {
  start k9 200M /tmp/k9.img $(device_args $1)
  wait_l2 k9 $PID /tmp/k9.serial /tmp/k9.err '^KILL9-EDU 1 ' 240
  got=$?
  first=$(tr -d '\r' < /tmp/k9.serial | grep '^KILL9-EDU 1 ')
  r=$(rnd 3000)
  [ $got = 0 ] && ms_sleep $r
  loops=$(tr -d '\r' < /tmp/k9.serial | grep -c '^KILL9-EDU ')
  sample $PID
  kill -KILL $PID 2> /dev/null
  PHASE=other
  [ $got = 0 ] && [ "$SAMPLE_ALIVE" = yes ] && PHASE=dma
  AT="L2 edu-test loop: first '${first:-none}' after $WAITED s, killed $r ms later at loop $((loops + 1)); $SAMPLE${L2_DIAG:+
$L2_DIAG}"
  # The device worked in L2 after the kills before this one.
  case $first in *' rc=0 '*) ;; *) OK_PRE=1 WHY="L2's first edu-test did not pass: ${first:-no marker}" ;; esac
}

kill_hotplug() {
  rm -f /tmp/k9.sock
  start k9 200M /tmp/l2.img -qmp unix:/tmp/k9.sock,server=on,wait=off
  HOT_N=$((HOT_N + 1))
  if ! wait_sock /tmp/k9.sock $PID; then
    OK_PRE=1 WHY="no QMP socket"
  fi
  # add / del alternate per backend (the backends alternate every kill).
  HOT_ADD=$(( ((HOT_N - 1) / 2 + HOT_N) % 2 ))
  if [ $HOT_ADD = 1 ]; then
    how="device_add in flight"
    hot_add $1 /tmp/k9.sock > /tmp/k9.qmp 2>&1 &
    client=$!
    wait_devfd $PID 60
    r=$(rnd $HOT_R)
    ms_sleep $r
    how="$how, $r ms (of 0..$HOT_R) after the first device file"
  else
    hot_add $1 /tmp/k9.sock > /tmp/k9.qmp 2>&1 || { OK_PRE=1 WHY="device_add failed: $(tail -n 3 /tmp/k9.qmp)"; }
    qmp-client /tmp/k9.sock --timeout 60 --event-timeout 120 'device_del id=edu0' \
      --wait-event DEVICE_DELETED:device=edu0 > /tmp/k9.del 2>&1 &
    client=$!
    # The device_del reply (the eject is requested), then a random moment.
    _n=0
    while ! grep -q '"return"' /tmp/k9.del && kill -0 $client 2> /dev/null && [ $_n -lt 600 ]; do sleep 0.1; _n=$((_n + 1)); done
    r=$(rnd 1000)
    ms_sleep $r
    how="device_del pending (no DEVICE_DELETED yet), $r ms after its reply"
  fi
  sample $PID
  inflight=$(kill -0 $client 2> /dev/null && echo yes || echo no)
  kill -KILL $PID 2> /dev/null
  wait $client 2> /dev/null
  PHASE=other
  [ "$inflight" = yes ] && [ "$SAMPLE_ALIVE" = yes ] && PHASE=hotplug
  AT="$how; client still waiting: $inflight; $SAMPLE"
  if [ $HOT_ADD = 1 ]; then
    if [ "$PHASE" = other ]; then HOT_R=$((HOT_R * 2 / 3 + 1)); else HOT_R=$((HOT_R * 5 / 4)); fi
  fi
}

# Taken once, before any run: every kill must come back to it.
BASE=$(pins_settled)
echo "rig: kill9: baseline $BASE pinned pages, $KILL9_COUNT kills"

n=0 n_iommufd=0 n_legacy=0 c_map=0 c_setup=0 c_dma=0 c_hotplug=0 c_other=0 bad=0 bad_list=
while [ $n -lt $KILL9_COUNT ]; do
  n=$((n + 1))
  backend=iommufd
  [ $((n % 2)) = 0 ] && backend=legacy
  case $(( (n - 1) / 2 % 4 )) in
    0) aim=map ;;
    1) aim=setup ;;
    2) aim=dma ;;
    3) aim=hotplug ;;
  esac
  OK_PRE=0 WHY= L2_DIAG=
  t0=$(cut -d' ' -f1 /proc/uptime)
  # The shell reports each job it reaps killed by SIGKILL ("Killed" on its
  # stderr): those lines are expected here; anything else goes on to stderr.
  { kill_$aim $backend; wait $PID; } 2> /tmp/k9.sherr
  rc=$?
  grep -v '^Killed$' /tmp/k9.sherr >&2
  if [ $rc != 137 ]; then OK_PRE=1 WHY="${WHY:+$WHY; }passage exited $rc before the kill (want 137): $(tail -n 3 /tmp/k9.err)"; fi
  leftovers $backend
  clean=$?
  ok=$([ $OK_PRE = 0 ] && [ $clean = 0 ]; echo $?)
  eval "n_$backend=\$((n_$backend + 1))"
  eval "c_$PHASE=\$((c_$PHASE + 1))"
  [ $ok = 0 ] || { bad=$((bad + 1)); bad_list="$bad_list $n:$PHASE"; }
  result "kill9.$n.$PHASE" $ok "kill $n of $KILL9_COUNT, $backend, aimed at $aim, counted as $PHASE (started at ${t0} s of L1's clock): $AT. After: exit $rc; $LEFT${WHY:+; $WHY}"
done

other=
[ $c_other -gt 0 ] && other=", other $c_other"
summary="kill9: $n kills (iommufd $n_iommufd, legacy $n_legacy; phases: map $c_map, setup $c_setup, dma $c_dma, hotplug $c_hotplug$other)"
if [ $bad = 0 ]; then summary="$summary, all clean"; else summary="$summary, $bad NOT clean:$bad_list"; fi
echo "rig: $summary"
# Every phase reached (with at least 8 kills), both backends, every kill clean.
result kill9.count "$([ $bad = 0 ] && [ $n = "$KILL9_COUNT" ] && [ $n_iommufd -gt 0 ] && [ $n_legacy -gt 0 ] &&
  { [ $n -lt 8 ] || { [ $c_map -gt 0 ] && [ $c_setup -gt 0 ] && [ $c_dma -gt 0 ] && [ $c_hotplug -gt 0 ]; }; }; echo $?)" "$summary"

# ---- Graceful stop: SIGTERM and quit, during a guest run and during hotplug.

# stop_checks TAG BACKEND RC WANT_RC [SIGNO]: the exit status, passage's own
# line for a signal, and nothing left.
stop_checks() {
  result "stop.$1.exit" "$([ "$3" = "$4" ]; echo $?)" "$STOP_WHEN; passage exited $3 (want $4); stderr: $(tail -n 4 /tmp/$1.err)"
  [ -n "$5" ] && result "stop.$1.line" "$(grep -q "terminating on signal $5 " "/tmp/$1.err"; echo $?)" \
    "passage's line for a clean stop: $(grep terminating "/tmp/$1.err")"
  leftovers "$2"
  result "stop.$1.clean" $? "$LEFT"
}

# During a guest run: L2 in its edu-test loop.
stop_run() {
  tag=$1 backend=$2 how=$3
  rm -f /tmp/$tag.sock
  start $tag 200M /tmp/k9.img $(device_args $backend) -qmp unix:/tmp/$tag.sock,server=on,wait=off
  wait_l2 $tag $PID /tmp/$tag.serial /tmp/$tag.err '^KILL9-EDU 1 ' 240
  result "stop.$tag.during" $? "L2 in its edu-test loop when the stop came: $(tr -d '\r' < /tmp/$tag.serial | grep '^KILL9-EDU 1 ')${L2_DIAG:+
$L2_DIAG}"
  STOP_WHEN="$how while L2 ran edu-test: $(tr -d '\r' < /tmp/$tag.serial | grep -c '^KILL9-EDU ') loop(s) done, the first: $(tr -d '\r' < /tmp/$tag.serial | grep '^KILL9-EDU 1 ')"
  if [ "$how" = term ]; then
    stop_within $PID 60 TERM
    stop_checks $tag $backend $STOP_RC 143 15
  else
    qmp-client /tmp/$tag.sock --timeout 60 quit --wait-event SHUTDOWN > /tmp/$tag.qmp 2>&1
    STOP_WHEN="$STOP_WHEN; client: $(grep -v '"QMP"' /tmp/$tag.qmp | tr '\n' ' ')"
    stop_within $PID 60
    stop_checks $tag $backend $STOP_RC 0
  fi
}

# During hotplug: SIGTERM while device_add is in flight; quit while a
# device_del waits for the guest.
stop_hotplug() {
  tag=$1 backend=$2 how=$3
  rm -f /tmp/$tag.sock
  start $tag 200M /tmp/l2.img -qmp unix:/tmp/$tag.sock,server=on,wait=off
  wait_sock /tmp/$tag.sock $PID
  if [ "$how" = term ]; then
    hot_add $backend /tmp/$tag.sock > /tmp/$tag.qmp 2>&1 &
    client=$!
    wait_devfd $PID 60
    sample $PID
    inflight=$(kill -0 $client 2> /dev/null && echo yes || echo no)
    stop_within $PID 60 TERM
    wait $client 2> /dev/null
    STOP_WHEN="SIGTERM with device_add in flight: $inflight; $SAMPLE"
    result "stop.$tag.during" "$([ $inflight = yes ]; echo $?)" "$STOP_WHEN"
    stop_checks $tag $backend $STOP_RC 143 15
  else
    hot_add $backend /tmp/$tag.sock > /tmp/$tag.qmp 2>&1
    qmp-client /tmp/$tag.sock --timeout 60 --event-timeout 120 'device_del id=edu0' \
      --wait-event DEVICE_DELETED:device=edu0 > /tmp/$tag.del 2>&1 &
    client=$!
    _n=0
    while ! grep -q '"return"' /tmp/$tag.del && kill -0 $client 2> /dev/null && [ $_n -lt 600 ]; do sleep 0.1; _n=$((_n + 1)); done
    sample $PID
    inflight=$(kill -0 $client 2> /dev/null && echo yes || echo no)
    qmp-client /tmp/$tag.sock --timeout 60 quit --wait-event SHUTDOWN > /tmp/$tag.quit 2>&1
    stop_within $PID 60
    wait $client 2> /dev/null
    STOP_WHEN="quit with device_del pending: $inflight; $SAMPLE; client: $(grep -v '"QMP"' /tmp/$tag.quit | tr '\n' ' ')"
    result "stop.$tag.during" "$([ $inflight = yes ]; echo $?)" "$STOP_WHEN"
    stop_checks $tag $backend $STOP_RC 0
  fi
}

stop_run term_run iommufd term
stop_run quit_run legacy quit
stop_hotplug term_hotplug legacy term
stop_hotplug quit_hotplug iommufd quit
exit 0
