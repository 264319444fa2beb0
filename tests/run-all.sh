#!/bin/bash
# The README's test command: installs what is needed, builds, and runs every
# test tier. Unit tests run twice: under ASan+UBSan, then with the rest.
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

echo "== unit tests under ASan + UBSan"
cmake -S "$root" -B "$root/build-asan" -G Ninja -DPASSAGE_UAPI_DIR="$uapi" -DPASSAGE_WERROR=ON \
  -DPASSAGE_KERNEL_TEST_HEADERS="$test_headers" -DPASSAGE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
ninja -C "$root/build-asan" passage_unit_tests
(cd "$root/build-asan" && ctest -L unit -j"$jobs" --output-on-failure)

# Builds only the fuzz targets (build-fuzz/); ~8 x 30 s of fuzzing plus the
# build. A crash fails the run with libFuzzer's report and the reproducer
# in build-fuzz/fuzz-artifacts/.
echo "== fuzz: each target ${PASSAGE_FUZZ_SECONDS:-30} s from its seed corpus"
PASSAGE_FUZZ_SECONDS=${PASSAGE_FUZZ_SECONDS:-30} "$root/tests/fuzz/run.sh"

echo "== all tiers: unit, kvm, rig"
cd "$root/build"
# -LE stress: rig.console_flood, ~13 min of console flood (tests/rig/README.md).
# -LE bench: rig.bench_full, the long passage-bench run (README "passage-bench").
ctest -j1 --output-on-failure -LE "stress|bench" "$@"
