# Shared by the passthrough-*.sh scenarios (issues 8, 11): passage in L1
# passes edu and/or nvme through to an L2 Linux guest. Sourced after the
# scenario's header; defines the devices, the L2 test image and the run
# helpers:
#   boot TAG MEM ARGS...      passage boots L2 with ARGS; imports L2's results
#                             as TAG.*, then L1's own verdicts (below)
#   fds_boot TAG MEM CDEV [ARGS...]  the same with every file handed in as
#                             an fd, under passage-noopen (tests/rig/noopen);
#                             ARGS go to passage too (sandbox.sh: -sandbox on),
#                             FDS_AS runs passage through a command (sandbox.sh:
#                             setpriv to an unprivileged user)
#   bad TAG ARGS...           passage must exit 1 with one error line
# What L2 is told to expect comes from ARGS (l2_expect): rig.cpus, rig.mem,
# and rig.pci = the host bridge plus every -device vfio-pci at its addr= (or
# the first free slot, passage's rule for a device without one) with the IDs
# L1 reads for it; L2_PCI=... overrides rig.pci (selfcheck/).
# L1 judges each run from outside passage (never from passage's own report):
#   TAG.ioas.pins      while L2 runs (sampled at L2's RIG-BOOT): pinned pages
#                      (/proc/vmstat nr_foll_pin_acquired - released) grew by
#                      guest RAM once per IOAS/container that has a device
#                      (iommufd pins at attach; devices sharing an IOAS
#                      share its pins), plus one container when a device has
#                      no iommufd=
#   TAG.ioas.fds       passage holds one /dev/iommu fd per -object iommufd,
#                      /dev/vfio/vfio iff a device is legacy, one cdev or
#                      group fd per device
#   TAG.ioas.map_file  iommufd: passage's RssShmem < RAM while all of RAM is
#                      pinned: the pins came from the memfd
#                      (IOMMU_IOAS_MAP_FILE), not through passage's page
#                      tables (IOMMU_IOAS_MAP of a user VA, or type1, pins
#                      by faulting every page in: RssShmem >= RAM)
#   TAG.teardown.pins  after exit, pinned pages are back to their value before
#   TAG.teardown.holders  no process holds /dev/iommu or /dev/vfio/*
#   TAG.reuse.*        each passed device works at once: rig-probe opens its
#                      cdev (iommufd runs) or group (legacy), binds, attaches,
#                      and for edu runs DMA through the IOAS/container
#   TAG.resources      passage's own --report-resources line (kept, second)
# Each passage run is bounded (lib.sh `bounded`: progress lines, and at the
# deadline a dump of passage's threads and their kernel stacks, SIGTERM, then
# SIGKILL); a run that hits it fails through its exit status and missing L2
# results. In L2, edu-test drives edu (ID, factorial, MSI, DMA into and out of
# guest RAM), edu's expansion ROM is read back, and nvme is probed by Linux's
# driver, written and read back. edu's DMA is 28-bit, so those guests get
# 200 MiB of RAM.

K=/rig/l2/bzImage
# nokaslr: the kernel text sits where /rig/l2/System.map says, so a stuck
# L2's rip can be named (l2_diag).
APPEND="console=ttyS0 panic=-1 quiet nokaslr"
HOST_BRIDGE=00:00.0=8086:29c0
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
# bar_sizes DIR: "0=0x100000 2=0x4000": the size of each BAR 0-5 in use. L2
# compares its view with L1's (BARs are sized from the VFIO regions).
cat > /tmp/l2x/rig/bar_sizes.sh <<'BARS'
bar_sizes() {
  _bs_i=0 _bs_out=
  while read -r _bs_a _bs_b _bs_f; do
    [ $_bs_i -lt 6 ] && [ $((_bs_b)) -ne 0 ] && _bs_out="$_bs_out $(printf '%d=0x%x' $_bs_i $((_bs_b - _bs_a + 1)))"
    _bs_i=$((_bs_i + 1))
  done < "$1/resource"
  echo "${_bs_out# }"
}
BARS
. /tmp/l2x/rig/bar_sizes.sh
for id in 1234:11e8 1b36:0010; do
  b=$(pci_find $id | head -n 1)
  [ -n "$b" ] && bar_sizes /sys/bus/pci/devices/$b > /tmp/l2x/rig/bars.$id
done
cat > /tmp/l2x/rig/scenario.sh <<'L2'
# The device checks run for every device L1 said it passed (rig.pci=), so a
# device that is missing fails them instead of skipping them.
pci=",$(rig_arg rig.pci)"
# Each device L1 passed: its BARs in L2 have the sizes L1 sees (VFIO regions).
. /rig/bar_sizes.sh
for e in $(echo "${pci#,}" | tr ',' ' '); do
  id=${e#*=}
  [ -f /rig/bars.$id ] || continue
  d=
  for p in /sys/bus/pci/devices/*; do case $p in *"${e%%=*}") [ -e $p/resource ] && d=$p ;; esac; done
  got=$([ -n "$d" ] && bar_sizes $d)
  result "bars.$id" "$([ -n "$d" ] && [ "$got" = "$(cat /rig/bars.$id)" ]; echo $?)" \
    "BAR sizes in L2: ${got:-no device at ${e%%=*}}; in L1: $(cat /rig/bars.$id)"
done
case $pci in *=1234:11e8*)
  edu-test
  d=
  for p in /sys/bus/pci/devices/*; do grep -q 'PCI_ID=1234:11E8' $p/uevent && d=$p; done
  want=$(cat /rig/edu-rom.md5)
  got=
  if [ -n "$d" ]; then
    got=$(echo 1 > $d/rom && md5sum < $d/rom | cut -d' ' -f1)
    echo 0 > $d/rom
  fi
  result edu.rom "$([ -n "$got" ] && [ "$got" = "$want" ]; echo $?)" \
    "expansion ROM read in L2: md5 ${got:-unreadable}, L1 read $want; ${d:-no edu device}"
esac
case $pci in *=1b36:0010*)
  i=0
  while [ ! -b /dev/nvme0n1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  drv=$(for d in /sys/bus/pci/devices/*; do grep -q 'PCI_ID=1B36:0010' $d/uevent && basename "$(readlink $d/driver)"; done)
  result nvme.driver "$([ "$drv" = nvme ]; echo $?)" "driver '$drv', /dev/nvme0n1 $([ -b /dev/nvme0n1 ] && echo present || echo missing)"
  want=none got=none
  if [ -b /dev/nvme0n1 ]; then
    dd if=/dev/urandom of=/tmp/pattern bs=64k count=64 2>/dev/null
    dd if=/tmp/pattern of=/dev/nvme0n1 bs=64k count=64 conv=fsync 2>/dev/null
    echo 3 > /proc/sys/vm/drop_caches
    want=$(md5sum < /tmp/pattern | cut -d' ' -f1)
    got=$(dd if=/dev/nvme0n1 bs=64k count=64 2>/dev/null | md5sum | cut -d' ' -f1)
  fi
  result nvme.data "$([ "$want" != none ] && [ "$want" = "$got" ]; echo $?)" "4 MiB pattern md5 $want, read back $got"
  queues=$(grep -c 'nvme0q' /proc/interrupts)
  msix=$(grep 'nvme0q' /proc/interrupts | grep -c 'PCI-MSIX')
  fired=$(grep 'nvme0q' /proc/interrupts | awk '{s=0; for (i=2;i<=NF;i++) if ($i ~ /^[0-9]+$/) s+=$i; else break; t+=s} END {print t+0}')
  result nvme.msix "$([ "$queues" -ge 2 ] && [ "$msix" = "$queues" ] && [ "$fired" -gt 0 ]; echo $?)" \
    "$queues nvme queue vectors, $msix of them MSI-X, $fired interrupts"
esac
L2
chmod +x /tmp/l2x/rig/scenario.sh
cp /rig/l2/initramfs.cpio.gz /tmp/l2.img
cpio_append /tmp/l2.img /tmp/l2x rig usr

# flood_image LINES: /tmp/flood.img, the L2 image with a scenario that
# writes LINES lines of about 100 bytes to the console (init's stdout,
# /dev/console = ttyS0: one port write and exit per byte), then a result;
# the L1 side counts the lines that arrived (console-flood.sh, stability.sh).
flood_image() {
  mkdir -p /tmp/flood/rig
  cat > /tmp/flood/rig/scenario.sh <<L2
i=0
while [ \$i -lt $1 ]; do
  echo "flood \$i ................................................................................."
  i=\$((i + 1))
done
result flood.written true "$1 lines of about 100 bytes written to the console"
L2
  cp /rig/l2/initramfs.cpio.gz /tmp/flood.img
  cpio_append /tmp/flood.img /tmp/flood rig
}

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
# NOOPEN: the wrapper as the real runs use it. The one path it lets through
# is glibc's CPU count (sysconf(_SC_NPROCESSORS_ONLN) reads
# /sys/devices/system/cpu/online), which Abseil's Mutex asks for once, on the
# first contended lock: a fact about the host, not a file a management layer
# would hand in. Without it a run fails or passes by thread timing.
NOOPEN="passage-noopen --allow /sys/devices/system/cpu/online --"

fds_boot() {
  _fb_tag=$1 _fb_mem=$2 _fb_cdev=$3
  shift 3
  passage-noopen -- passage -kernel $K -m 64M -serial none > /dev/null 2> "/tmp/$_fb_tag.guard"
  grc=$?
  result "$_fb_tag.noopen_fires" \
    "$([ $grc = 99 ] && grep -q '^noopen: [a-z0-9_]*("/dev/kvm") by passage$' "/tmp/$_fb_tag.guard"; echo $?)" \
    "passage-noopen -- passage (opening /dev/kvm): exit $grc; $(head -n 3 "/tmp/$_fb_tag.guard" | tr '\n' ' ')"
  # l2_boot runs `env ENV passage ...`: env takes the wrapper as its command.
  l2_boot "$NOOPEN $FDS_AS" "$_fb_tag" "$_fb_mem" -accel kvm,fd=5 -object iommufd,id=i0,fd=3 \
    -device vfio-pci,fd=4,iommufd=i0,id=d0 "$@" 3<>/dev/iommu 4<>"$_fb_cdev" 5<>/dev/kvm
  refused=$(grep '^noopen: ' "/tmp/$_fb_tag.err")
  result "$_fb_tag.noopen" "$([ -z "$refused" ]; echo $?)" "${refused:-passage looked up no path under /dev or /sys}"
}

# l2_boot ENV TAG MEM ARGS...: boot's body; ENV (NAME=VALUE, or empty) goes
# into passage's environment.
l2_boot() {
  envs=$1 tag=$2 mem=$3
  shift 3
  l2_expect "$mem" "$@"
  pins0=$(pins_settled)
  watch_run "$tag" "$mem" "$@" &
  watcher=$!
  # At the deadline, L2's state before bounded's thread dump (TAG.exit's detail).
  rm -f "/tmp/$tag.diag" "/tmp/.l2probe.$tag"
  # L2's timer deadlock (an emulator fault, retried by run.py) ends the run
  # when it is seen, not at the deadline.
  RIG_BOUNDED_PROBE="l2_probe $tag" RIG_BOUNDED_HOOK="l2_diag_quiet $tag" bounded 300 env $envs passage -cpu $CPU -m "$mem" -smp 1 -kernel $K -initrd "${L2_IMG:-/tmp/l2.img}" \
    -append "$APPEND rig.cpus=1 rig.mem=$mem rig.pci=$L2_EXPECT" \
    -serial "file:/tmp/$tag.serial" --report-resources "$@" > "/tmp/$tag.out" 2> "/tmp/$tag.err"
  rc=$?
  kill $watcher 2> /dev/null
  wait $watcher 2> /dev/null
  show_log "$tag" "/tmp/$tag.serial"
  rig_import "$tag" "/tmp/$tag.serial"
  result "$tag.exit" "$rc" "passage exited $rc; stderr: $(cat /tmp/$tag.err)$([ -f "/tmp/$tag.diag" ] && printf '\n%s' "$(cat "/tmp/$tag.diag")")"
  during_checks "$tag" "$mem" "$@"
  teardown_checks "$tag" "$pins0" $(printf '%s\n' "$@" | grep -o ',fd=[0-9][0-9]*' | cut -d= -f2)
  clean_exit "$tag"
}

# ready_image IMG: the L2 image (edu-test included) with a scenario that
# drives edu, prints SIGNALS-READY and waits: whatever comes next finds L2
# running with edu's DMA mapped and its MSI enabled. A later cpio overrides a
# file.
ready_image() {
  mkdir -p /tmp/ready/rig
  printf 'edu-test\necho "SIGNALS-READY"\nsleep 600\n' > /tmp/ready/rig/scenario.sh
  cp /tmp/l2.img "$1"
  cpio_append "$1" /tmp/ready rig
}

# stop_within PID SECS [SIG]: sends SIG (if given) to PID, waits for it with a
# SIGKILL after SECS; STOP_RC is its exit status (137 when it had to be killed).
stop_within() {
  [ -n "$3" ] && kill -"$3" "$1" 2> /dev/null
  ( sleep "$2"; kill -KILL "$1" 2> /dev/null ) < /dev/null > /dev/null 2>&1 &
  _sw_guard=$!
  wait "$1"
  STOP_RC=$?
  kill $_sw_guard 2> /dev/null
  wait $_sw_guard 2> /dev/null
  return 0
}

# pinned: pages pinned (FOLL_PIN) in L1 now; iommufd and type1 both pin so.
pinned() { awk '/^nr_foll_pin_acquired / {a = $2} /^nr_foll_pin_released / {r = $2} END {print a - r}' /proc/vmstat; }

# pins_settled: the pinned count once it held still for 1 s (at most 10 s).
# A process's last pins can go a moment after it was reaped (measured: a
# few pages, e.g. rig-probe's DMA buffer or a failed passage's, still pinned
# when the shell's wait returned, gone before the next run).
pins_settled() {
  _ps_last=$(pinned) _ps_same=0 _ps_n=0
  while [ $_ps_same -lt 5 ] && [ $_ps_n -lt 50 ]; do
    sleep 0.2
    _ps_now=$(pinned)
    if [ "$_ps_now" = "$_ps_last" ]; then _ps_same=$((_ps_same + 1)); else _ps_same=0 _ps_last=$_ps_now; fi
    _ps_n=$((_ps_n + 1))
  done
  echo "$_ps_last"
}

# pins_back TARGET: waits up to 10 s for the pinned count to be TARGET; prints
# "COUNT after S s".
pins_back() {
  _pb_n=0
  while [ "$(pinned)" != "$1" ] && [ $_pb_n -lt 50 ]; do sleep 0.2; _pb_n=$((_pb_n + 1)); done
  echo "$(pinned) after $(( _pb_n / 5 )).$(( _pb_n % 5 * 2 )) s"
}

# vcpus PID: passage's threads named "passage" besides the main one (the
# event loop is "passage-loop"): the vCPU threads, started when set-up is over.
vcpus() {
  _v_n=0
  for _v_t in /proc/$1/task/*; do
    [ "${_v_t##*/}" = "$1" ] && continue
    [ "$(cat "$_v_t/comm" 2> /dev/null)" = passage ] && _v_n=$((_v_n + 1))
  done
  echo $_v_n
}

# holders [PID]: "PID NAME -> FILE" for every open /dev/iommu or /dev/vfio/*
# in L1, except PID's and this shell's own (a $(holders) subshell inherits
# PID's fds).
holders() {
  read -r _h_me _ < /proc/self/stat
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" = "$1" ] || [ "${p#/proc/}" = "$_h_me" ] && continue
    ls -l "$p/fd" 2> /dev/null | grep -E -- '-> /dev/(iommu|vfio/)' | sed "s|.*-> |${p#/proc/} $(cat $p/comm 2> /dev/null) -> |"
  done
}

# mem_pages MEM: 4 KiB pages in passage's -m MEM.
mem_pages() { echo $(( $(rig_mem_kb "$1") / 4 )); }

# devices_of ARGS...: one line per -device vfio-pci in ARGS: "ADDR BDF BACKEND"
# (ADDR the addr= value or -, BACKEND iommufd:ID or legacy); BDF from host=,
# sysfsdev= or the open cdev behind fd=.
devices_of() {
  while [ $# -gt 0 ]; do
    if [ "$1" = -device ]; then
      case $2 in vfio-pci,*)
        a=- b= be=legacy
        for kv in $(echo "${2#vfio-pci,}" | tr ',' ' '); do
          case $kv in
            addr=*) a=${kv#addr=} ;;
            host=*) b=${kv#host=} ;;
            sysfsdev=*) b=${kv##*/} ;;
            fd=*) b=$(basename "$(readlink "/sys/class/vfio-dev/$(basename "$(readlink /proc/self/fd/${kv#fd=})")/device")") ;;
            iommufd=*) be=iommufd:${kv#iommufd=} ;;
          esac
        done
        case $b in ????:??:??.?) ;; *) b=0000:$b ;; esac
        echo "$a $b $be"
      esac
      shift
    fi
    shift
  done
}

# l2_expect MEM ARGS...: sets L2_EXPECT (rig.pci for L2) and L2_DEVICES
# ("BDF BACKEND" lines) from ARGS. Devices without addr= take the lowest free
# slot from 1 up, in order (passage's rule). PT_SYSFS: another /sys (selftest).
l2_expect() {
  shift
  devices_of "$@" > /tmp/devices
  L2_DEVICES=$(cut -d' ' -f2,3 /tmp/devices)
  used=" 0 "
  for a in $(cut -d' ' -f1 /tmp/devices); do [ "$a" != - ] && used="$used$(( 0x${a%%.*} )) "; done
  exp=$HOST_BRIDGE
  while read -r a b be; do
    [ -n "$b" ] || continue
    if [ "$a" = - ]; then
      s=1
      while case $used in *" $s "*) true ;; *) false ;; esac; do s=$((s + 1)); done
      used="$used$s "
      a=$(printf '%02x.0' $s)
    else
      case $a in *.*) ;; *) a=$a.0 ;; esac
      a=$(printf '%02x.%s' $(( 0x${a%%.*} )) "${a#*.}")
    fi
    id=$(sed 's/^0x//' "${PT_SYSFS:-/sys}/bus/pci/devices/$b/vendor"):$(sed 's/^0x//' "${PT_SYSFS:-/sys}/bus/pci/devices/$b/device")
    exp="$exp,00:$a=$id"
  done < /tmp/devices
  L2_EXPECT=${L2_PCI:-$exp}
}

# watch_run TAG MEM ARGS... (in the background): at L2's RIG-BOOT, records
# what passage holds (/tmp/TAG.during): pinned pages, its /dev/iommu, VFIO
# container, cdev and group fds, its RssShmem, its real uid and how many
# seccomp filters it runs under.
watch_run() {
  i=0
  while [ $i -lt 600 ]; do
    if grep -q RIG-BOOT "/tmp/$1.serial" 2> /dev/null; then
      pid=$(pidof passage | cut -d' ' -f1)
      fds=$(ls -l /proc/$pid/fd 2> /dev/null)
      echo "pins=$(( $(pinned) - pins0 )) iommu=$(echo "$fds" | grep -c -- '-> /dev/iommu$')" \
        "container=$(echo "$fds" | grep -c -- '-> /dev/vfio/vfio$')" \
        "cdevs=$(echo "$fds" | grep -c -- '-> /dev/vfio/devices/')" \
        "groups=$(echo "$fds" | grep -c -E -- '-> /dev/vfio/[0-9]+$')" \
        "rss_shmem_kb=$(awk '/^RssShmem:/ {print $2}' /proc/$pid/status 2> /dev/null)" \
        "uid=$(awk '/^Uid:/ {print $2}' /proc/$pid/status 2> /dev/null)" \
        "seccomp_filters=$(awk '/^Seccomp_filters:/ {print $2}' /proc/$pid/status 2> /dev/null)" > "/tmp/$1.during"
      return 0
    fi
    sleep 0.5
    i=$((i + 1))
  done
}

# during_checks TAG MEM ARGS...: TAG.ioas.* from /tmp/TAG.during.
during_checks() {
  tag=$1 mem=$2
  shift 2
  d=$(cat "/tmp/$tag.during" 2> /dev/null)
  objects=0
  for a in "$@"; do case $a in iommufd,*) objects=$((objects + 1)) ;; esac; done
  legacy=$(echo "$L2_DEVICES" | grep -c ' legacy$')
  ndev=$(echo "$L2_DEVICES" | grep -c .)
  containers=$([ "$legacy" -gt 0 ] && echo 1 || echo 0)
  # iommufd pins an IOAS's pages once a device is attached (an IOAS with no
  # device pins nothing), once per IOAS however many devices share it.
  used=$(echo "$L2_DEVICES" | sed -n 's/.* iommufd:\(.*\)/\1/p' | sort -u | grep -c .)
  spaces=$((used + containers))
  page_count=$(mem_pages "$mem")
  want=$((spaces * page_count))
  val() { echo "$d" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
  pins=$(val pins)
  # Exactly RAM per space; a little slack above for pins not of RAM.
  result "$tag.ioas.pins" "$([ -n "$pins" ] && [ "$pins" -ge "$want" ] && [ "$pins" -le $((want + want / 100 + 64)) ]; echo $?)" \
    "pinned pages grew by ${pins:-?} while L2 ran; guest RAM is $page_count pages, $spaces IOAS/container(s) with devices: expect $want; ${d:-no sample (L2 never printed RIG-BOOT)}"
  result "$tag.ioas.fds" "$([ -n "$d" ] && [ "$(val iommu)" = "$objects" ] && [ "$(val container)" = "$containers" ] &&
    [ $(( $(val cdevs) + $(val groups) )) -ge "$ndev" ]; echo $?)" \
    "passage holds: ${d:-nothing sampled}; expect iommu=$objects container=$containers and one cdev or group per device ($ndev)"
  if [ "$used" -gt 0 ] && [ "$containers" = 0 ]; then
    rss=$(val rss_shmem_kb)
    result "$tag.ioas.map_file" "$([ -n "$rss" ] && [ -n "$pins" ] && [ "$pins" -ge "$want" ] && [ "$rss" -lt $((page_count * 4)) ]; echo $?)" \
      "RAM $((page_count * 4)) kB pinned $spaces time(s) while passage's RssShmem is ${rss:-?} kB: pinned from the memfd, not through passage's page tables (IOMMU_IOAS_MAP_FILE)"
  elif [ "$containers" = 1 ] && [ "$objects" = 0 ]; then
    rss=$(val rss_shmem_kb)
    result "$tag.ioas.map_va" "$([ -n "$rss" ] && [ "$rss" -ge $((page_count * 4)) ]; echo $?)" \
      "type1 pins through passage's page tables: RssShmem ${rss:-?} kB >= RAM $((page_count * 4)) kB"
  fi
}

# teardown_checks TAG PINS0 [FD...]: after passage exited, from outside. The
# FDs this shell handed to passage (fd=) are still open here: they are not
# held against passage, and are closed before the devices are used again (a
# cdev file bound to an iommufd keeps the device from being bound anew).
teardown_checks() {
  tag=$1 before=$2
  shift 2
  now=$(pins_back "$before")
  result "$tag.teardown.pins" "$([ "${now%% *}" = "$before" ]; echo $?)" \
    "pinned pages before the run $before, after exit $now (at most 10 s)"
  read -r self _ < /proc/self/stat
  h=$(holders "$self")
  result "$tag.teardown.holders" "$([ -z "$h" ]; echo $?)" \
    "open /dev/iommu or /dev/vfio/* after exit, but for the fds this shell passed ($*): ${h:-none}"
  for fd in "$@"; do eval "exec $fd>&-"; done
  set -- "$tag"
  echo "$L2_DEVICES" | while read -r b be; do
    [ -n "$b" ] || continue
    name=$1.reuse.$(case $(cat /sys/bus/pci/devices/$b/device) in 0x11e8) echo edu ;; *) echo nvme ;; esac)
    way=cdev
    [ "$be" = legacy ] && way=group
    case $name in
      *.edu) rig-probe $way "$b" --name "$name" --edu ;;
      *) rig-probe $way "$b" --name "$name" --bar0-read 0x8 ;;
    esac
  done
}

# What a child of this shell inherits (ls counts its own directory fd too).
BASE_FDS=$(( $(ls /proc/self/fd | wc -l) - 1 ))

# clean_exit TAG: passage's own account of what it held when it exited: only
# the fds it inherited, nothing locked or pinned (a second opinion; the
# verdict is teardown_checks').
clean_exit() {
  line=$(grep 'resources at exit' "/tmp/$1.err" | tail -n 1)
  case $line in
    *"fds=$BASE_FDS "*'VmLck=0 kB'*'VmPin=0 kB'*) ok=true ;;
    *) ok=false ;;
  esac
  result "$1.resources" $ok "passage's own report: ${line:-no resources line} (inherited: $BASE_FDS fds)"
}

# bad TAG ARGS...: passage must fail with exit 1 and one error line.
bad() {
  tag=$1
  shift
  pins0=$(pins_settled)
  bounded 120 passage -cpu $CPU -m 200M -kernel $K -initrd /tmp/l2.img -append "$APPEND" -serial none \
    --report-resources "$@" > "/tmp/$tag.out" 2> "/tmp/$tag.err"
  rc=$?
  # One error line; warnings ("passage: warning: ...", e.g. edu's "device
  # not reset" when it was opened before the failure) are not errors.
  errs=$(grep -v 'resources at exit' "/tmp/$tag.err" | grep -vc '^passage: warning: ')
  result "$tag.exit" "$([ $rc = 1 ] && [ "$errs" = 1 ]; echo $?)" \
    "exit $rc, $errs error line(s): $(grep -v 'resources at exit' /tmp/$tag.err)"
  L2_DEVICES=
  teardown_checks "$tag" "$pins0"
  clean_exit "$tag"
}

# A PCI function bound to a host driver other than vfio-pci (for bad input).
OTHER=$(for d in /sys/bus/pci/devices/*; do
  drv=$(basename "$(readlink $d/driver 2>/dev/null)")
  [ -n "$drv" ] && [ "$drv" != vfio-pci ] && basename $d && break
done)
