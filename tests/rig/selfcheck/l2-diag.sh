# lib/passthrough.sh's wait_l2 on an L2 that never prints what is awaited:
# the account it gives (L2_DIAG) must hold L2's last console lines,
# passage's SIGUSR1 state dump (vCPU, 8250, IOAPIC lines) and the vCPU's rip
# named from L2's System.map (run.py adds it beside the kernel), the words on
# its stack named the same way, a second dump 3 s later, and passage must
# still run afterwards. L2 boots with no device and sleeps in its
# scenario, so the rip is in the kernel's idle path.
# rig: bind=1234:11e8,1b36:0010
# rig: l2=yes
# rig: bin=$PASSAGE_BUILD_DIR/vmm/passage
# rig: bin=$PASSAGE_BUILD_DIR/guests/l2tests/edu-test:/rig/l2bin/edu-test
# rig: add=../scenarios/lib/passthrough.sh:/rig/passthrough.sh
# rig: mem=2G
# rig: smp=1
# rig: stall=90
# rig: timeout=600
# rig: expect=diag.booted,diag.timeout,diag.serial,diag.dump,diag.symbol,diag.stack,diag.twice,diag.alive

. /rig/lib.sh
. /rig/passthrough.sh

mkdir -p /tmp/idle/rig
echo 'echo "IDLE-SLEEPING"; sleep 600' > /tmp/idle/rig/scenario.sh
cp /tmp/l2.img /tmp/idle.img
cpio_append /tmp/idle.img /tmp/idle rig

: > /tmp/diag.serial
passage -cpu $CPU -m 200M -smp 1 -kernel $K -initrd /tmp/idle.img -append "$APPEND rig.cpus=1 rig.mem=200M" \
  -serial file:/tmp/diag.serial > /tmp/diag.out 2> /tmp/diag.err &
pid=$!
wait_l2 diag $pid /tmp/diag.serial /tmp/diag.err '^IDLE-SLEEPING' 240
result diag.booted $? "L2 reached its scenario after $WAITED s${L2_DIAG:+
$L2_DIAG}"
sleep 2
wait_l2 diag $pid /tmp/diag.serial /tmp/diag.err '^NEVER-PRINTED' 10
rc=$?
result diag.timeout "$([ $rc = 1 ] && [ "$WAITED" -ge 10 ]; echo $?)" "wait_l2 returned $rc after $WAITED s"
echo "$L2_DIAG" > /tmp/diag.txt
result diag.serial "$(grep -q '^  IDLE-SLEEPING' /tmp/diag.txt; echo $?)" "$(cat /tmp/diag.txt)"
result diag.dump "$(grep -q '^  passage: vCPU 0: rip=0x' /tmp/diag.txt && grep -q '^  passage: uart COM1: ' /tmp/diag.txt &&
  grep -q '^  passage: ioapic pin 4: ' /tmp/diag.txt; echo $?)" "the dump's vCPU, uart and ioapic lines"
result diag.symbol "$(grep -qE '^L2 kernel: vCPU 0 rip 0x[0-9a-f]+ = [A-Za-z_][A-Za-z0-9_.]*\+0x[0-9a-f]+;' /tmp/diag.txt; echo $?)" \
  "$(grep '^L2 kernel:' /tmp/diag.txt)"
# The idle vCPU's stack, scanned by passage and named here, passes through
# the idle loop (do_idle calls the halt); the second dump 3 s later too.
result diag.stack "$(grep '^L2 kernel:' /tmp/diag.txt | head -n 1 | grep -q ' stack:.* do_idle+0x'; echo $?)" \
  "$(grep '^L2 kernel:' /tmp/diag.txt | head -n 1)"
result diag.twice "$(grep -q '^3 s later:' /tmp/diag.txt && [ "$(grep -c '^L2 kernel: vCPU 0 rip' /tmp/diag.txt)" = 2 ]; echo $?)" \
  "two dumps 3 s apart: $(grep -c '^L2 kernel: vCPU 0 rip' /tmp/diag.txt) named"
result diag.alive "$(kill -0 $pid; echo $?)" "passage runs on after the dump"
kill -TERM $pid
wait $pid
exit 0
