#!/bin/bash
# The README's main command: installs what is needed, builds passage, boots
# the tiny guests on this machine's /dev/kvm, then boots the Linux test kernel
# with a device passed through inside the nested rig and shows its console.
# The first run builds the test kernel (~13 min on 2 cores); later runs reuse it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$("$root/tests/build.sh" | tail -1)
echo "== tiny guests on /dev/kvm"
if [ -e /dev/kvm ]; then
  "$build/vmm/passage" -kernel "$build/guests/tiny/hello16.bin"
  "$build/vmm/passage" -m 3200M -entry long -kernel "$build/guests/tiny/long64.bin"
else
  echo "skipped: this machine has no /dev/kvm (the rig runs them on L1's KVM: ctest -R rig.kvm_tiny)"
fi
echo "== the test kernel with edu passed through, in the rig"
PASSAGE_BUILD_DIR=$build exec python3 "$root/tests/rig/run.py" -v "$root/tests/rig/scenarios/quickstart.sh"
