# Issue 14, the full passage-bench run in the rig (not in the default run:
# `ctest -L bench`): every size from 64 MiB doubling to what L1's memory
# allows, 5 repetitions, every page kind (shmem THP on advise, hugetlb pages
# reserved for the largest size that fits), edu's set-up by cdev and legacy.
# The report is checked like rig.bench_smoke's, and the JSON is echoed as
# `bench-json|` lines so that run.py's serial log keeps it.
# rig: bind=1234:11e8
# rig: bin=$PASSAGE_BUILD_DIR/tests/bench/passage-bench
# rig: add=../../bench/check-bench.py:/usr/local/bin/check-bench
# rig: python=../../bench/check-bench.py
# rig: mem=2G
# rig: smp=1
# rig: stall=90
# rig: timeout=2400
# rig: expect=bench.exit,bench.json,bench.schema,bench.complete,bench.pins,bench.ratios

. /rig/lib.sh

echo advise > /sys/kernel/mm/transparent_hugepage/shmem_enabled
echo 256 > /proc/sys/vm/nr_hugepages

edu=$(pci_find 1234:11e8 | head -n 1)
bounded 2000 passage-bench --device "$edu" --reps 5 --json /tmp/bench.json > /tmp/bench.out 2>&1
rc=$?
sed 's/^/bench| /' /tmp/bench.out
result bench.exit "$rc" "passage-bench exited $rc: $(grep -c . /tmp/bench.out) lines"
sed 's/^/bench-json| /' /tmp/bench.json

check-bench /tmp/bench.json --require-device > /tmp/check.out 2>&1
while read -r name ok detail; do
  result "$name" "$ok" "$detail"
done < /tmp/check.out
exit 0
