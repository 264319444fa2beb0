# Issue 11, direct interrupt path: an unmasked VFIO MSI-X vector goes from
# VFIO straight into KVM's irqfd, so passage's event-loop thread does not
# wake per interrupt. Judged from outside passage: while L2 drives nvme (its
# queues on MSI-X), L1 samples the voluntary context switches of passage's
# loop thread (comm "passage-loop", /proc/PID/task/TID/status) and compares
# them with the nvme interrupts L2 counted in /proc/interrupts. Through the
# loop, every interrupt costs at least one wake-up whenever the loop is idle
# between them; direct, only events on masked vectors (a handful during the
# driver's probe) do.
# rig: bind=1234:11e8,1b36:0010
# rig: l2=yes
# rig: bin=$PASSAGE_BUILD_DIR/vmm/passage
# rig: bin=$PASSAGE_BUILD_DIR/guests/l2tests/edu-test:/rig/l2bin/edu-test
# rig: add=lib/passthrough.sh:/rig/passthrough.sh
# rig: mem=2G
# One vCPU for L1 and L2, a stall watch and a long timeout: see
# passthrough-iommufd.sh.
# rig: smp=1
# rig: stall=90
# rig: timeout=900
# rig: expect=irq.nvme.exit,irq.nvme.done,irq.nvme.nvme.driver,irq.nvme.nvme.data,irq.nvme.nvme.msix
# rig: expect=irq.nvme.teardown.pins,irq.nvme.teardown.holders,irq.loop.found,irq.loop.direct

. /rig/lib.sh
. /rig/passthrough.sh

# loop_sampler TAG: follows the passage run whose L2 console is
# /tmp/TAG.serial. Records (in /tmp/TAG.loop) the loop thread's voluntary
# context switches when L2's nvme driver is up ("before", ahead of the I/O)
# and when L2 reports its nvme interrupt count ("after"). Ends with passage.
loop_sampler() {
  s_tag=$1 s_pid= s_task= s_last= s_before=
  : > "/tmp/$s_tag.loop"
  while :; do
    if [ -z "$s_pid" ] || [ ! -d "/proc/$s_pid" ]; then
      s_pid= s_task=
      for c in /proc/[0-9]*/comm; do
        [ "$(cat "$c" 2>/dev/null)" = passage ] && s_pid=${c#/proc/} && s_pid=${s_pid%/comm} && break
      done
    fi
    if [ -n "$s_pid" ] && [ -z "$s_task" ]; then
      for t in /proc/$s_pid/task/*; do
        [ "$(cat "$t/comm" 2>/dev/null)" = passage-loop ] && s_task=$t
      done
      [ -n "$s_task" ] && echo "thread $s_task" >> "/tmp/$s_tag.loop"
    fi
    if [ -n "$s_task" ]; then
      v=$(sed -n 's/^voluntary_ctxt_switches:[[:space:]]*//p' "$s_task/status" 2>/dev/null)
      [ -n "$v" ] && s_last=$v
    fi
    if [ -z "$s_before" ] && grep -q '"name":"nvme.driver"' "/tmp/$s_tag.serial" 2>/dev/null; then
      s_before=$s_last
      echo "before ${s_before:-?}" >> "/tmp/$s_tag.loop"
    fi
    if grep -q '"name":"nvme.msix"' "/tmp/$s_tag.serial" 2>/dev/null; then
      echo "after ${s_last:-?}" >> "/tmp/$s_tag.loop"
      return 0
    fi
    # passage gone without the marker: nothing more to see.
    [ -n "$s_pid" ] && [ ! -d "/proc/$s_pid" ] && [ -n "$s_before" ] && return 0
    sleep 0.2
  done
}

TAG=irq.nvme
rm -f /tmp/$TAG.serial
loop_sampler $TAG < /dev/null > /dev/null 2>&1 &
SAMPLER=$!
boot $TAG 512M -object iommufd,id=iommufd0 -device vfio-pci,host=$NVME,iommufd=iommufd0,id=nvme0
kill $SAMPLER 2>/dev/null
wait $SAMPLER 2>/dev/null

thread=$(sed -n 's/^thread //p' /tmp/$TAG.loop)
before=$(sed -n 's/^before //p' /tmp/$TAG.loop)
after=$(sed -n 's/^after //p' /tmp/$TAG.loop)
result irq.loop.found "$([ -n "$thread" ] && [ -n "$after" ] && [ "$after" != '?' ]; echo $?)" \
  "passage-loop thread ${thread:-not found}; samples: $(tr '\n' ' ' < /tmp/$TAG.loop)"
# The nvme interrupts L2 counted (from its nvme.msix result: "..., N interrupts").
fired=$(tr -d '\r' < /tmp/$TAG.serial | sed -n 's/.*"name":"nvme.msix".*MSI-X, \([0-9]*\) interrupts.*/\1/p' | tail -n 1)
case $after in ''|*[!0-9]*) after=-1 ;; esac
case $before in ''|*[!0-9]*) before=$after ;; esac
# Direct: all loop wake-ups of the whole run (probe included) stay under a
# quarter of the interrupts; the 4 MiB written and read back give at least
# 32 of them (requests merge up to the queue's size limits).
result irq.loop.direct "$([ "${fired:-0}" -ge 32 ] && [ "$after" -ge 0 ] && [ $((after * 4)) -lt "$fired" ]; echo $?)" \
  "nvme interrupts in L2: ${fired:-unknown}; passage-loop wake-ups: $after over the run, $((after - before)) during the I/O"
exit 0
