"""Helpers shared by the tests: loopback servers, a real mitmdump, an HTTP client.

Everything listens on 127.0.0.1 and is stopped by the fixtures in conftest.py.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit

from demo.authserver import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URI

REPO = Path(__file__).resolve().parent.parent
ADDON_SCRIPT = REPO / "addon" / "tokenfix.py"
# the mitmdump of the interpreter running the tests: not resolved, so that a
# virtual environment's bin/ is kept
MITMDUMP = Path(sys.executable).with_name("mitmdump")

# the shipped Auth0 rule, for the local server: in reverse mode the host a rule
# sees is the upstream's, here 127.0.0.1
LOCAL_RULE = "local-refresh-expires-in"
LOCAL_RULES = f"""\
rules:
  - name: {LOCAL_RULE}
    match:
      host: 127.0.0.1
      path: /oauth/token
      grant_type: refresh_token
    when:
      expires_in: missing
    actions:
      - default: {{expires_in: {{from_jwt_exp: access_token, fallback: 3600}}}}
"""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for processes that need a number)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], object], *, timeout: float, what: str):
    """Poll `predicate` until it returns something true; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def assert_no_secrets(text: str, secrets: Iterable[str]) -> None:
    leaked = sorted(f"{s[:6]}... ({len(s)} chars)" for s in secrets if s in text)
    assert not leaked, f"secret values in the output: {leaked}"


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` by renaming a finished temporary file over it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


# -- HTTP client ----------------------------------------------------------------


@dataclass
class Response:
    """A response as it arrived: no redirect followed, no content decoding."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def json(self):
        return json.loads(self.body)


def request(
    method: str,
    url: str,
    *,
    body: bytes | str = b"",
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> Response:
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    if isinstance(body, str):
        body = body.encode("utf-8")

    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, target, body=body or None, headers=dict(headers or {}))
        resp = conn.getresponse()
        return Response(resp.status, resp.getheaders(), resp.read())
    finally:
        conn.close()


def basic_auth(client_id: str, client_secret: str) -> str:
    """An Authorization header value for client_secret_basic (RFC 6749 2.3.1)."""
    pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
    return "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")


def jwt_claims(token: str) -> dict:
    """The claims of a JWT, read without verifying it."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@dataclass
class TokenClient:
    """An OAuth client of the demo server, speaking in either of two dialects.

    "alexa": form bodies and HTTP Basic client authentication, as Alexa account
    linking sends them. "auth0": JSON bodies with the client credentials in them,
    as Auth0's own SDKs send them.
    """

    base_url: str
    style: str = "alexa"
    client_id: str = DEMO_CLIENT_ID
    client_secret: str = DEMO_CLIENT_SECRET
    sent_secrets: set[str] = field(default_factory=set)

    def authorize(self, *, scope: str = "openid offline_access", **extra) -> str:
        """Run /authorize and return the code from the redirect."""
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": DEMO_REDIRECT_URI,
            "state": "alexa-state-1",
            "scope": scope,
            **extra,
        }
        resp = request("GET", f"{self.base_url}/authorize?{urlencode(params)}")
        assert resp.status == 302, resp
        query = dict(parse_qsl(urlsplit(resp.header("Location")).query))
        assert query["state"] == "alexa-state-1"
        self.sent_secrets.add(query["code"])
        return query["code"]

    def exchange_code(self, code: str) -> Response:
        params = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": DEMO_REDIRECT_URI,
        }
        return self.token(params)

    def refresh(self, refresh_token: str) -> Response:
        return self.token(
            {"grant_type": "refresh_token", "refresh_token": refresh_token}
        )

    def token(self, params: Mapping[str, str]) -> Response:
        """POST `params` to /oauth/token in this client's dialect."""
        if self.style == "alexa":
            headers = {
                "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8",
                "Authorization": basic_auth(self.client_id, self.client_secret),
            }
            body = urlencode(params)
            self.sent_secrets.add(headers["Authorization"].split()[1])
        else:
            headers = {"Content-Type": "application/json"}
            credentials = {
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            }
            body = json.dumps({**params, **credentials})
        self.sent_secrets.add(self.client_secret)

        resp = request(
            "POST", f"{self.base_url}/oauth/token", body=body, headers=headers
        )
        self.sent_secrets.update(params.get(k) for k in ("code", "refresh_token"))
        self.sent_secrets.discard(None)
        if resp.status == 200:
            self.sent_secrets.update(_token_values(resp.json()))
        return resp


def _token_values(document: dict) -> Iterable[str]:
    for name in ("access_token", "refresh_token", "id_token"):
        value = document.get(name)
        if isinstance(value, str):
            yield value
            # a log that cut a JWT short would still show one of its parts
            yield from (part for part in value.split(".")[1:] if len(part) > 16)


# -- canned upstream ------------------------------------------------------------


@dataclass
class Canned:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    length: bool


@dataclass
class Received:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes


class CannedUpstream:
    """A loopback HTTP server that answers whatever a test registered for a path.

    `respond()` registers the status, headers and raw body bytes for a path (with
    or without its query; the exact target wins). The body is sent as given, so
    it may be compressed, truncated or lie about its encoding. Unless the headers
    name a Content-Length or a Transfer-Encoding, a correct Content-Length is
    added; with `length=False` none is, and the connection closes after the body.
    Requests are kept in `received`.
    """

    def __init__(self):
        self._canned: dict[str, Canned] = {}
        self.received: list[Received] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _CannedHandler)
        self._httpd.daemon_threads = True
        self._httpd.canned = self
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread: threading.Thread | None = None

    def respond(
        self,
        path: str,
        *,
        status: int = 200,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] = (
            ("Content-Type", "application/json"),
        ),
        body: bytes | str = b"",
        length: bool = True,
    ) -> None:
        pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
        raw = body.encode("utf-8") if isinstance(body, str) else body
        self._canned[path] = Canned(status, pairs, raw, length)

    def reset(self) -> None:
        self._canned.clear()
        self.received.clear()

    def lookup(self, target: str) -> Canned | None:
        return self._canned.get(target) or self._canned.get(urlsplit(target).path)

    def start(self) -> CannedUpstream:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="canned-upstream",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        self._httpd.server_close()


class _CannedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        upstream: CannedUpstream = self.server.canned
        upstream.received.append(
            Received(self.command, self.path, list(self.headers.items()), body)
        )

        canned = upstream.lookup(self.path)
        if canned is None:
            text = f"no canned response for {self.path}".encode()
            canned = Canned(404, [("Content-Type", "text/plain")], text, True)

        self.send_response(canned.status)
        names = {name.lower() for name, _ in canned.headers}
        for name, value in canned.headers:
            self.send_header(name, value)
        if not canned.length:
            self.send_header("Connection", "close")
            self.close_connection = True
        elif not names & {"content-length", "transfer-encoding"}:
            self.send_header("Content-Length", str(len(canned.body)))
        self.end_headers()
        self.wfile.write(canned.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _answer

    def log_message(self, format, *args):
        pass


# -- mitmdump -------------------------------------------------------------------


class MitmdumpExited(AssertionError):
    pass


class Mitmdump:
    """A real mitmdump process in reverse mode in front of `upstream`, with tokenfix.

    Its stdout and stderr go to one file (`log_path`); `output()` reads it. The
    process gets its own mitmproxy configuration directory, so that no
    ~/.mitmproxy/config.yaml changes its behaviour.
    """

    def __init__(
        self,
        upstream: str,
        rules: Path | str,
        *,
        workdir: Path,
        confdir: Path,
        options: Sequence[str] = (),
        verbosity: str = "info",
        script: Path | None = None,
    ):
        self.upstream = upstream
        self.rules = rules
        self.workdir = workdir
        self.confdir = confdir
        self.options = list(options)
        self.verbosity = verbosity
        self.script = script or ADDON_SCRIPT
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.log_path = workdir / "mitmdump.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        sets = [
            f"confdir={self.confdir}",
            "flow_detail=0",
            f"termlog_verbosity={self.verbosity}",
            f"tokenfix_rules={self.rules}",
            *self.options,
        ]
        return [
            str(MITMDUMP),
            "--mode",
            f"reverse:{self.upstream}",
            "--listen-host",
            "127.0.0.1",
            "--listen-port",
            str(self.port),
            "-s",
            str(self.script),
            *(arg for option in sets for arg in ("--set", option)),
        ]

    def start(self, *, wait: bool = True, timeout: float = 20.0) -> Mitmdump:
        """Start the process; with `wait`, return once its port accepts connections."""
        for _attempt in range(3):
            self.port = free_port()
            self._spawn()
            if not wait:
                return self
            try:
                self.wait_ready(timeout)
                return self
            except MitmdumpExited:
                # another process may have taken the port between the two binds
                if "address already in use" not in self.output().lower():
                    raise
        raise MitmdumpExited(f"mitmdump found no free port:\n{self.output()}")

    def _spawn(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise MitmdumpExited(
                    f"mitmdump exited with {self.process.returncode}:\n{self.output()}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"mitmdump did not listen within {timeout} s")

    def output(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def mark(self) -> int:
        """The output's current length: pass it as `since` to see only what follows."""
        return len(self.output())

    def wait_for_output(
        self, pattern: str | re.Pattern, *, since: int = 0, timeout: float = 5.0
    ) -> re.Match:
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        return wait_until(
            lambda: regex.search(self.output()[since:]),
            timeout=timeout,
            what=f"{regex.pattern!r} in mitmdump's output",
        )

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"mitmdump still runs after {timeout} s:\n{self.output()}"
            ) from None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


# -- hardening helpers ----------------------------------------------------------

TASKS_SCRIPT = REPO / "tests" / "tasks_addon.py"
# answered by tests/tasks_addon.py, never forwarded
TASKS_PATH = "/__tokenfix_tests__/tasks"


class ExtraMitmdump(Mitmdump):
    """A Mitmdump with more scripts beside tokenfix, or `bare`: no tokenfix at
    all, to see what mitmproxy alone gives a client."""

    def __init__(self, *args, scripts: Sequence[Path] = (), bare: bool = False, **kw):
        super().__init__(*args, **kw)
        self.scripts = list(scripts)
        self.bare = bare

    def command(self) -> list[str]:
        command = super().command()
        if self.bare:
            rules = f"tokenfix_rules={self.rules}"
            at = command.index(rules)
            del command[at - 1 : at + 1]
            at = command.index("-s")
            del command[at : at + 2]
        for script in self.scripts:
            command[1:1] = ["-s", str(script)]
        return command


def open_fds(pid: int) -> int:
    """How many file descriptors the process holds open (Linux /proc)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def task_count(proxy_url: str) -> int:
    """The asyncio task count of a mitmdump running tests/tasks_addon.py."""
    return request("GET", proxy_url + TASKS_PATH).json()["tasks"]


def assert_no_secret_fragments(
    text: str, secrets: Iterable[str], window: int = 16
) -> None:
    """No secret appears in `text`, whole or as any `window` characters of it.

    Views may show a short prefix of a token (addon.redact.shorten keeps 6);
    a window of 16 catches a token cut short, a JWT's payload or signature
    part alone, and a base64 pair's tail.
    """
    leaked = set()
    for secret in secrets:
        if len(secret) <= window:
            found = secret in text
        else:
            found = any(
                secret[i : i + window] in text for i in range(len(secret) - window + 1)
            )
        if found:
            leaked.add(f"{secret[:6]}... ({len(secret)} chars)")
    assert not leaked, f"secret values in the output: {sorted(leaked)}"


class _BufferedCannedHandler(_CannedHandler):
    # the status line, headers and body leave in one write: written apart,
    # Nagle's algorithm and delayed ACKs hold each response some 40 ms
    wbufsize = 1 << 16


class BufferedCannedUpstream(CannedUpstream):
    """A CannedUpstream that sends each response in one write, for tests that
    send hundreds of requests."""

    def __init__(self):
        super().__init__()
        self._httpd.RequestHandlerClass = _BufferedCannedHandler
