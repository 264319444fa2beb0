#!/bin/bash
# The kernel-internal test headers the rig's programs need, taken from the
# same linux-source .deb that guests/kernel/build.sh builds the rig kernel
# from (never a copy typed in): today iommufd's selftest interface,
# drivers/iommu/iommufd/iommufd_test.h (IOMMU_TEST_OP_*, the mock devices of
# CONFIG_IOMMUFD_TEST). Prints a directory holding iommufd_test.h.
#
# Cache: ${PASSAGE_CACHE:-~/.cache/passage}/kernel-headers/<key>/, <key> the
# hash of the .deb's SHA256 and this script.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CACHE=${PASSAGE_CACHE:-$HOME/.cache/passage}
# The same pin as build.sh (one place would be better: build.sh's key hashes
# its own text, so the pin is read from it rather than moved).
SRC_PKG=$(sed -n 's/^SRC_PKG=//p' "$here/build.sh")
SRC_VER=$(sed -n 's/^SRC_VER=//p' "$here/build.sh")
log() { echo "test-headers: $*" >&2; }

deb=$("$here/../debfetch.sh" "$SRC_PKG" "$SRC_VER" 'linux-source-7.*')
key=$( { cat "$deb.sha256"; cat "$0"; } | sha256sum | cut -c1-16)
out=$CACHE/kernel-headers/$key
if [[ -s $out/iommufd_test.h ]]; then echo "$out"; exit 0; fi

mkdir -p "$CACHE/kernel-headers"
work=$(mktemp -d "$CACHE/kernel-headers/work.XXXXXX")
trap 'rm -rf "$work"' EXIT
log "extracting iommufd_test.h from $(basename "$deb")"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" --wildcards '*/linux-source-*.tar.xz'
tarball=$(find "$work" -name 'linux-source-*.tar.xz' | head -1)
tar -xJf "$tarball" -C "$work" --wildcards '*/drivers/iommu/iommufd/iommufd_test.h'
header=$(find "$work" -name iommufd_test.h | head -1)
[[ -s $header ]] || { log "no drivers/iommu/iommufd/iommufd_test.h in $(basename "$tarball")"; exit 1; }
mkdir -p "$out.tmp"
cp "$header" "$out.tmp/iommufd_test.h"
rm -rf "$out"; mv "$out.tmp" "$out"
echo "$out"
