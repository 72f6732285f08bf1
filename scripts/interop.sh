#!/usr/bin/env bash
# Python's simple-salesforce against `sfetl sim` over HTTPS: 10,000 users, every one exactly once.
set -euo pipefail
sfetl="$1"
users=10000
venv="${SFETL_VENV:-$HOME/.cache/sfetl/venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check simple-salesforce PyJWT cryptography

dir="$(mktemp -d)"
trap 'kill "$sim_pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
"$sfetl" sim --tls --users "$users" --dir "$dir" > "$dir/sim.log" 2>&1 &
sim_pid=$!
for _ in $(seq 1 100); do
    [ -f "$dir/pipeline.toml" ] && break
    sleep 0.2
done
[ -f "$dir/pipeline.toml" ] || { cat "$dir/sim.log"; echo "simulator did not start"; exit 1; }
"$venv/bin/python" "$(dirname "$0")/simple_salesforce_check.py" "$dir" "$users"
