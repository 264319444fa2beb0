#!/bin/bash
# QEMU 10.0, passage-bench's reference VMM for the whole-VM comparison (issue
# 14): it has the iommufd backend (`-object iommufd`) that bookworm's QEMU 7.2
# lacks. Fetched pinned from Debian's bookworm-backports into the private apt
# state (guests/debfetch.sh, checksums from the signed index) and unpacked
# privately; the system's QEMU is untouched. The binary links against
# bookworm's own libraries (the rig's `bin=` copies them into L1).
#
# Prints the unpacked root: ROOT/usr/bin/qemu-system-x86_64,
# ROOT/usr/share/qemu (its firmware and option ROMs; SeaBIOS's bios-256k.bin
# comes from the system's seabios package, /usr/share/seabios), and
# ROOT/version (the package version actually used).
#
# Cache: ${PASSAGE_CACHE:-~/.cache/passage}/qemu-10.0/<version>/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CACHE=${PASSAGE_CACHE:-$HOME/.cache/passage}
VER='1:10.0.2+ds-2+deb13u1~bpo12+1'
PKGS=(qemu-system-x86 qemu-system-data)
log() { echo "qemu10: $*" >&2; }

debs=()
for p in "${PKGS[@]}"; do
  # Backports move on: when the pin is gone, debfetch falls back to the
  # newest upload of the same package with a warning; ROOT/version says which.
  debs+=("$(DEBFETCH_SUITE=bookworm-backports "$here/../../guests/debfetch.sh" "$p" "$VER" "$p")")
done
ver=$(dpkg-deb -f "${debs[0]}" Version)
case $ver in 1:10.0.*) ;; *) log "qemu-system-x86 $ver is not QEMU 10.0"; exit 1 ;; esac
out=$CACHE/qemu-10.0/${ver//[:~]/_}
if [[ -x $out/usr/bin/qemu-system-x86_64 && -s $out/version ]]; then echo "$out"; exit 0; fi

mkdir -p "$CACHE/qemu-10.0"
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
for d in "${debs[@]}"; do dpkg-deb -x "$d" "$out.tmp"; done
missing=$(ldd "$out.tmp/usr/bin/qemu-system-x86_64" | grep 'not found' || true)
[[ -z $missing ]] || { log "qemu-system-x86_64 $ver needs libraries this system lacks: $missing"; exit 1; }
"$out.tmp/usr/bin/qemu-system-x86_64" --version | head -n 1 > "$out.tmp/version"
grep -q 'version 10\.0\.' "$out.tmp/version" || { log "unexpected version: $(cat "$out.tmp/version")"; exit 1; }
rm -rf "$out"
mv "$out.tmp" "$out"
log "QEMU $ver unpacked into $out"
echo "$out"
