"""End to end: an upstream that fails in every way a network can, behind mitmdump
with tokenfix and behind a bare mitmdump (no script) started the same way.

The client must get what bare mitmproxy gives it, tokenfix must log nothing
alarming, and after a hung upstream the proxy must serve the next request.
"""

from __future__ import annotations

import http.client
import re
import socket
import struct
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers import ExtraMitmdump, free_port

pytestmark = pytest.mark.e2e

RULES = """\
rules:
  - name: fault-default-lifetime
    match: {host: 127.0.0.1, path: "/fault/*", grant_type: refresh_token}
    actions:
      - default: {expires_in: 3600}
"""
FORM = b"grant_type=refresh_token&refresh_token=rt-faulty"
TOKEN = b'{"access_token":"at-faulty","token_type":"Bearer"}'
GATEWAY_PAGE = b"<html><body>502 Bad Gateway</body></html>"
CLIENT_TIMEOUT = 3.0
# the longest a hung exchange is held before the upstream lets it go
HANG_LIMIT = 30.0
ALARMS = re.compile(r"Traceback|Addon error", re.IGNORECASE)


def answer(status: str, headers: list[str], body: bytes) -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return f"HTTP/1.1 {status}\r\n{head}\r\n".encode() + body


class FaultyUpstream:
    """A loopback server whose answer depends on the request's path:

    /fault/ok         a token response
    /fault/502        the 502 page of a gateway in front of the server
    /fault/truncated  a Content-Length of twice the body, then a close
    /fault/reset      a TCP reset instead of an answer
    /fault/silent     a close before any answer
    /fault/garbage    bytes that are no HTTP
    /fault/hang       no answer, until the client or HANG_LIMIT gives up
    """

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> FaultyUpstream:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.sock.close()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        conn.settimeout(HANG_LIMIT)
        with conn:
            # bounded: a connection serves at most 1000 requests
            for _ in range(1000):
                path = self._read_request(conn)
                if path is None or not self._answer(conn, path):
                    return

    def _read_request(self, conn: socket.socket) -> str | None:
        data = b""
        while b"\r\n\r\n" not in data:
            try:
                chunk = conn.recv(65536)
            except OSError:
                return None
            if not chunk or len(data) > 65536:
                return None
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        missing = int(length.group(1)) - len(rest) if length else 0
        while missing > 0:
            chunk = conn.recv(missing)
            if not chunk:
                return None
            missing -= len(chunk)
        return head.split(b" ")[1].decode()

    def _answer(self, conn: socket.socket, path: str) -> bool:
        """Answer one request; whether the connection may serve another."""
        json_type = "Content-Type: application/json"
        if path == "/fault/ok":
            headers = [json_type, f"Content-Length: {len(TOKEN)}"]
            conn.sendall(answer("200 OK", headers, TOKEN))
            return True
        if path == "/fault/502":
            headers = [
                "Content-Type: text/html",
                f"Content-Length: {len(GATEWAY_PAGE)}",
            ]
            conn.sendall(answer("502 Bad Gateway", headers, GATEWAY_PAGE))
            return True
        if path == "/fault/truncated":
            headers = [json_type, f"Content-Length: {2 * len(TOKEN)}"]
            conn.sendall(answer("200 OK", headers, TOKEN))
        elif path == "/fault/reset":
            # SO_LINGER with a zero timeout: close() sends RST, not FIN
            conn.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
        elif path == "/fault/garbage":
            conn.sendall(b"\x00\x01 this is no HTTP at all \xff\r\n\r\n")
        elif path == "/fault/hang":
            self.stopped.wait(HANG_LIMIT)
        return False


def outcome(port: int, path: str, timeout: float = 10.0) -> tuple:
    """What a client sees: ("response", status, body) or ("error", kind)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    try:
        conn.request("POST", path, body=FORM, headers=headers)
        resp = conn.getresponse()
        return ("response", resp.status, resp.read())
    except TimeoutError:
        return ("error", "timeout")
    except ConnectionError:
        # whether the close met the client's send or its read is a race
        return ("error", "closed")
    except (OSError, http.client.HTTPException) as e:
        return ("error", type(e).__name__)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def faulty():
    server = FaultyUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxies(faulty, tmp_path_factory, mitmproxy_confdir):
    """(with tokenfix, bare) in front of the faulty upstream, and (with tokenfix,
    bare) in front of a port where nothing listens."""
    rules = tmp_path_factory.mktemp("faults") / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    refused = f"http://127.0.0.1:{free_port()}"
    started = {}
    try:
        for upstream, name in ((faulty.url, "faulty"), (refused, "refused")):
            for bare in (False, True):
                proc = ExtraMitmdump(
                    upstream,
                    rules,
                    workdir=tmp_path_factory.mktemp(f"{name}-{bare}"),
                    confdir=mitmproxy_confdir,
                    bare=bare,
                )
                started[name, bare] = proc
                proc.start()
        yield started
    finally:
        for proc in started.values():
            proc.stop()


def assert_nothing_alarming(proxy, since: int) -> None:
    output = proxy.output()[since:]
    assert not ALARMS.search(output), output
    lines = [
        x
        for x in output.splitlines()
        if "tokenfix" in x and "tokenfix: loaded" not in x
    ]
    # the only tokenfix lines allowed: its rewrites, and the client
    # profile's verdict on what the client received
    rewrites = re.compile(r"rule 'fault-default-lifetime': default expires_in=3600$")
    assert [x for x in lines if not rewrites.search(x) and ": rfc6749: " not in x] == []


class TestUpstreamFaults:
    @pytest.mark.parametrize(
        ("path", "expected"),
        [
            ("/fault/502", ("response", 502)),
            ("/fault/truncated", ("response", 502)),
            ("/fault/reset", ("response", 502)),
            ("/fault/silent", ("response", 502)),
            ("/fault/garbage", ("response", 502)),
        ],
    )
    def test_the_client_gets_what_bare_mitmproxy_gives(self, proxies, path, expected):
        tokenfix, bare = proxies["faulty", False], proxies["faulty", True]
        since = tokenfix.mark()

        got = outcome(tokenfix.port, path)

        assert got == outcome(bare.port, path)
        assert got[:2] == expected
        if path == "/fault/502":
            assert got[2] == GATEWAY_PAGE
        assert_nothing_alarming(tokenfix, since)

    def test_a_refused_connection_gives_what_bare_mitmproxy_gives(self, proxies):
        tokenfix, bare = proxies["refused", False], proxies["refused", True]
        since = tokenfix.mark()

        got = outcome(tokenfix.port, "/fault/ok")

        # mitmproxy connects upstream as the client connects (the "eager"
        # connection strategy), and closes the client's connection when
        # that fails
        assert got == outcome(bare.port, "/fault/ok")
        assert got[0] == "error" or got[1] == 502, got
        assert_nothing_alarming(tokenfix, since)

    def test_after_a_hung_upstream_the_next_request_is_served(self, proxies):
        tokenfix, bare = proxies["faulty", False], proxies["faulty", True]
        since = tokenfix.mark()

        with ThreadPoolExecutor(2) as pool:
            hung = list(
                pool.map(
                    outcome,
                    [tokenfix.port, bare.port],
                    ["/fault/hang"] * 2,
                    [CLIENT_TIMEOUT] * 2,
                )
            )
        assert hung == [("error", "timeout")] * 2

        status, body = outcome(tokenfix.port, "/fault/ok")[1:]
        assert (status, body) == (
            200,
            TOKEN[:-1] + b',"expires_in":3600}',
        )
        assert outcome(bare.port, "/fault/ok") == ("response", 200, TOKEN)
        assert_nothing_alarming(tokenfix, since)

    def test_a_fault_storm_leaves_the_proxy_serving(self, proxies):
        tokenfix = proxies["faulty", False]
        since = tokenfix.mark()
        faults = ["/fault/reset", "/fault/truncated", "/fault/silent", "/fault/502"]

        seen = [outcome(tokenfix.port, path)[:2] for path in faults * 10]

        assert seen == [("response", 502)] * len(seen)
        assert outcome(tokenfix.port, "/fault/ok")[1] == 200
        assert_nothing_alarming(tokenfix, since)
