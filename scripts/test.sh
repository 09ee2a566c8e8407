#!/usr/bin/env bash
# Runs every test of the workspace, offline. This is the one test command: CI runs
# it too (.ci/run). It needs the Rust toolchain (rustup: https://rustup.rs) and the
# reference material in ../shared beside the repository (or GHL_CAPI_REFERENCE).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

reference=${GHL_CAPI_REFERENCE:-$root/../shared}
if [ ! -f "$reference/meta/normalize-vectors.jsonl" ]; then
  echo "scripts/test.sh: reference data not found at $reference (set GHL_CAPI_REFERENCE)" >&2
  exit 1
fi
export GHL_CAPI_REFERENCE=$reference

if ! command -v cargo >/dev/null; then
  echo "scripts/test.sh: cargo not found; install Rust with rustup first" >&2
  exit 1
fi

cargo test --workspace --locked "$@"
