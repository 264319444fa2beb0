# The L2 test-guest image, booted directly in L0 (run.py --image l2): after the
# image's own report (l2.* results), check the report against the machine L0
# gives it (run.py passes -smp and -m as RIG_SMP, RIG_MEM_MB): CPUs, memory,
# edu and nvme visible with their BARs, nvme driven by Linux's nvme driver
# with its queue interrupts (MSI-X through the vIOMMU's interrupt remapping).
# rig: smp=2 timeout=240
# rig: expect=l2.boot,l2.cpus,l2.memtotal,l2.pci,l2.interrupts,check.cpus,check.memtotal,check.edu
# rig: expect=check.nvme_driver,check.nvme_disk,check.nvme_irqs

n=$(grep -c '^processor' /proc/cpuinfo)
result check.cpus "$([ "$n" = "$RIG_SMP" ]; echo $?)" "$n CPUs (L0 runs -smp $RIG_SMP)"

kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
result check.memtotal "$([ "$kb" -gt $((RIG_MEM_MB * 1024 * 3 / 4)) ] && [ "$kb" -le $((RIG_MEM_MB * 1024)) ]; echo $?)" \
  "MemTotal $kb kB (L0 runs -m ${RIG_MEM_MB}M; expect 75-100%)"

reported() { grep -c "^RIG-RESULT {\"name\":\"$(echo "$1" | sed 's/\./\\./g')" "$RIG_RESULTS"; }
result check.report "$([ "$(reported l2.pci.)" -ge 2 ] && [ "$(reported l2.interrupts)" = 1 ]; echo $?)" \
  "$(reported l2.pci.) l2.pci.* results, $(reported l2.interrupts) l2.interrupts"

edu=$(pci_find 1234:11e8)
if [ -n "$edu" ]; then
  bar0=$(head -n 1 "/sys/bus/pci/devices/$edu/resource")
  size=$(( $(echo "$bar0" | cut -d' ' -f2) - $(echo "$bar0" | cut -d' ' -f1) + 1 ))
  result check.edu "$([ $size = $((1 << 20)) ]; echo $?)" "edu at $edu, BAR0 size $size (expect 1 MiB)"
else
  result check.edu false "no 1234:11e8 device"
fi

nvme=$(pci_find 1b36:0010)
drv=$(pci_driver "$nvme")
result check.nvme_driver "$([ -n "$nvme" ] && [ "$drv" = nvme ]; echo $?)" "nvme at '$nvme', driver $drv"
# The disk appears once the controller's queues are up.
i=0
while [ ! -b /dev/nvme0n1 ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
sectors=$(cat /sys/block/nvme0n1/size 2>/dev/null)
result check.nvme_disk "$([ "$sectors" = 131072 ]; echo $?)" "/dev/nvme0n1: ${sectors:-no} 512-byte sectors (run.py attaches 64 MiB)"
q=$(grep -c 'nvme0q' /proc/interrupts)
result check.nvme_irqs "$([ "$q" -ge 2 ]; echo $?)" "$q nvme0q* interrupt lines: $(grep nvme0q0 /proc/interrupts | tr -s ' ' | cut -c1-80)"
exit 0
