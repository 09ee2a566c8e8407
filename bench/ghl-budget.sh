#!/usr/bin/env bash
# How many events a location can send a day before GHL's budget binds, before and
# after the budget governor and the contact-read cache, from GHL calls counted
# through the real enrichment consumer and GHL client against the contacts
# stand-in (no network, no timing: the figures are counts).
#
#   bench/ghl-budget.sh [LEADS]      (default 500 leads per workload)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
exec cargo run -q -p ghl-capi-tests --example ghl_budget -- "${1:-500}"
