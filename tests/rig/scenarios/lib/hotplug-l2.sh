# L2's side of hotplug.sh (appended to the L2 image as /rig/scenario.sh):
# watches the PCI bus while its VMM adds and removes devices over QMP, and
# tests each device that arrives. It reports through markers on its console
# (L1 waits for them) and results (L1 imports them when passage is done):
#   HOTPLUG-WATCHING                    ready: acpid runs, the bus was read
#   HOTPLUG-ADDED N BDF VVVV:DDDD       the Nth arrival (any device) is up and
#                                       tested: edu by edu-test (results
#                                       add.N.edu.*), nvme by its driver, a
#                                       4 MiB write/read and its MSI-X
#                                       interrupts (add.N.nvme.*)
#   HOTPLUG-REMOVED N BDF VVVV:DDDD; lspci: BDF=ID ...
#                                       the Nth departure, and what is left
#   HOTPLUG-POWER-BUTTON                the ACPI power button (KEY_POWER on
#                                       /dev/input/event*, seen by busybox
#                                       acpid): the scenario ends, init prints
#                                       RIG-DONE and powers off
# Each departure is a result too (del.N.gone: the device is no longer in
# /sys/bus/pci/devices). A device L1 did not add is reported and fails
# (add.N.known). Rescans come from the kernel's ACPI PCI hotplug (acpiphp);
# this script only looks at /sys every 0.5 s.

# The power button: busybox acpid runs $conf/PWRF/00000080 on KEY_POWER.
mkdir -p /tmp/acpi/PWRF
printf '#!/bin/sh\n: > /tmp/power-button\n' > /tmp/acpi/PWRF/00000080
chmod +x /tmp/acpi/PWRF/00000080
# No action or map file (-a, -M name missing files): its built-in tables map
# KEY_POWER to PWRF/00000080. It listens on /dev/input/event0, 1, ... (dies
# without event0: no power button).
acpid -f -c /tmp/acpi -l /tmp/acpid.log -a /tmp/no-acpid.conf -M /tmp/no-acpi.map -p /tmp/acpid.pid \
  < /dev/null > /dev/null 2>&1 &
acpid_pid=$!
sleep 0.5
inputs=$(for e in /sys/class/input/event*; do [ -e "$e" ] && echo "${e##*/}=$(cat "$e/device/name" 2> /dev/null)"; done | tr '\n' ',')
result acpid "$(kill -0 $acpid_pid 2> /dev/null; echo $?)" \
  "busybox acpid $(kill -0 $acpid_pid 2> /dev/null && echo runs || echo 'is gone'); input devices: ${inputs:-none}; log: $(cat /tmp/acpid.log 2> /dev/null)"

# present: "BDF=VVVV:DDDD" of each PCI function, one a line. A function
# whose vendor or device file cannot be read is left for the next look: the
# kernel creates and removes a device's directory and its attribute files
# one after the other, and a look in between read "0000:00:01.0=:" (an
# arrival not counted as edu, then edu "arriving" a second time).
present() {
  for p in /sys/bus/pci/devices/*; do
    v=$(sed 's/^0x//' "$p/vendor" 2> /dev/null) d=$(sed 's/^0x//' "$p/device" 2> /dev/null)
    [ -n "$v" ] && [ -n "$d" ] && echo "${p##*/}=$v:$d"
  done
}

# emit_renamed FILE PREFIX: FILE's RIG-RESULT lines with l2.edu. -> PREFIX.
emit_renamed() {
  sed -n "s/^RIG-RESULT {\"name\":\"l2\\.edu\\./RIG-RESULT {\"name\":\"$2./p" "$1" | while IFS= read -r line; do
    echo "$line" >> "$RIG_RESULTS"
    echo "$line"
  done
}

# test_nvme TAG BDF: the driver binds and a namespace appears, data
# survives a write and a read back, MSI-X interrupts fire.
test_nvme() {
  i=0
  while [ ! -e "/sys/bus/pci/devices/$2/driver" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  drv=$(pci_driver "$2")
  # The controller (nvmeN) under the function, and its first namespace:
  # nvmeNn1, or nvmeNcMn1 with native multipath, whose block device is the
  # subsystem's nvmeNn1.
  i=0 blk=
  while [ $i -lt 100 ]; do
    ctrl=$(ls "/sys/bus/pci/devices/$2/nvme" 2> /dev/null | head -n 1)
    ns=$(ls "/sys/class/nvme/$ctrl" 2> /dev/null | grep -E '^nvme[0-9]+(c[0-9]+)?n[0-9]+$' | head -n 1)
    [ -n "$ns" ] && blk=/dev/$(echo "$ns" | sed 's/c[0-9]*n/n/') && [ -b "$blk" ] && break
    sleep 0.1
    i=$((i + 1))
  done
  result "$1.driver" "$([ "$drv" = nvme ] && [ -b "$blk" ]; echo $?)" \
    "driver '$drv', controller ${ctrl:-none}, namespace ${ns:-none}, block device ${blk:-none}$([ -b "$blk" ] || echo ' (missing)')"
  want=none got=none
  if [ -b "$blk" ]; then
    dd if=/dev/urandom of=/tmp/pattern bs=64k count=64 2> /dev/null
    dd if=/tmp/pattern of="$blk" bs=64k count=64 conv=fsync 2> /dev/null
    echo 3 > /proc/sys/vm/drop_caches
    want=$(md5sum < /tmp/pattern | cut -d' ' -f1)
    got=$(dd if="$blk" bs=64k count=64 2> /dev/null | md5sum | cut -d' ' -f1)
  fi
  result "$1.data" "$([ "$want" != none ] && [ "$want" = "$got" ]; echo $?)" "4 MiB pattern md5 $want, read back $got"
  fired=$(grep "${ctrl:-nvme}q" /proc/interrupts | grep 'PCI-MSIX' |
    awk '{s=0; for (i=2;i<=NF;i++) if ($i ~ /^[0-9]+$/) s+=$i; else break; t+=s} END {print t+0}')
  result "$1.msix" "$([ "$fired" -gt 0 ]; echo $?)" "$fired MSI-X interrupts on ${ctrl:-no controller}'s queues"
}

before=$(present)
echo "HOTPLUG-WATCHING $(echo $before)"
adds=0 dels=0
while [ ! -e /tmp/power-button ]; do
  now=$(present)
  for e in $now; do
    case " $(echo $before) " in *" $e "*) continue ;; esac
    adds=$((adds + 1))
    bdf=${e%%=*} id=${e#*=}
    case $id in
      1234:11e8)
        result "add.$adds.known" true "$e arrived"
        RIG_RESULTS=/tmp/edu.res edu-test > /tmp/edu.out 2>&1
        emit_renamed /tmp/edu.out "add.$adds.edu"
        ;;
      1b36:0010)
        result "add.$adds.known" true "$e arrived"
        test_nvme "add.$adds.nvme" "$bdf"
        ;;
      *) result "add.$adds.known" false "$e arrived: not a device L1 adds" ;;
    esac
    echo "HOTPLUG-ADDED $adds $bdf $id"
  done
  for e in $before; do
    case " $(echo $now) " in *" $e "*) continue ;; esac
    dels=$((dels + 1))
    result "del.$dels.gone" "$([ ! -e "/sys/bus/pci/devices/${e%%=*}" ]; echo $?)" \
      "${e%%=*} (${e#*=}) left; now on the bus: $(echo $now)"
    echo "HOTPLUG-REMOVED $dels ${e%%=*} ${e#*=}; lspci: $(echo $now)"
  done
  before=$now
  sleep 0.5
done
echo "HOTPLUG-POWER-BUTTON after $adds arrival(s), $dels departure(s)"
result power_button true "KEY_POWER reached acpid: $(tail -n 3 /tmp/acpid.log 2> /dev/null | tr '\n' ' ')"
kill $acpid_pid 2> /dev/null
wait $acpid_pid 2> /dev/null
exit 0
