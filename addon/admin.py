"""The admin listener: /health and /metrics, away from the proxy's own port.

Three health paths, one body, three verdicts:

- `/health`: 200 when the rules file on disk is the one in force; 503 while it
  is broken and older rules serve. For people, monitors and alerts.
- `/health/ready`: 200 while rules are in force, old or new. For load
  balancers and Kubernetes' readiness probe: a bad edit reaches every replica
  at once, and taking them all out of service would turn a rules-file mistake
  into an outage while the older rules still work.
- `/health/live`: 200 while the proxy's event loop keeps running. For
  Kubernetes' liveness probe: a restart would not start with a broken file.

All three answer 503 once the event loop has not run for `STALL_SECONDS`.

It runs the standard library's threading HTTP server in a daemon thread, so
a slow scraper never holds up the proxy's event loop. Metrics are rendered by
prometheus_client from the addon's counters at scrape time. Nothing served
here carries a token or secret: rule names, counts and rule-file messages.
"""

import json
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

logger = logging.getLogger(__name__)

# the addon's poller ticks every second; ten missed ticks is a hung loop
STALL_SECONDS = 10.0
PROBES = {"/health": "health", "/health/ready": "ready", "/health/live": "live"}


@dataclass
class Health:
    rules: int
    ok: bool  # False while the file on disk is broken and older rules serve
    last_reload: str  # "ok", "failed" or "never"
    message: str  # the rule-file error while broken, else ""
    loaded: bool = True  # some rules file is in force
    loop_lag: float = 0.0  # seconds since the event loop last ran the poller

    def status(self) -> str:
        if self.loop_lag > STALL_SECONDS:
            return "stalled"
        if not self.loaded:
            return "no rules"
        return "ok" if self.ok else "degraded"

    def passes(self, probe: str) -> bool:
        """Whether `probe` ("health", "ready" or "live") answers 200."""
        status = self.status()
        if probe == "live":
            return status != "stalled"
        if probe == "ready":
            return status in ("ok", "degraded")
        return status == "ok"


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT`, `[V6]:PORT` or `:PORT` (loopback) as (host, port)."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT such as 127.0.0.1:9464, got {value!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


class _Collector:
    """Turns the addon's Stats into Prometheus metric families at scrape time."""

    def __init__(self, stats, health: Callable[[], Health]) -> None:
        self.stats = stats
        self.health = health

    def collect(self):
        # runs in the admin thread while the event loop counts: copying a dict
        # of str keys (sorted, list) holds the GIL throughout, so it never sees
        # a dict change size half way
        matched = CounterMetricFamily(
            "tokenfix_rule_matched",
            "Exchanges a rule's conditions held for",
            labels=["rule"],
        )
        changed = CounterMetricFamily(
            "tokenfix_rule_changed", "Exchanges a rule changed", labels=["rule"]
        )
        skipped = CounterMetricFamily(
            "tokenfix_rule_skipped",
            "Exchanges a rule was a candidate for but did not apply to",
            labels=["rule", "reason"],
        )
        for name, counts in sorted(self.stats.rules.items()):
            matched.add_metric([name], counts.matched)
            changed.add_metric([name], counts.changed)
            for reason, n in sorted(counts.skipped.items()):
                skipped.add_metric([name, reason], n)
        findings = CounterMetricFamily(
            "tokenfix_findings", "Client profile findings", labels=["finding"]
        )
        for finding, n in sorted(self.stats.findings.items()):
            findings.add_metric([str(finding)], n)
        reloads = CounterMetricFamily("tokenfix_reloads", "Rules reloads that took")
        reloads.add_metric([], self.stats.reloads)
        failed = CounterMetricFamily(
            "tokenfix_reloads_failed", "Rules reloads refused for errors"
        )
        failed.add_metric([], self.stats.failed_reloads)
        health = self.health()
        rules = GaugeMetricFamily("tokenfix_rules", "Rules in force")
        rules.add_metric([], health.rules)
        file_ok = GaugeMetricFamily(
            "tokenfix_rules_file_ok",
            "1 when the rules file on disk is the one in force, 0 while it is broken",
        )
        file_ok.add_metric([], 1 if health.ok else 0)
        yield from (matched, changed, skipped, findings, reloads, failed, rules)
        yield file_ok


class AdminServer:
    def __init__(self, stats, health: Callable[[], Health]) -> None:
        self.health = health
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(stats, health))
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int] | None:
        return self._server.server_address[:2] if self._server else None

    def start(self, listen: str) -> tuple[str, int]:
        host, port = parse_listen(listen)
        handler = type("Handler", (_Handler,), {"admin": self})
        server_cls = ThreadingHTTPServer
        if ":" in host:
            server_cls = type(
                "V6Server", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6}
            )
        self._server = server_cls((host, port), handler)
        self._server.daemon_threads = True
        # the poll interval is how long stop() waits for the thread to see it
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="tokenfix-admin",
            daemon=True,
        )
        self._thread.start()
        return self.address

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            self._thread = None

    def health_response(self, probe: str = "health") -> tuple[int, bytes]:
        health = self.health()
        body = {
            "status": health.status(),
            "rules": health.rules,
            "last_reload": health.last_reload,
        }
        if health.message:
            body["error"] = health.message
        status = 200 if health.passes(probe) else 503
        return status, json.dumps(body).encode() + b"\n"

    def metrics_response(self) -> bytes:
        return generate_latest(self.registry)


class _Handler(BaseHTTPRequestHandler):
    admin: AdminServer
    server_version = "tokenfix-admin"

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        path = self.path.split("?", 1)[0]
        if path in PROBES:
            status, body = self.admin.health_response(PROBES[path])
            self._send(status, "application/json", body)
        elif path == "/metrics":
            body = self.admin.metrics_response()
            self._send(200, "text/plain; version=0.0.4; charset=utf-8", body)
        else:
            self._send(404, "text/plain", b"not found: try /health or /metrics\n")

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        logger.debug(f"tokenfix admin: {self.command} {self.path.split('?')[0]}")
