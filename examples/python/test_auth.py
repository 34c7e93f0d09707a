"""An example suite against appmixer-auth: sign-in, fixture users, expiring tokens.

Every test starts with the users conftest.py declares (py-user, an admin) and the real clock.
"""
import time

import pytest

from conftest import call


def sign_in(url, **credentials):
    status, body = call("POST", f"{url}/user/auth", credentials)
    assert status == 200, body
    return body["token"]


def test_version(appmixer_auth):
    assert appmixer_auth.startswith("http://127.0.0.1:")
    status, body = call("GET", f"{appmixer_auth}/")
    assert status == 200
    assert body["version"].count(".") == 2


def test_declared_user_signs_in_and_lists_users(appmixer_auth):
    token = sign_in(appmixer_auth, email="py@example.com", password="py-pass")
    status, me = call("GET", f"{appmixer_auth}/user", token=token)
    assert status == 200
    assert (me["id"], me["username"]) == ("64b7f0c2a1b2c3d4e5f60719", "py-user")
    # An admin can list users.
    status, listed = call("GET", f"{appmixer_auth}/users?filter=scope:admin", token=token)
    assert status == 200
    assert [u["username"] for u in listed] == ["py-user"]


def test_fixture_api_user_signs_in(appmixer_auth):
    status, users = call(
        "POST",
        f"{appmixer_auth}/_fixtures/users",
        [{"id": "64b7f0c2a1b2c3d4e5f60718", "username": "py-guest", "email": "guest@example.com",
          "password": "guest-pass"}],
    )
    assert status == 200
    assert users[0]["id"] == "64b7f0c2a1b2c3d4e5f60718"
    token = sign_in(appmixer_auth, username="py-guest", password="guest-pass")
    status, me = call("GET", f"{appmixer_auth}/user", token=token)
    assert (status, me["scope"]) == (200, ["user"])


def test_wrong_password_is_403(appmixer_auth):
    status, body = call("POST", f"{appmixer_auth}/user/auth", {"username": "py-user", "password": "wrong"})
    assert status == 403
    assert body["error"] == "Forbidden"


def test_token_expires_when_the_clock_moves(appmixer_auth):
    token = sign_in(appmixer_auth, username="py-user", password="py-pass")
    status, _ = call("POST", f"{appmixer_auth}/_fixtures/clock", {"advance": "31d"})
    assert status == 200
    status, err = call("GET", f"{appmixer_auth}/user", token=token)
    assert (status, err["message"]) == (401, "Token expired")
    call("POST", f"{appmixer_auth}/_fixtures/clock", {"reset": True})
    status, _ = call("GET", f"{appmixer_auth}/user", token=token)
    assert status == 200


# Run twice: whichever turn comes second finds what the first left behind, unless the fixture
# reset the users and the clock in between.
@pytest.mark.parametrize("turn", [1, 2])
def test_each_test_starts_with_the_declared_users_and_the_real_clock(appmixer_auth, turn):
    token = sign_in(appmixer_auth, username="py-user", password="py-pass")
    status, listed = call("GET", f"{appmixer_auth}/users", token=token)
    assert status == 200
    assert [u["username"] for u in listed] == ["py-user"]
    status, clock = call("POST", f"{appmixer_auth}/_fixtures/clock", {"advance": 0})
    assert status == 200
    assert abs(clock["now"] - time.time()) < 60

    status, _ = call("POST", f"{appmixer_auth}/user",
                     {"username": f"left-{turn}", "email": f"left{turn}@example.com", "password": "left-pass"})
    assert status == 200
    status, _ = call("POST", f"{appmixer_auth}/_fixtures/clock", {"advance": "31d"})
    assert status == 200


def test_forgot_password_with_the_fixture_inbox(appmixer_auth):
    status, body = call("POST", f"{appmixer_auth}/user/forgot-password", {"email": "py@example.com"})
    assert (status, body) == (200, {})
    status, messages = call("GET", f"{appmixer_auth}/_fixtures/messages?to=py@example.com")
    assert status == 200
    code = messages[-1]["body"]["code"]
    status, _ = call("POST", f"{appmixer_auth}/user/forgot-password/reset",
                     {"code": code, "password": "py-new-pass"})
    assert status == 200
    sign_in(appmixer_auth, email="py@example.com", password="py-new-pass")
    # Once only.
    status, err = call("POST", f"{appmixer_auth}/user/forgot-password/reset",
                       {"code": code, "password": "py-other-pass"})
    assert (status, err["message"]) == (400, "Invalid or expired code")
