# The L2 configuration of signals.sh's sigterm run, booted 10 times in one L1
# (edu passed through by iommufd, -m 200M -smp 1, L2 runs edu-test, prints
# SIGNALS-READY and waits; then SIGTERM): looks for the hang CI met once
# (L2 never printed SIGNALS-READY within 240 s). Each boot is bounded; a boot
# that never gets there is reported with lib/passthrough.sh's l2_diag (L2's
# serial tail, passage's SIGUSR1 dump, the rip's symbol). Not in ctest: run
# it by hand, `run.py selfcheck/l2-boot-loop.sh`, as often as needed.
# rig: bind=1234:11e8,1b36:0010
# rig: l2=yes
# rig: bin=$PASSAGE_BUILD_DIR/vmm/passage
# rig: bin=$PASSAGE_BUILD_DIR/guests/l2tests/edu-test:/rig/l2bin/edu-test
# rig: add=../scenarios/lib/passthrough.sh:/rig/passthrough.sh
# rig: mem=2G
# rig: smp=1
# rig: stall=90
# rig: timeout=2400
# rig: expect=loop.1.ready,loop.1.exit,loop.10.ready,loop.10.exit,loop.clean

. /rig/lib.sh
. /rig/passthrough.sh

N=10
ready_image /tmp/sig.img

clean=0 times=
i=1
while [ $i -le $N ]; do
  tag=loop.$i
  : > "/tmp/$tag.serial"
  start=$(cut -d' ' -f1 /proc/uptime)
  passage -cpu $CPU -m 200M -smp 1 -kernel $K -initrd /tmp/sig.img -append "$APPEND rig.cpus=1 rig.mem=200M" \
    -serial "file:/tmp/$tag.serial" -object iommufd,id=iommufd0 \
    -device vfio-pci,host=$EDU,iommufd=iommufd0,id=edu0 > "/tmp/$tag.out" 2> "/tmp/$tag.err" &
  pid=$!
  # L2's init started (RIG-BOOT), then edu-test done (SIGNALS-READY): 240 s for both.
  wait_l2 "$tag" $pid "/tmp/$tag.serial" "/tmp/$tag.err" 'RIG-BOOT' 240
  ok=$?
  boot=$(awk -v a="$start" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN {printf "%.1f", b - a}')
  if [ $ok = 0 ]; then
    wait_l2 "$tag" $pid "/tmp/$tag.serial" "/tmp/$tag.err" '^SIGNALS-READY' $((240 - ${boot%.*}))
    ok=$?
  fi
  secs=$(awk -v a="$start" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN {printf "%.1f", b - a}')
  edu=$(tr -d '\r' < "/tmp/$tag.serial" | grep -o '"name":"l2\.edu\.[^"]*","ok":[a-z]*' | sed 's/"name":"l2.edu.//; s/","ok"//' | tr '\n' ' ')
  result "$tag.ready" "$ok" "SIGNALS-READY after $secs s (L2 init at $boot s); load $(cut -d' ' -f1-3 /proc/loadavg); edu: $edu${L2_DIAG:+
$L2_DIAG}"
  [ $ok = 0 ] && clean=$((clean + 1)) && times="$times $boot/$secs"
  stop_within $pid 60 TERM
  rc=$STOP_RC
  result "$tag.exit" "$([ $rc = 143 ]; echo $?)" "passage exited $rc after SIGTERM (want 143); $(tail -n 2 "/tmp/$tag.err")"
  echo "rig: loop $i/$N: ready=$ok ${secs}s rc=$rc" > /dev/console
  i=$((i + 1))
done
result loop.clean "$([ $clean = $N ]; echo $?)" "$clean of $N boots reached SIGNALS-READY within 240 s; seconds to L2 init/ready:$times"
exit 0
