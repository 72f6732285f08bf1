#!/usr/bin/env bash
# Third-party clients against sfetl: Python's simple-salesforce against `sfetl sim` over HTTPS
# (10,000 users, every one exactly once), then Python's duckdb, pyarrow and polars on an extract's output.
set -euo pipefail
sfetl="$1"
users=10000
venv="${SFETL_VENV:-$HOME/.cache/sfetl/venv}"
"$(dirname "$0")/venv.sh"

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

"$sfetl" --quiet extract pipelines/demo.toml --out "$dir/data" > /dev/null
"$venv/bin/python" "$(dirname "$0")/open_warehouse_check.py" "$dir/data"

# The DuckDB 1.x drivers that many BI tools still ship must open the warehouse too.
legacy="${venv}-duckdb1"
[ -x "$legacy/bin/python" ] || python3 -m venv "$legacy"
"$legacy/bin/pip" install --quiet --disable-pip-version-check "duckdb>=1.1,<2"
"$legacy/bin/python" "$(dirname "$0")/open_warehouse_check.py" "$dir/data" --no-dataframes
