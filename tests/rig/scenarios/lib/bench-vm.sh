# passage-bench's whole-VM comparison (issue 14), the L1 side: passage and
# QEMU boot the same L2 kernel and initramfs with the same devices passed
# through (edu, and nvme, on which L2 runs dd), each VMM under bench-vmrun
# (tests/bench/vmrun.cc), which measures every VMM alike from outside:
#   init_s     VMM start -> L2 init's first line (RIG-BOOT)
#   exit_s     VMM start -> VMM exit (L2 powered off)
#   at_end     the VMM's memory when L2 printed its last line: VmRSS, the
#              guest RAM resident in it, and own_rss_kib = the rest
#   maxrss_kib the VMM's peak RSS (ru_maxrss)
# and L2 reports dd's write and read throughput on the passed nvme
# (O_DIRECT, $DD_MIB MiB, 1 MiB blocks) and edu's interrupt round trip
# (edu-test --irq-rtt $IRQ_N: write INTR_RAISE, wait for the MSI's eventfd in
# L2; on passage with an unmasked vector that is VFIO -> KVM irqfd directly). Each run prints one
# `bench-json| {...}` line (tests/bench/report.py reads them from run.py's
# serial log) and results TAG.exit, TAG.meter, TAG.l2.* (L2's own checks,
# l2.bench.dd and l2.edu.* among them) and TAG.done.
#
# Configurations (VMM CONFIG):
#   passage iommufd   -object iommufd + vfio-pci,iommufd= (cdev, IOAS_MAP_FILE)
#   passage legacy    vfio-pci on the VFIO type1 container
#   passage iommufd-bg, legacy-bg  as iommufd and legacy with
#                     -dma-map background: guest RAM pinned on a thread of
#                     its own while L2 boots, bus mastering held until then
#                     (the default, sync, pins during set-up, before the
#                     first guest instruction; README "Passthrough")
#   passage iommufd-huge  as iommufd, guest RAM on hugetlb pages
#                     (-mem-hugepages; vm_run reserves MEM/2 MiB of them
#                     first and gives them back after): what huge pages do
#                     to pinning, passage's longest set-up step
#   qemu10 q35        QEMU 10.0 (tests/bench/qemu10.sh), q35 + SeaBIOS,
#                     -object iommufd
#   qemu10 microvm    QEMU 10.0 microvm,pcie=on (qboot), -object iommufd
#   qemu72 legacy     bookworm's QEMU 7.2, q35, vfio-pci by group/container
#
# Sourced by scenarios/bench-vm.sh after lib.sh.

K=/rig/l2/bzImage
APPEND="console=ttyS0 panic=-1 quiet nokaslr"
# L2's CPU, the same for every VMM: QEMU 7.2/10.0's nested SVM under TCG
# mishandles XSETBV and x2APIC MSRs for L2 (see linux-boot.sh).
CPU=host,-xsave,-x2apic
QEMU10=/opt/qemu-10.0/bin/qemu-system-x86_64
QEMU10_DATA="-L /opt/qemu-10.0/share/qemu -L /usr/share/seabios"
QEMU72=/usr/bin/qemu-system-x86_64
DD_MIB=${DD_MIB:-48}  # of the rig's 64 MiB disk; /proc/uptime times dd in 10 ms ticks
IRQ_N=${IRQ_N:-200}
EDU=$(pci_find 1234:11e8 | head -n 1)
NVME=$(pci_find 1b36:0010 | head -n 1)

# The L2 side: dd on the passed nvme, reported as one BENCH-DD line and a
# result.
mkdir -p /tmp/bvm/rig /tmp/bvm/usr/bin
cp /rig/l2bin/edu-test /tmp/bvm/usr/bin/edu-test
cat > /tmp/bvm/rig/scenario.sh <<L2
mib=$DD_MIB irq_n=$IRQ_N
L2
cat >> /tmp/bvm/rig/scenario.sh <<'L2'
i=0
while [ ! -b /dev/nvme0n1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
# dd_run ARGS: "BYTES SECONDS", timed by L2's /proc/uptime (10 ms ticks):
# Debian's busybox dd prints only its "N+0 records" lines, no byte count or
# time. Nothing when dd fails or copies short.
dd_run() {
  _t0=$(cut -d' ' -f1 /proc/uptime)
  dd "$@" bs=1M count=$mib 2> /tmp/dd.err || { sed 's/^/dd: /' /tmp/dd.err >&2; return; }
  _t1=$(cut -d' ' -f1 /proc/uptime)
  grep -q "^$mib+0 records out" /tmp/dd.err || { sed 's/^/dd: /' /tmp/dd.err >&2; return; }
  echo "$((mib * 1048576)) $(awk -v a="$_t0" -v b="$_t1" 'BEGIN { printf "%.2f", b - a }')"
}
if [ -b /dev/nvme0n1 ]; then
  set -- $(dd_run if=/dev/zero of=/dev/nvme0n1 oflag=direct) $(dd_run if=/dev/nvme0n1 of=/dev/null iflag=direct)
  echo "BENCH-DD {\"write_bytes\":${1:-null},\"write_s\":${2:-null},\"read_bytes\":${3:-null},\"read_s\":${4:-null}}"
  result bench.dd "$([ $# = 4 ]; echo $?)" "write: ${1:-?} bytes in ${2:-?} s; read: ${3:-?} bytes in ${4:-?} s (O_DIRECT, 1 MiB blocks)"
else
  echo 'BENCH-DD null'
  result bench.dd false "no /dev/nvme0n1 after 10 s"
fi
# edu: its own checks (l2.edu.*) and the interrupt round trips (l2.edu.irq_rtt).
edu-test --irq-rtt $irq_n
# Where L2's kernel spent its boot, from its own dmesg timestamps (one line,
# not the whole log: a burst of console lines under nested TCG is slow and
# has stalled L1): the first and last timestamps, when PCI, the 8250 driver,
# nvme and the unpacking of the initramfs showed up, and the 8 widest gaps
# between consecutive lines before init (the kernel's boot), each with the
# lines on both sides.
dmesg | awk '
function esc(s) { gsub(/[\\"]/, "", s); gsub(/[^ -~]/, "", s); return substr(s, 1, 70) }
function mark(name, pat) { if (!(name in m) && txt ~ pat) m[name] = t }
/^\[ *[0-9]+\.[0-9]+\]/ {
  t = $0; sub(/^\[ */, "", t); sub(/\].*/, "", t); t += 0
  txt = $0; sub(/^\[[^]]*\] ?/, "", txt)
  if (n) { g[n] = t - prev; ga[n] = ptxt; gb[n] = txt; gt[n] = prev }
  mark("pci", "^PCI: Using configuration"); mark("pci_done", "^PCI: CLS|^clocksource: Switched")
  mark("serial", "^Serial: 8250"); mark("initramfs", "^Trying to unpack|^Unpacking initramfs")
  mark("nvme", "^nvme nvme0"); mark("freeing", "^Freeing unused kernel")
  prev = t; ptxt = txt; n++
}
END {
  printf "BENCH-BOOT {\"lines\":%d,\"last_s\":%s,\"marks\":{", n, n ? prev : "null"
  sep = ""; for (k in m) { printf "%s\"%s\":%s", sep, k, m[k]; sep = "," }
  printf "},\"gaps\":["
  limit = 1e9; if ("freeing" in m) limit = m["freeing"]  # the kernel boot only, not the work of init
  for (j = 0; j < 8; j++) {
    best = 0; bi = 0
    for (i = 1; i < n; i++) if (!(i in used) && gt[i] < limit && g[i] > best) { best = g[i]; bi = i }
    if (!bi) break
    used[bi] = 1
    printf "%s{\"s\":%.3f,\"at\":%s,\"after\":\"%s\",\"before\":\"%s\"}", j ? "," : "", best, gt[bi], esc(ga[bi]), esc(gb[bi])
  }
  print "]}"
}'
L2
cp /rig/l2/initramfs.cpio.gz /tmp/bvm.img
cpio_append /tmp/bvm.img /tmp/bvm rig usr

# vm_cmd VMM CONFIG MEM SMP: the VMM's command line, console on stdout, all
# but -append (whose value has spaces; vm_run adds it).
vm_cmd() {
  _common="-m $3 -smp $4 -kernel $K -initrd /tmp/bvm.img"
  case $1.$2 in
    passage.iommufd|passage.iommufd-bg)
      echo "passage -cpu $CPU $_common -serial stdio --report-timing -timing-marker RIG-BOOT" \
        "$([ $2 = iommufd-bg ] && echo -dma-map background)" \
        "-object iommufd,id=i0 -device vfio-pci,host=$EDU,iommufd=i0 -device vfio-pci,host=$NVME,iommufd=i0" ;;
    passage.iommufd-huge)  # guest RAM on 2 MiB hugetlb pages (vm_run reserves them)
      echo "passage -cpu $CPU $_common -mem-hugepages -serial stdio --report-timing -timing-marker RIG-BOOT" \
        "-object iommufd,id=i0 -device vfio-pci,host=$EDU,iommufd=i0 -device vfio-pci,host=$NVME,iommufd=i0" ;;
    passage.legacy|passage.legacy-bg)
      echo "passage -cpu $CPU $_common -serial stdio --report-timing -timing-marker RIG-BOOT" \
        "$([ $2 = legacy-bg ] && echo -dma-map background)" \
        "-device vfio-pci,host=$EDU -device vfio-pci,host=$NVME" ;;
    qemu10.q35)
      echo "$QEMU10 $QEMU10_DATA -machine q35 -accel kvm -cpu $CPU $_common" \
        "-nodefaults -display none -no-reboot -monitor none -serial stdio" \
        "-object iommufd,id=i0 -device vfio-pci,host=$EDU,iommufd=i0 -device vfio-pci,host=$NVME,iommufd=i0" ;;
    qemu10.microvm)
      echo "$QEMU10 $QEMU10_DATA -machine microvm,pcie=on,acpi=on -accel kvm -cpu $CPU $_common" \
        "-nodefaults -display none -no-reboot -monitor none -serial stdio" \
        "-object iommufd,id=i0 -device vfio-pci,host=$EDU,iommufd=i0 -device vfio-pci,host=$NVME,iommufd=i0" ;;
    qemu72.legacy)
      echo "$QEMU72 -machine q35 -accel kvm -cpu $CPU $_common" \
        "-nodefaults -display none -no-reboot -monitor none -serial stdio" \
        "-device vfio-pci,host=$EDU -device vfio-pci,host=$NVME" ;;
    *) return 1 ;;
  esac
}

# vm_hook TAG PID: at bounded's deadline, what the stuck VMM was doing:
# passage's state dump and L2's rip (l2_diag), or QEMU's threads' kernel
# stacks.
vm_hook() {
  case $(cat "/tmp/$1.vmm") in
    passage) l2_diag_quiet "$1" "$2" ;;
    *) bounded_dump "$(child_named "$2" qemu-system-x86)" "$1: the QEMU under bench-vmrun $2" ;;
  esac
}

# json_or_null TEXT: TEXT if it looks like a JSON object, else null.
json_or_null() { case $1 in '{'*'}') echo "$1" ;; *) echo null ;; esac; }

# vm_run VMM CONFIG MEM SMP REP: one measured run; results and a bench-json line.
vm_run() {
  tag=vm.$1-$2-$3-smp$4-r$5
  cmd=$(vm_cmd "$1" "$2" "$3" "$4") || { result "$tag.exit" false "unknown configuration '$1 $2'"; return 0; }
  echo "$1" > "/tmp/$tag.vmm"
  case $2 in
    *-huge)
      _mib=$(( $(echo "$3" | sed 's/G$/*1024/; s/M$//') ))
      echo $((_mib / 2)) > /proc/sys/vm/nr_hugepages
      _got=$(cat /proc/sys/vm/nr_hugepages)
      if [ "$_got" -lt $((_mib / 2)) ]; then
        echo 0 > /proc/sys/vm/nr_hugepages
        result "$tag.exit" false "could reserve only $_got of $((_mib / 2)) 2 MiB pages for -m $3"
        return 0
      fi ;;
  esac
  echo "rig: bench-vm: $tag: $cmd" > "${RIG_CONSOLE:-/dev/console}"
  RIG_BOUNDED_HOOK="vm_hook $tag" bounded 300 bench-vmrun --ram "$3" --serial "/tmp/$tag.serial" \
    --end-marker 'rig: l2 requests power-off' -- $cmd -append "$APPEND rig.cpus=$4 rig.mem=$3" < /dev/null > "/tmp/$tag.meter" 2> "/tmp/$tag.err"
  rc=$?
  meter=$(json_or_null "$(tail -n 1 "/tmp/$tag.meter")")
  dd=$(tr -d '\r' < "/tmp/$tag.serial" | sed -n 's/^BENCH-DD //p' | tail -n 1)
  dd=$(json_or_null "$dd")
  irq=$(json_or_null "$(tr -d '\r' < "/tmp/$tag.serial" | sed -n 's/^BENCH-IRQ //p' | tail -n 1)")
  boot=$(json_or_null "$(tr -d '\r' < "/tmp/$tag.serial" | sed -n 's/^BENCH-BOOT //p' | tail -n 1)")
  # L2's clock when its init began: start to init minus this is what came
  # before the kernel's clock started (the VMM's set-up, firmware,
  # decompression); this is the kernel's own boot.
  up=$(tr -d '\r' < "/tmp/$tag.serial" | sed -n 's/^RIG-BOOT .*"image":"l2".*"uptime":"\([0-9.]*\)".*/\1/p' | head -n 1)
  timing=$(json_or_null "$(sed -n 's/^passage: report-timing //p' "/tmp/$tag.err" | tail -n 1)")
  if [ "$rc" != 0 ]; then
    tr -d '\r' < "/tmp/$tag.serial" | sed -e 's/RIG-\(BOOT\|RESULT\|DONE\)/rig-\1/' -e "s/^/$tag| /" | tail -n 40
  fi
  rig_import "$tag" "/tmp/$tag.serial"
  case $2 in *-huge) echo 0 > /proc/sys/vm/nr_hugepages ;; esac
  # QEMU says that edu has no reset method; that is expected, not an error.
  errs=$(grep -v -e 'no available reset mechanism' -e '^passage: report-timing' "/tmp/$tag.err" | tail -n 5)
  result "$tag.exit" "$rc" "exit $rc; stderr: ${errs:-none}"
  case $meter in
    *'"init_s":null'* | *'"end_s":null'* | null) ok=1 ;;
    *'"own_rss_kib"'*) ok=0 ;;
    *) ok=1 ;;
  esac
  result "$tag.meter" "$ok" "$meter"
  printf 'bench-json| {"kind":"vm","vmm":"%s","config":"%s","mem":"%s","smp":%s,"rep":%s,"exit":%s,"devices":["edu","nvme"],"meter":%s,"dd":%s,"irq":%s,"passage_timing":%s,"l2_boot":%s,"l2_uptime_at_init":%s}\n' \
    "$1" "$2" "$3" "$4" "$5" "$rc" "$meter" "$dd" "$irq" "$timing" "$boot" "${up:-null}"
}

# bench_machine: one bench-json line about L1 and the VMMs' versions.
bench_machine() {
  q10=$($QEMU10 --version 2> /dev/null | head -n 1)
  q72=$($QEMU72 --version 2> /dev/null | head -n 1)
  printf 'bench-json| {"kind":"machine","where":"L1","kernel":{"release":"%s","version":"%s"},"cpus":%s,"mem_total_kb":%s,"cpu":"%s","qemu10":"%s","qemu72":"%s","dd_mib":%s,"irq_n":%s}\n' \
    "$(uname -r)" "$(uname -v)" "$(grep -c '^processor' /proc/cpuinfo)" \
    "$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)" \
    "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)" "$q10" "$q72" "$DD_MIB" "$IRQ_N"
}
