#!/bin/bash
# passage-bench in the rig, from a fresh clone, in one command (issue 14):
#
#   tests/bench/run.sh [--quick] [--reps N] [--out DIR] [--build-dir DIR] [--lock FILE]
#                      [--only NAME,...]
#
# Builds passage (tests/build.sh, unless --build-dir names a build), fetches
# QEMU 10.0 (tests/bench/qemu10.sh), runs the bench scenarios in the rig
# (tests/rig/run.py) and writes the results directory (default
# bench-results/<UTC time>/, git-ignored): run.py's serial logs (logs/) and
# verdicts (rig/), then tests/bench/report.py's records.jsonl, runs.jsonl,
# summary.json, summary.txt and PNG plots. The summary is printed at the end.
#
#   --quick   bench-smoke (mapping 64 and 128 MiB, 2 repetitions) and
#             bench-vm's quick plan (passage iommufd, passage legacy, QEMU
#             10.0 q35 once each, -m 512M): ~10 minutes
#   default   bench-full (every size, 5 repetitions), then bench-vm: passage
#             (iommufd, legacy) N times at -m 512M -smp 1 in one L1 boot,
#             once at 256M, 1G, 2G, 4G and at -smp 2 in another; QEMU 10.0
#             q35, QEMU 10.0 microvm and QEMU 7.2 (legacy) N times at 512M,
#             QEMU 10.0 q35 once at each other -m and -smp 2, each QEMU run
#             in an L1 boot of its own (a VM started right after QEMU ran in L1 froze L1
#             often: tests/rig/README "Known limits"). N = --reps (3).
#   --lock F  each rig run under flock F (machines that share one rig)
#   --only L  only the rig runs named in the comma-separated list L (map,
#             vm-passage, vm-passage-sweep, vm-qemu10-q35-r1, ...: the names
#             run.sh prints); with --out DIR of an earlier run, the report
#             covers every log in DIR
#
# Exit status: 0 when every rig run passed and the report was written; 1
# otherwise (the report is still written from what arrived); 2 on a usage
# error.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
quick=0 reps=3 out= build= lock= only=
# The -m sweep besides 512M: up to 4G, what L1's mem=6G (bench-vm.sh's
# header) leaves room for with every page of guest RAM pinned.
SWEEP_MEM=(256M 1G 2G 4G)
usage() { sed -n '3,5p' "$0" | sed 's/^# *//' >&2; exit 2; }
while (($#)); do
  case $1 in
    --quick) quick=1 ;;
    --reps) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --reps: '${2:-}' is not a positive number" >&2; exit 2; }
            reps=$2; shift ;;
    --out) [[ -n ${2:-} ]] || { echo "run.sh: --out: needs a directory" >&2; exit 2; }; out=$2; shift ;;
    --build-dir) [[ -x ${2:-}/vmm/passage ]] || { echo "run.sh: --build-dir: no vmm/passage in '${2:-}'" >&2; exit 2; }
                 build=$(cd "$2" && pwd); shift ;;
    --lock) [[ -n ${2:-} ]] || { echo "run.sh: --lock: needs a file" >&2; exit 2; }; lock=$2; shift ;;
    --only) [[ ${2:-} =~ ^[a-z0-9.,-]+$ ]] || { echo "run.sh: --only: '${2:-}' is not a list of run names" >&2; exit 2; }
            only=,$2,; shift ;;
    -h|--help) sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: $1: unknown argument" >&2; usage ;;
  esac
  shift
done

[[ -n $build ]] || build=$("$root/tests/build.sh" | tail -1)
qemu10=$("$root/tests/bench/qemu10.sh" | tail -1)
out=${out:-$root/bench-results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out/logs" "$out/rig" "$out/plans"
export PASSAGE_BUILD_DIR=$build PASSAGE_QEMU10=$qemu10
echo "run.sh: results in $out" >&2

failed=()
# rig NAME SCENARIO [run.py ARGS...]: one rig run; its log in logs/, its verdict in rig/NAME.json.
rig() {
  local name=$1 scenario=$2
  shift 2
  [[ -z $only || $only == *",$name,"* ]] || return 0
  local cmd=(python3 "$root/tests/rig/run.py" "$scenario" --log-dir "$out/logs" --json "$out/rig/$name.json"
             --retries 6 "$@")
  [[ -n $lock ]] && cmd=(flock "$lock" "${cmd[@]}")
  echo "run.sh: $name: ${cmd[*]}" >&2
  "${cmd[@]}" || failed+=("$name")
}
# plan NAME LINES...: a bench-vm plan file (VMM CONFIG MEM SMP REP per line).
plan() {
  local f=$out/plans/$1.plan
  shift
  printf '%s\n' "$@" > "$f"
  echo "$f"
}

if ((quick)); then
  rig map bench-smoke
  rig vm bench-vm
else
  # One rig run per line below, each under --lock on its own (no run holds
  # the rig for long; another user's runs can go in between). QEMU runs last
  # in every L1 boot, and alone: a VM started in L1 right after QEMU ran
  # there froze L1 often (tests/rig/README "Known limits").
  rig map bench-full
  lines=()
  for r in $(seq "$reps"); do
    lines+=("passage iommufd 512M 1 $r" "passage legacy 512M 1 $r")
  done
  rig vm-passage bench-vm --add "$(plan passage "${lines[@]}"):/rig/bench-plan"
  lines=()
  for m in "${SWEEP_MEM[@]}"; do lines+=("passage iommufd $m 1 1" "passage legacy $m 1 1"); done
  lines+=("passage iommufd 512M 2 1" "passage legacy 512M 2 1")
  rig vm-passage-sweep bench-vm --add "$(plan passage-sweep "${lines[@]}"):/rig/bench-plan"
  for r in $(seq "$reps"); do
    for c in "qemu10 q35" "qemu10 microvm" "qemu72 legacy"; do
      name=vm-${c// /-}-r$r
      rig "$name" bench-vm --add "$(plan "$name" "$c 512M 1 $r"):/rig/bench-plan"
    done
  done
  for m in "${SWEEP_MEM[@]}"; do
    rig "vm-qemu10-q35-$m" bench-vm --add "$(plan "qemu10-q35-$m" "qemu10 q35 $m 1 1"):/rig/bench-plan"
  done
  rig vm-qemu10-q35-smp2 bench-vm --add "$(plan qemu10-q35-smp2 "qemu10 q35 512M 2 1"):/rig/bench-plan"
fi

rc=0
# Debian's python3: its python3-matplotlib draws the plots.
/usr/bin/python3 "$root/tests/bench/report.py" --out "$out" || rc=1
if ((${#failed[@]})); then
  echo "run.sh: rig runs that failed: ${failed[*]} (their logs: $out/logs; what arrived is in the report)" >&2
  rc=1
fi
exit $rc
