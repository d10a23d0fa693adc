"""Servers shared by the tests, started once per session where they can be.

- `authserver`: the demo authorization server (demo/authserver.py) in a thread.
- `canned`: a loopback upstream that answers what the test registered
  (`canned.respond(path, status=..., headers=..., body=...)`); cleared after
  each test. `canned_upstream` is the same server without the clearing.
- `start_mitmdump(upstream, rules, *options)`: a real mitmdump with tokenfix in
  reverse mode in front of `upstream`, stopped when the test ends.
- `shared_mitmdump(...)`: the same arguments, but one process per distinct set
  of them for the whole session; its rules file must not change.
- `proxy`: the shared mitmdump in front of `authserver` with `LOCAL_RULES`.

Everything listens on 127.0.0.1 on a free port and is always stopped.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from demo.authserver import LocalAuthServer
from tests.helpers import (
    LOCAL_RULES,
    BufferedCannedUpstream,
    CannedUpstream,
    Mitmdump,
)


@pytest.fixture(scope="session")
def mitmproxy_confdir(tmp_path_factory) -> Path:
    # one directory for every mitmdump of the session: its CA is made only once
    return tmp_path_factory.mktemp("mitmproxy-confdir")


@pytest.fixture(scope="session")
def authserver():
    with LocalAuthServer() as server:
        yield server


@pytest.fixture(scope="session")
def canned_upstream():
    server = CannedUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def canned(canned_upstream):
    yield canned_upstream
    canned_upstream.reset()


class MitmdumpFactory:
    """Starts Mitmdump processes and stops every one of them in `stop_all()`."""

    def __init__(self, tmp_path_factory, confdir: Path, *, reuse: bool):
        self._tmp = tmp_path_factory
        self._confdir = confdir
        self._reuse = reuse
        self._started: dict[tuple, Mitmdump] = {}

    def __call__(
        self,
        upstream: str,
        rules: Path | str,
        *options: str,
        verbosity: str = "info",
        script: Path | None = None,
        wait: bool = True,
    ) -> Mitmdump:
        key = (upstream, str(rules), options, verbosity, script)
        if self._reuse and key in self._started:
            return self._started[key]

        proc = Mitmdump(
            upstream,
            rules,
            workdir=self._tmp.mktemp("mitmdump"),
            confdir=self._confdir,
            options=options,
            verbosity=verbosity,
            script=script,
        )
        self._started[key if self._reuse else (len(self._started),)] = proc
        return proc.start(wait=wait)

    def stop_all(self) -> None:
        for proc in self._started.values():
            proc.stop()


@pytest.fixture
def start_mitmdump(tmp_path_factory, mitmproxy_confdir):
    factory = MitmdumpFactory(tmp_path_factory, mitmproxy_confdir, reuse=False)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="session")
def shared_mitmdump(tmp_path_factory, mitmproxy_confdir):
    factory = MitmdumpFactory(tmp_path_factory, mitmproxy_confdir, reuse=True)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="session")
def local_rules(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(LOCAL_RULES, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def proxy(shared_mitmdump, authserver, local_rules) -> Mitmdump:
    return shared_mitmdump(authserver.url, local_rules)


@pytest.fixture(scope="session")
def buffered_upstream():
    """A canned upstream fast enough for storms of requests (never reset)."""
    server = BufferedCannedUpstream().start()
    yield server
    server.stop()
