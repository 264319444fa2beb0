#!/bin/bash
# The README's test command: installs what is needed, builds, and runs every
# test tier. Unit tests run twice: under ASan+UBSan, then with the rest.
#   unit  gtest, no privileges
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

echo "== all tiers: unit, kvm, rig"
cd "$root/build"
# -LE stress: rig.console_flood, ~13 min of console flood (tests/rig/README.md).
# -LE bench: rig.bench_full, the long passage-bench run (README "passage-bench").
ctest -j1 --output-on-failure -LE "stress|bench" "$@"
