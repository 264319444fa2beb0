# Issue 15 "Fault injection", on the real kernel: failures that L1's own
# kernel makes happen, at every step of passage's set-up that needs one.
#   flt.nofile.BACKEND.kK  passage with edu and nvme under RLIMIT_NOFILE = K,
#                          K = 3, 4, ... until the run succeeds. Every fd
#                          passage makes (the kernel image, /dev/kvm, the VM
#                          and vCPU fds, the memfd, /dev/iommu or the
#                          container and groups, the cdevs, eventfds for
#                          irqfds, epoll, signalfd, ...) fails in turn with
#                          EMFILE: each run must exit 1 with one line, and
#                          after it L1 sees its pinned pages back at the
#                          value before and no holder of /dev/iommu or
#                          /dev/vfio/* (K's .teardown.*). Where the error
#                          line changes (a new step failed) both devices are
#                          used again at once (.reuse.*).
#   flt.nofile.BACKEND     the sweep: every run before the first success
#                          failed cleanly, it ended in a success (exit 0,
#                          the tiny guest's debug-port status), and at least
#                          MIN_STEPS different steps failed
#   flt.memlock.*          as user 65534 with every file as an fd: two
#                          iommufd objects (edu on one, nvme on the other),
#                          RLIMIT_MEMLOCK between one and two times guest RAM:
#                          the first IOAS maps and pins RAM, the second's
#                          pin is refused by the kernel (iommufd charges the
#                          user); passage undoes the first (exit 1, one
#                          line, pins back, no holders, devices usable);
#                          the legacy container (type1 charges the same
#                          limit) under half of guest RAM likewise. Each
#                          with -dma-map background (the refusal comes after
#                          the vCPUs started: .after_start) and sync (.-sync,
#                          refused in set-up: .before_start)
#   flt.hotplug.BACKEND.kK  passage up with a QMP socket (and for iommufd an
#                          -object with no device) under RLIMIT_NOFILE = K,
#                          K rising from where it boots: QMP device_add of
#                          edu fails in turn at each fd it needs (the client's
#                          connection, the cdev or container and group, the
#                          KVM-VFIO device, eventfds). Each refusal: an error
#                          reply, the VM still running (query-status), L1
#                          sees passage hold no /dev/vfio file and nothing
#                          pinned; then quit (exit 0), pins back, no holder.
#   flt.hotplug.BACKEND    the sweep ended in a device_add that worked (RAM
#                          pinned for iommufd while edu is in), every refusal
#                          before it was clean, at least MIN_HP_STEPS steps
# The guest is guests/tiny/hello16.bin (real mode, prints one line, exits 0
# through the debug port), so a successful run is set-up, one line, teardown.
# rig: bind=1234:11e8,1b36:0010
# rig: l2=yes
# rig: bin=$PASSAGE_BUILD_DIR/vmm/passage
# rig: bin=$PASSAGE_BUILD_DIR/guests/l2tests/edu-test:/rig/l2bin/edu-test
# rig: add=$PASSAGE_BUILD_DIR/guests/tiny:/rig/tiny
# rig: add=lib/passthrough.sh:/rig/passthrough.sh
# rig: add=../../qmp/qmp-client.py:/usr/local/bin/qmp-client
# rig: python=../../qmp/qmp-client.py
# busybox's setpriv cannot change uids; util-linux's can.
# rig: bin=/usr/bin/setpriv:/usr/local/sbin/setpriv-ul
# rig: mem=2G
# One L1 vCPU, a stall watch: as the passthrough scenarios (README "Known limits").
# rig: smp=1
# rig: stall=90
# rig: timeout=1500
# rig: expect=flt.nofile.iommufd,flt.nofile.legacy
# rig: expect=flt.nofile.iommufd.k*.exit,flt.nofile.iommufd.k*.teardown.pins,flt.nofile.iommufd.k*.teardown.holders
# rig: expect=flt.nofile.iommufd.k*.reuse.edu.*,flt.nofile.iommufd.k*.reuse.nvme.*
# rig: expect=flt.nofile.legacy.k*.exit,flt.nofile.legacy.k*.teardown.pins,flt.nofile.legacy.k*.teardown.holders
# rig: expect=flt.nofile.legacy.k*.reuse.edu.*,flt.nofile.legacy.k*.reuse.nvme.*
# rig: expect=flt.memlock.iommufd.exit,flt.memlock.iommufd.teardown.pins,flt.memlock.iommufd.teardown.holders
# rig: expect=flt.memlock.iommufd.reuse.edu.*,flt.memlock.iommufd.reuse.nvme.*,flt.memlock.iommufd.pinned_first,flt.memlock.iommufd.after_start
# rig: expect=flt.memlock.iommufd-sync.exit,flt.memlock.iommufd-sync.teardown.pins,flt.memlock.iommufd-sync.teardown.holders
# rig: expect=flt.memlock.iommufd-sync.reuse.edu.*,flt.memlock.iommufd-sync.reuse.nvme.*,flt.memlock.iommufd-sync.pinned_first,flt.memlock.iommufd-sync.before_start
# rig: expect=flt.memlock.legacy.exit,flt.memlock.legacy.teardown.pins,flt.memlock.legacy.teardown.holders
# rig: expect=flt.memlock.legacy.reuse.edu.*,flt.memlock.legacy.after_start
# rig: expect=flt.memlock.legacy-sync.exit,flt.memlock.legacy-sync.teardown.pins,flt.memlock.legacy-sync.teardown.holders
# rig: expect=flt.memlock.legacy-sync.reuse.edu.*,flt.memlock.legacy-sync.before_start
# rig: expect=flt.hotplug.iommufd,flt.hotplug.iommufd.k*.added,flt.hotplug.iommufd.k*.refused,flt.hotplug.iommufd.k*.teardown.pins,flt.hotplug.iommufd.k*.teardown.holders
# rig: expect=flt.hotplug.legacy,flt.hotplug.legacy.k*.added,flt.hotplug.legacy.k*.refused,flt.hotplug.legacy.k*.teardown.pins,flt.hotplug.legacy.k*.teardown.holders
. /rig/lib.sh
. /rig/passthrough.sh

TINY=/rig/tiny/hello16.bin
MEM=64M
# The fewest different set-up steps the sweep must see fail. The first run
# (2026-12-03) saw 14 with iommufd and 16 with the container (KVM_CREATE_VM,
# the event loop, eventfds, the memfd, /dev/iommu or the container and each
# group, each cdev lookup or VFIO_GROUP_GET_DEVICE_FD, the KVM-VFIO device,
# each INTx eventfd, the kernel image, the signalfd); fewer than 10 means the
# sweep stopped reaching the later steps.
MIN_STEPS=10
NOBODY=65534
AS_NOBODY="/usr/local/sbin/setpriv-ul --reuid=$NOBODY --regid=$NOBODY --clear-groups"

# alive PID: PID runs (a child that exited but is not yet waited for is a
# zombie, and kill -0 still succeeds on it).
# The shell may reap PID while the substitution runs (ash waits for any
# child there), so an unreadable stat means gone too.
alive() {
  _al=$(sed 's/.*) //' /proc/$1/stat 2> /dev/null | cut -d' ' -f1)
  [ -n "$_al" ] && [ "$_al" != Z ]
}

# errors FILE: passage's lines in FILE but warnings ("device not reset").
errors() { grep -v '^passage: warning: ' "$1" | grep -v 'resources at exit'; }

# sweep BACKEND ARGS...: passage ARGS under RLIMIT_NOFILE = 3, 4, ...
sweep() {
  _sw_be=$1
  shift
  _sw_k=3 _sw_last= _sw_steps=0 _sw_bad=0 _sw_ok=false _sw_msgs=
  while [ $_sw_k -le 80 ]; do
    _sw_tag=flt.nofile.$_sw_be.k$_sw_k
    _sw_pins0=$(pins_settled)
    bounded 120 sh -c "ulimit -n $_sw_k && exec passage -m $MEM -kernel $TINY -serial none $*" \
      > "/tmp/$_sw_tag.out" 2> "/tmp/$_sw_tag.err"
    _sw_rc=$?
    if [ $_sw_rc = 0 ]; then
      _sw_ok=true
      break
    fi
    _sw_err=$(errors "/tmp/$_sw_tag.err")
    # Too few fds for the dynamic loader: passage's code never ran.
    if [ $_sw_rc = 127 ] && echo "$_sw_err" | grep -q 'error while loading shared libraries'; then
      _sw_msgs="$_sw_msgs | k$_sw_k: the loader (exit 127, before passage)"
      _sw_k=$((_sw_k + 1))
      continue
    fi
    _sw_n=$(echo "$_sw_err" | grep -c .)
    result "$_sw_tag.exit" "$([ $_sw_rc = 1 ] && [ "$_sw_n" = 1 ]; echo $?)" \
      "RLIMIT_NOFILE $_sw_k: exit $_sw_rc (want 1), $_sw_n error line(s) (want 1): $_sw_err"
    [ $_sw_rc = 1 ] && [ "$_sw_n" = 1 ] || _sw_bad=$((_sw_bad + 1))
    # The step that failed, without numbers (fd numbers, sizes) in its line.
    _sw_step=$(echo "$_sw_err" | tr -d '0-9')
    L2_DEVICES=
    if [ "$_sw_step" != "$_sw_last" ]; then
      _sw_steps=$((_sw_steps + 1))
      _sw_msgs="$_sw_msgs | k$_sw_k: $_sw_err"
      L2_DEVICES=$(printf '%s %s\n%s %s\n' "$EDU" "$DEV_BE" "$NVME" "$DEV_BE")
    fi
    _sw_last=$_sw_step
    teardown_checks "$_sw_tag" "$_sw_pins0"
    _sw_k=$((_sw_k + 1))
  done
  result "flt.nofile.$_sw_be" "$($_sw_ok && [ $_sw_bad = 0 ] && [ $_sw_steps -ge $MIN_STEPS ]; echo $?)" \
    "RLIMIT_NOFILE 3..$_sw_k: $_sw_steps different failing steps (want >= $MIN_STEPS), $_sw_bad unclean failure(s), success at $_sw_k: $_sw_ok$_sw_msgs"
}

# 1. RLIMIT_NOFILE sweeps, both backends, edu and nvme in one VM.
DEV_BE=iommufd:i0
sweep iommufd -object iommufd,id=i0 -device vfio-pci,host=$EDU,iommufd=i0 -device vfio-pci,host=$NVME,iommufd=i0
DEV_BE=legacy
sweep legacy -device vfio-pci,host=$EDU -device vfio-pci,host=$NVME

# 2. RLIMIT_MEMLOCK as an unprivileged user: the second IOAS's pin refused.
# With -dma-map background (the default) guest RAM is pinned after the vCPUs
# start, so the guest idles (guests/tiny/idle16.bin): only the refusal can
# end the run. -dma-map sync refuses during set-up, before any vCPU runs.
IDLE=/rig/tiny/idle16.bin
mem_kb=$(rig_mem_kb $MEM)

# memlock_run TAG LIMIT_KB ARGS: passage ARGS (fd redirections allowed) as
# uid $NOBODY under RLIMIT_MEMLOCK LIMIT_KB, stopped (SIGTERM) after 120 s. Sets
# ml_rc, ml_peak (the most pages seen pinned above pins0) and ml_vcpu (1:
# a vCPU thread was seen before it exited).
memlock_run() {
  _ml_tag=$1 _ml_limit=$2
  shift 2
  (
    ulimit -l $_ml_limit
    eval "exec $AS_NOBODY passage -m $MEM -kernel $IDLE -serial none $*" \
      > "/tmp/$_ml_tag.out" 2> "/tmp/$_ml_tag.err" &
    pid=$!
    # Ends with passage (a pid is never killed once reaped and reusable).
    (
      _ml_n=0
      while alive $pid && [ $_ml_n -lt 1200 ]; do sleep 0.1; _ml_n=$((_ml_n + 1)); done
      alive $pid && kill -TERM $pid
    ) &
    watchdog=$!
    # The first space's pins must be seen while the run lives: the undo is
    # only a test when there was something to undo.
    peak=0 vcpu=0
    while alive $pid; do
      now=$(( $(pinned) - pins0 ))
      [ $now -gt $peak ] && peak=$now
      [ $vcpu = 0 ] && [ "$(vcpus $pid)" != 0 ] && vcpu=1
    done
    wait $pid
    echo "rc=$? peak=$peak vcpu=$vcpu" > "/tmp/$_ml_tag.rc"
    wait $watchdog
  )
  eval "$(tr ' ' '\n' < "/tmp/$_ml_tag.rc" | sed 's/^/ml_/')"
}

# when_checks TAG MODE: the refusal came after the vCPUs started
# (background) or before any did (sync).
when_checks() {
  if [ "$2" = sync ]; then
    result "$1.before_start" "$([ "$ml_vcpu" = 0 ]; echo $?)" \
      "-dma-map sync: a vCPU thread seen before the refusal: $ml_vcpu (want 0: refused in set-up)"
  else
    result "$1.after_start" "$([ "$ml_vcpu" = 1 ]; echo $?)" \
      "-dma-map background: a vCPU thread seen before the refusal: $ml_vcpu (want 1: pinned while the guest runs)"
  fi
}

for mode in background sync; do
  tag=flt.memlock.iommufd
  [ $mode = sync ] && tag=flt.memlock.iommufd-sync
  pins0=$(pins_settled)
  memlock_run $tag $((mem_kb * 3 / 2)) -dma-map $mode -accel kvm,fd=5 \
    -object iommufd,id=i0,fd=3 -device vfio-pci,fd=4,iommufd=i0 \
    -object iommufd,id=i1,fd=6 -device vfio-pci,fd=7,iommufd=i1 \
    '3<>/dev/iommu 4<>"$EDU_CDEV" 5<>/dev/kvm 6<>/dev/iommu 7<>"$NVME_CDEV"'
  err=$(errors /tmp/$tag.err)
  n=$(echo "$err" | grep -c .)
  result $tag.exit "$([ "$ml_rc" = 1 ] && [ "$n" = 1 ]; echo $?)" \
    "RLIMIT_MEMLOCK 1.5 x RAM, two IOASes, -dma-map $mode, as uid $NOBODY: exit $ml_rc (want 1), $n line(s): $err"
  # edu's DMA is 28-bit and passage maps all of RAM; the first space pins it
  # (4 KiB pages): at least most of RAM must have been seen pinned.
  result $tag.pinned_first "$([ "$ml_peak" -ge $((mem_kb / 4 / 2)) ]; echo $?)" \
    "peak pinned pages above the baseline during the run: $ml_peak (guest RAM: $((mem_kb / 4)) pages)"
  when_checks $tag $mode
  L2_DEVICES=$(printf '%s iommufd:i0\n%s iommufd:i1\n' "$EDU" "$NVME")
  teardown_checks $tag "$pins0"
done

# The legacy container, edu only, under half of RAM: group and container by
# path, so L1 lends the unprivileged user these two files for the run.
group=/dev/vfio/$(pci_group "$EDU")
for mode in background sync; do
  tag=flt.memlock.legacy
  [ $mode = sync ] && tag=flt.memlock.legacy-sync
  chmod 0666 /dev/vfio/vfio "$group"
  pins0=$(pins_settled)
  memlock_run $tag $((mem_kb / 2)) -dma-map $mode -accel kvm,fd=5 -device vfio-pci,host=$EDU '5<>/dev/kvm'
  chmod 0600 /dev/vfio/vfio "$group"
  err=$(errors /tmp/$tag.err)
  n=$(echo "$err" | grep -c .)
  result $tag.exit "$([ "$ml_rc" = 1 ] && [ "$n" = 1 ]; echo $?)" \
    "RLIMIT_MEMLOCK RAM/2, container, -dma-map $mode, as uid $NOBODY: exit $ml_rc (want 1), $n line(s): $err"
  when_checks $tag $mode
  L2_DEVICES="$EDU legacy"
  teardown_checks $tag "$pins0"
done

# 3. Hotplug under RLIMIT_NOFILE: device_add refused at each step, the VM
# unharmed. The guest idles (guests/tiny/idle16.bin) until QMP quit.
IDLE=/rig/tiny/idle16.bin
# The first passing runs (2026-12-03) saw 4 with iommufd (the client's
# connection, the cdev lookup, the KVM-VFIO device, the INTx eventfd) and 6
# with the container (the container, the group, GET_DEVICE_FD besides).
MIN_HP_STEPS=4

# holds PID: the /dev/vfio and /dev/iommu files PID has open.
holds() { ls -l /proc/$1/fd 2> /dev/null | grep -oE -- '-> /dev/(iommu|vfio/.*)' | sed 's/-> //' | tr '\n' ' '; }

# hp_sweep BACKEND OBJECT_ARGS DEVICE_ADD_KEYS
hp_sweep() {
  _hp_be=$1 _hp_obj=$2 _hp_keys=$3
  _hp_k=6 _hp_last= _hp_steps=0 _hp_bad=0 _hp_ok=false _hp_msgs= _hp_booted=false
  while [ $_hp_k -le 80 ]; do
    _hp_tag=flt.hotplug.$_hp_be.k$_hp_k
    _hp_sock=/tmp/$_hp_tag.sock
    _hp_pins0=$(pins_settled)
    sh -c "ulimit -n $_hp_k && exec passage -m $MEM -kernel $IDLE -serial none $_hp_obj -qmp unix:$_hp_sock,server=on,wait=off" \
      > "/tmp/$_hp_tag.out" 2> "/tmp/$_hp_tag.err" &
    _hp_pid=$!
    _hp_n=0
    # Up: set-up over, i.e. its vCPU thread runs (the socket alone comes
    # before set-up, which may still fail).
    while [ "$(vcpus $_hp_pid)" = 0 ] && alive $_hp_pid && [ $_hp_n -lt 300 ]; do
      sleep 0.1
      _hp_n=$((_hp_n + 1))
    done
    if ! alive $_hp_pid; then
      # Too few fds to start: set-up's own sweep (1.) covers that.
      wait $_hp_pid
      $_hp_booted && _hp_bad=$((_hp_bad + 1))
      _hp_k=$((_hp_k + 1))
      continue
    fi
    _hp_booted=true
    qmp-client --timeout 20 "$_hp_sock" "device_add driver=vfio-pci $_hp_keys id=d0" > "/tmp/$_hp_tag.qmp" 2>&1
    _hp_qrc=$?
    if [ $_hp_qrc = 0 ]; then
      _hp_added=$(( $(pinned) - _hp_pins0 ))
      _hp_held=$(holds $_hp_pid)
      qmp-client --timeout 20 "$_hp_sock" quit > /dev/null 2>&1
      wait $_hp_pid
      _hp_rc=$?
      _hp_ok=true
      result "$_hp_tag.added" "$([ $_hp_rc = 0 ] && [ -n "$_hp_held" ] &&
        { [ $_hp_be = legacy ] || [ $_hp_added -ge $(( $(mem_pages $MEM) / 2 )) ]; }; echo $?)" \
        "device_add worked at RLIMIT_NOFILE $_hp_k: passage held $_hp_held, pinned $_hp_added pages above the baseline; quit: exit $_hp_rc"
      L2_DEVICES="$EDU $_hp_be"
      [ $_hp_be = iommufd ] && L2_DEVICES="$EDU iommufd:i0"
      teardown_checks "$_hp_tag" "$_hp_pins0"
      break
    fi
    # Refused (exit 1: an error reply) or the connection closed unanswered
    # (exit 3: no fd for it). Either way the VM must be untouched.
    _hp_err=$(grep -o '"desc":"[^"]*"' "/tmp/$_hp_tag.qmp" | head -n 1)
    [ $_hp_qrc = 3 ] && _hp_err="connection closed: $(tail -n 1 "/tmp/$_hp_tag.qmp")"
    _hp_status=$(qmp-client --timeout 20 "$_hp_sock" query-status 2> /dev/null | grep -o '"status":"[a-z-]*"')
    _hp_held=$(holds $_hp_pid)
    # Nothing pinned above the baseline (below it: a page an earlier
    # process's teardown released late, seen once: -4).
    # A refusal after the attach unpins on detach; give the count up to 5 s
    # to come back before calling what stays a leak.
    _hp_n=0
    while [ $(( $(pinned) - _hp_pins0 )) -gt 0 ] && [ $_hp_n -lt 25 ]; do
      sleep 0.2
      _hp_n=$((_hp_n + 1))
    done
    _hp_now=$(( $(pinned) - _hp_pins0 ))
    _hp_vm=$(grep -E '^Vm(Lck|Pin)' /proc/$_hp_pid/status 2> /dev/null | tr -s ' \t\n' ' ')
    _hp_clean=false
    { [ $_hp_qrc = 1 ] || [ $_hp_qrc = 3 ]; } && [ -n "$_hp_err" ] && [ "$_hp_now" -le 0 ] &&
      case $_hp_be in iommufd) [ "$_hp_held" = "/dev/iommu " ] ;; *) [ -z "$_hp_held" ] ;; esac && _hp_clean=true
    # The query needs a connection too: at the lowest K it may be refused the
    # same way; a running VM is then shown by quit below.
    qmp-client --timeout 20 "$_hp_sock" quit > /dev/null 2>&1 || kill -TERM $_hp_pid
    wait $_hp_pid
    _hp_rc=$?
    { [ $_hp_rc = 0 ] || { [ $_hp_qrc = 3 ] && [ $_hp_rc = 143 ]; }; } || _hp_clean=false
    [ -n "$_hp_status" ] && [ "$_hp_status" != '"status":"running"' ] && _hp_clean=false
    result "$_hp_tag.refused" "$($_hp_clean; echo $?)" \
      "RLIMIT_NOFILE $_hp_k: client exit $_hp_qrc, ${_hp_err:-no error}; then ${_hp_status:-no status (connection refused)}, passage held '${_hp_held}', pinned +$_hp_now (after $((_hp_n / 5)).$((_hp_n % 5 * 2)) s; passage's $_hp_vm); exit $_hp_rc"
    $_hp_clean || _hp_bad=$((_hp_bad + 1))
    _hp_step=$(echo "$_hp_err" | tr -d '0-9')
    L2_DEVICES=
    if [ "$_hp_step" != "$_hp_last" ]; then
      _hp_steps=$((_hp_steps + 1))
      _hp_msgs="$_hp_msgs | k$_hp_k: $_hp_err"
      L2_DEVICES="$EDU $_hp_be"
      [ $_hp_be = iommufd ] && L2_DEVICES="$EDU iommufd:i0"
    fi
    _hp_last=$_hp_step
    teardown_checks "$_hp_tag" "$_hp_pins0"
    _hp_k=$((_hp_k + 1))
  done
  result "flt.hotplug.$_hp_be" "$($_hp_ok && [ $_hp_bad = 0 ] && [ $_hp_steps -ge $MIN_HP_STEPS ]; echo $?)" \
    "RLIMIT_NOFILE up to $_hp_k: $_hp_steps different refusals (want >= $MIN_HP_STEPS), $_hp_bad unclean, device_add worked at the end: $_hp_ok$_hp_msgs"
}

hp_sweep iommufd "-object iommufd,id=i0" "host=$EDU iommufd=i0"
hp_sweep legacy "" "host=$EDU"
