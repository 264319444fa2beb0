# Issue 11 "Signals": passage boots L2 with edu passed through by iommufd;
# once L2 has reached its init, L1 sends SIGTERM (then, in a second run,
# SIGINT) and judges from outside passage: exit status 128 + signo, pinned
# pages (nr_foll_pin_acquired - nr_foll_pin_released) back to their value
# before the run, no process holding /dev/iommu or /dev/vfio/*, and edu
# usable again at once (rig-probe's DMA round trip through a new IOAS).
# passage's own "terminating on signal" line tells its clean exit from a
# death by the signal (a shell shows 128 + signo for both). Before each
# signal, SIGUSR1: passage must print its state dump and keep running.
# rig: bind=1234:11e8,1b36:0010
# rig: l2=yes
# rig: bin=$PASSAGE_BUILD_DIR/vmm/passage
# rig: bin=$PASSAGE_BUILD_DIR/guests/l2tests/edu-test:/rig/l2bin/edu-test
# rig: add=lib/passthrough.sh:/rig/passthrough.sh
# rig: mem=2G
# One L1 vCPU, as in the passthrough scenarios (passthrough-iommufd.sh).
# rig: smp=1
# rig: stall=90
# rig: timeout=900
# rig: expect=poweroff.exit,poweroff.unpinned
# rig: expect=sigterm.l2_init,sigterm.usr1_dump,sigterm.exit,sigterm.clean_stop,sigterm.unpinned,sigterm.no_holders,sigterm.after.*
# rig: expect=sigint.l2_init,sigint.usr1_dump,sigint.exit,sigint.clean_stop,sigint.unpinned,sigint.no_holders,sigint.after.*

. /rig/lib.sh
. /rig/passthrough.sh

# L2 drives edu, says so, and waits: the signal comes while L2 runs, with
# edu's DMA mapped and its MSI enabled.
ready_image /tmp/sig.img

# signal_run TAG SIG: boots L2, sends SIG once L2 has driven edu, and
# checks everything from outside.
signal_run() {
  tag=$1 sig=$2
  case $sig in
    TERM) signo=15 ;;
    INT) signo=2 ;;
  esac
  before=$(pins_settled)
  : > "/tmp/$tag.serial"
  passage -cpu $CPU -m 200M -smp 1 -kernel $K -initrd /tmp/sig.img -append "$APPEND rig.cpus=1 rig.mem=200M" \
    -serial "file:/tmp/$tag.serial" -object iommufd,id=iommufd0 \
    -device vfio-pci,host=$EDU,iommufd=iommufd0,id=edu0 > "/tmp/$tag.out" 2> "/tmp/$tag.err" &
  pid=$!
  # Wait (at most 240 s, a line a minute for the stall watch) for L2 to be
  # running its scenario; if it never is, L2_DIAG says where L2 was stuck.
  wait_l2 "$tag" $pid "/tmp/$tag.serial" "/tmp/$tag.err" '^SIGNALS-READY' 240
  reached=$?
  pinned_mid=$(pinned)
  result "$tag.l2_init" "$reached" \
    "L2 drove edu and waits, after ~$WAITED s: $(tr -d '\r' < /tmp/$tag.serial | grep -o '"name":"l2\.edu\.[^"]*","ok":[a-z]*' | tr '\n' ' ')${L2_DIAG:+
$L2_DIAG}"
  # SIGUSR1 first: passage dumps its state to stderr and runs on.
  # (Only the lines after this signal count: l2_diag may have asked before.)
  from=$(( $(wc -l < "/tmp/$tag.err") + 1 ))
  kill -USR1 $pid 2>/dev/null
  sleep 3
  dump=$(tail -n +$from "/tmp/$tag.err" | grep -cE '^passage: (vCPU 0: rip=0x[0-9a-f]+ .*lapic: .*|uart COM1: ier=.*|ioapic pin 4: vector=.*)$')
  result "$tag.usr1_dump" "$([ "$dump" = 3 ] && kill -0 $pid 2>/dev/null; echo $?)" \
    "$dump of 3 dump lines, passage $(kill -0 $pid 2>/dev/null && echo 'still running' || echo gone): $(tail -n +$from /tmp/$tag.err | grep -A3 'state dump')"
  # The clean exit must come quickly; 60 s then SIGKILL (and a failed result).
  stop_within $pid 60 $sig
  rc=$STOP_RC
  result "$tag.exit" "$([ $rc = $((128 + signo)) ]; echo $?)" \
    "passage exited $rc after SIG$sig (want $((128 + signo))); stderr: $(tail -n 5 /tmp/$tag.err)"
  result "$tag.clean_stop" "$(grep -q "terminating on signal $signo " "/tmp/$tag.err"; echo $?)" \
    "passage's own line for a clean stop (absent when the signal killed it): $(grep terminating /tmp/$tag.err)"
  after=$(pins_back "$before")
  result "$tag.unpinned" "$([ "${after%% *}" = "$before" ] && [ "$pinned_mid" -gt "$before" ]; echo $?)" \
    "pinned pages: before $before, while L2 ran $pinned_mid, after exit $after"
  h=$(holders)
  result "$tag.no_holders" "$([ -z "$h" ]; echo $?)" "open /dev/iommu or /dev/vfio/* in L1: ${h:-none}"
  # The device again, at once: a new iommufd, bind, attach and edu DMA.
  rig-probe cdev "$EDU_CDEV" --name "$tag.after" --edu
}

# The same measure after an ordinary run (L2 drives edu and powers off), for
# comparison: what a signal leaves must be what power-off leaves, nothing.
before=$(pins_settled)
bounded 300 passage -cpu $CPU -m 200M -smp 1 -kernel $K -initrd /tmp/l2.img -append "$APPEND rig.cpus=1 rig.mem=200M" \
  -serial file:/tmp/poweroff.serial -object iommufd,id=iommufd0 \
  -device vfio-pci,host=$EDU,iommufd=iommufd0,id=edu0 > /tmp/poweroff.out 2> /tmp/poweroff.err
rc=$?
result poweroff.exit "$rc" "passage exited $rc; stderr: $(tail -n 3 /tmp/poweroff.err)"
after=$(pins_back "$before")
result poweroff.unpinned "$([ "${after%% *}" = "$before" ]; echo $?)" \
  "pinned pages: before $before, after exit $after"

signal_run sigterm TERM
signal_run sigint INT
exit 0
