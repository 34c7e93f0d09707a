"""Users moving in with the password hashes of other systems (run by ./test.sh).

The hashes are made here by independent implementations (Python's hashlib for scrypt and
PBKDF2, argon2-cffi for argon2), imported with `users import`, and signed in over HTTP: a right
password works and the stored hash becomes bcrypt; a wrong one fails and leaves the foreign hash
as it was; a hash whose parameters would make a sign-in too costly is refused at import, naming
the record.
"""

import base64
import hashlib
import json
import os
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("APPMIXER_AUTH_BIN", REPO / "target" / "debug" / "appmixer-auth"))
PASSWORD = "moving-in-1"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode().rstrip("=")


def scrypt_phc(password: str, ln=14, r=8, p=1) -> str:
    salt = os.urandom(16)
    out = hashlib.scrypt(password.encode(), salt=salt, n=2**ln, r=r, p=p, dklen=32)
    return f"$scrypt$ln={ln},r={r},p={p}${b64(salt)}${b64(out)}"


def pbkdf2_phc(password: str, digest="sha256", i=10000) -> str:
    salt = os.urandom(16)
    out = hashlib.pbkdf2_hmac(digest, password.encode(), salt, i)
    return f"$pbkdf2-{digest}$i={i},l={len(out)}${b64(salt)}${b64(out)}"


def argon2_phc(password: str, variant: str) -> str:
    argon2 = pytest.importorskip("argon2")
    kind = {"argon2id": argon2.Type.ID, "argon2i": argon2.Type.I}[variant]
    return argon2.PasswordHasher(time_cost=2, memory_cost=8192, parallelism=1, type=kind).hash(password)


def record(i: int, hash_: str) -> dict:
    return {
        "id": f"{i:024x}",
        "username": f"mover{i}",
        "email": f"mover{i}@example.com",
        "passwordHash": hash_,
        "created": 1_700_000_000_000 + i,
        "mtime": 1_700_000_000_000 + i,
    }


def run(dir_, *args, check=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPMIXER_")}
    env["APPMIXER_AUTH__BCRYPT_COST"] = "4"
    out = subprocess.run([str(BIN), *args], cwd=dir_, env=env, capture_output=True, text=True, timeout=60)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def call(url, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, json.loads(res.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@pytest.fixture
def place():
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "appmixer.toml").write_text("")
        yield Path(d)


def stored_hashes(place):
    doc = json.loads(run(place, "users", "export").stdout)
    return {u["username"]: u["passwordHash"] for u in doc["users"]}


def test_foreign_hashes_sign_in_and_become_bcrypt(place):
    hashes = [scrypt_phc(PASSWORD), pbkdf2_phc(PASSWORD, "sha256"), pbkdf2_phc(PASSWORD, "sha512", 5000)]
    try:
        hashes += [argon2_phc(PASSWORD, "argon2id"), argon2_phc(PASSWORD, "argon2i")]
    except pytest.skip.Exception:
        if os.environ.get("CI"):
            raise
    records = [record(i, h) for i, h in enumerate(hashes)]
    (place / "in.json").write_text(json.dumps({"version": 1, "users": records}))
    run(place, "users", "import", "in.json")
    server = subprocess.Popen([str(BIN), "--port", "0"], cwd=place, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True,
                              env={**{k: v for k, v in os.environ.items() if not k.startswith("APPMIXER_")},
                                   "APPMIXER_AUTH__BCRYPT_COST": "4",
                                   "APPMIXER_AUTH__MAX_FAILED_ATTEMPTS": "0",
                                   "APPMIXER_METRICS__ENABLED": "true"})
    try:
        url = server.stdout.readline().strip().removeprefix("listening on ")
        for r, original in zip(records, hashes):
            # A wrong password fails and leaves the foreign hash as it was.
            status, _ = call(url, "POST", "/user/auth", {"username": r["username"], "password": "wrong-1"})
            assert status == 403, r["username"]
            assert stored_hashes(place)[r["username"]] == original
            # The right one signs in, and the hash is bcrypt from then on.
            status, body = call(url, "POST", "/user/auth", {"username": r["username"], "password": PASSWORD})
            assert status == 200, (r["username"], original, body)
            assert body["user"]["id"] == r["id"]
            assert stored_hashes(place)[r["username"]].startswith("$2b$04$")
            status, _ = call(url, "POST", "/user/auth", {"username": r["username"], "password": PASSWORD})
            assert status == 200
        with urllib.request.urlopen(url + "/metrics") as res:
            metrics = res.read().decode()
        assert 'appmixer_auth_password_rehashes_total{from="scrypt"} 1' in metrics, metrics
        assert 'appmixer_auth_password_rehashes_total{from="pbkdf2-sha256"} 1' in metrics
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.parametrize("hash_, words", [
    ("$argon2id$v=19$m=4194304,t=3,p=4$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g", "m=4194304"),
    ("$scrypt$ln=22,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g", "MiB"),
    ("$pbkdf2-sha256$i=50000000,l=32$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g", "i=50000000"),
    ("{SSHA}notahash", "not a hash this server reads"),
])
def test_a_costly_or_unknown_hash_is_refused_at_import_naming_the_record(place, hash_, words):
    records = [record(0, scrypt_phc(PASSWORD)), record(1, hash_)]
    (place / "in.json").write_text(json.dumps({"version": 1, "users": records}))
    out = run(place, "users", "import", "in.json", check=False)
    assert out.returncode == 1, out.stdout
    assert "users[1]" in out.stderr and "mover1" in out.stderr and "passwordHash" in out.stderr, out.stderr
    assert words in out.stderr, out.stderr
    # All or nothing: the good record was not imported either.
    assert run(place, "users", "list", "--json", check=False).stdout.strip() in ("", "[]")
