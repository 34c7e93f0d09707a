"""Every console example of the docs runs as written, in order, each page on a fresh server.

Each page (README.md, then docs/*.md by name) gets its own server and its own bash, so a page
makes its own users and tokens: `TOKEN=$(…)` and bound ids carry from block to block within a
page, never to the next page. The `$ ` commands run in a fresh directory holding a copy of
appmixer.toml, with the server started there on a free port and `appmixer-auth` on PATH and the
fixture API on. Any http://127.0.0.1:PORT becomes its address.
Output is compared line by line: `…` stands for anything (a line of only `…` for any number
of lines), and ids, tickets, times and long numbers may differ from the docs, but an id or
ticket seen once is bound: a later command that names the documented id gets the real one, and
a later output must show the same real one. A block right after `<!-- not run: why -->` is
skipped (a second server, root-only paths); keep those few.

Run by ./test.sh; `APPMIXER_AUTH_BIN` names the binary (default: target/debug).
"""

import os
import queue
import re
import threading
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))
# Any local address the docs name (2200, or a port a `listening on` line showed) is the server.
DOC_URL = re.compile(r"http://127\.0\.0\.1:\d+")
ELLIPSIS = "…"

# What may differ between the docs and a run, and is bound on first sight.
BOUND = re.compile(r"\b[0-9a-f]{24}\b|\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
# What may differ and is never reused: times, long numbers, tokens.
FREE = [
    re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ"),
    re.compile(r"\b\d{9,}\b"),
    re.compile(r"eyJ[A-Za-z0-9_\-.]+"),
]


def binary():
    given = os.environ.get("APPMIXER_AUTH_BIN")
    return Path(given) if given else REPO / "target" / "debug" / "appmixer-auth"


def console_blocks(page):
    """The runnable console blocks of a page: lists of (command, expected lines)."""
    lines = page.read_text().splitlines()
    blocks, i, skip_next = [], 0, False
    while i < len(lines):
        line = lines[i]
        if line.strip().startswith("<!-- not run"):
            skip_next = True
        elif line.strip() == "```console":
            j = i + 1
            body = []
            while j < len(lines) and lines[j].strip() != "```":
                body.append(lines[j])
                j += 1
            if not skip_next:
                blocks.append((f"{page.name}:{i + 1}", parse_block(body)))
            skip_next = False
            i = j
        elif line.strip():
            skip_next = skip_next and line.strip().startswith("<!--")
        i += 1
    return blocks


def parse_block(body):
    steps, k = [], 0
    while k < len(body):
        if not body[k].startswith("$ "):
            k += 1
            continue
        command = body[k][2:]
        # Continued by a backslash, or by a quote still open.
        while (command.endswith("\\") or command.count("'") % 2) and k + 1 < len(body):
            k += 1
            command += "\n" + body[k]
        expected = []
        k += 1
        while k < len(body) and not body[k].startswith("$ "):
            if not body[k].startswith("# "):
                expected.append(body[k])
            k += 1
        steps.append((command, expected))
    return steps


class Shell:
    """One bash for a whole page, so variables set by one command reach the next."""

    def __init__(self, cwd, env):
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def run(self, command, timeout=30):
        marker = f"__done_{uuid.uuid4().hex}__"
        # The group's stdin is empty, so a command that reads stdin (a prompt) cannot eat the
        # lines meant for bash; pipes inside the command still feed it.
        self.proc.stdin.write(f"{{ {command}\n}} </dev/null\necho; echo {marker}$?\n")
        self.proc.stdin.flush()
        out = []
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                self.proc.kill()
                raise AssertionError(f"no end within {timeout} s: {command}") from None
            if line is None:
                raise AssertionError(f"bash ended while running: {command}")
            if line.startswith(marker):
                return "".join(out).rstrip("\n"), int(line[len(marker):])
            out.append(line)

    def close(self):
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        self.proc.wait(timeout=10)


class Bindings:
    def __init__(self):
        self.docs_to_real = {}

    def command(self, text):
        for doc, real in self.docs_to_real.items():
            text = text.replace(doc, real)
        return text

    def line_pattern(self, expected):
        """A regex for one expected line; each unbound id becomes a named group."""
        pattern, groups, pos = "", {}, 0
        tokens = []
        for m in BOUND.finditer(expected):
            tokens.append((m.start(), m.end(), "bound", m.group()))
        for free in FREE:
            for m in free.finditer(expected):
                tokens.append((m.start(), m.end(), "free", m.group()))
        for m in re.finditer(ELLIPSIS, expected):
            tokens.append((m.start(), m.end(), "any", None))
        tokens.sort()
        for start, end, kind, text in tokens:
            if start < pos:
                continue
            pattern += re.escape(expected[pos:start])
            if kind == "any":
                pattern += ".*?"
            elif kind == "free":
                pattern += r"\S+?" if text.startswith("eyJ") else r"[\d:Z -]+?"
            elif text in self.docs_to_real:
                pattern += re.escape(self.docs_to_real[text])
            elif text in groups.values():
                name = next(k for k, v in groups.items() if v == text)
                pattern += f"(?P={name})"
            else:
                name = f"g{len(groups)}"
                groups[name] = text
                pattern += f"(?P<{name}>[0-9a-f-]+)"
            pos = end
        pattern += re.escape(expected[pos:])
        return re.compile(pattern + r"\Z"), groups

    def match(self, expected_lines, actual_lines):
        """Matches, binding ids; an `…` line stands for any number of lines."""
        def go(e, a, bound):
            if e == len(expected_lines):
                return bound if a == len(actual_lines) else None
            if expected_lines[e].strip() == ELLIPSIS:
                for skip in range(a, len(actual_lines) + 1):
                    found = go(e + 1, skip, bound)
                    if found is not None:
                        return found
                return None
            if a == len(actual_lines):
                return None
            saved = dict(self.docs_to_real)
            self.docs_to_real.update(bound)
            regex, groups = self.line_pattern(expected_lines[e])
            self.docs_to_real = saved
            m = regex.match(actual_lines[a])
            if not m:
                return None
            more = dict(bound)
            for name, doc in groups.items():
                more[doc] = m.group(name)
            return go(e + 1, a + 1, more)

        found = go(0, 0, {})
        if found is None:
            return False
        self.docs_to_real.update(found)
        return True


@pytest.fixture
def place(tmp_path):
    shutil.copy(REPO / "appmixer.toml", tmp_path / "appmixer.toml")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "appmixer-auth").symlink_to(binary())
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("APPMIXER_") and k not in ("RUST_LOG", "HTTP_API_PORT")
    }
    env["PATH"] = f"{bindir}:{env.get('PATH', '')}"
    env["APPMIXER_AUTH__BCRYPT_COST"] = "4"
    server = subprocess.Popen(
        [str(binary()), "--port", "0", "--fixture-api"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    first = server.stdout.readline().strip()
    assert first.startswith("listening on "), first
    url = first.removeprefix("listening on ")
    # The commands ask the server the settings name: this one.
    env["APPMIXER_SERVER__PORT"] = url.rsplit(":", 1)[1]
    yield tmp_path, env, url
    server.terminate()
    server.wait(timeout=15)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_console_example_runs_as_written(page, place):
    cwd, env, url = place
    blocks = console_blocks(page)
    if not blocks:
        pytest.skip(f"{page.name} has no console examples")
    shell = Shell(cwd, env)
    bindings = Bindings()
    try:
        for where, steps in blocks:
            for command, expected in steps:
                real = bindings.command(DOC_URL.sub(url, command))
                out, status = shell.run(real)
                assert status == 0, f"{where}: `{command}` exited {status}:\n{out}"
                if not expected:
                    continue
                expected = [DOC_URL.sub(url, line) for line in expected]
                actual = out.splitlines()
                assert bindings.match(expected, actual), (
                    f"{where}: `{command}`\n--- documented\n"
                    + "\n".join(expected)
                    + "\n--- got\n"
                    + out
                )
    finally:
        shell.close()
