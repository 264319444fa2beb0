#!/bin/bash
# The README's test command: installs what is needed, builds, and runs every
# test tier. Unit tests run twice: under ASan+UBSan (clang, the fuzz build),
# then with the rest (gcc, the static build).
#   unit  gtest, no privileges
#   fuzz  every libFuzzer target (clang) for PASSAGE_FUZZ_SECONDS (default 30)
#         from its seed corpus; a crash stops here (tests/fuzz/run.sh)
#   kvm   tiny guests on /dev/kvm (skip with a reason where it is unusable)
#   rig   nested QEMU host with a vIOMMU: the real iommufd/VFIO tests
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc)

echo "== install + build (warnings are errors)"
"$root/tests/build.sh" >/dev/null
uapi=$("$root/tests/install-deps.sh" | tail -1)
test_headers=$("$root/guests/kernel/test-headers.sh" | tail -1)

# One clang build with ASan + UBSan (UBSan not recoverable) serves both the
# sanitized unit tests and the libFuzzer targets (-DPASSAGE_FUZZ=ON adds
# coverage instrumentation, which the unit tests do not mind): one build
# instead of two saves CI several minutes (issue 15's cold-run budget).
echo "== unit tests under ASan + UBSan (clang, build-fuzz/)"
CC=clang CXX=clang++ cmake -S "$root" -B "$root/build-fuzz" -G Ninja -DPASSAGE_UAPI_DIR="$uapi" \
  -DPASSAGE_KERNEL_TEST_HEADERS="$test_headers" -DPASSAGE_FUZZ=ON >/dev/null
ninja -C "$root/build-fuzz" -j"$jobs" passage_unit_tests
(cd "$root/build-fuzz" && ctest -L unit -j"$jobs" --output-on-failure)

# The fuzz targets, in the same build dir; ~8 x 30 s of fuzzing. A crash
# fails the run with libFuzzer's report and the reproducer in
# build-fuzz/fuzz-artifacts/.
echo "== fuzz: each target ${PASSAGE_FUZZ_SECONDS:-30} s from its seed corpus"
PASSAGE_FUZZ_SECONDS=${PASSAGE_FUZZ_SECONDS:-30} "$root/tests/fuzz/run.sh"

echo "== all tiers: unit, kvm, rig"
cd "$root/build"
# -LE stress: rig.console_flood, ~13 min of console flood (tests/rig/README.md).
# -LE bench: rig.bench_full, the long passage-bench run (README "passage-bench").
ctest -j1 --output-on-failure -LE "stress|bench" "$@"
