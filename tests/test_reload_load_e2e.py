"""End to end: 20,000 requests at full speed through one mitmdump while its rules
file is rewritten every half second, valid and broken in turn.

Each generation of the rules sets a request header on the way up and two body
fields on the way back. The upstream echoes the header it saw, so a response
shows whether one rule set handled both halves of its exchange (the rule set is
pinned when the request arrives) and whether its fields all came from one
generation.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers import (
    TASKS_SCRIPT,
    ExtraMitmdump,
    open_fds,
    task_count,
    wait_until,
    write_atomically,
)

pytestmark = pytest.mark.e2e

REQUESTS = 20_000
CONNECTIONS = 4
REWRITE_EVERY = 0.5
# a bound on the whole load; mitmdump serves a few hundred requests a second
LOAD_DEADLINE = 180.0
FORM = b"grant_type=refresh_token&refresh_token=rt-under-load"


def generation(n: int) -> str:
    return f"""\
rules:
  - name: generation-{n}
    match: {{host: 127.0.0.1, path: /oauth/token, grant_type: refresh_token}}
    actions:
      - request_header: {{X-Generation: "{n}"}}
      - set: {{generation: {n}}}
      - set: {{expires_in: {1000 + n}}}
"""


def broken(n: int) -> str:
    return f"""\
rules:
  - name: broken-{n}
    match: {{host: 127.0.0.1, path: /oauth/token}}
    actions:
      - sett: {{generation: {n}}}
"""


class _EchoHandler(BaseHTTPRequestHandler):
    """Answers a token response naming the X-Generation header it received."""

    protocol_version = "HTTP/1.1"
    timeout = 30

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        seen = self.headers.get("X-Generation")
        body = json.dumps({"access_token": "at-load", "seen": seen}).encode()
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        # one write: headers and body in separate segments would meet Nagle's
        # algorithm and delayed ACKs, and cost 40 ms a request
        self.wfile.write(head.encode() + body)

    def log_message(self, format, *args):
        pass


class _EchoServer(ThreadingHTTPServer):
    daemon_threads = True

    def get_request(self):
        conn, address = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, address


@pytest.fixture(scope="module")
def echo_upstream():
    server = _EchoServer(("127.0.0.1", 0), _EchoHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
    )
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(timeout=5)
    server.server_close()


class Rewriter(threading.Thread):
    """Rewrites the rules file every half second until stopped: a valid new
    generation by atomic rename, then a broken file written in place."""

    def __init__(self, path):
        super().__init__(name="rules-rewriter", daemon=True)
        self.path = path
        self.valid = [0]
        self.broken = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        # bounded: LOAD_DEADLINE / REWRITE_EVERY rewrites at most
        for i in range(1, int(LOAD_DEADLINE / REWRITE_EVERY) + 1):
            # every fourth pause a quarter second longer: the alternation's
            # period would otherwise be the poller's one second, and the
            # poller could see only valid files, or only broken ones
            pause = REWRITE_EVERY + (0.25 if i % 4 == 0 else 0)
            if self.stopped.wait(pause):
                return
            if i % 2:
                n = self.valid[-1] + 1
                self.valid.append(n)
                write_atomically(self.path, generation(n))
            else:
                self.broken += 1
                self.path.write_text(broken(self.broken), encoding="utf-8")


def load(port: int, count: int, deadline: float) -> tuple[list, list]:
    """`count` refreshes on one keep-alive connection: (generations, faults)."""
    seen, faults = [], []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    try:
        for _ in range(count):
            if time.monotonic() > deadline:
                faults.append("the load ran past its deadline")
                break
            try:
                conn.request("POST", "/oauth/token", body=FORM, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException) as e:
                faults.append(f"request failed: {e!r}")
                conn.close()
                continue
            fault = judge(resp.status, raw)
            if fault:
                faults.append(fault)
            else:
                seen.append(json.loads(raw)["generation"])
    finally:
        conn.close()
    return seen, faults


def judge(status: int, raw: bytes) -> str | None:
    """Why a response is not wholly one generation's, or None when it is."""
    if status != 200:
        return f"status {status}: {raw[:200]!r}"
    body = json.loads(raw)
    n = body.get("generation")
    if not isinstance(n, int):
        return f"no generation: {body}"
    if body["seen"] != str(n) or body.get("expires_in") != 1000 + n:
        return f"mixed generations: {body}"
    return None


def test_reloads_under_load_fail_no_request_and_never_mix_rule_sets(
    echo_upstream, tmp_path_factory, mitmproxy_confdir
):
    workdir = tmp_path_factory.mktemp("reload-load")
    rules = workdir / "rules.yaml"
    rules.write_text(generation(0), encoding="utf-8")
    proxy = ExtraMitmdump(
        echo_upstream,
        rules,
        workdir=workdir,
        confdir=mitmproxy_confdir,
        # warnings and errors only: an INFO line per rewrite would cost
        # more than the rewrite
        verbosity="warn",
        options=("tokenfix_profile=none",),
        scripts=[TASKS_SCRIPT],
    )
    proxy.start()
    try:
        fds, tasks = open_fds(proxy.process.pid), task_count(proxy.url)
        rewriter = Rewriter(rules)
        rewriter.start()
        deadline = time.monotonic() + LOAD_DEADLINE
        try:
            with ThreadPoolExecutor(CONNECTIONS) as pool:
                share = [REQUESTS // CONNECTIONS] * CONNECTIONS
                ports, deadlines = [proxy.port] * CONNECTIONS, [deadline] * CONNECTIONS
                results = list(pool.map(load, ports, share, deadlines))
        finally:
            rewriter.stopped.set()
            rewriter.join(timeout=5)

        seen = [n for got, _ in results for n in got]
        faults = [fault for _, got in results for fault in got]
        assert not faults, f"{len(faults)} faulty responses, the first: {faults[:5]}"
        assert len(seen) == REQUESTS
        assert set(seen) <= set(rewriter.valid)
        # the reloads happened while the load ran, not before or after it
        assert len(set(seen)) >= 3, sorted(set(seen))
        assert rewriter.broken >= 2

        output = proxy.output()
        assert "Traceback" not in output
        assert "rules.yaml:5: rule 'broken-" in output
        assert "keeping the last good rules" in output

        # every connection has closed: what the load opened is closed again
        wait_until(
            lambda: open_fds(proxy.process.pid) <= fds,
            timeout=10,
            what=f"mitmdump's open file descriptors back to {fds}",
        )
        wait_until(
            lambda: task_count(proxy.url) <= tasks,
            timeout=10,
            what=f"mitmdump's asyncio tasks back to {tasks}",
        )
    finally:
        proxy.stop()
