# sfetl's everyday commands. One cargo target directory is shared by every checkout on this
# machine (DuckDB's C++ takes a quarter of an hour to compile; pay for it once).
export CARGO_TARGET_DIR := env_var_or_default("CARGO_TARGET_DIR", home_directory() / ".cache/sfetl/target")

sfetl := CARGO_TARGET_DIR / "debug/sfetl"

# List the recipes.
default:
    @just --list

# Build the sfetl binary.
build:
    cargo build -p sfetl

# Extract a pipeline (default: two simulated orgs) into data/.
extract pipeline="pipelines/demo.toml" *args="": build
    {{sfetl}} extract {{pipeline}} {{args}}

# Run SQL against data/warehouse.duckdb.
query sql *args="": build
    {{sfetl}} query {{args}} "{{sql}}"

# Serve a simulated org on loopback (Ctrl-C stops it).
sim *args="": build
    {{sfetl}} sim {{args}}

# Every test: unit tests of each crate and the end-to-end tests against the simulator.
test:
    cargo test --workspace
