#!/bin/bash
# Builds the libFuzzer targets (clang, ASan + UBSan, -DPASSAGE_FUZZ=ON) into
# build-fuzz/ and runs each for SECONDS (default 60), keeping a corpus per
# target in ${PASSAGE_CACHE:-~/.cache/passage}/fuzz/. A crash stops the run
# with libFuzzer's report and the reproducer file; exit status 1.
#   tests/fuzz/run.sh [SECONDS] [TARGET...]   targets: virtqueue pci_access device_config qmp
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-60}
shift || true
targets=${*:-virtqueue pci_access device_config qmp}
uapi=$("$root/tests/install-deps.sh" | tail -1)
CC=clang CXX=clang++ cmake -S "$root" -B "$root/build-fuzz" -G Ninja -DPASSAGE_UAPI_DIR="$uapi" \
  -DPASSAGE_FUZZ=ON >&2
ninja -C "$root/build-fuzz" $(for t in $targets; do echo "fuzz_$t"; done) >&2
corpus=${PASSAGE_CACHE:-$HOME/.cache/passage}/fuzz
for t in $targets; do
  mkdir -p "$corpus/$t"
  echo "fuzz: $t for ${seconds}s (corpus $corpus/$t)" >&2
  "$root/build-fuzz/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -max_len=4096 \
    -artifact_prefix="$corpus/$t-" "$corpus/$t"
done
