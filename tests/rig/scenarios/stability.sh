# Issue 11 "The rig's own stability": in one L1 boot, the pattern that used to
# freeze L1 under TCG (tests/rig/README "Known limits"): a 512 MiB passage VM
# with edu by iommufd, a console-heavy VM (the 8250: one exit per byte) with
# edu by the legacy container, QEMU 7.2 booting the same L2 with edu and
# nvme, and right after QEMU another 512 MiB passage VM (starting a VM just
# after QEMU froze L1 in 4 of 5 cases before). Each VM must end with L2's
# RIG-DONE and exit 0. Not in the default run (label stress): the
# measurement loops it over many L1 boots, counting stalls and key presses
# from run.py's JSON (selfcheck/stability-loop.sh).
# rig: bind=1234:11e8,1b36:0010
# rig: l2=yes
# rig: bin=$PASSAGE_BUILD_DIR/vmm/passage
# rig: bin=$PASSAGE_BUILD_DIR/guests/l2tests/edu-test:/rig/l2bin/edu-test
# rig: bin=/usr/bin/qemu-system-x86_64:/usr/bin/qemu-system-x86_64
# rig: add=/usr/share/qemu:/usr/share/qemu add=/usr/share/seabios:/usr/share/seabios
# rig: add=lib/passthrough.sh:/rig/passthrough.sh
# rig: mem=2G
# One L1 vCPU, as in the passthrough scenarios (README "Known limits").
# rig: smp=1
# rig: stall=90
# rig: timeout=1800
# rig: expect=big1.done,big1.exit,flood.done,flood.exit,qemu.exit,qemu.done,big2.done,big2.exit

. /rig/lib.sh
. /rig/passthrough.sh

LINES=${FLOOD_LINES:-800}

# 1. 512 MiB, edu by iommufd.
boot big1 512M -object iommufd,id=io0 -device vfio-pci,host=$EDU,iommufd=io0,id=edu0

# 2. The console flood: LINES lines of about 100 bytes, edu by the container.
flood_image $LINES
RIG_BOUNDED_HOOK="l2_diag_quiet flood" bounded 300 passage -cpu $CPU -m 200M -smp 1 -kernel $K -initrd /tmp/flood.img \
  -append "$APPEND rig.cpus=1 rig.mem=200M" -serial file:/tmp/flood.serial \
  -device vfio-pci,host=$EDU,id=edu0 > /tmp/flood.out 2> /tmp/flood.err
rc=$?
flooded=$(tr -d '\r' < /tmp/flood.serial | grep -c '^flood [0-9]')
result flood.exit "$rc" "passage exited $rc; stderr: $(grep -v 'not reset' /tmp/flood.err | tail -n 3)"
result flood.done "$([ "$flooded" = "$LINES" ] && tr -d '\r' < /tmp/flood.serial | grep -q 'RIG-DONE'; echo $?)" \
  "$flooded of $LINES flood lines, then RIG-DONE"

# 3. QEMU 7.2 (as rig.qemu_l2 runs it), 512 MiB, edu and nvme.
timeout 240 qemu-system-x86_64 -machine q35 -accel kvm -cpu qemu64 -m 512M -smp 1 \
  -nodefaults -display none -no-reboot -monitor none -serial file:/tmp/qemu.log \
  -kernel $K -initrd /rig/l2/initramfs.cpio.gz -append "console=ttyS0 panic=-1 quiet rig.cpus=1 rig.mem=512M" \
  -device vfio-pci,host="$EDU" -device vfio-pci,host="$NVME" > /tmp/qemu.out 2>&1
rc=$?
result qemu.exit "$rc" "qemu exited $rc: $(grep -v 'no available reset mechanism' /tmp/qemu.out | tail -n 3)"
rig_import qemu /tmp/qemu.log

# 4. Right after QEMU: 512 MiB again, edu by iommufd.
boot big2 512M -object iommufd,id=io0 -device vfio-pci,host=$EDU,iommufd=io0,id=edu0
exit 0
