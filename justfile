# sfetl's everyday commands. One cargo target directory is shared by every checkout on this
# machine (DuckDB's C++ takes a quarter of an hour to compile: pay for it once).
export CARGO_TARGET_DIR := env_var_or_default("CARGO_TARGET_DIR", home_directory() / ".cache/sfetl/target")

# Every recipe builds the same selection (the workspace, tests included): a narrower one would
# unify dependency features differently and make cargo rebuild DuckDB from scratch.
cargo_build := "cargo build --workspace --all-targets"
sfetl := CARGO_TARGET_DIR / "debug/sfetl"
# Python tools for the interop checks and the benchmark's baseline.
venv := env_var_or_default("SFETL_VENV", home_directory() / ".cache/sfetl/venv")

# List the recipes.
default:
    @just --list

# Build sfetl (and the tests, so `just test` reuses every artifact).
build:
    {{cargo_build}}

# Extract a pipeline (default: two simulated orgs) into data/.
extract pipeline="pipelines/demo.toml" *args="": build
    {{sfetl}} extract {{pipeline}} {{args}}

# `just extract` runs the debug build the tests share: it took 8.6 s for the benchmark's 100k-user
# org where the release build took 0.95 s. The first release build compiles DuckDB optimized
# (about half an hour on 2 cores).
# Build the optimized binary into DIR as `sfetl`: the one for real orgs and nightly runs.
install dir=(home_directory() / ".local/bin"):
    cargo build --release --workspace --bins
    install -D -m 0755 "{{CARGO_TARGET_DIR}}/release/sfetl" "{{dir}}/sfetl"
    @echo "installed {{dir}}/sfetl"
    @case ":$PATH:" in *":{{dir}}:"*) ;; *) echo "{{dir}} is not on your PATH: add it, or run {{dir}}/sfetl" ;; esac

# Run SQL against data/warehouse.duckdb, e.g. just query "select count(*) from users".
query sql *args="": build
    {{sfetl}} query {{args}} "{{sql}}"

# Serve a simulated org on loopback (Ctrl-C stops it); see sfetl sim --help.
sim *args="": build
    {{sfetl}} sim {{args}}

# Every test: each crate's unit tests, the simulator's wire tests, and end-to-end runs of the binary
# (the object-storage tests use moto, polars and PySpark from the Python environment).
test:
    scripts/venv.sh
    cargo test --workspace

# A real third-party client (Python's simple-salesforce) against the simulator over HTTPS.
interop: build
    scripts/interop.sh {{sfetl}}

# Benchmarks, each reported as a ratio against a baseline measured in the same run (release build):
# the whole pipeline against a simple-salesforce + pyarrow script (bench/results.md), then the
# simulator's serving rate. SFETL_BENCH_SCENARIOS=small,latency,large,incremental and
# SFETL_BENCH_RUNS=3 choose what and how often.
bench:
    cargo build --release --workspace --bins
    cargo build --release -p sfetl-extract --example floor
    scripts/venv.sh
    python3 bench/run.py {{CARGO_TARGET_DIR}}/release/sfetl {{venv}}/bin/python {{CARGO_TARGET_DIR}}/release/examples/floor
    cargo bench -p sfetl-sim --bench serve

# Write data/report.html from the warehouse: utilization, trend, inactive licensed users.
report *args="": build
    {{sfetl}} report {{args}}

# The production binary's configuration (no simulator: `--no-default-features`) compiles; a check
# build, so the debug `sfetl` the tests run keeps its demo.
check-production:
    cargo check --workspace --all-targets --no-default-features

# Clippy on everything, warnings as errors. Its first run compiles DuckDB once more (a check
# build, about 15 minutes on 2 cores), so CI leaves it out; run it before you push.
lint:
    cargo clippy --workspace --all-targets -- -D warnings
    cargo clippy --workspace --all-targets --no-default-features -- -D warnings
