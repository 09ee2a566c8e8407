#!/usr/bin/env bash
# Each function as Lambda runs it: its release binary under a stand-in of Lambda's
# Runtime API (over moto and the GHL and Meta stand-ins, as the tests run), handed
# its heaviest invocation; prints each one's init, time to answer and peak RSS, and
# the memory that leaves twice its peak (at least Lambda's 128 MB).
#
#   bench/lambda-memory.sh
#
# Builds the five functions with the release profile `sam build` ships; set
# CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 for CI's
# faster build (the figures hardly move). Needs what scripts/test.sh needs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
functions=(webhook-intake contact-enrichment facebook-dispatch token-refresh reconcile)
cargo build --release --locked "${functions[@]/#/--package=}"
LAMBDA_BINARIES=$root/target/release exec scripts/test.sh --test it -- \
  runtime:: --ignored --nocapture --test-threads 1
