#!/bin/bash
# Issue 11's measurement: runs scenarios/stability.sh in N fresh L1 boots
# (default 30) through run.py, one at a time under the rig lock, and prints
# per boot and in total: pass/fail, run.py's stall count (L1 froze: no
# console output for `stall` s) and its key presses (console silences of
# 20 s that a key press may have ended; --stall-nudge), and the time. With
# RIG_STALL_NUDGE=none the presses are off, to measure without them.
#   tests/rig/selfcheck/stability-loop.sh [N] [BUILD_DIR]
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-30}
build=${2:-$here/../../build}
out=${STABILITY_OUT:-$build/tests/rig/stability}
mkdir -p "$out"
export PASSAGE_BUILD_DIR=$build
for i in $(seq 1 "$n"); do
  flock /tmp/passage-rig.lock python3 "$here/run.py" --retries 0 "$here/scenarios/stability.sh" \
    --json "$out/boot$i.json" --log-dir "$out/logs" > "$out/boot$i.out" 2>&1
  python3 - "$out/boot$i.json" "$i" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"boot {sys.argv[2]}: {'PASS' if d['ok'] else 'FAIL'} {d['times'].get('total_s', 0):.0f}s "
      f"stalls={len(d['stalls'])} key_presses={len(d['nudges'])} {d.get('reason', '')}", flush=True)
PY
done
python3 - "$out" "$n" <<'PY'
import json, sys, glob
boots = [json.load(open(f"{sys.argv[1]}/boot{i}.json")) for i in range(1, int(sys.argv[2]) + 1)]
ok = sum(b["ok"] for b in boots)
stalls = sum(len(b["stalls"]) for b in boots)
stalled = sum(1 for b in boots if b["stalls"])
presses = sum(len(b["nudges"]) for b in boots)
print(f"stability: {len(boots)} L1 boots, {ok} passed, {stalled} with a stall ({stalls} stalls), {presses} key presses, "
      f"{sum(b['times'].get('total_s', 0) for b in boots):.0f} s")
sys.exit(0 if ok == len(boots) else 1)
PY
