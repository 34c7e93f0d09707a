"""appmixer-auth for this suite: the `appmixer_auth` fixture and a small HTTP helper.

With the appmixer-auth wheel installed (`pip install appmixer-auth`), its pytest plugin gives
every test the `appmixer_auth` fixture by itself: the base URL of one in-memory server per test
session, whose users go back to the declared ones before each test. All a suite of your own
needs from this file is `appmixer_auth_users` (the declared users) and `call`.

Inside this repository without the wheel, the plugin's source is loaded from packaging/python
and run against the debug build, or the binary APPMIXER_AUTH_BIN names.
"""
import importlib.util
import json
import os
import pathlib
import sys
import urllib.error
import urllib.request

import pytest

if importlib.util.find_spec("appmixer_auth") is None:
    REPO = pathlib.Path(__file__).resolve().parent.parent.parent
    sys.path.insert(0, str(REPO / "packaging" / "python"))
    from appmixer_auth.pytest_plugin import appmixer_auth, appmixer_auth_server  # noqa: F401

    @pytest.fixture(scope="session")
    def appmixer_auth_binary():
        return os.environ.get("APPMIXER_AUTH_BIN", str(REPO / "target" / "debug" / "appmixer-auth"))


PY_USER = {
    "id": "64b7f0c2a1b2c3d4e5f60719",
    "username": "py-user",
    "email": "py@example.com",
    "password": "py-pass",
    "scope": ["user", "admin"],
}


@pytest.fixture(scope="session")
def appmixer_auth_users():
    """The users every test starts with."""
    return [PY_USER]


def call(method, url, body=None, token=None):
    """Sends a request; returns (status, parsed JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, json.load(res)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)
