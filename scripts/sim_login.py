"""Logs in to a simulated org the way a Python integration does: the JWT bearer flow with PyJWT,
from the connected app `sfetl sim --tls --dir DIR` wrote to DIR. Shared by the interop check and
the benchmark's baseline."""

import os
import time
import tomllib

import jwt
import requests


def login(sim_dir: str) -> dict:
    """The token answer (`access_token`, `instance_url`, ...). Points requests at the
    simulator's CA (REQUESTS_CA_BUNDLE overrides a session's own `verify`)."""
    with open(os.path.join(sim_dir, "pipeline.toml"), "rb") as f:
        org = tomllib.load(f)["orgs"][0]
    ca_file = os.path.join(sim_dir, org["ca_file"])
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
        timeout=60,
    )
    token.raise_for_status()
    return token.json()
