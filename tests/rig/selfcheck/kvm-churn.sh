# KVM VM create/run/destroy churn in L1, with a busy second task. Not in
# ctest: it is the reproducer for the multi-threaded-TCG "Oops: int3" race
# described in tests/rig/README.md ("Known limits"). With the default two L1
# vCPUs it usually kills L1 within 150 cycles (QEMU 7.2 and 10.0), and often
# in all three attempts; with "# rig: smp=1" added to this header it passes.
# rig: timeout=400
(while :; do sleep 0.001; done) &
bg=$!
i=0
while [ $i -lt 150 ]; do
  # RIG_RESULTS= : the probe's own results stay off the count.
  RIG_RESULTS= rig-probe kvm > /dev/null 2>&1 || { result churn false "rig-probe kvm failed in cycle $i"; break; }
  i=$((i + 1))
done
kill $bg
result churn "$([ $i = 150 ]; echo $?)" "$i VM create/run/destroy cycles with \$RIG_SMP=$RIG_SMP"
