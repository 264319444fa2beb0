# Issue 15 "Sandbox": passage with -sandbox on (vmm/sandbox.h), every file
# handed in as an fd, so its filter forbids open after set-up.
#   sbx.selftest        PASSAGE_SANDBOX_SELFTEST=1 (test-only) makes the
#                       event-loop thread open /dev/null once the filter is
#                       on: passage exits 159 with its one line naming
#                       openat and the thread (edu attached by fd: after the
#                       kill nothing is pinned or held, edu works at once)
#   sbx.selftest_allow  with open=allow the trigger is socket(AF_INET) instead,
#                       still fatal
#   sbx.memlock         unprivileged with RLIMIT_MEMLOCK below guest RAM: the
#                       attach fails (iommufd charges pins to the user), exit
#                       1 with one line, nothing left
#   sbx.edu, sbx.nvme   full passthrough runs (lib/passthrough.sh's fds_boot,
#                       L2 drives the device) under -sandbox on, as user
#                       65534 (util-linux setpriv; the fds are opened by root
#                       before), RLIMIT_MEMLOCK raised to guest RAM + slack
#                       first; TAG.sandboxed: L1 saw passage run as uid 65534
#                       under two seccomp filters (passage-noopen's, passage's)
# rig: bind=1234:11e8,1b36:0010
# rig: l2=yes
# rig: bin=$PASSAGE_BUILD_DIR/vmm/passage
# rig: bin=$PASSAGE_BUILD_DIR/guests/l2tests/edu-test:/rig/l2bin/edu-test
# rig: add=lib/passthrough.sh:/rig/passthrough.sh
# rig: bin=$PASSAGE_BUILD_DIR/tests/rig/noopen/passage-noopen
# busybox's setpriv cannot change uids; util-linux's can (libcap-ng comes along).
# rig: bin=/usr/bin/setpriv:/usr/local/sbin/setpriv-ul
# rig: mem=2G
# One L1 vCPU, short runs, a stall watch: as passthrough-fds.sh (README
# "Known limits").
# rig: smp=1
# rig: stall=90
# rig: timeout=1200
# rig: expect=sbx.selftest,sbx.selftest.teardown.pins,sbx.selftest.teardown.holders,sbx.selftest.reuse.edu.cdev.dma
# rig: expect=sbx.selftest_allow,sbx.memlock,sbx.memlock.teardown.pins,sbx.memlock.teardown.holders
# rig: expect=sbx.edu.l2.pci.0000:00:01.0,sbx.edu.done,sbx.edu.exit,sbx.edu.ioas.pins,sbx.edu.ioas.fds,sbx.edu.teardown.pins,sbx.edu.teardown.holders,sbx.edu.l2.edu.msi,sbx.edu.l2.edu.dma,sbx.edu.edu.rom,sbx.edu.reuse.edu.cdev.dma,sbx.edu.noopen,sbx.edu.resources,sbx.edu.sandboxed
# rig: expect=sbx.nvme.l2.pci.0000:00:01.0,sbx.nvme.done,sbx.nvme.exit,sbx.nvme.ioas.pins,sbx.nvme.teardown.pins,sbx.nvme.teardown.holders,sbx.nvme.nvme.data,sbx.nvme.nvme.msix,sbx.nvme.reuse.nvme.cdev.attach_ioas,sbx.nvme.noopen,sbx.nvme.resources,sbx.nvme.sandboxed
. /rig/lib.sh
. /rig/passthrough.sh

NOBODY=65534
AS_NOBODY="/usr/local/sbin/setpriv-ul --reuid=$NOBODY --regid=$NOBODY --clear-groups"
LINE='^passage: sandbox: forbidden system call'

# selftest TAG SYSCALL [ARGS...]: the test-only trigger under -sandbox ARGS;
# passage must exit 159 with one line naming SYSCALL on its loop thread.
selftest() {
  _st_tag=$1 _st_call=$2
  shift 2
  bounded 120 env PASSAGE_SANDBOX_SELFTEST=1 passage -cpu $CPU -m 200M -kernel $K -serial none "$@" \
    > "/tmp/$_st_tag.out" 2> "/tmp/$_st_tag.err"
  _st_rc=$?
  # edu may add "passage: warning: ... not reset" when it is taken.
  _st_lines=$(grep '^passage: ' "/tmp/$_st_tag.err" | grep -vc '^passage: warning: ')
  result "$_st_tag" "$([ $_st_rc = 159 ] && [ "$_st_lines" = 1 ] &&
    grep -q "$LINE [0-9]* ($_st_call) .* in thread [0-9]* (passage-loop); exiting with status 159\$" "/tmp/$_st_tag.err"; echo $?)" \
    "exit $_st_rc (want 159), $_st_lines passage line(s) besides warnings (want 1): $(cat "/tmp/$_st_tag.err")"
}

# 1. The trigger, edu attached by fd: the kill leaves nothing behind.
pins0=$(pins_settled)
selftest sbx.selftest openat -sandbox on -accel kvm,fd=5 -object iommufd,id=i0,fd=3 \
  -device vfio-pci,fd=4,iommufd=i0,id=d0 3<>/dev/iommu 4<>"$EDU_CDEV" 5<>/dev/kvm
L2_DEVICES="$EDU iommufd:i0"
teardown_checks sbx.selftest "$pins0"

# 2. With open allowed, the trigger makes another forbidden call.
selftest sbx.selftest_allow socket -sandbox on,open=allow -accel kvm,fd=5 5<>/dev/kvm

# 3. Unprivileged, RLIMIT_MEMLOCK (64 MiB) below guest RAM (200 MiB).
pins0=$(pins_settled)
(
  ulimit -l 65536
  bounded 120 env $NOOPEN $AS_NOBODY passage -cpu $CPU -m 200M -kernel $K -serial none -sandbox on \
    -accel kvm,fd=5 -object iommufd,id=i0,fd=3 -device vfio-pci,fd=4,iommufd=i0,id=d0 \
    3<>/dev/iommu 4<>"$EDU_CDEV" 5<>/dev/kvm > /tmp/sbx.memlock.out 2> /tmp/sbx.memlock.err
)
rc=$?
errs=$(grep -v '^passage: warning: ' /tmp/sbx.memlock.err | grep -c .)
result sbx.memlock "$([ $rc = 1 ] && [ "$errs" = 1 ] && grep -qi 'memory' /tmp/sbx.memlock.err; echo $?)" \
  "exit $rc (want 1), $errs error line(s) (want 1, about memory): $(cat /tmp/sbx.memlock.err)"
L2_DEVICES=
teardown_checks sbx.memlock "$pins0"

# sandboxed TAG: passage ran as NOBODY under two filters (watch_run's sample).
sandboxed() {
  d=$(cat "/tmp/$1.during" 2> /dev/null)
  uid=$(echo "$d" | tr ' ' '\n' | sed -n 's/^uid=//p')
  filters=$(echo "$d" | tr ' ' '\n' | sed -n 's/^seccomp_filters=//p')
  result "$1.sandboxed" "$([ "$uid" = $NOBODY ] && [ "$filters" = 2 ]; echo $?)" \
    "while L2 ran passage had uid ${uid:-?} (want $NOBODY) and ${filters:-?} seccomp filters (want 2: passage-noopen's and -sandbox on's)"
}

# 4. Full runs, unprivileged. iommufd charges pinned pages to the user's
# RLIMIT_MEMLOCK: guest RAM once per IOAS, plus slack.
ulimit -l $(( (512 + 64) * 1024 ))
FDS_AS=$AS_NOBODY
fds_boot sbx.edu 200M "$EDU_CDEV" -sandbox on
sandboxed sbx.edu
fds_boot sbx.nvme 512M "$NVME_CDEV" -sandbox on
sandboxed sbx.nvme
FDS_AS=
exit 0
