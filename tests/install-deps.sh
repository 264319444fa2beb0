#!/bin/bash
# Install everything passage needs to build and test, idempotently:
#  - Debian packages (apt-get; skipped when all are present),
#  - the pinned linux-libc-dev 7.3 uAPI headers, unpacked into the cache
#    (the system's own linux-libc-dev is left alone).
# Prints the uAPI include directory on stdout as its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CACHE=${PASSAGE_CACHE:-$HOME/.cache/passage}
UAPI_VER=7.3.4-1~bpo13+1

PKGS=(build-essential cmake ninja-build pkg-config git
      libabsl-dev libgtest-dev libgmock-dev libfdt-dev nlohmann-json3-dev
      libseccomp-dev qemu-system-x86 busybox-static acpica-tools python3 xz-utils
      python3-matplotlib
      flex bison libelf-dev dwarves bc libssl-dev cpio kmod
      socat clang libclang-rt-dev llvm)
# clang + libclang-rt-dev (libFuzzer: libclang_rt.fuzzer*.a is in
# libclang-rt-14-dev) build tests/fuzz; llvm's llvm-symbolizer puts function
# names and lines into the sanitizers' and libFuzzer's reports.

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  SUDO=""; [[ $(id -u) == 0 ]] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q >&2
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

deb=$("$here/../guests/debfetch.sh" linux-libc-dev "$UAPI_VER" 'linux-libc-dev')
uapi=$CACHE/uapi/$(basename "$deb" .deb)
if [[ ! -f $uapi/usr/include/linux/iommufd.h ]]; then
  rm -rf "$uapi.tmp"; mkdir -p "$uapi.tmp"
  dpkg-deb -x "$deb" "$uapi.tmp"
  rm -rf "$uapi"; mv "$uapi.tmp" "$uapi"
fi
echo "$uapi/usr/include"
