#!/bin/bash
# Build the rig's initramfs images from busybox-static and our own static
# programs (src/). Progress goes to stderr; the result path to stdout.
#
#   build.sh l1 [FILES...] [--out FILE]   L1 image (nested VM host): /init binds
#                                         devices to vfio-pci, runs /rig/scenario.sh
#   build.sh l2 [FILES...] [--out FILE]   L2 image (test guest): /init reports
#                                         CPUs, memory, PCI devices, interrupts
#   build.sh payload --out FILE FILES...  an uncompressed cpio holding only FILES,
#                                         to append to an image (Linux unpacks
#                                         concatenated archives in order)
#   build.sh probe                        the static rig-probe binary
# FILES:
#   --add SRC:DEST       copy file or directory SRC to absolute path DEST
#   --add-bin BIN[:DEST] copy executable BIN (default DEST /usr/local/bin/NAME)
#                        plus the shared libraries and loader `ldd BIN` names,
#                        at the same paths as on this machine
#
# l1/l2 images are gzip'd newc cpio archives cached as
# ${PASSAGE_CACHE:-~/.cache/passage}/initramfs/<kind>-<key>.cpio.gz, where <key>
# hashes the staged tree (paths, modes, link targets, file contents), so any
# change of an input (this directory, busybox, the compiler, uAPI headers,
# added files) gives a new image and an unchanged input reuses the old one.
#
# Environment: PASSAGE_CACHE; PASSAGE_UAPI_DIR (the 7.3 uAPI include dir; when
# unset, tests/install-deps.sh is asked for it); BUSYBOX (default /bin/busybox,
# must be statically linked: Debian's busybox-static).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
CACHE=${PASSAGE_CACHE:-$HOME/.cache/passage}
BUSYBOX=${BUSYBOX:-/bin/busybox}

log() { echo "initramfs: $*" >&2; }
die() { echo "initramfs: error: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

[[ $# -ge 1 ]] || usage
kind=$1; shift
case $kind in l1|l2|payload|probe) ;; -h|--help) usage ;; *) echo "initramfs: unknown image '$kind'" >&2; usage ;; esac

adds=() bins=() out=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --add) [[ $# -ge 2 ]] || usage; adds+=("$2"); shift 2 ;;
    --add-bin) [[ $# -ge 2 ]] || usage; bins+=("$2"); shift 2 ;;
    --out) [[ $# -ge 2 ]] || usage; out=$2; shift 2 ;;
    *) echo "initramfs: unknown argument '$1'" >&2; usage ;;
  esac
done
[[ $kind != probe || (${#adds[@]} == 0 && ${#bins[@]} == 0 && -z $out) ]] || usage
[[ $kind != payload || -n $out ]] || die "payload needs --out FILE"

mkdir -p "$CACHE/initramfs"

# ---- rig-probe: static, against the pinned uAPI headers ----
build_probe() {
  local inc=${PASSAGE_UAPI_DIR:-}
  if [[ -z $inc ]]; then
    inc=$("$root/tests/install-deps.sh" | tail -n 1) || die "tests/install-deps.sh failed"
  fi
  [[ -f $inc/linux/iommufd.h && -d $inc/x86_64-linux-gnu ]] ||
    die "uAPI headers not found in '$inc' (run tests/install-deps.sh, or set PASSAGE_UAPI_DIR)"
  local cc=${CC:-gcc}
  local flags=(-std=gnu11 -O2 -Wall -Wextra -Wformat=2 -Werror -static
               -I"$inc" -I"$inc/x86_64-linux-gnu")
  local key
  key=$( { cat "$here/src/rig-probe.c"; "$cc" --version | head -n 1; echo "${flags[*]:0:6}";
           cat "$inc"/linux/{iommufd,vfio,kvm}.h; } | sha256sum | cut -c1-16)
  local bin=$CACHE/initramfs/probe-$key/rig-probe
  if [[ ! -x $bin ]]; then
    log "compiling rig-probe"
    mkdir -p "$(dirname "$bin")"
    "$cc" "${flags[@]}" "$here/src/rig-probe.c" -o "$bin.tmp.$$" || die "rig-probe failed to compile"
    mv "$bin.tmp.$$" "$bin"
  fi
  echo "$bin"
}

if [[ $kind == probe ]]; then build_probe; exit 0; fi

stage=$(mktemp -d "$CACHE/initramfs/stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT

# stage_copy SRC DEST: SRC (file or directory, links followed) to $stage/DEST.
stage_copy() {
  local src=$1 dest=$2
  [[ $dest == /* && $dest != */../* && $dest != */.. ]] || die "DEST '$dest' must be an absolute path without '..'"
  [[ -e $src ]] || die "'$src' does not exist"
  if [[ -d $src ]]; then
    mkdir -p "$stage$dest"
    cp -rL --preserve=mode "$src/." "$stage$dest/"
  else
    mkdir -p "$stage$(dirname "$dest")"
    cp -L --preserve=mode "$src" "$stage$dest"
  fi
}

add_file() {
  local spec=$1
  [[ $spec == *:/* ]] || die "--add '$spec': want SRC:DEST with an absolute DEST"
  stage_copy "${spec%:/*}" "/${spec##*:/}"
}

add_bin() {
  local spec=$1 bin dest
  if [[ $spec == *:/* ]]; then bin=${spec%:/*}; dest=/${spec##*:/}; else bin=$spec; dest=/usr/local/bin/$(basename "$spec"); fi
  [[ -f $bin && -x $bin ]] || die "--add-bin '$bin': not an executable file"
  stage_copy "$bin" "$dest"
  local lines line lib
  if ! lines=$(ldd "$bin" 2>&1); then
    [[ $lines == *"not a dynamic executable"* || $lines == *"statically linked"* ]] && return 0
    die "ldd $bin: $lines"
  fi
  while IFS= read -r line; do
    [[ $line == *"not found"* ]] && die "ldd $bin: $line"
    lib=""
    if [[ $line == *"=> /"* ]]; then lib=${line#*=> }; lib=${lib%% (*}
    elif [[ $line =~ ^[[:space:]]*(/[^ ]+) ]]; then lib=${BASH_REMATCH[1]}
    fi
    [[ -n $lib ]] && stage_copy "$lib" "$lib"
  done <<< "$lines"
}

if [[ $kind != payload ]]; then
  [[ -x $BUSYBOX ]] || die "$BUSYBOX not found (install Debian's busybox-static)"
  if ldd "$BUSYBOX" >/dev/null 2>&1; then die "$BUSYBOX is dynamically linked; the images need busybox-static"; fi
  mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,proc,sys,dev,tmp,run,root,etc,rig}
  cp "$BUSYBOX" "$stage/bin/busybox"
  # One symlink per applet (python: ~400 forks of ln would take seconds).
  "$BUSYBOX" --list-full | python3 -c '
import os, sys
root = sys.argv[1]
for applet in sys.stdin.read().split():
    path = os.path.join(root, applet)
    if os.path.lexists(path):
        continue
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.symlink("/bin/busybox", path)' "$stage"
  cp "$here/rootfs/rig/lib.sh" "$stage/rig/lib.sh"
  install -m 0755 "$here/$kind/init" "$stage/init"
  if [[ $kind == l1 ]]; then
    install -m 0755 "$(build_probe)" "$stage/usr/bin/rig-probe"
  fi
fi

for a in ${adds[@]+"${adds[@]}"}; do add_file "$a"; done
for b in ${bins[@]+"${bins[@]}"}; do add_bin "$b"; done

mkcpio() { (cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible); }

if [[ $kind == payload ]]; then
  mkcpio > "$out.tmp.$$"
  mv "$out.tmp.$$" "$out"
  echo "$out"
  exit 0
fi

key=$( { cd "$stage" && find . -mindepth 1 -printf '%y %m %p %l\n' | LC_ALL=C sort &&
         find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum; } | sha256sum | cut -c1-16)
img=$CACHE/initramfs/$kind-$key.cpio.gz
if [[ -s $img ]]; then
  log "cached: $img"
else
  mkcpio | gzip -n -6 > "$img.tmp.$$"
  mv "$img.tmp.$$" "$img"
  (cd "$stage" && find . -mindepth 1 -printf '%y %m %s %p %l\n' | LC_ALL=C sort) > "$img.list"
  log "built $img ($(du -h "$img" | cut -f1))"
fi
if [[ -n $out ]]; then
  cp "$img" "$out.tmp.$$" && mv "$out.tmp.$$" "$out"
  echo "$out"
else
  echo "$img"
fi
