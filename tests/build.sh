#!/bin/bash
# Install dependencies and build passage into build/ (warnings are errors).
# Prints the build directory as its last line. PASSAGE_UNIT_TESTS=OFF leaves
# the unit tests out (tests/run-all.sh: they run from the ASan build).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
uapi=$("$root/tests/install-deps.sh" | tail -1)
# iommufd_test.h from the rig kernel's source, for rig.pasid_mock (fetched
# and cached on first use, like the kernel itself).
test_headers=$("$root/guests/kernel/test-headers.sh" | tail -1)
# QEMU 10.0, the whole-VM benchmark's reference VMM (rig.bench_vm; fetched
# and cached on first use).
qemu10=$("$root/tests/bench/qemu10.sh" | tail -1)
cmake -S "$root" -B "$root/build" -G Ninja -DPASSAGE_UAPI_DIR="$uapi" \
  -DPASSAGE_KERNEL_TEST_HEADERS="$test_headers" -DPASSAGE_QEMU10_DIR="$qemu10" -DPASSAGE_WERROR=ON \
  -DPASSAGE_UNIT_TESTS="${PASSAGE_UNIT_TESTS:-ON}" >&2
ninja -C "$root/build" >&2
echo "$root/build"
