"""An example suite against appmixer-auth: sign-in, fixture users, expiring tokens."""
from conftest import call


def test_version(appmixer_url):
    status, body = call("GET", f"{appmixer_url}/")
    assert status == 200
    assert body["version"].count(".") == 2


def test_fixture_user_signs_in(appmixer_url):
    status, users = call(
        "POST",
        f"{appmixer_url}/_fixtures/users",
        [{"id": "64b7f0c2a1b2c3d4e5f60719", "username": "py-user", "email": "py@example.com",
          "password": "py-pass", "scope": ["user", "admin"]}],
    )
    assert status == 200
    assert users[0]["id"] == "64b7f0c2a1b2c3d4e5f60719"

    status, body = call("POST", f"{appmixer_url}/user/auth", {"email": "py@example.com", "password": "py-pass"})
    assert status == 200
    status, me = call("GET", f"{appmixer_url}/user", token=body["token"])
    assert status == 200
    assert me["username"] == "py-user"
    # An admin can list users.
    status, listed = call("GET", f"{appmixer_url}/users?filter=scope:admin", token=body["token"])
    assert status == 200
    assert [u["username"] for u in listed] == ["py-user"]


def test_wrong_password_is_403(appmixer_url):
    status, body = call("POST", f"{appmixer_url}/user/auth", {"username": "py-user", "password": "wrong"})
    assert status == 403
    assert body["error"] == "Forbidden"


def test_token_expires_when_the_clock_moves(appmixer_url):
    _, body = call("POST", f"{appmixer_url}/user/auth", {"username": "py-user", "password": "py-pass"})
    token = body["token"]
    status, _ = call("POST", f"{appmixer_url}/_fixtures/clock", {"advance": "31d"})
    assert status == 200
    status, err = call("GET", f"{appmixer_url}/user", token=token)
    assert (status, err["message"]) == (401, "Token expired")
    call("POST", f"{appmixer_url}/_fixtures/clock", {"reset": True})
    status, _ = call("GET", f"{appmixer_url}/user", token=token)
    assert status == 200
