#!/bin/bash
# Builds the libFuzzer targets (clang, ASan + UBSan, -DPASSAGE_FUZZ=ON) into
# build-fuzz/ (only them: no passage binary, no unit tests) and runs each,
# one after the other, for SECONDS starting from its seed corpus
# (tests/fuzz/corpus/TARGET, only read; what the run finds goes to
# build-fuzz/fuzz-corpus/TARGET and is reused by the next run in the same
# build dir). One summary line per target: executions, exec/s, libFuzzer's
# final cov: and ft:, corpus size, the run's wall-clock time.
#
# A crash, a broken invariant (FUZZ_FAIL_IF), a leak, a timeout or an
# out-of-memory fails the run (exit 1) after all targets ran: libFuzzer's
# report is printed and the reproducer is kept in build-fuzz/fuzz-artifacts/
# (the failure line names it and the command that replays it). Full logs:
# build-fuzz/fuzz-logs/TARGET.log. Do not edit this script while it runs:
# bash reads it as it goes.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
#     SECONDS  per target (default: $PASSAGE_FUZZ_SECONDS, else 60)
#     TARGET   default: every target in tests/fuzz/CMakeLists.txt
#   PASSAGE_FUZZ_RUNS=N  also stop a target after N executions
#   PASSAGE_FUZZ_MAX_LEN=N  longest input libFuzzer tries (default 4096)
#   PASSAGE_FUZZ_FORK=N  fuzz in N child processes (libFuzzer's -fork=N; the
#     runs and the time count for all of them together). libFuzzer's own cov:
#     and ft: mean something else in that mode, so the summary's cov/ft are
#     those of the final corpus replayed once in one process (-runs=0), the
#     same measure a run without fork reports.
#
# tests/run-all.sh runs this with PASSAGE_FUZZ_SECONDS (default 30 there).
# The longer runs the README's "Fuzzing" section reports, one target at a
# time: PASSAGE_FUZZ_RUNS=10000000 tests/fuzz/run.sh SECONDS TARGET
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-${PASSAGE_FUZZ_SECONDS:-60}}
shift || true
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || { echo "fuzz: SECONDS must be a positive number, not '$seconds'" >&2; exit 2; }
all=$(sed -n 's/^set(PASSAGE_FUZZ_TARGETS \(.*\))$/\1/p' "$root/tests/fuzz/CMakeLists.txt")
[[ -n $all ]] || { echo "fuzz: no PASSAGE_FUZZ_TARGETS list in tests/fuzz/CMakeLists.txt" >&2; exit 1; }
targets=${*:-$all}
for t in $targets; do
  [[ " $all " == *" $t "* ]] || { echo "fuzz: unknown target '$t' (known: $all)" >&2; exit 2; }
done
runs=${PASSAGE_FUZZ_RUNS:--1}
max_len=${PASSAGE_FUZZ_MAX_LEN:-4096}
fork=${PASSAGE_FUZZ_FORK:-0}
[[ $fork =~ ^[0-9]+$ ]] || { echo "fuzz: PASSAGE_FUZZ_FORK must be a number of processes, not '$fork'" >&2; exit 2; }
fork_args=()
((fork == 0)) || fork_args=(-fork="$fork")
build=$root/build-fuzz
start=$(date +%s)

uapi=$("$root/tests/install-deps.sh" | tail -1)
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DPASSAGE_UAPI_DIR="$uapi" \
  -DPASSAGE_FUZZ=ON >/dev/null
ninja -C "$build" -j"${PASSAGE_JOBS:-$(nproc)}" $(for t in $targets; do echo "fuzz_$t"; done) >&2
built=$(date +%s)
echo "fuzz: built $(echo $targets | wc -w) targets in $((built - start)) s; ${seconds} s each" >&2

artifacts=$build/fuzz-artifacts
mkdir -p "$artifacts" "$build/fuzz-logs"
failed=()
for t in $targets; do
  work=$build/fuzz-corpus/$t
  log=$build/fuzz-logs/$t.log
  mkdir -p "$work"
  rm -f "$artifacts/$t-"*
  rc=0
  t0=$(date +%s)
  "$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -runs="$runs" -max_len="$max_len" \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/$t-" \
    "${fork_args[@]}" "$work" "$root/tests/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  took=$(($(date +%s) - t0))
  if ((fork == 0)); then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  else
    # The parent's last "#N: cov: .. time: Ts" line: all children's runs.
    last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -1 || true)
    execs=$(grep -oE '^#[0-9]+' <<<"$last" | tr -d '#' || true)
    secs=$(grep -oE 'time: [0-9]+s' <<<"$last" | tr -dc 0-9 || true)
    rate=$( ((${secs:-0} > 0)) && echo $((execs / secs)) || true)
    if ((rc == 0)); then
      last=$("$build/tests/fuzz/fuzz_$t" -runs=0 -max_len="$max_len" "$work" "$root/tests/fuzz/corpus/$t" 2>&1 | grep -E '^#[0-9]+' | tail -1 || true)
      echo "fuzz: replay of the final corpus: $last" >>"$log"
    fi
  fi
  cov=$(grep -oE 'cov: [0-9]+' <<<"$last" | tail -1 || true)
  ft=$(grep -oE 'ft: [0-9]+' <<<"$last" | tail -1 || true)
  corp=$(grep -oE 'corp: [0-9]+/[0-9a-zA-Z]+' <<<"$last" | tail -1 || true)
  if ((rc == 0)); then
    echo "fuzz: $t: ${execs:-?} executions, ${rate:-?} exec/s, ${cov:-cov: ?} ${ft:-ft: ?} ${corp:-corp: ?}, ${took} s, no crash$( ((fork == 0)) || echo " ($fork processes; cov/ft: the final corpus replayed)")"
    continue
  fi
  repro=$(ls "$artifacts/$t-"* 2>/dev/null | head -1 || true)
  echo "---- libFuzzer's report for $t (full log: $log)"
  # From the first report line on (sanitizer, FUZZ_FAIL_IF, libFuzzer's
  # own), else the end of the log.
  from=$(grep -nE '^==[0-9]+==|^fuzz: |^(ERROR|SUMMARY): |ERROR: libFuzzer' "$log" | head -1 | cut -d: -f1)
  if [[ -n $from ]]; then tail -n +"$from" "$log" | head -80; else tail -40 "$log"; fi
  echo "----"
  echo "fuzz: $t FAILED (exit $rc) after ${execs:-?} executions; reproducer: ${repro:-none written}" \
    "(in $artifacts/; replay: $build/tests/fuzz/fuzz_$t ${repro:-FILE}; ${took} s)"
  failed+=("$t")
done
echo "fuzz: stage took $(($(date +%s) - start)) s (build $((built - start)) s)"
if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]}"
  exit 1
fi
