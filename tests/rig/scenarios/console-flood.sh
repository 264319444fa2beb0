# Issue 11 "A VM that never ends": L2 writes a few thousand lines to its
# serial console (the 8250, one port write and one exit per byte) on both
# backends, edu passed through, a few runs each. Every run must end with L2's
# RIG-DONE line and passage's exit 0 within the bound. At the deadline the
# scenario first asks passage for its state (SIGUSR1: each vCPU's registers
# and local APIC, the 8250, IOAPIC pin 4, on passage's stderr, shown here as
# TAG-err lines), then lib.sh's bounded dumps the threads and kills passage.
# nvme is bound too: lib/passthrough.sh looks up both devices.
# rig: bind=1234:11e8,1b36:0010
# rig: l2=yes
# rig: bin=$PASSAGE_BUILD_DIR/vmm/passage
# rig: bin=$PASSAGE_BUILD_DIR/guests/l2tests/edu-test:/rig/l2bin/edu-test
# rig: add=lib/passthrough.sh:/rig/passthrough.sh
# rig: mem=2G
# One L1 vCPU, as in the passthrough scenarios (passthrough-iommufd.sh).
# rig: smp=1
# rig: stall=90
# rig: timeout=2400
# rig: expect=iommufd.1.done,iommufd.2.done,iommufd.3.done,legacy.1.done,legacy.2.done,legacy.3.done

. /rig/lib.sh
. /rig/passthrough.sh

LINES=${FLOOD_LINES:-2000}
RUNS=${FLOOD_RUNS:-3}
DEADLINE=300

flood_image $LINES

# flood TAG ARGS...: one bounded run; at DEADLINE - 20 s a SIGUSR1 state dump.
flood() {
  tag=$1
  shift
  start=$(cut -d' ' -f1 /proc/uptime)
  (
    sleep $((DEADLINE - 20)) &
    s=$!
    trap 'kill $s 2>/dev/null; exit 0' TERM  # the run ended first: take the sleep along
    wait $s
    for p in $(pidof passage); do kill -USR1 $p; done
  ) < /dev/null > /dev/null 2>&1 &
  dumper=$!
  bounded $DEADLINE passage -cpu $CPU -m 200M -smp 1 -kernel $K -initrd /tmp/flood.img \
    -append "$APPEND rig.cpus=1 rig.mem=200M" -serial "file:/tmp/$tag.serial" "$@" > "/tmp/$tag.out" 2> "/tmp/$tag.err"
  rc=$?
  kill $dumper 2>/dev/null
  wait $dumper 2>/dev/null
  end=$(cut -d' ' -f1 /proc/uptime)
  secs=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.1f", b - a}')
  flooded=$(tr -d '\r' < "/tmp/$tag.serial" | grep -c '^flood [0-9]')
  last=$(tr -d '\r' < "/tmp/$tag.serial" | grep '^flood [0-9]' | tail -n 1 | cut -c1-12)
  done_line=$(tr -d '\r' < "/tmp/$tag.serial" | grep -c 'RIG-DONE')
  result "$tag.exit" "$rc" "passage exited $rc after $secs s; $flooded of $LINES flood lines" \
    "(last: ${last:-none}), RIG-DONE lines: $done_line"
  result "$tag.done" "$([ "$done_line" = 1 ] && [ "$flooded" = "$LINES" ]; echo $?)" \
    "L2 ended with its RIG-DONE line after all $LINES lines ($flooded seen, ${secs} s)"
  result "$tag.l2_flood" "$(tr -d '\r' < "/tmp/$tag.serial" | grep -q '"name":"flood.written","ok":true'; echo $?)" \
    "L2's scenario reported its lines written"
  # The dump (only when the deadline came): passage's own view of the stuck VM.
  if grep -q 'state dump' "/tmp/$tag.err"; then
    sed "s/^/$tag-err| /" "/tmp/$tag.err" > /dev/console
  fi
  echo "rig: flood $tag: rc=$rc ${secs}s lines=$flooded/$LINES" > /dev/console
}

n=1
while [ $n -le $RUNS ]; do
  flood "iommufd.$n" -object iommufd,id=iommufd0 -device vfio-pci,host=$EDU,iommufd=iommufd0,id=edu0
  flood "legacy.$n" -device vfio-pci,host=$EDU,id=edu0
  n=$((n + 1))
done
exit 0
