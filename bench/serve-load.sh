#!/usr/bin/env bash
# `ghl-capi serve` under load from a real HTTP load generator (wrk), in one run:
#
#   1. the health route, the box's HTTP ceiling for this process: the baseline;
#   2. new signed webhooks (every one a new contact, signed with the development
#      key, none sent twice) as fast as they are answered: accepted per second,
#      p50/p90/p99, the ratio to the baseline, and how many webhooks shared each
#      synced commit; then, once that backlog is drained, new webhooks paced at
#      PACED a second (5,000 unless set): the latency at that rate;
#   3. the backlog those left, drained by the pipeline behind: how long, and each
#      webhook's end-to-end lag (accepted to acknowledged by Meta, here the dry-run
#      outbox) p50/p99, from the journal;
#   4. a steady RATE of new webhooks a second (below what the pipeline drains): the
#      end-to-end lag p50/p99 when nothing queues;
#   5. the burst again on an empty store, the server killed with SIGKILL in the
#      middle of it: every webhook answered 200 must be in the store after the
#      restart.
#
#   bench/serve-load.sh [SECONDS] [CONNECTIONS] [RATE]
#
# (defaults: 10 s per phase, 32 connections, 400 webhooks/s steady). Needs wrk
# (Debian's `wrk` package) and sqlite3; writes to bench/out/serve-load.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-10}
connections=${2:-32}
rate=${3:-400}
paced=${PACED:-5000}
threads=2
out=$root/bench/out/serve-load
# Below the ephemeral range, which wrk's reconnections after the kill fill.
port=${SERVE_LOAD_PORT:-18100}
admin=$((port + 1))
url=http://127.0.0.1:$port
for tool in wrk sqlite3; do
  command -v "$tool" > /dev/null || { echo "needs $tool (apt-get install $tool)" >&2; exit 2; }
done

echo "== building ghl-capi and the webhook signer (release)"
cargo build --quiet --release -p ghl-capi-cli -p ghl-capi-local --example signed_webhooks \
  --manifest-path "$root/Cargo.toml"
release=${CARGO_TARGET_DIR:-$root/target}/release
rm -rf "$out" && mkdir -p "$out"
# Enough for 25,000 a second while a phase lasts, so none is sent twice.
count=$((seconds * 25000))
echo "== signing $count new webhooks, and $((seconds * rate * 2)) for the steady load"
"$release/examples/signed_webhooks" "$count" > "$out/webhooks.tsv"
"$release/examples/signed_webhooks" $((seconds * rate * 2)) > "$out/steady.tsv"
"$release/examples/signed_webhooks" $((seconds * paced * 2)) > "$out/paced.tsv"

pid=
start() {
  "$release/ghl-capi" serve --dev --data-dir "$out/data" --listen "127.0.0.1:$port" \
    --admin-listen "127.0.0.1:$admin" --reconcile-every 0 --log-format json \
    > "$out/serve.out" 2>> "$out/serve.log" &
  pid=$!
  for _ in $(seq 100); do
    curl -sf "$url/health" > /dev/null 2>&1 && return
    sleep 0.1
  done
  echo "serve did not start: $out/serve.log" >&2
  exit 1
}
stop() { kill "$pid" 2> /dev/null || true; wait "$pid" 2> /dev/null || true; }
trap stop EXIT
# A figure wrk's script printed.
figure() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }
synced() { curl -s "http://127.0.0.1:$admin/metrics" | awk '/^StoreSyncs /{ print $2 }'; }
load() { # load SECONDS OUTPUT [WEBHOOKS CONNECTIONS PACE_MS]
  WEBHOOKS=${3:-$out/webhooks.tsv} WEBHOOK_PACE_MS=${5:-0} WRK_THREADS=$threads \
    wrk -t"$threads" -c"${4:-$connections}" -d"$1s" --timeout 10s \
    -s "$root/bench/webhooks.lua" "$url" > "$2"
}
now_ms() { date +%s%3N; }
backlog() {
  sqlite3 "$out/data/store.db" "SELECT COUNT(*) FROM messages WHERE queue IN ('enrich', 'dispatch')"
}
# The PERCENT-th of the lags, in ms, from each webhook accepted since SINCE (ms) to
# its event acknowledged, as the journal has them.
lag() { # lag PERCENT SINCE
  sqlite3 "$out/data/store.db" "WITH lags AS (
      SELECT s.at - r.at AS ms FROM journal s
      JOIN journal r ON r.webhook_id = s.webhook_id AND r.message = 'request'
      WHERE s.message = 'event sent' AND r.at >= $2)
    SELECT ms FROM lags ORDER BY ms LIMIT 1 OFFSET (SELECT COUNT(*) * $1 / 100 FROM lags)"
}
sent_since() {
  sqlite3 "$out/data/store.db" "SELECT COUNT(*) FROM journal WHERE message = 'event sent' AND at >= $1"
}
in_store() { sqlite3 "$out/data/store.db" "SELECT COUNT(*) FROM dedup WHERE queue = 'enrich'"; }

start
echo "== health route: $seconds s, $connections connections"
wrk -t"$threads" -c"$connections" -d"${seconds}s" --latency "$url/health" > "$out/health.txt"
health=$(awk '/^Requests\/sec/ { print $2 }' "$out/health.txt")
health_p99=$(awk '$1 == "99%" { print $2 }' "$out/health.txt")

echo "== new webhooks: $seconds s, $connections connections"
syncs_before=$(synced)
burst_from=$(now_ms)
load "$seconds" "$out/webhooks.txt"
syncs=$(( $(synced) - syncs_before ))
requests=$(figure requests "$out/webhooks.txt")
accepted_rate=$(awk -v n="$requests" -v s="$(figure seconds "$out/webhooks.txt")" 'BEGIN { printf "%.0f", n / s }')
if [ "$requests" -gt "$(figure available "$out/webhooks.txt")" ]; then
  echo "warning: more requests than signed webhooks: some were repeats" >&2
fi
ms() { awk -v us="$(figure "$1" "$out/webhooks.txt")" 'BEGIN { printf "%.1f ms", us / 1000 }'; }
accepted=$(in_store)

echo "== draining the backlog"
started=$(date +%s.%N)
while [ "$(backlog)" != 0 ]; do sleep 0.5; done
drained=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
sleep 1.5 # the journal's last lines
burst_lag="$(lag 50 "$burst_from") / $(lag 99 "$burst_from") ms"
burst_events=$(sent_since "$burst_from")

echo "== paced: $paced new webhooks a second for $seconds s"
# wrk waits its delay after each answer: 64 connections, each waiting its share of
# a second less the ~3 ms an answer takes, come to about the rate asked for.
load "$seconds" "$out/paced.txt" "$out/paced.tsv" 64 $((64000 / paced - 3))
paced_rate=$(awk -v n="$(figure requests "$out/paced.txt")" -v s="$(figure seconds "$out/paced.txt")" 'BEGIN { printf "%.0f", n / s }')
paced_ms() { awk -v us="$(figure "$1" "$out/paced.txt")" 'BEGIN { printf "%.1f ms", us / 1000 }'; }
paced_latency="$(paced_ms p50_us) / $(paced_ms p90_us) / $(paced_ms p99_us)"
while [ "$(backlog)" != 0 ]; do sleep 0.5; done

echo "== steady load: $rate new webhooks a second for $seconds s"
steady_from=$(now_ms)
load "$seconds" "$out/steady.txt" "$out/steady.tsv" 8 $((8000 / rate))
while [ "$(backlog)" != 0 ]; do sleep 0.5; done
sleep 1.5
steady_rate=$(awk -v n="$(figure requests "$out/steady.txt")" -v s="$(figure seconds "$out/steady.txt")" 'BEGIN { printf "%.0f", n / s }')
steady_lag="$(lag 50 "$steady_from") / $(lag 99 "$steady_from") ms"
stop

echo "== kill -9 in the middle of the load"
rm -rf "$out/data"
start
load "$seconds" "$out/killed.txt" &
loader=$!
sleep "$(awk -v s="$seconds" 'BEGIN { print s / 2 }')"
kill -9 "$pid"
wait "$pid" 2> /dev/null || true
wait "$loader" || true
answered=$(( $(figure requests "$out/killed.txt") - $(figure refused "$out/killed.txt") ))
start
kept=$(in_store)
stop

printf '\n%-44s %s\n' "health route, requests/s" "$health (p99 $health_p99)"
printf '%-44s %s\n' "new webhooks accepted/s" "$accepted_rate ($(awk -v a="$accepted_rate" -v b="$health" 'BEGIN { printf "%.1f %%", 100 * a / b }') of the health route)"
printf '%-44s %s\n' "  latency p50 / p90 / p99" "$(ms p50_us) / $(ms p90_us) / $(ms p99_us)"
printf '%-44s %s\n' "  refused (not 200)" "$(figure refused "$out/webhooks.txt")"
printf '%-44s %s\n' "  in the store / answered" "$accepted / $requests"
printf '%-44s %s\n' "  synced commits, all sends (webhooks each)" "$syncs ($(awk -v a="$requests" -v b="$syncs" 'BEGIN { printf "%.1f", a / (b ? b : 1) }'))"
printf '%-44s %s\n' "backlog drained after the load" "$drained s ($burst_events events sent)"
printf '%-44s %s\n' "  end-to-end lag p50 / p99" "$burst_lag"
printf '%-44s %s\n' "paced new webhooks, accepted/s" "$paced_rate (refused $(figure refused "$out/paced.txt"))"
printf '%-44s %s\n' "  latency p50 / p90 / p99" "$paced_latency"
printf '%-44s %s\n' "steady load, webhooks/s" "$steady_rate"
printf '%-44s %s\n' "  end-to-end lag p50 / p99" "$steady_lag"
printf '%-44s %s\n' "kill -9 mid-load: answered 200 / in store" "$answered / $kept"
if [ "$kept" -lt "$answered" ]; then
  echo "LOST: $((answered - kept)) webhooks answered 200 are not in the store" >&2
  exit 1
fi
