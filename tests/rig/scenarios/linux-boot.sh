# Issue 6: passage, inside L1, boots the test kernel (the same bzImage) as L2
# with the L2 initramfs, and the guest's own report is imported (l2.*):
#   boot.*     -m 1G -smp 2: the guest's own checks (rig.cpus=2 rig.mem=1G,
#              the host bridge, rig.ged=31: the ACPI GED and 31 hotplug
#              slots) imported as boot.l2.*; the guest asked to
#              power off and passage exited 0 (ACPI S5); the --report-timing
#              line, whose stop reason must agree
#   reboot.*   a guest `reboot -f` (ACPI reset register) ends passage, exit 0;
#              told from a power-off by the guest's markers
#   corrupt.*  damaged bzImages: exit 1, one error line naming -kernel, and
#              no guest output (no vCPU ran)
#   big.*      -m 16G (RAM above 4 GiB): the guest sees it all
# rig: l2=yes
# rig: bin=$PASSAGE_BUILD_DIR/vmm/passage
# rig: mem=3G
# Nested passage runs are bounded (lib.sh: a line every 60 s), so 90 s of
# console silence means L1 froze under TCG (README "Known limits"): the run
# is ended and retried.
# rig: stall=90
# rig: timeout=1500
# rig: expect=boot.l2.cpus,boot.l2.memtotal,boot.l2.pci.0000:00:00.0,boot.l2.interrupts,boot.l2.ged,boot.done,boot.exit
# rig: expect=boot.poweroff,boot.stop_report,boot.timing,reboot.ends,reboot.stop_report
# rig: expect=corrupt.bad-magic,corrupt.truncated,corrupt.old-protocol,big.memtotal

K=/rig/l2/bzImage
INITRD=/rig/l2/initramfs.cpio.gz
APPEND="console=ttyS0 panic=-1 quiet nokaslr"  # nokaslr: lib.sh l2_diag names a stuck rip
# L0 is QEMU 7.2 TCG, whose nested SVM lets two things through to L1's own
# CPU state instead of exiting to L1's KVM: XSETBV (so KVM never learns the
# guest's XCR0: CPUID 0xD and the XSAVE state go wrong, and Linux 7.3 oopses in
# fpstate_reset) and x2APIC MSR accesses (the local APIC timer never fires).
# passage's default is -cpu host; in this rig L2 gets host minus those two.
CPU=host,-xsave,-x2apic

# show_log TAG FILE: a guest console for the log, with its markers defused so
# the runner does not count L2's results as L1's.
show_log() {
  tr -d '\r' < "$2" | sed -e 's/RIG-\(BOOT\|RESULT\|DONE\)/rig-\1/' -e "s/^/$1| /" | tail -n 150
}

# run TAG ARGS...: runs passage with its console in /tmp/TAG.serial, stdout
# in /tmp/TAG.out, stderr in /tmp/TAG.err; sets $rc. A guest that hangs is
# stopped after 300 s (lib.sh bounded: thread dump, SIGTERM, exit 124).
run() {
  tag=$1
  shift
  rm -f "/tmp/.l2probe.$tag"
  RIG_BOUNDED_PROBE="l2_probe $tag" RIG_BOUNDED_HOOK="l2_diag_quiet $tag" bounded 300 passage "$@" -serial "file:/tmp/$tag.serial" > "/tmp/$tag.out" 2> "/tmp/$tag.err"
  rc=$?
}

# timing TAG: the JSON of passage's --report-timing line.
timing() { sed -n 's/^passage: report-timing //p' "/tmp/$1.err" | tail -n 1; }

# l2_detail TAG NAME: the detail of the guest's result NAME.
l2_detail() {
  tr -d '\r' < "/tmp/$1.serial" |
    sed -n "s/^RIG-RESULT {\"name\":\"$2\",\"ok\":[a-z]*,\"detail\":\"\([^\"]*\)\"}.*/\1/p" | head -n 1
}

# --- boot: 2 CPUs, 1 GiB, power-off -----------------------------------------
t0=$(cut -d' ' -f1 /proc/uptime)
run boot -cpu $CPU -m 1G -smp 2 -kernel $K -initrd $INITRD \
  -append "$APPEND rig.cpus=2 rig.mem=1G rig.pci=00:00.0=8086:29c0 rig.ged=31" --report-timing -timing-marker RIG-BOOT
t1=$(cut -d' ' -f1 /proc/uptime)
show_log L2 /tmp/boot.serial
# The guest's own checks against -smp 2 -m 1G and the host bridge (rig.*):
# boot.l2.cpus, boot.l2.memtotal, boot.l2.pci.*, boot.l2.interrupts, boot.l2.ged.
rig_import boot /tmp/boot.serial
result boot.exit "$rc" "passage exited $rc after $(awk "BEGIN {print $t1 - $t0}") s; stderr: $(cat /tmp/boot.err)"
# Power-off is judged by what the guest did: its /init ends with RIG-DONE and
# the "requests power-off" line, then `poweroff -f`; passage must then exit 0
# with nothing after that line.
asked=$(tr -d '\r' < /tmp/boot.serial | grep -c '^rig: l2 requests power-off$')
after=$(tr -d '\r' < /tmp/boot.serial | sed -n '/^rig: l2 requests power-off$/,$p' | grep -vc -e '^rig: l2 requests power-off$' -e 'reboot: Power down' -e '^$')
result boot.poweroff "$([ "$rc" = 0 ] && [ "$asked" = 1 ] && [ "$after" = 0 ]; echo $?)" \
  "exit $rc; the guest requested power-off $asked time(s); $after console line(s) after it"
# passage's own account must agree with what the guest did.
json=$(timing boot)
case $json in
  *'"stop":"power-off'*) ok=true ;;
  *) ok=false ;;
esac
result boot.stop_report $ok "the guest powered off; passage's report: $json"
case $json in
  *'"marker_ms":null'* | '') ok=false ;;
  *) ok=true ;;
esac
result boot.timing $ok "$json"

# --- reboot: the guest runs `reboot -f` after its report ---------------------
mkdir -p /tmp/rb/rig
printf '#!/bin/sh\necho "l2: rebooting"\nreboot -f\nsleep 30\necho "l2: still here"\n' > /tmp/rb/rig/scenario.sh
chmod +x /tmp/rb/rig/scenario.sh
(cd /tmp/rb && echo rig/scenario.sh | cpio -o -H newc 2>/dev/null) > /tmp/rb.cpio
cp $INITRD /tmp/l2-reboot.img
pad=$(( (4 - $(wc -c < /tmp/l2-reboot.img) % 4) % 4 ))
[ $pad -gt 0 ] && head -c $pad /dev/zero >> /tmp/l2-reboot.img
cat /tmp/rb.cpio >> /tmp/l2-reboot.img
run reboot -cpu $CPU -m 512M -smp 2 -kernel $K -initrd /tmp/l2-reboot.img \
  -append "$APPEND rig.cpus=2 rig.mem=512M" --report-timing
show_log L2-reboot /tmp/reboot.serial
json=$(timing reboot)
booted=$(tr -d '\r' < /tmp/reboot.serial | grep -c '^RIG-BOOT ')
asked=$(grep -c 'l2: rebooting' /tmp/reboot.serial)
stayed=$(grep -c 'l2: still here' /tmp/reboot.serial)
# A reset is told from a power-off by what the guest did: it asked to
# reboot, never asked to power off, booted once and ran no further.
offs=$(tr -d '\r' < /tmp/reboot.serial | grep -c '^rig: l2 requests power-off$')
ok=$([ "$rc" = 0 ] && [ "$booted" = 1 ] && [ "$asked" = 1 ] && [ "$stayed" = 0 ] && [ "$offs" = 0 ]; echo $?)
result reboot.ends "$ok" "exit $rc; L2 booted: $booted, asked to reboot: $asked, to power off: $offs, ran on: $stayed; stderr: $(grep -v report-timing /tmp/reboot.err)"
case $json in
  *'"stop":"reset'*) ok=true ;;
  *) ok=false ;;
esac
result reboot.stop_report $ok "the guest reset; passage's report: $json"

# --- corrupt images: a clear error, exit 1, no vCPU ran ----------------------
cp $K /tmp/bad-magic && printf 'XXXX' | dd of=/tmp/bad-magic bs=1 seek=514 conv=notrunc 2>/dev/null
head -c 4000000 $K > /tmp/truncated
cp $K /tmp/old-protocol && printf '\001\002' | dd of=/tmp/old-protocol bs=1 seek=518 conv=notrunc 2>/dev/null
for img in bad-magic truncated old-protocol; do
  run corrupt-$img -m 256M -kernel /tmp/$img -initrd $INITRD -append "$APPEND"
  lines=$(wc -l < /tmp/corrupt-$img.err)
  out=$(wc -c < /tmp/corrupt-$img.serial)
  grep -q '^passage: -kernel: ' /tmp/corrupt-$img.err
  named=$?
  result "corrupt.$img" "$([ "$rc" = 1 ] && [ "$lines" = 1 ] && [ "$named" = 0 ] && [ "$out" = 0 ]; echo $?)" \
    "exit $rc, $lines stderr line(s), $out bytes of guest output: $(cat /tmp/corrupt-$img.err)"
done

# --- 16 GiB: RAM above 4 GiB -------------------------------------------------
run big -cpu $CPU -m 16G -smp 1 -kernel $K -initrd $INITRD -append "$APPEND rig.cpus=1 rig.mem=16G" --report-timing
show_log L2-big /tmp/big.serial | tail -n 20
kb=$(l2_detail big l2.memtotal | cut -d' ' -f2)
ok=$(tr -d '\r' < /tmp/big.serial | grep -c '^RIG-RESULT {"name":"l2.memtotal","ok":true,')
result big.memtotal "$([ "$rc" = 0 ] && [ "$ok" = 1 ]; echo $?)" \
  "exit $rc; guest MemTotal '${kb}' (-m 16G = 16777216 kB); $(timing big)"
exit 0
