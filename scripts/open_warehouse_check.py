"""Other clients read what sfetl wrote, from an unrelated working directory:

- Python's duckdb opens warehouse.duckdb and queries every table and analytics view (run with
  the newest duckdb and with a 1.x one, which many BI tools still ship);
- pyarrow and polars read each table's Parquet files as a Hive-partitioned dataset, with the same
  rows and an `org` column.

Run by `just interop` after an extract into DIR.
"""

import os
import sys
import tempfile

import duckdb

TABLES = [
    "orgs", "user_licenses", "profiles", "users", "permission_set_licenses",
    "permission_set_license_assignments", "package_licenses", "user_package_licenses",
    "subscriptions", "subscription_history", "user_subscriptions", "company_subscription_history",
    "user_history", "runs", "user_logins", "perm_set_license_metrics", "profile_metrics",
    "feature_license_metrics",
]
VIEWS = [
    "license_utilization", "inactive_licensed_users", "license_trend", "company_license_trend",
    "company_license_holders", "reclaimable_seats",
]


def main(out_dir: str, with_dataframes: bool) -> int:
    out_dir = os.path.abspath(out_dir)
    os.chdir(tempfile.mkdtemp())  # nowhere near the data
    empty = []
    con = duckdb.connect(os.path.join(out_dir, "warehouse.duckdb"), read_only=True)
    for name in TABLES + VIEWS:
        n = con.execute(f"select count(*) from {name}").fetchall()[0][0]
        orgs = con.execute(f"select count(distinct org) from {name}").fetchall()[0][0]
        print(f"duckdb {duckdb.__version__}: {name}: {n} rows, {orgs} orgs")
        if n == 0 or orgs == 0:
            empty.append(name)
    results = [not empty]
    if with_dataframes:
        results.append(dataframe_check(out_dir, con))
    if empty:
        print(f"FAILED: no rows in {', '.join(empty)}", file=sys.stderr)
    print(f"{results.count(True)} passed, {results.count(False)} failed")
    return 0 if all(results) else 1


def dataframe_check(out_dir: str, con) -> bool:
    import polars as pl
    import pyarrow.dataset as ds

    ok = True
    for table in TABLES:
        path = os.path.join(out_dir, table)
        dataset = ds.dataset(path, format="parquet", partitioning="hive")
        arrow_rows = dataset.count_rows()
        frame = pl.scan_parquet(os.path.join(path, "**", "*.parquet"), hive_partitioning=True)
        polars_rows = frame.select(pl.len()).collect().item()
        glob = os.path.join(path, "*", "*.parquet").replace("'", "''")
        duck_rows = con.execute(
            f"select count(*) from read_parquet('{glob}', hive_partitioning = true)"
        ).fetchall()[0][0]
        has_org = "org" in dataset.schema.names and "org" in frame.collect_schema().names()
        print(f"pyarrow / polars / duckdb: {table}: {arrow_rows} / {polars_rows} / {duck_rows} rows, org column: {has_org}")
        ok = ok and arrow_rows == polars_rows == duck_rows and arrow_rows > 0 and has_org
    return ok


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], "--no-dataframes" not in sys.argv))
