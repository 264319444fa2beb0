#!/bin/bash
# The README's test command: installs what is needed, builds, and runs every
# test tier. Unit tests run under ASan+UBSan (clang, the fuzz build); the gcc
# static build (the passage that the kvm and rig tiers run) leaves them out,
# so they are compiled once (issue 15's cold-run budget).
#   unit  gtest, no privileges
#   fuzz  every libFuzzer target (clang) for PASSAGE_FUZZ_SECONDS (default 30)
#         from its seed corpus, after the unit tests; a crash fails the
#         run at its end (tests/fuzz/run.sh)
#   kvm   tiny guests on /dev/kvm (skip with a reason where it is unusable)
#   rig   nested QEMU host with a vIOMMU: the real iommufd/VFIO tests
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc)

echo "== install + build (warnings are errors)"
PASSAGE_UNIT_TESTS=OFF "$root/tests/build.sh" >/dev/null
uapi=$("$root/tests/install-deps.sh" | tail -1)
test_headers=$("$root/guests/kernel/test-headers.sh" | tail -1)

# One clang build with ASan + UBSan (UBSan not recoverable) serves both the
# sanitized unit tests and the libFuzzer targets (-DPASSAGE_FUZZ=ON adds
# coverage instrumentation, which the unit tests do not mind): one build
# instead of two saves CI several minutes (issue 15's cold-run budget).
echo "== unit tests under ASan + UBSan (clang, build-fuzz/)"
CC=clang CXX=clang++ cmake -S "$root" -B "$root/build-fuzz" -G Ninja -DPASSAGE_UAPI_DIR="$uapi" \
  -DPASSAGE_KERNEL_TEST_HEADERS="$test_headers" -DPASSAGE_FUZZ=ON >/dev/null
fuzz_targets=$(sed -n 's/^set(PASSAGE_FUZZ_TARGETS \(.*\))$/\1/p' "$root/tests/fuzz/CMakeLists.txt")
ninja -C "$root/build-fuzz" -j"$jobs" passage_unit_tests $(for t in $fuzz_targets; do echo "fuzz_$t"; done)
(cd "$root/build-fuzz" && ctest -L unit -j"$jobs" --output-on-failure)

# The fuzz targets (built above), each PASSAGE_FUZZ_SECONDS (30) from its seed
# corpus. Not beside the rig tier: the one CI run that fuzzed beside it
# (2026-12-03) lost three rig scenarios, and a cold run on the development
# machine, with two long fuzz runs at nice 19 beside it, saw L2's timer
# deadlock (tests/rig/README.md, "Known limits") in two of its first twelve
# scenarios: a busy second core seems to make that emulator race likelier. A crash fails the run at the end, with
# libFuzzer's report and the reproducer in build-fuzz/fuzz-artifacts/.
echo "== fuzz: each target ${PASSAGE_FUZZ_SECONDS:-30} s from its seed corpus"
fuzz_log=$root/build-fuzz/fuzz-stage.log
fuzz_rc=0
PASSAGE_FUZZ_SECONDS=${PASSAGE_FUZZ_SECONDS:-30} "$root/tests/fuzz/run.sh" > "$fuzz_log" 2>&1 || fuzz_rc=$?
grep -v '^\[[0-9]*/[0-9]*\]' "$fuzz_log" || true

# The rig's kernel now, not inside the first rig test (whose time it would
# take: ~13 min on 2 cores, cold). Cached by its inputs' hash; the lock is
# run.py's.
echo "== rig kernel (guests/kernel/build.sh; cached)"
cache=${PASSAGE_CACHE:-$HOME/.cache/passage}
mkdir -p "$cache"
flock "$cache/.rig-kernel.lock" "$root/guests/kernel/build.sh" | tail -1

echo "== tiers: kvm, rig (and bench.report_selftest)"
cd "$root/build"
# -LE stress: rig.console_flood, ~13 min of console flood (tests/rig/README.md).
# -LE bench: rig.bench_full, the long passage-bench run (README "passage-bench").
# Kept whole in build/tiers.log; what failed is summed up at the very end,
# where a reader of a truncated CI log still sees it.
tiers_log=$root/build/tiers.log
set +e
ctest -j1 --output-on-failure -LE "stress|bench" "$@" 2>&1 | tee "$tiers_log"
tiers_rc=${PIPESTATUS[0]}
set -e

if ((fuzz_rc != 0)); then
  echo "== fuzz FAILED (exit $fuzz_rc; its report above, and in $fuzz_log):"
  grep -E '^fuzz: .*FAILED' "$fuzz_log" | cut -c1-300 || true
fi
if ((tiers_rc != 0)); then
  # Each failing result line of a rig scenario, each scenario's verdict, each
  # failed gtest, and ctest's list (full output: build/tiers.log).
  echo "== what failed in the tiers (exit $tiers_rc; whole output: $tiers_log)"
  grep -E '^ +(FAIL|MISS) |^rig: [^ ]+: FAIL|^\[  FAILED  \] [A-Za-z]|^[[:space:]]+[0-9]+ - ' "$tiers_log" |
    cut -c1-300 | head -n 40 || true
fi
((tiers_rc == 0 && fuzz_rc == 0))
