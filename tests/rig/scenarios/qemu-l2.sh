# Nested passthrough with QEMU as the L1 VMM, a reference for passage's own
# L2 scenarios: L1 runs this machine's qemu-system-x86_64 under L1's KVM
# (nested SVM) with edu and nvme passed through by vfio-pci (QEMU 7.2 uses the
# legacy group/container path), boots the L2 image, imports its report as
# l2.* results and checks that L2 saw both devices, drove nvme, and got its
# interrupts.
# rig: bind=1234:11e8,1b36:0010
# rig: l2=yes bin=/usr/bin/qemu-system-x86_64:/usr/bin/qemu-system-x86_64
# rig: add=/usr/share/qemu:/usr/share/qemu add=/usr/share/seabios:/usr/share/seabios
# rig: timeout=300
# rig: expect=qemu.l2.cpus,qemu.l2.memtotal,qemu.done,l2check.edu,l2check.nvme,l2check.nvme_irqs

edu=$(pci_find 1234:11e8)
nvme=$(pci_find 1b36:0010)
start=$(cut -d' ' -f1 /proc/uptime)
# -cpu qemu64: "-cpu host" here is TCG's "max" seen through L1's KVM, and
# L2's kernel faulted in fpu__init_system with it. L2 gets as many vCPUs as
# L1 has: 2 L2 vCPUs on 1 L1 vCPU froze L1 in 1 of 4 runs.
timeout 240 qemu-system-x86_64 -machine q35 -accel kvm -cpu qemu64 -m 512M -smp "$RIG_SMP" \
  -nodefaults -display none -no-reboot -monitor none -serial file:/tmp/l2.log \
  -kernel /rig/l2/bzImage -initrd /rig/l2/initramfs.cpio.gz -append "console=ttyS0 panic=-1 quiet rig.cpus=$RIG_SMP rig.mem=512M" \
  -device vfio-pci,host="$edu" -device vfio-pci,host="$nvme" > /tmp/qemu.out 2>&1
rc=$?
end=$(cut -d' ' -f1 /proc/uptime)
# QEMU warns that edu has no reset method; that is expected, not an error.
result l1qemu.exit "$rc" "qemu exited $rc after $(echo "$end - $start" | bc) s: $(grep -v 'no available reset mechanism' /tmp/qemu.out | tail -n 5)"

# L2's console, with its markers renamed so the host does not count them as L1's.
sed 's/RIG-/L2-/' /tmp/l2.log | grep -v '^L2-RESULT'
rig_import qemu /tmp/l2.log   # results qemu.l2.*, qemu.done

# What L2 reported about the passed-through devices.
l2pci() {
  grep -o "RIG-RESULT {\"name\":\"l2\.pci\.[^\"]*\",\"ok\":true,\"detail\":\"vendor=$1 device=$2 [^\"]*" /tmp/l2.log |
    sed 's/^RIG-RESULT {"name":"l2\.pci\.\([^"]*\)".*"detail":"/\1 /'
}
e=$(l2pci 0x1234 0x11e8)
result l2check.edu "$([ -n "$e" ]; echo $?)" "${e:-L2 reported no 1234:11e8 device}"
n=$(l2pci 0x1b36 0x0010)
result l2check.nvme "$(echo "$n" | grep -q 'driver=nvme '; echo $?)" "${n:-L2 reported no 1b36:0010 device}"
q=$(grep '"name":"l2.interrupts"' /tmp/l2.log | grep -o 'nvme0q[0-9]*' | sort -u | wc -l)
result l2check.nvme_irqs "$([ "$q" -ge 2 ]; echo $?)" "$q nvme0q* interrupt vectors in L2's /proc/interrupts"
exit 0
