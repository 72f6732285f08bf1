"""A real third-party client against the simulator: simple-salesforce pages through every user.

Run by `just interop` (and CI). Expects `sfetl sim --tls --dir DIR` to be serving; reads the
connected app from DIR/pipeline.toml, logs in with the JWT bearer flow (PyJWT), then hands
session_id and instance_url to simple-salesforce and checks that query_all_iter returns every user
exactly once.
"""

import os
import sys
import time
import tomllib

import jwt
import requests
from simple_salesforce import Salesforce


def main(sim_dir: str, expected_users: int) -> int:
    with open(os.path.join(sim_dir, "pipeline.toml"), "rb") as f:
        org = tomllib.load(f)["orgs"][0]
    ca_file = os.path.join(sim_dir, org["ca_file"]) if not os.path.isabs(org["ca_file"]) else org["ca_file"]
    # requests lets REQUESTS_CA_BUNDLE override a session's own `verify`: point it at the simulator.
    os.environ["REQUESTS_CA_BUNDLE"] = ca_file
    with open(os.path.join(sim_dir, org["private_key_file"])) as f:
        key = f.read()
    assertion = jwt.encode(
        {"iss": org["client_id"], "sub": org["username"], "aud": org["login_url"], "exp": int(time.time()) + 120},
        key,
        algorithm="RS256",
    )
    token = requests.post(
        org["login_url"] + "/services/oauth2/token",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
        verify=ca_file,
        timeout=30,
    )
    token.raise_for_status()
    body = token.json()
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
