"""Other clients read what sfetl wrote: Python's duckdb opens warehouse.duckdb from an unrelated
working directory and queries every view (run with the newest duckdb and with a 1.x one, which
many BI tools still ship), and pyarrow reads the Parquet dataset with Hive
partitioning. Run by `just interop` after an extract into DIR.
"""

import os
import sys
import tempfile

import duckdb

TABLES = [
    "orgs", "user_licenses", "profiles", "users", "permission_set_licenses",
    "permission_set_license_assignments", "package_licenses", "user_package_licenses",
]


def main(out_dir: str, with_pyarrow: bool) -> int:
    out_dir = os.path.abspath(out_dir)
    os.chdir(tempfile.mkdtemp())  # nowhere near the data
    empty = []
    con = duckdb.connect(os.path.join(out_dir, "warehouse.duckdb"), read_only=True)
    for table in TABLES:
        n = con.execute(f"select count(*) from {table}").fetchall()[0][0]
        orgs = con.execute(f"select count(distinct org) from {table}").fetchall()[0][0]
        print(f"duckdb {duckdb.__version__}: {table}: {n} rows, {orgs} orgs")
        if n == 0 or orgs == 0:
            empty.append(table)
    results = [not empty]
    if with_pyarrow:
        results.append(pyarrow_check(out_dir, con))
    if empty:
        print(f"FAILED: no rows in {', '.join(empty)}", file=sys.stderr)
    print(f"{results.count(True)} passed, {results.count(False)} failed")
    return 0 if all(results) else 1


def pyarrow_check(out_dir: str, con) -> bool:
    import pyarrow.dataset as ds

    users = ds.dataset(os.path.join(out_dir, "users"), format="parquet", partitioning="hive")
    arrow_rows = users.count_rows()
    duck_rows = con.execute("select count(*) from users").fetchall()[0][0]
    print(f"pyarrow: users: {arrow_rows} rows, columns include org: {'org' in users.schema.names}")
    return arrow_rows == duck_rows and "org" in users.schema.names


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], "--no-pyarrow" not in sys.argv))
