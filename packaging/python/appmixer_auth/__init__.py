"""Start appmixer-auth, the Appmixer user and authentication API stand-in, from Python.

``start_server()`` runs the binary this wheel installed on a free port with an in-memory
database and the fixture API on, and returns a ``Server`` whose ``url`` is its base URL. The
pytest plugin (``appmixer_auth.pytest_plugin``, loaded by pytest itself) builds its
``appmixer_auth`` fixture on it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sysconfig
import tempfile
import threading
import urllib.request
from typing import Any, Iterable, Mapping, Optional, Sequence

__all__ = ["Server", "binary_path", "start_server"]

_EXE = "appmixer-auth"

# Written into the settings file of every server started here. A test suite wants fast hashes
# (cost 4 instead of 10) and fails sign-ins on purpose, so the brute-force limit is off.
_TEST_SETTINGS = """\
[auth]
bcrypt_cost = 4
max_failed_attempts = 0
"""


def binary_path() -> str:
    """The ``appmixer-auth`` executable: the one installed beside this module, else the PATH's.

    The wheel puts it in the scripts directory of the environment it is installed into, which
    is on the PATH only while that virtualenv is activated; so look there first.
    """
    dirs = [sysconfig.get_path("scripts")]
    try:
        dirs.append(sysconfig.get_path("scripts", f"{os.name}_user"))
    except KeyError:
        pass
    for d in dirs:
        candidate = os.path.join(d, _EXE)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(_EXE)
    if found is None:
        raise FileNotFoundError(
            f"{_EXE} is not installed beside the appmixer_auth module nor on the PATH"
        )
    return found


class Server:
    """A running appmixer-auth. ``url`` is its base URL, e.g. ``http://127.0.0.1:41234``."""

    def __init__(self, process: subprocess.Popen, url: str, workdir: str):
        self.url = url
        self._process = process
        self._workdir = workdir

    def reset(self) -> None:
        """Back to the declared users only, and the clock back to real time."""
        self._post("/_fixtures/reset", {})
        self._post("/_fixtures/clock", {"reset": True})

    def stop(self, timeout: float = 15.0) -> None:
        """Stops the server (SIGTERM, then SIGKILL after ``timeout`` seconds) and cleans up."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _post(self, path: str, body: Any) -> Any:
        req = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as res:
            return json.load(res)


def start_server(
    users: Iterable[Mapping[str, Any]] = (),
    *,
    binary: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
    args: Sequence[str] = (),
    timeout: float = 10.0,
) -> Server:
    """Starts appmixer-auth on 127.0.0.1, a free port, ``:memory:``, with the fixture API on.

    ``users`` are declared users (the fields of the settings file's ``[[users]]``, e.g.
    ``{"username": "qa", "email": "qa@example.com", "password": "qa-pass"}``): they exist from
    the start and ``Server.reset()`` brings them back. ``env`` adds environment variables for
    the server (settings such as ``APPMIXER_AUTH__TOKEN_EXPIRATION``), ``args`` more flags.
    Returns once the server has printed its ``listening on`` line.
    """
    exe = binary or binary_path()
    workdir = tempfile.mkdtemp(prefix="appmixer-auth-")
    try:
        # Always a settings file of our own: an appmixer.toml in the current directory belongs
        # to someone else and must not leak into a test server.
        config = os.path.join(workdir, "appmixer.toml")
        with open(config, "w", encoding="utf-8") as f:
            f.write(_TEST_SETTINGS)
            for user in users:
                f.write("\n[[users]]\n")
                for key, value in user.items():
                    if value is not None:
                        f.write(f"{_toml_key(key)} = {_toml_value(value)}\n")
        child_env = dict(os.environ, RUST_LOG="warn")
        child_env.update(env or {})
        process = subprocess.Popen(
            [exe, "--config", config, "--port", "0", "--db", ":memory:", "--fixture-api", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            env=child_env,
            cwd=workdir,
            text=True,
        )
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise

    first: list = []
    reader = threading.Thread(target=lambda: first.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    line = first[0].strip() if first else ""
    if not line.startswith("listening on "):
        process.kill()
        code = process.wait()
        shutil.rmtree(workdir, ignore_errors=True)
        why = f"exited with {code}" if first else f"printed nothing in {timeout} s"
        raise RuntimeError(f"appmixer-auth did not start: {why} (its stderr says why)")
    # Keep reading stdout so that a full pipe can never stall the server.
    threading.Thread(target=process.stdout.read, daemon=True).start()
    return Server(process, line.removeprefix("listening on "), workdir)


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _toml_string(key)


def _toml_string(s: str) -> str:
    # A JSON string is a TOML basic string, except that TOML also wants DEL escaped.
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(value: Any) -> str:
    """A JSON-like value as TOML: strings, booleans, numbers, lists, and inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, Mapping):
        items = (f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None)
        return "{" + ", ".join(items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} into a settings file: {value!r}")
