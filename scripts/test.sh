#!/usr/bin/env bash
# Runs every test of the workspace, offline. This is the one test command: CI runs
# it too (.ci/run). It needs the Rust toolchain (rustup: https://rustup.rs), Python 3,
# and the reference material in ../shared beside the repository (or
# GHL_CAPI_REFERENCE). It installs moto (the local AWS emulator the adapter tests
# talk to) into .venv on first use, starts it on a free loopback port, and stops it
# when the tests end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

reference=${GHL_CAPI_REFERENCE:-$root/../shared}
if [ ! -f "$reference/meta/normalize-vectors.jsonl" ]; then
  echo "scripts/test.sh: reference data not found at $reference (set GHL_CAPI_REFERENCE)" >&2
  exit 1
fi
export GHL_CAPI_REFERENCE=$reference

for tool in cargo python3; do
  if ! command -v "$tool" >/dev/null; then
    echo "scripts/test.sh: $tool not found; install it first (see README)" >&2
    exit 1
  fi
done

venv=$root/.venv
if ! "$venv/bin/python" -c 'import moto, flask' 2>/dev/null; then
  echo "scripts/test.sh: installing moto into .venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'moto[server]==5.2.5'
fi

port=$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$root/target"
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" > "$root/target/moto.log" 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
export MOTO_ENDPOINT=http://127.0.0.1:$port
"$venv/bin/python" - "$MOTO_ENDPOINT" <<'PY'
import sys, time, urllib.request
for _ in range(100):
    try:
        urllib.request.urlopen(sys.argv[1] + "/moto-api/", timeout=1)
        sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit("scripts/test.sh: moto_server did not start; see target/moto.log")
PY

cargo test --workspace --locked "$@"
