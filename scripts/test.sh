#!/usr/bin/env bash
# Runs every test of the workspace, offline. This is the one test command: CI runs
# it too (.ci/run). It needs the Rust toolchain (rustup: https://rustup.rs), Python 3,
# Node.js with npm, and the reference material in ../shared beside the repository
# (or GHL_CAPI_REFERENCE). On first use it installs moto (the local AWS emulator)
# into .venv and Prism (the mock of GHL's OpenAPI specs) into .prism; it starts moto
# and a Prism per spec (contacts, opportunities, locations, calendars) on free
# loopback ports and stops them when the tests end. The status page's browser test needs Debian's Chromium,
# and `mapping init`'s terminal test tmux: installed with apt-get when missing (as
# root, or with sudo).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

reference=${GHL_CAPI_REFERENCE:-$root/../shared}
if [ ! -f "$reference/meta/normalize-vectors.jsonl" ]; then
  echo "scripts/test.sh: reference data not found at $reference (set GHL_CAPI_REFERENCE)" >&2
  exit 1
fi
export GHL_CAPI_REFERENCE=$reference

for tool in cargo python3 npm; do
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

prism=$root/.prism/node_modules/.bin/prism
if [ ! -x "$prism" ]; then
  echo "scripts/test.sh: installing Prism into .prism"
  mkdir -p "$root/.prism"
  npm install --prefix "$root/.prism" --silent --no-audit --no-fund '@stoplight/prism-cli@5.14.2' > /dev/null
fi

# Debian packages a test needs, installed when missing (as root, or with sudo):
# apt_install PACKAGE WHY.
apt_install() {
  echo "scripts/test.sh: installing $1 (Debian package) for $2"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  mkdir -p "$root/target"
  apt_log=$root/target/apt-$1.log
  # A fresh machine may have no package lists yet: update once, and try again.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "$1" > "$apt_log" 2>&1 || {
    $sudo apt-get update -q >> "$apt_log" 2>&1 &&
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "$1" >> "$apt_log" 2>&1
  } || {
    echo "scripts/test.sh: cannot install $1; see target/apt-$1.log" >&2
    exit 1
  }
}
chromium=${CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || apt_install chromium "the status page's browser test (or set CHROMIUM)"
# `mapping init`'s questions are answered on a pseudo-terminal tmux holds.
command -v tmux > /dev/null || apt_install tmux "mapping init's terminal test"
export CHROMIUM=$chromium

free_port() {
  "$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# Waits until $1 answers any HTTP status.
wait_for() {
  "$venv/bin/python" - "$1" "$2" <<'PY'
import sys, time, urllib.request, urllib.error
for _ in range(300):
    try:
        urllib.request.urlopen(sys.argv[1], timeout=1)
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit("scripts/test.sh: " + sys.argv[2] + " did not start; see target/" + sys.argv[2] + ".log")
PY
}

mkdir -p "$root/target"
moto_port=$(free_port)
"$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" > "$root/target/moto.log" 2>&1 &
moto_pid=$!
prism_port=$(free_port)
"$prism" mock -h 127.0.0.1 -p "$prism_port" "$reference/ghl/apps/contacts.json" > "$root/target/prism.log" 2>&1 &
prism_pid=$!
opportunities_port=$(free_port)
"$prism" mock -h 127.0.0.1 -p "$opportunities_port" "$reference/ghl/apps/opportunities.json" > "$root/target/prism-opportunities.log" 2>&1 &
opportunities_pid=$!
locations_port=$(free_port)
"$prism" mock -h 127.0.0.1 -p "$locations_port" "$reference/ghl/apps/locations.json" > "$root/target/prism-locations.log" 2>&1 &
locations_pid=$!
calendars_port=$(free_port)
"$prism" mock -h 127.0.0.1 -p "$calendars_port" "$reference/ghl/apps/calendars.json" > "$root/target/prism-calendars.log" 2>&1 &
calendars_pid=$!
trap 'kill "$moto_pid" "$prism_pid" "$opportunities_pid" "$locations_pid" "$calendars_pid" 2>/dev/null || true' EXIT
export MOTO_ENDPOINT=http://127.0.0.1:$moto_port
export PRISM_CONTACTS_URL=http://127.0.0.1:$prism_port
export PRISM_OPPORTUNITIES_URL=http://127.0.0.1:$opportunities_port
export PRISM_LOCATIONS_URL=http://127.0.0.1:$locations_port
export PRISM_CALENDARS_URL=http://127.0.0.1:$calendars_port
wait_for "$MOTO_ENDPOINT/moto-api/" moto
wait_for "$PRISM_CONTACTS_URL/contacts/x" prism
wait_for "$PRISM_OPPORTUNITIES_URL/opportunities/x" prism-opportunities
wait_for "$PRISM_LOCATIONS_URL/locations/x" prism-locations
wait_for "$PRISM_CALENDARS_URL/calendars/x" prism-calendars

# TEST_SCOPE narrows the run to some crates (`-p ghl-capi-aws`, as bench/cost
# does); every crate by default.
# shellcheck disable=SC2086
cargo test ${TEST_SCOPE:---workspace} --locked "$@"
