"""The baseline `just bench` measures sfetl against: what people write today. simple-salesforce's
query_all_iter reads every User (the fields of sfetl's `users` table) over HTTPS from the
simulator, and pyarrow writes them to one Parquet file.

Usage: baseline.py SIM_DIR OUT_FILE  (SIM_DIR as written by `sfetl sim --tls --dir`). Prints one
JSON line: records read and API requests made.
"""

import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import requests
from simple_salesforce import Salesforce

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from sim_login import login  # noqa: E402

FIELDS = [
    "Id", "Username", "Name", "FirstName", "LastName", "Email", "IsActive", "UserType", "ProfileId",
    "Profile.Name", "Profile.UserLicense.Name", "CompanyName", "Department", "Title", "LastLoginDate",
    "CreatedDate", "SystemModstamp",
]


def main(sim_dir: str, out_file: str) -> None:
    body = login(sim_dir)
    session = requests.Session()
    calls = {"n": 0}
    session.hooks["response"].append(lambda r, *a, **k: calls.__setitem__("n", calls["n"] + 1))
    sf = Salesforce(session_id=body["access_token"], instance_url=body["instance_url"], version="66.0", session=session)
    columns = {field: [] for field in FIELDS}
    for record in sf.query_all_iter("SELECT " + ", ".join(FIELDS) + " FROM User"):
        for field in FIELDS:
            value = record
            for part in field.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            columns[field].append(value)
    table = pa.table({field.replace(".", "_"): values for field, values in columns.items()})
    pq.write_table(table, out_file, compression="zstd")
    print(json.dumps({"rows": table.num_rows, "api_calls": calls["n"]}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
