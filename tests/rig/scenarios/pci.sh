# Issue 7: PCI in a Linux guest. passage, inside L1, boots the test kernel as
# L2 with two virtio-rng-pci devices (rng0 at addr=3 reading /dev/urandom,
# rng1 in the first free slot reading a pipe passed as fd=0 that carries a
# known pattern); the L2 scenario below checks, and the results come back as
# msix.l2.* (and intx.l2.*):
#   msix  the host bridge 8086:29c0 at 00:00.0 and both rngs (1af4:1044) at
#         the BDFs passage chose; Linux kept the BARs passage placed (as
#         -dump-dtb lists them); virtio-pci drives them; /dev/hwrng reads
#         random bytes from rng0 and the pattern from rng1; the MSI-X
#         "requests" vectors of 00:03.0 fire; the ACPI root bridge (PNP0A08)
#         and MCFG's ECAM are in use.
#   intx  one rng, L2 booted with pci=nomsi: its INTx reaches GSI 19 (slot 3
#         INTA, from the DSDT's _PRT), level-triggered, and fires.
# rig: l2=yes
# rig: bin=$PASSAGE_BUILD_DIR/vmm/passage
# Nested passage runs are bounded (lib.sh: a line every 60 s), so 90 s of
# console silence means L1 froze under TCG (README "Known limits"): the run
# is ended and retried.
# rig: stall=90
# rig: timeout=900
# rig: expect=msix.l2.pci.0000:00:00.0,msix.l2.pci.0000:00:01.0,msix.l2.pci.0000:00:03.0,msix.l2.cpus
# rig: expect=msix.l2.memtotal,msix.done,msix.init_report,intx.l2.pci.0000:00:03.0,intx.done,intx.exit

K=/rig/l2/bzImage
INITRD=/rig/l2/initramfs.cpio.gz
APPEND="console=ttyS0 panic=-1 quiet nokaslr"  # nokaslr: lib.sh l2_diag names a stuck rip
# As in linux-boot.sh: QEMU's nested SVM leaks XSETBV and x2APIC MSRs past L1's KVM.
CPU=host,-xsave,-x2apic
PATTERN=passage-rng-pattern

# initrd_with NAME DIR: $INITRD with DIR's files appended, as /tmp/NAME.img.
initrd_with() {
  (cd "$2" && find . -type f | sed 's|^\./||' | cpio -o -H newc 2>/dev/null) > "/tmp/$1.cpio"
  cp $INITRD "/tmp/$1.img"
  pad=$(( (4 - $(wc -c < "/tmp/$1.img") % 4) % 4 ))
  [ $pad -gt 0 ] && head -c $pad /dev/zero >> "/tmp/$1.img"
  cat "/tmp/$1.cpio" >> "/tmp/$1.img"
}

# show_log TAG FILE: a guest console for the log, its markers defused.
show_log() {
  tr -d '\r' < "$2" | sed -e 's/RIG-\(BOOT\|RESULT\|DONE\)/rig-\1/' -e "s/^/$1| /" | tail -n 120
}

# The BARs passage placed, from its -dump-dtb: "BDF bars" lines (mem32 is
# what Linux's resource flags call mem).
passage -m 512M -kernel $K -device virtio-rng-pci,id=rng0,addr=3 -device virtio-rng-pci,id=rng1,fd=0 \
  -dump-dtb /tmp/pci.dtb < /dev/null > /tmp/dtb.out 2>&1
result dump_dtb $? "passage -dump-dtb: $(cat /tmp/dtb.out)"
# String values sit between NULs, but a property's header bytes may run
# into the start of a value: match without anchoring at the line start.
tr '\000' '\n' < /tmp/pci.dtb |
  awk 'match($0, /00:[0-9a-f][0-9a-f]\.[0-7]$/) { bdf = substr($0, RSTART) }
       match($0, /bar[0-5]=.*/) { print bdf, substr($0, RSTART) }' |
  sed 's/=mem32 /=mem /g' > /tmp/placed
result placed "$([ "$(wc -l < /tmp/placed)" = 2 ]; echo $?)" "$(cat /tmp/placed)"

# --- the L2 side ----------------------------------------------------------------
mkdir -p /tmp/l2pci/rig
cp /tmp/placed /tmp/l2pci/rig/placed
cat > /tmp/l2pci/rig/scenario.sh <<'L2EOF'
. /rig/lib.sh
PATTERN=passage-rng-pattern
mode=$(cat /proc/cmdline)
dev() { echo "$(cat /sys/bus/pci/devices/$1/vendor):$(cat /sys/bus/pci/devices/$1/device):$(cat /sys/bus/pci/devices/$1/class)"; }

# requests_irqs BDF: interrupts counted so far on the device's virtio queue
# vectors (MSI-X) or its INTx line, all CPUs.
irq_count() {
  grep "$1" /proc/interrupts | awk '{ for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i } END { print s + 0 }'
}

hb=$(dev 0000:00:00.0)
result pci.host_bridge "$([ "$hb" = 0x8086:0x29c0:0x060000 ]; echo $?)" "00:00.0 is $hb"
# Every device -dump-dtb listed; the INTx run has only rng0.
bdfs=$(sed -n 's/^\(00:[^ ]*\) .*/0000:\1/p' /rig/placed)
case $mode in *pci=nomsi*) bdfs=0000:00:03.0 ;; esac
for bdf in $bdfs; do
  ids=$(dev $bdf)
  sub="$(cat /sys/bus/pci/devices/$bdf/subsystem_vendor):$(cat /sys/bus/pci/devices/$bdf/subsystem_device) rev $(cat /sys/bus/pci/devices/$bdf/revision)"
  result "pci.ids.$bdf" "$([ "$ids" = 0x1af4:0x1044:0x00ff00 ] && [ "$sub" = "0x1af4:0x1100 rev 0x01" ]; echo $?)" "$ids, subsystem $sub"
  drv=$(pci_driver $bdf)
  result "pci.driver.$bdf" "$([ "$drv" = virtio-pci ]; echo $?)" "driver $drv"
  # Linux's resource file, the way the L2 /init describes it.
  got=""
  i=0
  while read -r start end flags; do
    if [ $i -le 5 ] && [ $((end)) -ne 0 ]; then
      f=$((flags)); kind=mem
      [ $((f & 0x100)) -ne 0 ] && kind=io
      [ $((f & 0x100000)) -ne 0 ] && kind=mem64
      [ $((f & 0x2000)) -ne 0 ] && kind=$kind,pref
      got="$got bar$i=$kind $(printf '0x%x+0x%x' $((start)) $((end - start + 1)))"
    fi
    i=$((i + 1))
  done < /sys/bus/pci/devices/$bdf/resource
  want=$(grep "^${bdf#0000:} " /rig/placed | cut -d' ' -f2-)
  result "pci.bars.$bdf" "$([ "${got# }" = "$want" ]; echo $?)" "Linux: ${got# }; passage placed: $want"
done

acpi=$(ls /sys/bus/acpi/devices 2>/dev/null | grep -c '^PNP0A08:')
result acpi.root_bridge "$([ "$acpi" = 1 ]; echo $?)" "$acpi PNP0A08 device(s): $(cat /sys/bus/acpi/devices/PNP0A08:00/path 2>/dev/null)"
ecam=$(grep -i 'PCI ECAM\|MMCONFIG' /proc/iomem | head -n 1)
result acpi.mcfg "$([ -n "$ecam" ]; echo $?)" "/proc/iomem: ${ecam:-no ECAM region}"

avail=$(cat /sys/class/misc/hw_random/rng_available 2>/dev/null)
case $mode in
  *pci=nomsi*)
    # Linux numbers its IRQs itself; the IOAPIC pin is the GSI the _PRT gave.
    irq=$(cat /sys/bus/pci/devices/0000:00:03.0/irq)
    line=$(grep "^ *$irq:" /proc/interrupts | tr -s ' ')
    result intx.line "$(echo "$line" | grep -q 'IO-APIC 19-fasteoi .*virtio'; echo $?)" "irq $irq: $line"
    before=$(irq_count "^ *$irq:")
    dd if=/dev/hwrng of=/tmp/r bs=64 count=16 2>/dev/null
    after=$(irq_count "^ *$irq:")
    n=$(wc -c < /tmp/r)
    result intx.hwrng "$([ "$n" = 1024 ] && [ "$after" -gt "$before" ]; echo $?)" \
      "read $n bytes from $(cat /sys/class/misc/hw_random/rng_current); IRQ $irq count $before -> $after"
    ;;
  *)
    # Each rng in turn: one gives random bytes, the other the pattern.
    random=0 pattern=0
    avail=$(echo "$avail" | tr ' ' '\n' | grep '^virtio_rng')
    for r in $avail; do
      echo "$r" > /sys/class/misc/hw_random/rng_current
      dd if=/dev/hwrng of=/tmp/r bs=64 count=4 2>/dev/null
      if grep -q "$PATTERN" /tmp/r; then
        pattern=$((pattern + 1))
        result "hwrng.$r" "$([ "$(tr -d '\n' < /tmp/r | sed "s/$PATTERN//g" | wc -c)" -lt $((2 * ${#PATTERN})) ]; echo $?)" \
          "the pattern passed as fd=0: $(head -c 48 /tmp/r | tr '\n' ' ')"
      else
        zeros=$(od -An -v -tx1 /tmp/r | tr ' ' '\n' | grep -c '^00$')
        random=$((random + 1))
        result "hwrng.$r" "$([ "$(wc -c < /tmp/r)" = 256 ] && [ "$zeros" -lt 16 ]; echo $?)" \
          "$(wc -c < /tmp/r) bytes, $zeros zero bytes: $(od -An -tx1 /tmp/r | head -n 1)"
      fi
    done
    result hwrng.both "$([ $random = 1 ] && [ $pattern = 1 ]; echo $?)" "rngs: $(echo $avail); $random random, $pattern pattern"
    # MSI-X: 00:03.0 has a config vector and a queue vector ("input", virtio-
    # rng's queue); the queue vector counts interrupts as the device serves.
    msix=$(grep 'PCI-MSIX-0000:00:03.0' /proc/interrupts | tr -s ' ')
    before=0 after=0
    for r in $avail; do
      echo "$r" > /sys/class/misc/hw_random/rng_current
      before=$(irq_count 'PCI-MSIX-0000:00:03.0 .*-input')
      dd if=/dev/hwrng of=/tmp/r bs=64 count=16 2>/dev/null
      after=$(irq_count 'PCI-MSIX-0000:00:03.0 .*-input')
      [ "$after" -gt "$before" ] && break
    done
    result msix.vectors "$(echo "$msix" | grep -q -- '-input' && echo "$msix" | grep -q -- '-config' && [ "$after" -gt "$before" ]; echo $?)" \
      "00:03.0 queue vector count $before -> $after; $msix"
    ;;
esac
# For the log: what the guest kernel said about PCI.
dmesg | grep -iE 'PCI0|ECAM|MMCONFIG|00:0[0-3]\.0|virtio' | head -n 60 | sed 's/^/pci-dmesg: /'
exit 0  # the results are the verdict
L2EOF
initrd_with l2pci /tmp/l2pci

# run TAG ARGS...: passage with its console in /tmp/TAG.serial; sets $rc.
run() {
  tag=$1
  shift
  rm -f "/tmp/.l2probe.$tag"
  RIG_BOUNDED_PROBE="l2_probe $tag" RIG_BOUNDED_HOOK="l2_diag_quiet $tag" bounded 400 passage "$@" -serial "file:/tmp/$tag.serial" > "/tmp/$tag.out" 2> "/tmp/$tag.err"
  rc=$?
}

# --- MSI-X, two devices, one fed through a passed fd ----------------------------
# (A pipeline: passage runs in this shell's child, so no run() here; the
# deadline hook still names where L2 is stuck.)
rm -f /tmp/.l2probe.msix
yes $PATTERN 2>/dev/null |
  RIG_BOUNDED_PROBE="l2_probe msix" RIG_BOUNDED_HOOK="l2_diag_quiet msix" bounded 400 passage -cpu $CPU -m 512M -smp 1 -kernel $K -initrd /tmp/l2pci.img \
    -append "$APPEND rig.cpus=1 rig.mem=512M rig.pci=00:00.0=8086:29c0,00:03.0=1af4:1044,00:01.0=1af4:1044" \
    -device virtio-rng-pci,id=rng0,addr=3 -device virtio-rng-pci,id=rng1,fd=0 \
    -serial file:/tmp/msix.serial > /tmp/msix.out 2> /tmp/msix.err
rc=$?
show_log L2-msix /tmp/msix.serial
result msix.exit "$([ "$rc" = 0 ] && [ ! -s /tmp/msix.err ]; echo $?)" "passage exited $rc; stderr: $(cat /tmp/msix.err)"
rig_import msix /tmp/msix.serial
detail=$(tr -d '\r' < /tmp/msix.serial | sed -n 's/^RIG-RESULT {"name":"l2.pci.0000:00:03.0","ok":true,"detail":"\([^"]*\)"}/\1/p')
want=$(grep '^00:03.0 ' /tmp/placed | cut -d' ' -f2-)
case $detail in
  *" $want") ok=$([ -n "$want" ]; echo $?) ;;
  *) ok=1 ;;
esac
result msix.init_report "$ok" "L2's /init saw 00:03.0 as: $detail; passage placed: $want"

# --- INTx: no MSI in the guest ---------------------------------------------------
run intx -cpu $CPU -m 512M -smp 1 -kernel $K -initrd /tmp/l2pci.img \
  -append "$APPEND pci=nomsi rig.cpus=1 rig.mem=512M rig.pci=00:00.0=8086:29c0,00:03.0=1af4:1044" \
  -device virtio-rng-pci,id=rng0,addr=3 < /dev/null
show_log L2-intx /tmp/intx.serial
result intx.exit "$([ "$rc" = 0 ] && [ ! -s /tmp/intx.err ]; echo $?)" "passage exited $rc; stderr: $(cat /tmp/intx.err)"
rig_import intx /tmp/intx.serial
exit 0
