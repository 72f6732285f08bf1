#!/usr/bin/env bash
# The Python environment of `just test`, `just interop` and `just bench`: simple-salesforce (the
# baseline's client), PyJWT for its login, the readers of sfetl's output (duckdb, pyarrow, polars,
# PySpark), and moto's S3 server with boto3 for the object-storage tests.
set -euo pipefail
venv="${SFETL_VENV:-$HOME/.cache/sfetl/venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check simple-salesforce PyJWT cryptography duckdb pyarrow polars "moto[server]" boto3 pyspark
