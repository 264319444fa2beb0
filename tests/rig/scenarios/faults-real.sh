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
#                          limit) under half of guest RAM likewise
# The guest is guests/tiny/hello16.bin (real mode, prints one line, exits 0
# through the debug port), so a successful run is set-up, one line, teardown.
# rig: bind=1234:11e8,1b36:0010
# rig: l2=yes
# rig: bin=$PASSAGE_BUILD_DIR/vmm/passage
# rig: bin=$PASSAGE_BUILD_DIR/guests/l2tests/edu-test:/rig/l2bin/edu-test
# rig: add=$PASSAGE_BUILD_DIR/guests/tiny:/rig/tiny
# rig: add=lib/passthrough.sh:/rig/passthrough.sh
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
# rig: expect=flt.memlock.iommufd.reuse.edu.*,flt.memlock.iommufd.reuse.nvme.*,flt.memlock.iommufd.pinned_first
# rig: expect=flt.memlock.legacy.exit,flt.memlock.legacy.teardown.pins,flt.memlock.legacy.teardown.holders
# rig: expect=flt.memlock.legacy.reuse.edu.*
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
mem_kb=$(rig_mem_kb $MEM)
pins0=$(pins_settled)
(
  ulimit -l $((mem_kb * 3 / 2))
  exec $AS_NOBODY passage -m $MEM -kernel $TINY -serial none -accel kvm,fd=5 \
    -object iommufd,id=i0,fd=3 -device vfio-pci,fd=4,iommufd=i0 \
    -object iommufd,id=i1,fd=6 -device vfio-pci,fd=7,iommufd=i1 \
    3<>/dev/iommu 4<>"$EDU_CDEV" 5<>/dev/kvm 6<>/dev/iommu 7<>"$NVME_CDEV" \
    > /tmp/flt.memlock.iommufd.out 2> /tmp/flt.memlock.iommufd.err &
  pid=$!
  # The first IOAS's pins must be seen while the run lives: the undo is
  # only a test when there was something to undo.
  peak=0
  while kill -0 $pid 2> /dev/null; do
    now=$(( $(pinned) - pins0 ))
    [ $now -gt $peak ] && peak=$now
  done
  wait $pid
  echo "rc=$? peak=$peak" > /tmp/flt.memlock.iommufd.rc
)
eval "$(tr ' ' '\n' < /tmp/flt.memlock.iommufd.rc | sed 's/^/ml_/')"
err=$(errors /tmp/flt.memlock.iommufd.err)
n=$(echo "$err" | grep -c .)
result flt.memlock.iommufd.exit "$([ "$ml_rc" = 1 ] && [ "$n" = 1 ]; echo $?)" \
  "RLIMIT_MEMLOCK 1.5 x RAM, two IOASes, as uid $NOBODY: exit $ml_rc (want 1), $n line(s): $err"
# edu's DMA is 28-bit and passage maps all of RAM; the first attach pins it
# (4 KiB pages): at least most of RAM must have been seen pinned.
result flt.memlock.iommufd.pinned_first "$([ "$ml_peak" -ge $((mem_kb / 4 / 2)) ]; echo $?)" \
  "peak pinned pages above the baseline during the run: $ml_peak (guest RAM: $((mem_kb / 4)) pages)"
L2_DEVICES=$(printf '%s iommufd:i0\n%s iommufd:i1\n' "$EDU" "$NVME")
teardown_checks flt.memlock.iommufd "$pins0"

# The legacy container, edu only, under half of RAM: group and container by
# path, so L1 lends the unprivileged user these two files for the run.
group=/dev/vfio/$(pci_group "$EDU")
chmod 0666 /dev/vfio/vfio "$group"
pins0=$(pins_settled)
(
  ulimit -l $((mem_kb / 2))
  exec $AS_NOBODY passage -m $MEM -kernel $TINY -serial none -accel kvm,fd=5 \
    -device vfio-pci,host=$EDU 5<>/dev/kvm > /tmp/flt.memlock.legacy.out 2> /tmp/flt.memlock.legacy.err
)
rc=$?
chmod 0600 /dev/vfio/vfio "$group"
err=$(errors /tmp/flt.memlock.legacy.err)
n=$(echo "$err" | grep -c .)
result flt.memlock.legacy.exit "$([ "$rc" = 1 ] && [ "$n" = 1 ]; echo $?)" \
  "RLIMIT_MEMLOCK RAM/2, container, as uid $NOBODY: exit $rc (want 1), $n line(s): $err"
L2_DEVICES="$EDU legacy"
teardown_checks flt.memlock.legacy "$pins0"
