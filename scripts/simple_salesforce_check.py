"""A real third-party client against the simulator: simple-salesforce pages through every user.

Run by `just interop` (and CI). Expects `sfetl sim --tls --dir DIR` to be serving; reads the
connected app from DIR/pipeline.toml, logs in with the JWT bearer flow (PyJWT), then hands
session_id and instance_url to simple-salesforce and checks that query_all_iter returns every user
exactly once.
"""

import sys

from simple_salesforce import Salesforce
from sim_login import login


def main(sim_dir: str, expected_users: int) -> int:
    body = login(sim_dir)
    sf = Salesforce(session_id=body["access_token"], instance_url=body["instance_url"], version="66.0")
    seen = {}
    for record in sf.query_all_iter("SELECT Id, Username, Profile.Name FROM User"):
        seen[record["Id"]] = seen.get(record["Id"], 0) + 1
    duplicates = [i for i, n in seen.items() if n > 1]
    print(f"simple-salesforce read {sum(seen.values())} records, {len(seen)} distinct, {len(duplicates)} duplicated")
    if len(seen) != expected_users or duplicates:
        print(f"FAILED: expected {expected_users} distinct users, each once", file=sys.stderr)
        return 1
    print("1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
