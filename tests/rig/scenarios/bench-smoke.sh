# Issue 14, smoke test of passage-bench (tests/bench/): a short run on edu in
# L1 (64 and 128 MiB, 2 repetitions; shmem THP on advise and 128 MiB of
# hugetlb pages reserved, so every page kind runs), its JSON checked by
# tests/bench/check-bench.py (python3 in L1): every field there, every sample
# a sane number, 4 KiB mappings pinning size/4096 pages and every unmap giving
# them back, the ratios and the three targets printed. The targets' verdicts
# are not judged here (TCG numbers; see README "passage-bench"). The table the
# bench printed is echoed as `bench|` lines, its JSON as `bench-json|` lines
# (tests/bench/report.py reads them from run.py's log).
# rig: bind=1234:11e8
# rig: bin=$PASSAGE_BUILD_DIR/tests/bench/passage-bench
# rig: add=../../bench/check-bench.py:/usr/local/bin/check-bench
# rig: python=../../bench/check-bench.py
# rig: mem=2G
# One L1 vCPU, as in the passthrough scenarios (README "Known limits").
# rig: smp=1
# rig: stall=90
# rig: timeout=600
# rig: expect=bench.badflag,bench.exit,bench.json,bench.schema,bench.complete,bench.pins,bench.ratios

. /rig/lib.sh

echo advise > /sys/kernel/mm/transparent_hugepage/shmem_enabled
echo 64 > /proc/sys/vm/nr_hugepages

out=$(passage-bench --reps 0 2>&1)
rc=$?
result bench.badflag "$([ $rc = 2 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] &&
  case $out in *--reps*) true ;; *) false ;; esac; echo $?)" "exit $rc: $out"

edu=$(pci_find 1234:11e8 | head -n 1)
bounded 400 passage-bench --device "$edu" --min-size 64M --max-size 128M --reps 2 \
  --json /tmp/bench.json > /tmp/bench.out 2>&1
rc=$?
sed 's/^/bench| /' /tmp/bench.out
result bench.exit "$rc" "passage-bench exited $rc: $(grep -c . /tmp/bench.out) lines"
sed 's/^/bench-json| /' /tmp/bench.json

check-bench /tmp/bench.json --require-device --sizes 2 > /tmp/check.out 2>&1
while read -r name ok detail; do
  result "$name" "$ok" "$detail"
done < /tmp/check.out
exit 0
