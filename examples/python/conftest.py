"""A session-scoped pytest fixture that runs appmixer-auth for the whole test session.

Copy this file into your own suite; point APPMIXER_AUTH_BIN at the binary.
"""
import json
import os
import pathlib
import subprocess
import urllib.error
import urllib.request

import pytest

HERE = pathlib.Path(__file__).resolve().parent
BINARY = os.environ.get(
    "APPMIXER_AUTH_BIN", str(HERE.parent.parent / "target" / "debug" / "appmixer-auth")
)


@pytest.fixture(scope="session")
def appmixer_url():
    """Yields the base URL of a fresh in-memory appmixer-auth with the fixture API on."""
    env = dict(
        os.environ,
        APPMIXER_AUTH__BCRYPT_COST="4",  # fast hashes: this is a test
        APPMIXER_AUTH__MAX_FAILED_ATTEMPTS="0",  # tests fail sign-ins on purpose
        RUST_LOG="warn",
    )
    proc = subprocess.Popen(
        [BINARY, "--port", "0", "--db", ":memory:", "--fixture-api"],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"appmixer-auth did not start: {line!r}")
    try:
        yield line.removeprefix("listening on ")
    finally:
        proc.terminate()
        proc.wait(timeout=15)


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
