#!/bin/bash
# Build (or reuse) the passage test kernel: one bzImage for the rig host (L1)
# and the test guest (L2). Prints the bzImage path on stdout.
#
# Cache: ${PASSAGE_CACHE:-~/.cache/passage}/kernel/<key>/bzImage, where <key>
# hashes the source .deb's SHA256, config.fragment and this script.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CACHE=${PASSAGE_CACHE:-$HOME/.cache/passage}
SRC_PKG=linux-source-7.3
SRC_VER=7.3.4-1~bpo13+1
JOBS=${PASSAGE_JOBS:-$(( $(nproc) + 1 ))}
log() { echo "kernel: $*" >&2; }

deb=$("$here/../debfetch.sh" "$SRC_PKG" "$SRC_VER" 'linux-source-7.*')
deb_sha=$(cat "$deb.sha256")
key=$( { echo "$deb_sha"; cat "$here/config.fragment" "$here/build.sh"; } | sha256sum | cut -c1-16)
out=$CACHE/kernel/$key
if [[ -s $out/bzImage ]]; then
  log "cached: $out/bzImage ($(cat "$out/version" 2>/dev/null))"
  echo "$out/bzImage"; exit 0
fi

# One build per key at a time: a second caller waits for the first (and then
# finds the result cached) instead of wiping its work directory.
mkdir -p "$CACHE/kernel"
exec 9> "$CACHE/kernel/.lock-$key"
if ! flock -n 9; then
  log "another build of $key is running; waiting for it"
  flock 9
fi
if [[ -s $out/bzImage ]]; then
  log "cached: $out/bzImage ($(cat "$out/version" 2>/dev/null))"
  echo "$out/bzImage"; exit 0
fi

for tool in make gcc flex bison bc cpio; do
  command -v $tool >/dev/null || { log "missing build tool '$tool' (run tests/install-deps.sh)"; exit 1; }
done

work=$CACHE/kernel/build-$key
rm -rf "$work"; mkdir -p "$work"
log "unpacking $(basename "$deb")"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" --wildcards '*/linux-source-*.tar.xz'
tarball=$(find "$work" -name 'linux-source-*.tar.xz' | head -1)
tar -xJf "$tarball" -C "$work"
rm -rf "$work/usr"
srcdir=$(find "$work" -maxdepth 1 -type d -name 'linux-source-*' | head -1)
ver=$(basename "$deb" .deb)

cd "$srcdir"
log "configuring ($ver)"
make -s defconfig >&2
scripts/kconfig/merge_config.sh -m .config "$here/config.fragment" >/dev/null
make -s olddefconfig >&2
# Every option the fragment asks for must have survived olddefconfig.
missing=0
while read -r line; do
  case $line in
    CONFIG_*=y) grep -qx "$line" .config || { log "config lost: $line"; missing=1; } ;;
    "# CONFIG_"*" is not set") opt=${line#\# }; opt=${opt%% *}
      grep -q "^$opt=y" .config && { log "config still set: $opt"; missing=1; } ;;
  esac
done < "$here/config.fragment"
[[ $missing == 0 ]] || { log "config fragment not satisfied"; exit 1; }

log "building bzImage with -j$JOBS (cold build: ~10 min on 2 cores)"
start=$(date +%s)
make -j"$JOBS" bzImage > "$work/build.log" 2>&1 || { tail -40 "$work/build.log" >&2; log "build failed; log in $work/build.log"; exit 1; }
log "built in $(( $(date +%s) - start )) s"
mkdir -p "$out"
cp arch/x86/boot/bzImage "$out/bzImage.tmp"
cp .config "$out/config"
# Symbols, so a hung guest's rip (SIGUSR1 dump, QEMU's "info registers")
# can be named: scripts use it with `awk`/`sort` (see tests/rig/README.md).
cp System.map "$out/System.map"
echo "$ver" > "$out/version"
mv "$out/bzImage.tmp" "$out/bzImage"
cd /; rm -rf "$work"
echo "$out/bzImage"
