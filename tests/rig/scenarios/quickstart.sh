# The README's main job: passage, inside the rig's L1, boots the test kernel
# with QEMU's edu device passed through by iommufd, and shows the guest's
# console. Run with -v to see L1's console (and with it L2's).
# rig: bind=1234:11e8
# rig: l2=yes
# rig: bin=$PASSAGE_BUILD_DIR/vmm/passage
# rig: smp=1
# Nested passage runs are bounded (lib.sh: a line every 60 s), so 90 s of
# console silence means L1 froze under TCG (README "Known limits"): the run
# is ended and retried.
# rig: stall=90
# rig: timeout=600
# rig: expect=quickstart.exit,quickstart.done,quickstart.l2.pci.0000:00:04.0,quickstart.l2.cpus,quickstart.l2.memtotal

. /rig/lib.sh
EDU=$(pci_find 1234:11e8 | head -n 1)
set -- -cpu host,-xsave,-x2apic -m 256M -smp 1 \
  -kernel /rig/l2/bzImage -initrd /rig/l2/initramfs.cpio.gz -append "console=ttyS0 panic=-1 rig.cpus=1 rig.mem=256M rig.pci=00:00.0=8086:29c0,00:04.0=1234:11e8" \
  -object iommufd,id=iommufd0 -device vfio-pci,host=$EDU,iommufd=iommufd0,id=edu0,addr=04.0 --report-timing
echo "L1# passage $*"
bounded 300 passage "$@" -serial file:/tmp/l2.serial 2> /tmp/l2.err
rc=$?
# L2's console, its result markers defused so they stay L2's.
tr -d '\r' < /tmp/l2.serial | sed -e 's/RIG-\(BOOT\|RESULT\|DONE\)/rig-\1/' -e 's/^/L2| /'
cat /tmp/l2.err
result quickstart.exit "$rc" "passage exited $rc"
# The guest's own checks (rig.* above): CPUs, memory, edu at 00:04.0.
rig_import quickstart /tmp/l2.serial
exit 0
