#!/bin/bash
# Fetch pinned .debs from Debian's trixie-backports (or the suite in
# $DEBFETCH_SUITE, e.g. bookworm-backports) into a private apt state under the
# passage cache, without touching the system's apt configuration.
#
#   guests/debfetch.sh PACKAGE VERSION [FALLBACK_GLOB]
#
# Prints the path of the verified .deb on stdout (progress goes to stderr).
# The .deb is kept in the cache, so once fetched it survives the pinned version
# leaving the mirror. When the pinned version is gone from the mirror and not
# cached, and FALLBACK_GLOB is given (e.g. 'linux-source-7.*'), the newest
# package matching it is used instead, with a warning.
set -euo pipefail

pkg=${1:?package}
ver=${2:?version}
fallback=${3:-}
CACHE=${PASSAGE_CACHE:-$HOME/.cache/passage}
suite=${DEBFETCH_SUITE:-trixie-backports}
[[ $suite =~ ^[a-z]+(-[a-z]+)?$ ]] || { echo "debfetch: DEBFETCH_SUITE '$suite' is not a suite name" >&2; exit 1; }
D=$CACHE/apt
# One private index per suite (trixie-backports keeps the original paths).
L=$D/lists S=$D/sources.list C=$D/cache
if [[ $suite != trixie-backports ]]; then L=$D/lists-$suite S=$D/sources-$suite.list C=$D/cache-$suite; fi
mkdir -p "$L/partial" "$C/archives/partial" "$D/debs"

log() { echo "debfetch: $*" >&2; }

cached="$D/debs/${pkg}_${ver}.deb"
if [[ -s $cached && -s $cached.sha256 ]]; then
  if [[ $(sha256sum "$cached" | cut -d' ' -f1) == $(cat "$cached.sha256") ]]; then
    echo "$cached"; exit 0
  fi
  log "cached $cached fails its checksum; fetching again"
fi

src=/etc/apt/sources.list.d/debian.sources
mirror=""
if [[ -f $src ]]; then mirror=$(awk '/^URIs:/ {print $2; exit}' "$src"); fi
if [[ -z $mirror && -f /etc/apt/sources.list ]]; then
  mirror=$(awk '/^deb / {for (i=2;i<=NF;i++) if ($i ~ /^(https?|file):/) {print $i; exit}}' /etc/apt/sources.list)
fi
[[ -n $mirror ]] || { log "cannot find the machine's Debian mirror in apt sources"; exit 1; }
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" > "$S"
O=(-o "Dir::Etc::SourceList=$S" -o Dir::Etc::SourceParts=/dev/null
   -o "Dir::State::Lists=$L" -o "Dir::Cache=$C"
   -o Dir::State::status=/var/lib/dpkg/status -o APT::Get::List-Cleanup=0 -o APT::Sandbox::User=root)

# Refresh the private index at most once an hour.
stamp=$L/.updated
if [[ ! -f $stamp || -n $(find "$stamp" -mmin +60) ]]; then
  log "updating private apt index for $suite"
  apt-get -q "${O[@]}" update >&2
  touch "$stamp"
fi

want_sha=$(apt-cache "${O[@]}" show "$pkg=$ver" 2>/dev/null | awk '/^SHA256:/ {print $2; exit}' || true)
if [[ -z $want_sha ]]; then
  [[ -n $fallback ]] || { log "$pkg=$ver is not on the mirror and not cached"; exit 1; }
  best=$(apt-cache "${O[@]}" search --names-only "^${fallback//\*/.*}\$" | awk '{print $1}' | sort -V | tail -1)
  [[ -n $best ]] || { log "nothing matches $fallback"; exit 1; }
  pkg=$best
  ver=$(apt-cache "${O[@]}" policy "$pkg" | awk '/Candidate:/ {print $2}')
  log "WARNING: pinned version gone from the mirror; falling back to $pkg=$ver"
  want_sha=$(apt-cache "${O[@]}" show "$pkg=$ver" | awk '/^SHA256:/ {print $2; exit}')
  cached="$D/debs/${pkg}_${ver}.deb"
  if [[ -s $cached && $(sha256sum "$cached" | cut -d' ' -f1) == "$want_sha" ]]; then
    echo "$cached"; exit 0
  fi
fi

tmp=$(mktemp -d "$D/dl.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log "downloading $pkg=$ver"
(cd "$tmp" && apt-get -q "${O[@]}" download "$pkg=$ver" >&2)
f=$(ls "$tmp"/*.deb)
got=$(sha256sum "$f" | cut -d' ' -f1)
if [[ $got != "$want_sha" ]]; then
  log "SHA256 mismatch for $pkg=$ver: got $got, index says $want_sha"; exit 1
fi
mv "$f" "$cached"
echo "$got" > "$cached.sha256"
echo "$cached"
