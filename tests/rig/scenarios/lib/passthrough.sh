# Shared by the passthrough-*.sh scenarios (issue 8): passage in L1 passes
# edu and/or nvme through to an L2 Linux guest. Sourced after the scenario's
# header; defines the devices, the L2 test image and the run helpers:
#   boot TAG MEM ARGS...      passage boots L2 with ARGS; imports L2's results
#                             as TAG.*, then TAG.exit and TAG.teardown
#   fds_boot TAG MEM CDEV     the same with every file handed in as an fd,
#                             under passage-noopen (tests/rig/noopen)
#   bad TAG ARGS...           passage must exit 1 with one error line
# Each passage run is bounded (lib.sh `bounded`: progress lines, and at the
# deadline a dump of passage's threads and their kernel stacks, SIGTERM, then
# SIGKILL); a run that hits it fails through its exit status and missing L2
# results. In L2, edu-test drives edu (ID, factorial, MSI, DMA into and out of
# guest RAM), edu's expansion ROM is read back, and nvme is probed by Linux's
# driver, written and read back. edu's DMA is 28-bit, so those guests get
# 200 MiB of RAM.

K=/rig/l2/bzImage
APPEND="console=ttyS0 panic=-1 quiet"
# QEMU 7.2's nested SVM (TCG) mishandles XSETBV and x2APIC MSRs for L2; see
# linux-boot.sh. L2 gets the host CPU minus those two.
CPU=host,-xsave,-x2apic
EDU=$(pci_find 1234:11e8 | head -n 1)
NVME=$(pci_find 1b36:0010 | head -n 1)
EDU_CDEV=/dev/vfio/devices/$(ls /sys/bus/pci/devices/$EDU/vfio-dev)
NVME_CDEV=/dev/vfio/devices/$(ls /sys/bus/pci/devices/$NVME/vfio-dev)

# edu's expansion ROM (run.py gives edu a romfile) as L1 reads it: L2 must
# read the same bytes through passage.
rom_md5() {
  echo 1 > "$1/rom" && md5sum < "$1/rom" | cut -d' ' -f1
  echo 0 > "$1/rom"
}
EDU_ROM=$(rom_md5 /sys/bus/pci/devices/$EDU)
set -- $(sed -n 7p /sys/bus/pci/devices/$EDU/resource)
EDU_ROM_SIZE=$(( $2 - $1 + 1 ))
result l1.edu.rom "$([ -n "$EDU_ROM" ]; echo $?)" "edu expansion ROM in L1: md5 ${EDU_ROM:-unreadable}, BAR ${EDU_ROM_SIZE:-?} bytes"

# The L2 side: edu-test, edu's ROM and an nvme check, appended to the L2 initramfs.
mkdir -p /tmp/l2x/rig /tmp/l2x/usr/bin
cp /rig/l2bin/edu-test /tmp/l2x/usr/bin/edu-test
echo "$EDU_ROM" > /tmp/l2x/rig/edu-rom.md5
cat > /tmp/l2x/rig/scenario.sh <<'L2'
if grep -q 'PCI_ID=1234:11E8' /sys/bus/pci/devices/*/uevent 2>/dev/null; then
  edu-test
  for d in /sys/bus/pci/devices/*; do
    grep -q 'PCI_ID=1234:11E8' $d/uevent || continue
    want=$(cat /rig/edu-rom.md5)
    got=$(echo 1 > $d/rom && md5sum < $d/rom | cut -d' ' -f1)
    echo 0 > $d/rom
    result edu.rom "$([ -n "$got" ] && [ "$got" = "$want" ]; echo $?)" \
      "expansion ROM read in L2: md5 ${got:-unreadable}, L1 read $want; $(sed -n 7p $d/resource)"
  done
fi
if grep -q 'PCI_ID=1B36:0010' /sys/bus/pci/devices/*/uevent 2>/dev/null; then
  i=0
  while [ ! -b /dev/nvme0n1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  drv=$(for d in /sys/bus/pci/devices/*; do grep -q 'PCI_ID=1B36:0010' $d/uevent && basename "$(readlink $d/driver)"; done)
  result nvme.driver "$([ "$drv" = nvme ]; echo $?)" "driver '$drv', /dev/nvme0n1 $([ -b /dev/nvme0n1 ] && echo present || echo missing)"
  dd if=/dev/urandom of=/tmp/pattern bs=64k count=64 2>/dev/null
  dd if=/tmp/pattern of=/dev/nvme0n1 bs=64k count=64 conv=fsync 2>/dev/null
  echo 3 > /proc/sys/vm/drop_caches
  want=$(md5sum < /tmp/pattern | cut -d' ' -f1)
  got=$(dd if=/dev/nvme0n1 bs=64k count=64 2>/dev/null | md5sum | cut -d' ' -f1)
  result nvme.data "$([ -n "$want" ] && [ "$want" = "$got" ]; echo $?)" "4 MiB pattern md5 $want, read back $got"
  queues=$(grep -c 'nvme0q' /proc/interrupts)
  msix=$(grep 'nvme0q' /proc/interrupts | grep -c 'PCI-MSIX')
  fired=$(grep 'nvme0q' /proc/interrupts | awk '{s=0; for (i=2;i<=NF;i++) if ($i ~ /^[0-9]+$/) s+=$i; else break; t+=s} END {print t+0}')
  result nvme.msix "$([ "$queues" -ge 2 ] && [ "$msix" = "$queues" ] && [ "$fired" -gt 0 ]; echo $?)" \
    "$queues nvme queue vectors, $msix of them MSI-X, $fired interrupts"
fi
L2
chmod +x /tmp/l2x/rig/scenario.sh
(cd /tmp/l2x && find rig usr | cpio -o -H newc 2>/dev/null) > /tmp/l2x.cpio
cp /rig/l2/initramfs.cpio.gz /tmp/l2.img
pad=$(( (4 - $(wc -c < /tmp/l2.img) % 4) % 4 ))
[ $pad -gt 0 ] && head -c $pad /dev/zero >> /tmp/l2.img
cat /tmp/l2x.cpio >> /tmp/l2.img

show_log() {
  tr -d '\r' < "$2" | sed -e 's/RIG-\(BOOT\|RESULT\|DONE\)/rig-\1/' -e "s/^/$1| /" | tail -n 80
}

# boot TAG MEM ARGS...: boots L2 with the test image; imports its results as TAG.*
boot() { l2_boot "" "$@"; }

# fds_boot TAG MEM CDEV: the same with /dev/kvm, /dev/iommu and the cdev
# handed in as fds 5, 3 and 4, passage run by passage-noopen (tests/rig/noopen:
# a seccomp supervisor that refuses, reports and turns into exit 99 every
# lookup of a path under /dev or /sys, by any libc route or raw system call).
# TAG.noopen_fires first shows the guard catches passage in this L1: passage
# asked to open /dev/kvm by path is refused (exit 99, a line naming it);
# TAG.noopen lists what the real run was refused, if anything.
fds_boot() {
  passage-noopen -- passage -kernel $K -m 64M -serial none > /dev/null 2> "/tmp/$1.guard"
  grc=$?
  result "$1.noopen_fires" \
    "$([ $grc = 99 ] && grep -q '^noopen: [a-z0-9_]*("/dev/kvm") by passage$' "/tmp/$1.guard"; echo $?)" \
    "passage-noopen -- passage (opening /dev/kvm): exit $grc; $(head -n 3 "/tmp/$1.guard" | tr '\n' ' ')"
  # l2_boot runs `env ENV passage ...`: env takes the wrapper as its command.
  l2_boot "passage-noopen --" "$1" "$2" -accel kvm,fd=5 -object iommufd,id=i0,fd=3 \
    -device vfio-pci,fd=4,iommufd=i0,id=d0 3<>/dev/iommu 4<>"$3" 5<>/dev/kvm
  refused=$(grep '^noopen: ' "/tmp/$1.err")
  result "$1.noopen" "$([ -z "$refused" ]; echo $?)" "${refused:-passage looked up no path under /dev or /sys}"
}

# l2_boot ENV TAG MEM ARGS...: boot's body; ENV (NAME=VALUE, or empty) goes
# into passage's environment.
l2_boot() {
  envs=$1 tag=$2 mem=$3
  shift 3
  bounded 300 env $envs passage -cpu $CPU -m "$mem" -smp 1 -kernel $K -initrd /tmp/l2.img -append "$APPEND" \
    -serial "file:/tmp/$tag.serial" --report-resources "$@" > "/tmp/$tag.out" 2> "/tmp/$tag.err"
  rc=$?
  show_log "$tag" "/tmp/$tag.serial"
  rig_import "$tag" "/tmp/$tag.serial"
  result "$tag.exit" "$rc" "passage exited $rc; stderr: $(cat /tmp/$tag.err)"
  clean_exit "$tag"
}

# What a child of this shell inherits (ls counts its own directory fd too).
BASE_FDS=$(( $(ls /proc/self/fd | wc -l) - 1 ))

# clean_exit TAG: passage's own account of what it held when it exited: only
# the fds it inherited, nothing locked or pinned.
clean_exit() {
  line=$(grep 'resources at exit' "/tmp/$1.err" | tail -n 1)
  case $line in
    *"fds=$BASE_FDS "*'VmLck=0 kB'*'VmPin=0 kB'*) ok=true ;;
    *) ok=false ;;
  esac
  result "$1.teardown" $ok "${line:-no resources line} (inherited: $BASE_FDS fds)"
}

# bad TAG ARGS...: passage must fail with exit 1 and one error line.
bad() {
  tag=$1
  shift
  bounded 120 passage -cpu $CPU -m 200M -kernel $K -initrd /tmp/l2.img -append "$APPEND" -serial none \
    --report-resources "$@" > "/tmp/$tag.out" 2> "/tmp/$tag.err"
  rc=$?
  errs=$(grep -vc 'resources at exit' "/tmp/$tag.err")
  result "$tag.exit" "$([ $rc = 1 ] && [ "$errs" = 1 ]; echo $?)" \
    "exit $rc, $errs error line(s): $(grep -v 'resources at exit' /tmp/$tag.err)"
  clean_exit "$tag"
}

# A PCI function bound to a host driver other than vfio-pci (for bad input).
OTHER=$(for d in /sys/bus/pci/devices/*; do
  drv=$(basename "$(readlink $d/driver 2>/dev/null)")
  [ -n "$drv" ] && [ "$drv" != vfio-pci ] && basename $d && break
done)
