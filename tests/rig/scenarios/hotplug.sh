# Issue 12 "Tests: Rig": passage starts with no passthrough device and no
# iommufd object and a QMP socket; tests/qmp/qmp-client.py (python3 in L1)
# drives it, L2 watches its PCI bus (lib/hotplug-l2.sh; l2/init checks the
# ACPI GED and its 31 hotplug slots, rig.ged=31) and L1 judges from outside
# passage (pinned pages, passage's open files):
#   1-2. getfd /dev/iommu, object-add iommufd (nothing pinned yet: an IOAS
#        with no device pins nothing), getfd edu's cdev, device_add fd=
#   3.   L2 sees edu arrive (ACPI PCI hotplug) and edu-test passes (DMA, MSI);
#        guest RAM pinned once, passage holds the cdev
#   4.   device_del: DEVICE_DELETED arrives, L2 no longer lists edu, passage
#        holds no cdev and nothing is pinned
#   5.   add again: works again
#   6.   object-del while edu is attached is refused (GenericError); after
#        device_del it succeeds: no /dev/iommu in passage, pins at baseline
#   7.   nvme hot-added by host= to the legacy container: L2's nvme driver
#        binds and a namespace does I/O; passage holds /dev/vfio/vfio; after
#        device_del the container is gone with it
#   8.   system_powerdown: POWERDOWN, L2 sees the power button and shuts down
#        (RIG-DONE), SHUTDOWN arrives, passage exits 0
# Then the same sequence with only fds: passage under passage-noopen (every
# lookup of a path under /dev or /sys refused and reported), /dev/kvm as
# fd 5, every device file through getfd; nvme by fd= on a second iommufd
# object there (host= would make passage open paths).
# Any step that fails ends that run (passage is stopped): the results of the
# later steps never arrive and the run fails naming them.
# rig: bind=1234:11e8,1b36:0010
# rig: l2=yes
# rig: bin=$PASSAGE_BUILD_DIR/vmm/passage
# rig: bin=$PASSAGE_BUILD_DIR/guests/l2tests/edu-test:/rig/l2bin/edu-test
# rig: bin=$PASSAGE_BUILD_DIR/tests/rig/noopen/passage-noopen
# rig: bin=/usr/bin/socat
# rig: add=lib/passthrough.sh:/rig/passthrough.sh
# rig: add=lib/hotplug-l2.sh:/rig/hotplug-l2.sh
# rig: add=../../qmp/qmp-client.py:/usr/local/bin/qmp-client
# rig: python=../../qmp/qmp-client.py
# rig: mem=2G
# One L1 vCPU, as in the passthrough scenarios (README "Known limits").
# rig: smp=1
# rig: stall=90
# rig: timeout=2400
# rig: expect=client.runs
# rig: expect=hot.watching,hot.boot.pins,hot.socat,hot.object.qmp,hot.object.pins,hot.edu1.qmp,hot.edu1.l2,hot.edu1.pins,hot.edu1.fds
# rig: expect=hot.del1.qmp,hot.del1.l2,hot.del1.fds,hot.del1.pins,hot.edu1.query_lists,hot.del1.query_lists
# rig: expect=hot.edu2.qmp,hot.edu2.l2,hot.edu2.pins,hot.object_del.refused,hot.del2.qmp,hot.del2.l2
# rig: expect=hot.object_del.qmp,hot.object_del.fds,hot.object_del.pins
# rig: expect=hot.nvme.qmp,hot.nvme.l2,hot.nvme.fds,hot.nvme.pins,hot.nvme_del.qmp,hot.nvme_del.l2,hot.nvme_del.fds,hot.nvme_del.pins
# rig: expect=hot.powerdown.qmp,hot.exit,hot.teardown.pins,hot.teardown.holders,hot.done
# rig: expect=hot.l2.boot,hot.l2.ged,hot.acpid,hot.add.1.known,hot.add.1.edu.dma,hot.add.1.edu.msi,hot.del.1.gone
# rig: expect=hot.add.2.edu.dma,hot.add.2.edu.msi,hot.del.2.gone,hot.add.3.nvme.driver,hot.add.3.nvme.data,hot.add.3.nvme.msix,hot.del.3.gone,hot.power_button

. /rig/lib.sh
. /rig/passthrough.sh

# The L2 image of lib/passthrough.sh (edu-test included) with the watcher as
# its scenario (a later cpio overrides a file).
mkdir -p /tmp/hot/rig
cp /rig/hotplug-l2.sh /tmp/hot/rig/scenario.sh
cp /tmp/l2.img /tmp/hot.img
cpio_append /tmp/hot.img /tmp/hot rig

# The client itself runs in L1 (python3 from run.py's python=).
v=$(qmp-client --help 2>&1 | head -n 1)
result client.runs "$(qmp-client --help > /dev/null 2>&1; echo $?)" "qmp-client --help: $v; $(python3 --version 2>&1)"

MEM=200M
RAM_PAGES=$(mem_pages $MEM)

# fds_of PID PATTERN: how many of passage's open files match PATTERN (grep -E).
fds_of() { ls -l "/proc/$(passage_of "$1")/fd" 2> /dev/null | grep -cE -- "-> ($2)\$"; }

# qmp TAG STEP [qmp-client args]: one client session; result TAG.STEP with
# its replies. Returns the client's status. A getfd'd fd is used in the
# session that passed it (a server may drop them when a client leaves). The
# client prints nothing while it waits: its waits stay under run.py's 90 s
# stall watch.
qmp() {
  _q_tag=$1 _q_step=$2
  shift 2
  qmp-client "/tmp/$_q_tag.sock" --timeout 60 --event-timeout 75 "$@" > "/tmp/$_q_tag.$_q_step.out" 2> "/tmp/$_q_tag.$_q_step.err"
  _q_rc=$?
  cat "/tmp/$_q_tag.$_q_step.out" "/tmp/$_q_tag.$_q_step.err" >> "/tmp/$_q_tag.qmp.log"
  result "$_q_tag.$_q_step" $_q_rc "qmp-client $* -> exit $_q_rc: $(grep -v '"QMP"' "/tmp/$_q_tag.$_q_step.out" | tail -n 6)$(cat "/tmp/$_q_tag.$_q_step.err")"
}

# l2_step TAG STEP PATTERN: L2 printed PATTERN (wait_l2, 180 s); result
# TAG.STEP with the marker line (or L2_DIAG).
l2_step() {
  wait_l2 "$1" $pid "/tmp/$1.serial" "/tmp/$1.err" "$3" 180
  _l_rc=$?
  result "$1.$2" $_l_rc "after $WAITED s: $(tr -d '\r' < "/tmp/$1.serial" | grep -E "$3" | tail -n 1)${L2_DIAG:+
$L2_DIAG}"
}

# pins_is TAG STEP WANT WHY: pinned pages (above the run's baseline) settle
# at WANT (at most 10 s).
pins_is() {
  _n_got=$(pins_back $((p0 + $3)))
  result "$1.$2" "$([ "${_n_got%% *}" = $((p0 + $3)) ]; echo $?)" \
    "pinned pages $((${_n_got%% *} - p0)) above the baseline $p0 ($_n_got), want $3: $4"
}

# socat_session TAG: the README's session ("The control socket (QMP)"),
# piped into socat: the greeting, then one reply per command, the last one
# listing the host bridge (QEMU's query-pci shape: vendor 0x8086 = 32902).
socat_session() {
  printf '%s\n' '{"execute": "qmp_capabilities"}' '{"execute": "query-status"}' '{"execute": "query-pci"}' |
    socat -t 5 - "UNIX-CONNECT:/tmp/$1.sock" > "/tmp/$1.socat.out" 2>&1
  _s_rc=$?
  sed 's/^/socat| /' "/tmp/$1.socat.out"
  _s_out=$(tr -d ' \n' < "/tmp/$1.socat.out")
  result "$1.socat" "$([ $_s_rc = 0 ] && [ "$(grep -c '"return"' "/tmp/$1.socat.out")" = 3 ] &&
    case $_s_out in *'"QMP":'*'"status":"running"'*'"vendor":32902'*) true ;; *) false ;; esac; echo $?)" \
    "socat exit $_s_rc, $(grep -c '"return"' "/tmp/$1.socat.out") replies (want 3: capabilities, running, the host bridge)"
}

# hot_run TAG MODE: the whole sequence (MODE path or fds).
hot_run() {
  tag=$1 mode=$2
  rm -f "/tmp/$tag.sock"
  : > "/tmp/$tag.serial"
  : > "/tmp/$tag.qmp.log"
  p0=$(pins_settled)
  set -- -cpu $CPU -m $MEM -smp 1 -kernel $K -initrd /tmp/hot.img \
    -append "$APPEND rig.cpus=1 rig.mem=$MEM rig.pci=$HOST_BRIDGE rig.ged=31" -serial "file:/tmp/$tag.serial" \
    -qmp "unix:/tmp/$tag.sock,server=on,wait=off" --report-resources $HOT_EXTRA
  if [ "$mode" = fds ]; then
    passage-noopen -- passage -kernel $K -m 64M -serial none > /dev/null 2> "/tmp/$tag.guard"
    grc=$?
    result "$tag.noopen_fires" \
      "$([ $grc = 99 ] && grep -q '^noopen: [a-z0-9_]*("/dev/kvm") by passage$' "/tmp/$tag.guard"; echo $?)" \
      "passage-noopen -- passage (opening /dev/kvm): exit $grc; $(head -n 3 "/tmp/$tag.guard" | tr '\n' ' ')"
    $NOOPEN passage -accel kvm,fd=5 "$@" 5<> /dev/kvm > "/tmp/$tag.out" 2> "/tmp/$tag.err" &
  else
    passage "$@" > "/tmp/$tag.out" 2> "/tmp/$tag.err" &
  fi
  pid=$!
  hot_steps "$tag" "$mode"
  # However the steps ended: passage gone within 60 s (a SIGKILL after).
  stop_within $pid 60 ${stopped_early:+TERM}
  rc=$STOP_RC
  [ -z "$stopped_early" ] && result "$tag.exit" "$rc" "passage exited $rc after system_powerdown; stderr: $(tail -n 5 "/tmp/$tag.err")"
  show_log "$tag" "/tmp/$tag.serial"
  rig_import "$tag" "/tmp/$tag.serial"
  now=$(pins_back "$p0")
  result "$tag.teardown.pins" "$([ "${now%% *}" = "$p0" ]; echo $?)" "pinned pages before the run $p0, after exit $now"
  h=$(holders)
  result "$tag.teardown.holders" "$([ -z "$h" ]; echo $?)" "open /dev/iommu or /dev/vfio/* after exit: ${h:-none}"
  if [ "$mode" = fds ]; then
    refused=$(grep '^noopen: ' "/tmp/$tag.err")
    result "$tag.noopen" "$([ -z "$refused" ]; echo $?)" "${refused:-passage looked up no path under /dev or /sys}"
  fi
}

# hot_steps TAG MODE: steps 1-8; returns at the first failure with
# stopped_early set (hot_run then stops passage).
hot_steps() {
  tag=$1 mode=$2
  stopped_early=yes
  l2_step "$tag" watching '^HOTPLUG-WATCHING' || return
  # No device, no object: nothing pinned, no VFIO or iommufd file.
  pins_is "$tag" boot.pins 0 "passage started with no device and no object" || return
  # Any QMP client works the same: the README's socat session, verbatim.
  [ "$mode" = path ] && socat_session "$tag"

  # 1-2: the object, then edu by fd.
  qmp "$tag" object.qmp --fd iommu=/dev/iommu 'object-add qom-type=iommufd id=io0 fd=iommu' || return
  pins_is "$tag" object.pins 0 "an iommufd object with RAM mapped but no device pins nothing (iommufd pins at attach)"
  qmp "$tag" edu1.qmp --fd edu=$EDU_CDEV 'device_add driver=vfio-pci id=edu0 fd=edu iommufd=io0' || return
  # 3: L2 sees it and tests it (its results come with rig_import).
  l2_step "$tag" edu1.l2 '^HOTPLUG-ADDED 1 .* 1234:11e8' || return
  pins_is "$tag" edu1.pins $RAM_PAGES "edu attached to io0: guest RAM pinned once"
  result "$tag.edu1.fds" "$([ "$(fds_of $pid /dev/iommu)" = 1 ] && [ "$(fds_of $pid '/dev/vfio/devices/vfio[0-9]+')" -ge 1 ]; echo $?)" \
    "passage holds $(fds_of $pid /dev/iommu) /dev/iommu and $(fds_of $pid '/dev/vfio/devices/vfio[0-9]+') cdev fd(s); want 1 and at least 1"

  # passage's own query lists edu0 on io0 (a second opinion; the verdicts above are L1's).
  qmp "$tag" edu1.query x-passage-query-iommufd &&
    result "$tag.edu1.query_lists" "$(grep '"return"' "/tmp/$tag.edu1.query.out" | grep -q '"io0"' &&
      grep '"return"' "/tmp/$tag.edu1.query.out" | grep -q '"edu0"'; echo $?)" "x-passage-query-iommufd names io0 and edu0"

  # 4: removal.
  qmp "$tag" del1.qmp 'device_del id=edu0' --wait-event DEVICE_DELETED:device=edu0 || return
  l2_step "$tag" del1.l2 '^HOTPLUG-REMOVED 1 .* 1234:11e8' || return
  gone=$(tr -d '\r' < "/tmp/$tag.serial" | grep '^HOTPLUG-REMOVED 1 ' | sed 's/.*lspci://')
  result "$tag.del1.fds" "$([ "$(fds_of $pid '/dev/vfio/.*')" = 0 ] && case $gone in *1234:11e8*) false ;; esac; echo $?)" \
    "after DEVICE_DELETED passage holds $(fds_of $pid '/dev/vfio/.*') VFIO file(s) (want 0), $(fds_of $pid /dev/iommu) /dev/iommu (the object's); L2 lists:$gone"
  pins_is "$tag" del1.pins 0 "edu detached: nothing pinned for it (io0 has no device left)"
  qmp "$tag" del1.query x-passage-query-iommufd &&
    result "$tag.del1.query_lists" "$(grep '"return"' "/tmp/$tag.del1.query.out" | grep -q '"io0"' &&
      ! grep '"return"' "/tmp/$tag.del1.query.out" | grep -q '"edu0"'; echo $?)" "x-passage-query-iommufd names io0, no longer edu0"

  # 5: again.
  qmp "$tag" edu2.qmp --fd edu=$EDU_CDEV 'device_add driver=vfio-pci id=edu0 fd=edu iommufd=io0' || return
  l2_step "$tag" edu2.l2 '^HOTPLUG-ADDED 2 .* 1234:11e8' || return
  pins_is "$tag" edu2.pins $RAM_PAGES "edu attached again"

  # 6: object-del refused while edu uses io0, then allowed.
  qmp "$tag" object_del.refused --expect-error --error-class GenericError 'object-del id=io0' || return
  qmp "$tag" del2.qmp 'device_del id=edu0' --wait-event DEVICE_DELETED:device=edu0 || return
  l2_step "$tag" del2.l2 '^HOTPLUG-REMOVED 2 .* 1234:11e8' || return
  qmp "$tag" object_del.qmp 'object-del id=io0' || return
  result "$tag.object_del.fds" "$([ "$(fds_of $pid '/dev/iommu|/dev/vfio/.*')" = 0 ]; echo $?)" \
    "after object-del passage holds $(fds_of $pid '/dev/iommu|/dev/vfio/.*') /dev/iommu or VFIO file(s); want 0"
  pins_is "$tag" object_del.pins 0 "no object, no device"

  # 7: nvme. By path: host= into the legacy container (passage opens the
  # group and /dev/vfio/vfio). With fds only: fd= on a second object.
  if [ "$mode" = fds ]; then
    qmp "$tag" nvme.qmp --fd iommu1=/dev/iommu --fd nvme=$NVME_CDEV 'object-add qom-type=iommufd id=io1 fd=iommu1' \
      'device_add driver=vfio-pci id=nvme0 fd=nvme iommufd=io1' || return
    want_fds='/dev/iommu' want_what="one /dev/iommu (io1)"
  else
    qmp "$tag" nvme.qmp "device_add driver=vfio-pci id=nvme0 host=$NVME" || return
    want_fds='/dev/vfio/vfio' want_what="the container /dev/vfio/vfio"
  fi
  l2_step "$tag" nvme.l2 '^HOTPLUG-ADDED 3 .* 1b36:0010' || return
  result "$tag.nvme.fds" "$([ "$(fds_of $pid "$want_fds")" = 1 ]; echo $?)" \
    "passage holds $(fds_of $pid "$want_fds") of $want_fds; want 1: $want_what"
  pins_is "$tag" nvme.pins $RAM_PAGES "nvme attached: guest RAM pinned once"
  qmp "$tag" nvme_del.qmp 'device_del id=nvme0' --wait-event DEVICE_DELETED:device=nvme0 || return
  l2_step "$tag" nvme_del.l2 '^HOTPLUG-REMOVED 3 .* 1b36:0010' || return
  [ "$mode" = fds ] && { qmp "$tag" nvme_object_del.qmp 'object-del id=io1' || return; }
  result "$tag.nvme_del.fds" "$([ "$(fds_of $pid '/dev/iommu|/dev/vfio/.*')" = 0 ]; echo $?)" \
    "after nvme's removal passage holds $(fds_of $pid '/dev/iommu|/dev/vfio/.*') /dev/iommu or VFIO file(s) (want 0: $([ "$mode" = fds ] && echo 'io1 deleted' || echo 'the container goes with its last device'))"
  pins_is "$tag" nvme_del.pins 0 "nvme gone"

  # -sandbox on with fds only (hotplug-sandbox.sh): a device by path is
  # refused up front (opening it would end passage), and passage runs on.
  if [ -n "$HOT_EXTRA" ]; then
    qmp "$tag" sandbox_path.refused --expect-error --error-class GenericError \
      "device_add driver=vfio-pci id=nvmex host=$NVME" || return
    result "$tag.sandbox_path.says" "$(grep -q 'forbids opening files after set-up' "/tmp/$tag.sandbox_path.refused.out"; echo $?)" \
      "the refusal: $(grep '"error"' "/tmp/$tag.sandbox_path.refused.out" | tail -n 1)"
    qmp "$tag" sandbox_path.alive query-status || return
  fi

  # 8: the power button ends the run.
  stopped_early=
  qmp "$tag" powerdown.qmp system_powerdown --wait-event POWERDOWN --wait-event SHUTDOWN
}

# hotplug-fds.sh sources this file with HOTPLUG_RUN=fds, hotplug-sandbox.sh
# with HOTPLUG_RUN=sandbox (each has its own expect=).
case ${HOTPLUG_RUN:-path} in
  path) hot_run hot path ;;
  fds) hot_run hotfds fds ;;
  sandbox)
    HOT_EXTRA="-sandbox on"
    hot_run hotsbx fds
    ;;
esac
exit 0
