"""Forgot-password mail through a real SMTP server of another implementation, aiosmtpd
(run by ./test.sh, which installs it): the binary sends, aiosmtpd receives, Python's email
package reads the message, and the code in it resets the password over HTTP.
"""

import email
import email.policy
import json
import os
import re
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

aiosmtpd = pytest.importorskip("aiosmtpd.controller")

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("APPMIXER_AUTH_BIN", REPO / "target" / "debug" / "appmixer-auth"))


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url, path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, json.loads(res.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def test_the_reset_mail_arrives_and_its_code_resets_the_password():
    inbox = Inbox()
    port = free_port()
    controller = aiosmtpd.Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPMIXER_")}
    env.update({
        "APPMIXER_AUTH__BCRYPT_COST": "4",
        "APPMIXER_SMTP__HOST": "127.0.0.1",
        "APPMIXER_SMTP__PORT": str(port),
        "APPMIXER_SMTP__TLS": "none",
        "APPMIXER_SMTP__FROM": "Auth <no-reply@example.com>",
        "APPMIXER_SERVER__PUBLIC_URL": "https://auth.example.com",
    })
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "appmixer.toml").write_text("")
        server = subprocess.Popen([str(BIN), "--port", "0", "--db", ":memory:"], cwd=d, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            url = server.stdout.readline().strip().removeprefix("listening on ")
            status, _ = call(url, "/user", {"username": "mia@example.com", "password": "old-pass-1"})
            assert status == 200
            assert call(url, "/user/forgot-password", {"email": "mia@example.com"}) == (200, {})
            deadline = time.time() + 15
            while not inbox.messages and time.time() < deadline:
                time.sleep(0.1)
            assert len(inbox.messages) == 1
            mail = inbox.messages[0]
            assert mail["To"] == "mia@example.com"
            assert mail["Subject"] == "Reset your password"
            html = mail.get_body(preferencelist=("html",)).get_content()
            link = re.search(r'https://auth\.example\.com/signin\?code=([A-Za-z0-9_-]+)', html)
            assert link, html
            code = link.group(1)
            assert len(code) >= 43
            status, _ = call(url, "/user/forgot-password/reset", {"code": code, "password": "new-pass-1"})
            assert status == 200
            status, _ = call(url, "/user/auth", {"username": "mia@example.com", "password": "new-pass-1"})
            assert status == 200
        finally:
            server.terminate()
            server.wait(timeout=10)
            controller.stop()
