#!/usr/bin/env bash
# Throughput of `ghl-capi map` against Meta's official Python Business SDK, on the
# same generated contacts, in the same run. Prints contacts per second and the ratio.
#
#   bench/compare.sh [CONTACTS] [RUNS] [BASELINE]
#
# (defaults: 100000 contacts, best of 3 runs each). BASELINE, an earlier build of
# `ghl-capi`, joins the race: its time beside this build's, and whether their
# outputs are byte-identical (stdout and stderr).
#
# Needs ../shared/bench (the workload generator and the SDK baseline) beside the
# repository; installs the SDK into bench/.venv on first use.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
reference=${GHL_CAPI_REFERENCE:-$root/../shared}
contacts=${1:-100000}
runs=${2:-3}
baseline=${3:-}
out=$root/bench/out
venv=$root/bench/.venv
mkdir -p "$out"

echo "== building ghl-capi (release)"
cargo build --quiet --release -p ghl-capi-cli --manifest-path "$root/Cargo.toml"
bin=${CARGO_TARGET_DIR:-$root/target}/release/ghl-capi

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import facebook_business' 2>/dev/null; then
  echo "== installing Meta's Python Business SDK into bench/.venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'facebook-business==26.0.3'
fi

echo "== generating $contacts contacts"
python3 "$reference/bench/gen_contacts.py" "$contacts" > "$out/contacts.jsonl"

# Runs ghl-capi and the SDK by turns, $runs rounds, so a busy spell of the machine
# falls on both; prints the best wall-clock seconds of each. Each one's last output
# is kept in $out/<name>.jsonl and its stderr in $out/<name>.err.
race() {
  python3 - "$runs" "$out" "$out/contacts.jsonl" "$bin" "$venv/bin/python" "$reference/bench/py_sdk_map.py" "$baseline" <<'PY2'
import subprocess, sys, time
runs, out, source = int(sys.argv[1]), sys.argv[2], sys.argv[3]
commands = {"ghl-capi": [sys.argv[4], "map"], "python-sdk": sys.argv[5:7]}
if sys.argv[7]:
    commands["baseline"] = [sys.argv[7], "map"]
best = {}
for _ in range(runs):
    for name, cmd in commands.items():
        with open(source, "rb") as i, open(f"{out}/{name}.jsonl", "wb") as o, open(f"{out}/{name}.err", "wb") as e:
            start = time.perf_counter()
            subprocess.run(cmd, stdin=i, stdout=o, stderr=e, check=True)
            took = time.perf_counter() - start
        best[name] = min(took, best.get(name, took))
print(f"{best['ghl-capi']:.4f} {best['python-sdk']:.4f} {best.get('baseline', 0):.4f}")
PY2
}

events() { python3 -c 'import json,sys; print(sum(len(json.loads(l)["data"]) for l in open(sys.argv[1])))' "$1"; }

echo "== ghl-capi map and Meta's Python SDK, by turns (best of $runs each)"
read -r rust python previous < <(race)
cat "$out/ghl-capi.err"

rust_events=$(events "$out/ghl-capi.jsonl")
python_events=$(events "$out/python-sdk.jsonl")
python3 - "$contacts" "$rust" "$python" "$rust_events" "$python_events" <<'PY'
import sys
n, rust, python = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
print(f"\ncontacts            {n}")
print(f"ghl-capi map        {rust:8.3f} s  {n / rust:12,.0f} contacts/s  ({sys.argv[4]} events)")
print(f"Python SDK          {python:8.3f} s  {n / python:12,.0f} contacts/s  ({sys.argv[5]} events)")
print(f"ratio               {python / rust:8.1f}x")
PY

if [ -n "$baseline" ]; then
  python3 - "$contacts" "$rust" "$previous" <<'PY'
import sys
n, rust, previous = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
print(f"baseline map        {previous:8.3f} s  {n / previous:12,.0f} contacts/s")
print(f"this build          {previous / rust:8.2f}x the baseline's speed")
PY
  if cmp -s "$out/ghl-capi.jsonl" "$out/baseline.jsonl" && cmp -s "$out/ghl-capi.err" "$out/baseline.err"; then
    echo "output              byte-identical to the baseline's (stdout and stderr)"
  else
    echo "output              DIFFERS from the baseline's" >&2
    exit 1
  fi
fi
