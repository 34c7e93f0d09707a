"""The appmixer_auth module as installed from the wheel (.ci/packages.sh runs this file in the
wheel's virtualenv, copied out of the repository)."""
import json
import os
import urllib.error
import urllib.request

import pytest

from appmixer_auth import binary_path, start_server


def call(method, url, body=None, token=None):
    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, json.load(res)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def test_a_declared_user_with_quotes_backslashes_and_unicode_signs_in():
    password = 'a "quoted" \\ back\u00e9 \U0001f600 \x7f pass'
    metadata = {"team": "q\"a", "nested": {"list": [1, 2.5, True, "x"]}, "dotted.key": "ok"}
    user = {"username": "odd", "email": "odd@example.com", "password": password, "metadata": metadata,
            "vendor": None}
    with start_server([user]) as server:
        status, body = call("POST", f"{server.url}/user/auth", {"username": "odd", "password": password})
        assert status == 200, body
        status, me = call("GET", f"{server.url}/user", token=body["token"])
        assert (status, me["metadata"]) == (200, metadata)


def test_an_appmixer_toml_in_the_current_directory_is_not_read(tmp_path, monkeypatch):
    (tmp_path / "appmixer.toml").write_text("not_a_setting = true\n")
    monkeypatch.chdir(tmp_path)
    with start_server() as server:
        assert call("GET", f"{server.url}/")[0] == 200


def test_a_server_that_cannot_start_raises_and_says_so():
    with pytest.raises(RuntimeError, match="exited with"):
        start_server([{"username": "no-email"}])


def test_stop_ends_the_server():
    server = start_server()
    url = server.url
    assert call("GET", f"{url}/")[0] == 200
    server.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/", timeout=5)
