#!/bin/bash
# The README's main command: installs what is needed, builds passage, and
# boots the tiny real-mode and long-mode guests on /dev/kvm.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$("$root/tests/build.sh" | tail -1)
set -x
"$build/vmm/passage" -kernel "$build/guests/tiny/hello16.bin"
"$build/vmm/passage" -m 3200M -entry long -kernel "$build/guests/tiny/long64.bin"
