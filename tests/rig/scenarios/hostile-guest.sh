# Issue 15, "Hostile guest": L2 attacks passage's device model
# (guests/l2tests/hostile.c: edu DMA above guest RAM, malformed MSI-X table
# accesses and a storm of writes to the read-only PBA, config writes outside
# every shown capability (including the real devices' hidden capabilities,
# whose offsets L1 reads here and hands to L2), BARs moved onto RAM and onto
# another BAR, a storm of writes to an mmap'd register), then the normal
# checks: edu-test (DMA and MSI), edu's ROM, nvme's data and MSI-X. Two VMs
# with edu and nvme: both on one -object iommufd (hostile.iommufd), then both
# on the legacy container (hostile.legacy).
# L1 judges each from outside passage:
#   TAG.hostile.alive      passage is running when L2 reports its attacks done
#   TAG.guest_error.KIND   passage's stderr accounts for every attack it can
#                          see, once: printed lines plus "N similar messages
#                          suppressed (KIND)" = the count hostile reports
#                          (HOSTILE-COUNTS), for msix_table, msix_pba,
#                          config_hidden and bar_placement (so a well-behaved
#                          guest's own accesses, booting and in the normal
#                          checks, logged nothing)
#   TAG.guest_error.rate   the rate limit holds: fewer guest-error lines than
#                          attacks passage saw, and at most 11 lines (a
#                          burst of 10 plus one "suppressed" line) per 5 s
#                          for each of at most 8 device+kind pairs over the
#                          run's length
#   TAG.dmar               L1's IOMMU faulted edu's DMA above guest RAM: new
#                          "DMAR: [DMA Read ...] ... fault addr <hostile's
#                          address>" and "[DMA Write ...]" lines in L1's
#                          dmesg during this run; passage never sees that DMA
#   TAG.teardown.*, TAG.reuse.*  as every passthrough run (lib/passthrough.sh)
# rig: bind=1234:11e8,1b36:0010
# rig: l2=yes
# rig: bin=$PASSAGE_BUILD_DIR/vmm/passage
# rig: bin=$PASSAGE_BUILD_DIR/guests/l2tests/edu-test:/rig/l2bin/edu-test
# rig: bin=$PASSAGE_BUILD_DIR/guests/l2tests/hostile:/rig/l2bin/hostile
# rig: add=lib/passthrough.sh:/rig/passthrough.sh
# rig: mem=2G
# One vCPU for L1 and L2, a stall watchdog and retries: as
# passthrough-shared.sh (README "Known limits").
# rig: smp=1
# rig: stall=90
# rig: timeout=1500
# rig: expect=hostile.iommufd.l2.hostile.found,hostile.iommufd.l2.hostile.dma,hostile.iommufd.l2.hostile.msix_table,hostile.iommufd.l2.hostile.pba_storm
# rig: expect=hostile.iommufd.l2.hostile.config,hostile.iommufd.l2.hostile.bar_ram,hostile.iommufd.l2.hostile.bar_overlap,hostile.iommufd.l2.hostile.mmio_storm
# rig: expect=hostile.iommufd.l2.edu.msi,hostile.iommufd.l2.edu.dma,hostile.iommufd.edu.rom,hostile.iommufd.nvme.driver,hostile.iommufd.nvme.data,hostile.iommufd.nvme.msix
# rig: expect=hostile.iommufd.done,hostile.iommufd.exit,hostile.iommufd.hostile.alive,hostile.iommufd.dmar,hostile.iommufd.guest_error.rate
# rig: expect=hostile.iommufd.guest_error.msix_table,hostile.iommufd.guest_error.msix_pba,hostile.iommufd.guest_error.config_hidden,hostile.iommufd.guest_error.bar_placement
# rig: expect=hostile.iommufd.teardown.pins,hostile.iommufd.teardown.holders,hostile.iommufd.reuse.edu.cdev.dma,hostile.iommufd.reuse.nvme.cdev.attach_ioas
# rig: expect=hostile.legacy.l2.hostile.found,hostile.legacy.l2.hostile.dma,hostile.legacy.l2.hostile.msix_table,hostile.legacy.l2.hostile.pba_storm
# rig: expect=hostile.legacy.l2.hostile.config,hostile.legacy.l2.hostile.bar_ram,hostile.legacy.l2.hostile.bar_overlap,hostile.legacy.l2.hostile.mmio_storm
# rig: expect=hostile.legacy.l2.edu.msi,hostile.legacy.l2.edu.dma,hostile.legacy.edu.rom,hostile.legacy.nvme.driver,hostile.legacy.nvme.data,hostile.legacy.nvme.msix
# rig: expect=hostile.legacy.done,hostile.legacy.exit,hostile.legacy.hostile.alive,hostile.legacy.dmar,hostile.legacy.guest_error.rate
# rig: expect=hostile.legacy.guest_error.msix_table,hostile.legacy.guest_error.msix_pba,hostile.legacy.guest_error.config_hidden,hostile.legacy.guest_error.bar_placement
# rig: expect=hostile.legacy.teardown.pins,hostile.legacy.teardown.holders,hostile.legacy.reuse.edu.group.dma,hostile.legacy.reuse.nvme.group.get_device_fd
. /rig/lib.sh
. /rig/passthrough.sh

# PBA writes hostile makes (each one an exit to passage).
PBA_STORM=20000
MMIO_STORM=1000000

# cfg_byte BDF OFF: one byte of the real device's config space, in L1.
cfg_byte() { od -An -tu1 -j "$2" -N1 "/sys/bus/pci/devices/$1/config" | tr -d ' '; }
cfg_dword() { od -An -tu4 -j "$2" -N4 "/sys/bus/pci/devices/$1/config" | tr -d ' '; }

# hidden_caps BDF: offsets (hex) of the capabilities passage hides from the
# guest: every standard one but MSI (0x05), PCI Express (0x10) and MSI-X
# (0x11), and every extended one.
hidden_caps() {
  [ $(( $(cfg_byte "$1" 6) & 0x10 )) -ne 0 ] || return 0
  _h_pos=$(( $(cfg_byte "$1" 0x34) & ~3 )) _h_n=0
  while [ "$_h_pos" -ge 64 ] && [ $_h_n -lt 48 ]; do
    _h_id=$(cfg_byte "$1" $_h_pos)
    case $_h_id in 5|16|17) ;; *) printf '%x\n' $_h_pos ;; esac
    _h_pos=$(( $(cfg_byte "$1" $((_h_pos + 1))) & ~3 )) _h_n=$((_h_n + 1))
  done
  _h_pos=256 _h_n=0
  while [ "$_h_pos" -ge 256 ] && [ $_h_n -lt 960 ]; do
    _h_hdr=$(cfg_dword "$1" $_h_pos)
    [ -n "$_h_hdr" ] && [ "$_h_hdr" != 0 ] && [ "$_h_hdr" != 4294967295 ] || break
    printf '%x\n' $_h_pos
    _h_pos=$(( (_h_hdr >> 20) & ~3 )) _h_n=$((_h_n + 1))
  done
}

# The hostile image: /tmp/l2.img (edu-test and the normal checks) with
# hostile, the hidden capabilities' offsets, and a scenario that attacks
# first and then runs the normal checks (lib/passthrough.sh's scenario.sh,
# kept as /rig/checks.sh).
mkdir -p /tmp/hx/rig /tmp/hx/usr/bin
cp /rig/l2bin/hostile /tmp/hx/usr/bin/hostile
cp /tmp/l2x/rig/scenario.sh /tmp/hx/rig/checks.sh
hidden_caps $EDU > /tmp/hx/rig/hidden.1234:11e8
hidden_caps $NVME > /tmp/hx/rig/hidden.1b36:0010
result l1.hidden_caps true "capabilities passage hides, by offset: edu: $(tr '\n' ' ' < /tmp/hx/rig/hidden.1234:11e8)" \
  "nvme: $(tr '\n' ' ' < /tmp/hx/rig/hidden.1b36:0010)"
cat > /tmp/hx/rig/scenario.sh <<L2
hostile --pba-storm $PBA_STORM --mmio-storm $MMIO_STORM
. /rig/checks.sh
L2
cp /tmp/l2.img /tmp/hostile.img
cpio_append /tmp/hostile.img /tmp/hx rig usr

# dmar_since N ADDR: L1's DMAR fault lines for ADDR after the first N.
dmar_since() { dmesg | grep 'DMAR:.*fault addr' | tail -n +$(($1 + 1)) | grep "fault addr $2 "; }

# hostile_watch TAG (in the background): when L2 prints HOSTILE-COUNTS,
# whether passage is alive and how many guest-error lines it has written.
hostile_watch() {
  i=0
  while [ $i -lt 1200 ]; do
    if grep -q HOSTILE-COUNTS "/tmp/$1.serial" 2> /dev/null; then
      pid=$(pidof passage | cut -d' ' -f1)
      alive=no
      [ -n "$pid" ] && kill -0 "$pid" 2> /dev/null && alive=yes
      echo "alive=$alive pid=${pid:-none} lines=$(grep -c '^passage: guest error: ' "/tmp/$1.err")" > "/tmp/$1.alive"
      return 0
    fi
    sleep 0.5
    i=$((i + 1))
  done
}

# count_of TAG KEY: a number from L2's HOSTILE-COUNTS line.
count_of() {
  tr -d '\r' < "/tmp/$1.serial" | sed -n "s/.*HOSTILE-COUNTS .*\"$2\":\"\{0,1\}\([0-9a-fx]*\).*/\1/p" | tail -n 1
}

# seen TAG PATTERN KIND: passage's detections of KIND: printed lines
# matching PATTERN plus the counts in its "suppressed (KIND)" lines.
seen() {
  printed=$(grep '^passage: guest error: ' "/tmp/$1.err" | grep -v 'similar messages suppressed' | grep -c -- "$2")
  held=$(grep "^passage: guest error: .* similar messages suppressed ($3)\$" "/tmp/$1.err" |
    sed 's/.*: \([0-9]*\) similar messages suppressed.*/\1/' | awk '{s += $1} END {print s + 0}')
  echo $((printed + held))
}

# hostile_boot TAG ARGS...: one VM under attack, judged from L1.
hostile_boot() {
  tag=$1
  shift
  rm -f "/tmp/$tag.alive"
  : > "/tmp/$tag.serial"
  hostile_watch "$tag" &
  hw=$!
  t0=$(date +%s)
  faults0=$(dmesg | grep -c 'DMAR:.*fault addr')
  L2_IMG=/tmp/hostile.img boot "$tag" 200M "$@"
  secs=$(( $(date +%s) - t0 ))
  kill $hw 2> /dev/null
  wait $hw 2> /dev/null
  a=$(cat "/tmp/$tag.alive" 2> /dev/null)
  result "$tag.hostile.alive" "$(case $a in alive=yes*) echo 0 ;; *) echo 1 ;; esac)" \
    "when L2 reported its attacks done: ${a:-L2 never reported them}"
  total=0 attacks=0
  for k in "msix_table MSI-X.table msix-table" "pba MSI-X.PBA msix-pba" \
           "config_hidden outside.every.capability.shown config-hidden" "bar_placement not.decoded: bar-placement"; do
    set -- $k
    want=$(count_of "$tag" "$1")
    got=$(seen "$tag" "$2" "$3")
    total=$((total + got)) attacks=$((attacks + ${want:-0}))
    name=$(echo "$3" | tr '-' '_')
    result "$tag.guest_error.$name" "$([ -n "$want" ] && [ "$want" -gt 0 ] && [ "$got" = "$want" ]; echo $?)" \
      "L2 made ${want:-?} such attacks; passage logged or counted $got ($3): $(grep -m 2 -- "$2" "/tmp/$tag.err" | tr '\n' ' ')"
  done
  lines=$(grep -c '^passage: guest error: ' "/tmp/$tag.err")
  bound=$(( 11 * 8 * (secs / 5 + 1) ))
  result "$tag.guest_error.rate" "$([ "$attacks" -gt 0 ] && [ "$lines" -lt "$attacks" ] && [ "$lines" -le "$bound" ]; echo $?)" \
    "$lines guest-error lines for $total detections of $attacks attacks passage can see, in a ${secs} s run (bound: 11 per 5 s for 8 device+kind pairs = $bound)"
  # Both directions: edu read from the address (RAM -> device), then wrote
  # to it; each is a fault of its own.
  addr=$(count_of "$tag" dma_addr)
  new=$([ -n "$addr" ] && dmar_since "$faults0" "$addr")
  result "$tag.dmar" "$(echo "$new" | grep -q 'DMA Read' && echo "$new" | grep -q 'DMA Write'; echo $?)" \
    "L1 DMAR faults for edu's DMA at ${addr:-?} during this run (after $faults0 earlier fault lines): $(echo "$new" | grep -c .); $(echo "$new" | tail -n 2 | tr '\n' ' ')"
}

hostile_boot hostile.iommufd -object iommufd,id=io0 \
  -device vfio-pci,host=$EDU,iommufd=io0,id=edu0,addr=04.0 -device vfio-pci,host=$NVME,iommufd=io0,id=nvme0,addr=05.0
hostile_boot hostile.legacy \
  -device vfio-pci,host=$EDU,id=edu0,addr=04.0 -device vfio-pci,host=$NVME,id=nvme0,addr=05.0
exit 0
