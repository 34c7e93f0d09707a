"""The pytest plugin, registered through the ``pytest11`` entry point: pytest loads it as soon as
the appmixer-auth wheel is installed.

``appmixer_auth`` is the base URL (``http://127.0.0.1:PORT``) of one server per test session;
before every test that asks for it, the users go back to the declared ones and the clock to
real time, so no test sees what another left behind. Override ``appmixer_auth_users`` in a
``conftest.py`` to declare users, ``appmixer_auth_binary`` to run another build.
"""

from __future__ import annotations

from typing import Any, Iterator, List, Mapping

import pytest

from . import Server, binary_path, start_server


@pytest.fixture(scope="session")
def appmixer_auth_users() -> List[Mapping[str, Any]]:
    """The declared users: there from the start, and brought back before every test."""
    return []


@pytest.fixture(scope="session")
def appmixer_auth_binary() -> str:
    """The executable to run: the one the wheel installed."""
    return binary_path()


@pytest.fixture(scope="session")
def appmixer_auth_server(appmixer_auth_binary, appmixer_auth_users) -> Iterator[Server]:
    """The session's server, for tests that want ``reset()`` or its process."""
    with start_server(appmixer_auth_users, binary=appmixer_auth_binary) as server:
        yield server


@pytest.fixture
def appmixer_auth(appmixer_auth_server) -> str:
    """The base URL of the session's server, with only the declared users and the real clock."""
    appmixer_auth_server.reset()
    return appmixer_auth_server.url
