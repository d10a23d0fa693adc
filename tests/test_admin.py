"""The admin listener: address parsing, /health and /metrics, the addon's wiring."""

import asyncio
import base64
import json
import re
import socket
import time
from http.client import HTTPConnection

import pytest
from mitmproxy import exceptions, http
from mitmproxy.test import taddons, tflow, tutils

from addon.admin import STALL_SECONDS, AdminServer, Health, parse_listen
from addon.engine import Change, Outcome
from addon.stats import Stats
from tests.jwtutil import jwt_expiring

RT = "rt-presented-9f31"
CLIENT_SECRET = "cs-admin-4Kq8-very-secret"
BASIC = "Basic " + base64.b64encode(f"alexa-skill:{CLIENT_SECRET}".encode()).decode()

RULES = """\
rules:
  - name: refresh-expires-in
    match: {host: "*.auth0.com", path: /oauth/token, grant_type: refresh_token}
    when: {expires_in: missing}
    actions:
      - default: {expires_in: {from_jwt_exp: access_token, fallback: 3600}}
  - name: never-matches
    match: {host: nowhere.example, path: /oauth/token}
    actions:
      - set: {expires_in: 60}
"""
# a literal secret in the broken edit: its error must not carry it to /health
BROKEN_RULES = f"""\
rules:
  - name: refresh-expires-in
    actions:
      - sett: {{client_secret: "{CLIENT_SECRET}"}}
"""
BROKEN_MESSAGE = (
    "rules.yaml:4: rule 'refresh-expires-in': unknown action 'sett' (expected one "
    "of: set, default, remove, rename, coerce, unwrap, header, request_header, "
    "status, form_to_json)"
)


def get(address: tuple[str, int], path: str, method: str = "GET"):
    conn = HTTPConnection(*address, timeout=5)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def refused(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=1).close()
    except OSError:
        return True
    return False


class TestParseListen:
    @pytest.mark.parametrize(
        "value, expected",
        [
            ("127.0.0.1:9464", ("127.0.0.1", 9464)),
            ("0.0.0.0:9464", ("0.0.0.0", 9464)),
            (":9464", ("127.0.0.1", 9464)),
            ("[::1]:9464", ("::1", 9464)),
            ("localhost:0", ("localhost", 0)),
            (" 127.0.0.1:9464 ", ("127.0.0.1", 9464)),
        ],
    )
    def test_valid(self, value, expected):
        assert parse_listen(value) == expected

    @pytest.mark.parametrize(
        "value", ["9464", "127.0.0.1", "host:", "h:port", "h:70000"]
    )
    def test_invalid(self, value):
        with pytest.raises(ValueError) as e:
            parse_listen(value)
        assert str(e.value) == (
            f"expected HOST:PORT such as 127.0.0.1:9464, got {value!r}"
        )


class TestHealthBody:
    def test_ok(self):
        admin = AdminServer(Stats(), lambda: Health(3, True, "ok", ""))
        status, body = admin.health_response()
        assert status == 200
        assert json.loads(body) == {"status": "ok", "rules": 3, "last_reload": "ok"}

    def test_never_reloaded(self):
        admin = AdminServer(Stats(), lambda: Health(1, True, "never", ""))
        assert json.loads(admin.health_response()[1])["last_reload"] == "never"

    def test_broken_file_with_older_rules_in_force(self):
        health = Health(3, False, "failed", "rules.yaml:4: rule 'x': bad")
        status, body = AdminServer(Stats(), lambda: health).health_response()
        assert status == 503
        assert json.loads(body) == {
            "status": "degraded",
            "rules": 3,
            "last_reload": "failed",
            "error": "rules.yaml:4: rule 'x': bad",
        }


class TestProbes:
    """One body, three verdicts: /health, /health/ready and /health/live."""

    @pytest.mark.parametrize(
        "health, status, verdicts",
        [
            (Health(3, True, "ok", ""), "ok", (200, 200, 200)),
            (Health(3, False, "failed", "bad"), "degraded", (503, 200, 200)),
            (Health(0, False, "never", "", loaded=False), "no rules", (503, 503, 200)),
            (
                Health(3, True, "ok", "", loop_lag=STALL_SECONDS + 1),
                "stalled",
                (503,) * 3,
            ),
            (Health(3, True, "ok", "", loop_lag=STALL_SECONDS - 1), "ok", (200,) * 3),
        ],
    )
    def test_verdicts(self, health, status, verdicts):
        admin = AdminServer(Stats(), lambda: health)
        answers = [admin.health_response(p) for p in ("health", "ready", "live")]
        assert tuple(code for code, _ in answers) == verdicts
        assert {json.loads(body)["status"] for _, body in answers} == {status}


class TestMetricsBody:
    def metrics(self, stats: Stats, health: Health | None = None) -> str:
        health = health or Health(2, True, "ok", "")
        return AdminServer(stats, lambda: health).metrics_response().decode()

    def test_per_rule_counters(self):
        stats = Stats()
        change = Change("add-expiry", "body", "expires_in", "default", None, 3600)
        stats.count(Outcome(matched=["add-expiry"], changes=[change]))
        stats.count(Outcome(matched=["add-expiry"]))
        stats.count(Outcome(skipped=[("add-expiry", "status 500 not matched")]))
        text = self.metrics(stats)
        assert 'tokenfix_rule_matched_total{rule="add-expiry"} 2.0' in text
        assert 'tokenfix_rule_changed_total{rule="add-expiry"} 1.0' in text
        assert (
            'tokenfix_rule_skipped_total{reason="status 500 not matched",'
            'rule="add-expiry"} 1.0' in text
        )

    def test_reloads_findings_and_rules(self):
        stats = Stats()
        stats.reloads, stats.failed_reloads = 4, 1
        stats.findings["expires_in missing (error)"] += 2
        text = self.metrics(stats, Health(7, False, "failed", "broken"))
        for line in [
            "tokenfix_reloads_total 4.0",
            "tokenfix_reloads_failed_total 1.0",
            'tokenfix_findings_total{finding="expires_in missing (error)"} 2.0',
            "tokenfix_rules 7.0",
            "tokenfix_rules_file_ok 0.0",
        ]:
            assert line in text.splitlines()

    def test_empty_stats_still_name_every_metric(self):
        text = self.metrics(Stats())
        for name in ("matched", "changed", "skipped"):
            # prometheus_client 0.20 and later add _total to the TYPE line too
            assert re.search(
                f"^# TYPE tokenfix_rule_{name}(_total)? counter$", text, re.M
            )
        assert "tokenfix_rules_file_ok 1.0" in text


class TestListener:
    @pytest.fixture
    def admin(self):
        server = AdminServer(Stats(), lambda: Health(2, True, "never", ""))
        server.start("127.0.0.1:0")
        yield server
        server.stop()

    @pytest.mark.parametrize("path", ["/health", "/health/ready", "/health/live"])
    def test_probe_paths(self, admin, path):
        status, headers, body = get(admin.address, path)
        assert (status, json.loads(body)["status"]) == (200, "ok")

    def test_health(self, admin):
        status, headers, body = get(admin.address, "/health")
        assert status == 200
        assert headers["Content-Type"] == "application/json"
        assert headers["Cache-Control"] == "no-store"
        assert json.loads(body)["rules"] == 2

    def test_metrics(self, admin):
        status, headers, body = get(admin.address, "/metrics?x=1")
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert b"tokenfix_rules 2.0" in body

    def test_head_has_no_body(self, admin):
        status, headers, body = get(admin.address, "/health", "HEAD")
        assert (status, body) == (200, b"")
        assert int(headers["Content-Length"]) > 0

    def test_other_paths(self, admin):
        status, _, body = get(admin.address, "/oauth/token")
        assert status == 404
        assert body == b"not found: try /health or /metrics\n"

    def test_stop_closes_the_port(self, admin):
        address = admin.address
        admin.stop()
        assert admin.address is None
        assert refused(address)


# -- the addon's wiring ----------------------------------------------------------


@pytest.fixture
def rules_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    return path


@pytest.fixture
def tctx(rules_file):
    from addon.addon import TokenFix

    tf = TokenFix()
    with taddons.context(tf) as tctx:
        tctx.configure(tf, tokenfix_rules="rules.yaml", tokenfix_profile="none")
        tctx.tf = tf
        yield tctx


def refresh_exchange(tf) -> http.HTTPFlow:
    flow = tflow.tflow(
        req=tutils.treq(
            host="tenant.auth0.com",
            port=443,
            scheme=b"https",
            method=b"POST",
            path=b"/oauth/token",
            headers=http.Headers(
                content_type="application/x-www-form-urlencoded",
                authorization=BASIC,
            ),
            content=f"grant_type=refresh_token&refresh_token={RT}".encode(),
        )
    )
    tf.request(flow)
    access_token = jwt_expiring(time.time() + 300)
    flow.response = tutils.tresp(
        status_code=200,
        headers=http.Headers(content_type="application/json"),
        content=json.dumps(
            {"access_token": access_token, "token_type": "Bearer"}
        ).encode(),
    )
    tf.response(flow)
    return flow, access_token


def run_with(tf, body) -> None:
    """Run `body()` between the running and done hooks, in an event loop."""

    async def run():
        tf.running()
        try:
            body()
        finally:
            tf.done()

    asyncio.run(run())


class TestAddonWiring:
    def test_off_by_default(self, tctx):
        tf = tctx.tf
        assert tctx.options.tokenfix_admin_listen == ""
        run_with(tf, lambda: None)
        assert tf.admin is None

    def test_started_when_running_stopped_when_done(self, tctx):
        tf = tctx.tf
        tctx.configure(tf, tokenfix_admin_listen="127.0.0.1:0")
        assert tf.admin is None  # not before running()
        seen = {}

        def body():
            seen["address"] = tf.admin.address
            status, _, text = get(tf.admin.address, "/health")
            seen["health"] = (status, json.loads(text))

        run_with(tf, body)
        assert seen["health"] == (
            200,
            {"status": "ok", "rules": 2, "last_reload": "never"},
        )
        assert tf.admin is None
        assert refused(seen["address"])

    def test_option_change_restarts_the_listener(self, tctx):
        tf = tctx.tf
        tctx.configure(tf, tokenfix_admin_listen="127.0.0.1:0")
        seen = {}

        def body():
            first = tf.admin.address
            tctx.configure(tf, tokenfix_admin_listen=":0")
            seen["first"], seen["second"] = first, tf.admin.address
            seen["status"] = get(tf.admin.address, "/health")[0]
            tctx.configure(tf, tokenfix_admin_listen="")
            seen["off"] = tf.admin

        run_with(tf, body)
        assert seen["first"] != seen["second"]
        assert refused(seen["first"])
        assert seen["status"] == 200
        assert seen["off"] is None

    @pytest.mark.parametrize("value", ["9464", "localhost:port"])
    def test_a_bad_address_is_refused_at_run_time(self, tctx, value):
        tf = tctx.tf
        tctx.configure(tf, tokenfix_admin_listen="127.0.0.1:0")
        seen = {}

        def body():
            with pytest.raises(exceptions.OptionsError) as e:
                tctx.configure(tf, tokenfix_admin_listen=value)
            seen["error"] = str(e.value)
            # the option rolls back, and its listener is started again
            seen["status"] = get(tf.admin.address, "/health")[0]

        run_with(tf, body)
        assert seen["error"] == (
            "tokenfix_admin_listen: expected HOST:PORT such as 127.0.0.1:9464, "
            f"got {value!r}"
        )
        assert tctx.options.tokenfix_admin_listen == "127.0.0.1:0"
        assert seen["status"] == 200

    def test_a_bad_address_is_an_error_at_start(self, tctx, caplog):
        tctx.configure(tctx.tf, tokenfix_admin_listen="9464")
        run_with(tctx.tf, lambda: None)
        errors = [r for r in caplog.records if r.levelname == "ERROR"]
        assert [r.getMessage() for r in errors] == [
            "tokenfix_admin_listen: expected HOST:PORT such as 127.0.0.1:9464, "
            "got '9464'"
        ]
        assert errors[0].exc_info is None

    def test_never_the_proxy_port(self, tctx, caplog):
        tctx.options.update(mode=["reverse:https://tenant.auth0.com@8443"])
        tctx.configure(tctx.tf, tokenfix_admin_listen="0.0.0.0:8443")
        run_with(tctx.tf, lambda: None)
        errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert errors == [
            "tokenfix_admin_listen: port 8443 is the proxy's own port; give the "
            "admin listener a port of its own, such as 9464"
        ]
        assert tctx.tf.admin is None

    def test_never_the_listen_port_either(self, tctx):
        tf = tctx.tf
        tctx.options.update(listen_port=8081)

        def body():
            with pytest.raises(exceptions.OptionsError, match="port 8081 is the"):
                tctx.configure(tf, tokenfix_admin_listen="127.0.0.1:8081")

        run_with(tf, body)

    def test_a_taken_port_is_an_error_at_start(self, tctx, caplog):
        tf = tctx.tf
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            tctx.configure(tf, tokenfix_admin_listen=f"127.0.0.1:{port}")
            run_with(tf, lambda: None)
        errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert len(errors) == 1
        assert errors[0].startswith(
            f"tokenfix_admin_listen: cannot listen on 127.0.0.1:{port}: "
        )


def verdict(health: Health) -> tuple:
    return health.rules, health.status(), health.last_reload, health.message


class TestHealthFollowsReloads:
    def test_broken_then_fixed(self, tctx, rules_file):
        tf = tctx.tf
        assert verdict(tf.health()) == (2, "ok", "never", "")

        rules_file.write_text(BROKEN_RULES, encoding="utf-8")
        tf.reload()
        assert verdict(tf.health()) == (2, "degraded", "failed", BROKEN_MESSAGE)
        admin = AdminServer(tf.stats, tf.health)
        assert admin.health_response("health")[0] == 503
        assert admin.health_response("ready")[0] == 200

        rules_file.write_text(RULES.split("  - name: never")[0], encoding="utf-8")
        tf.reload()
        assert verdict(tf.health()) == (1, "ok", "ok", "")

    def test_no_rules_is_not_ready(self, tmp_path):
        from addon.addon import TokenFix

        tf = TokenFix()
        with taddons.context(tf) as tctx:
            tctx.configure(tf, tokenfix_rules=str(tmp_path / "missing.yaml"))
        assert not tf.health().passes("ready")

    def test_a_stalled_event_loop_fails_every_probe(self, tctx):
        tf = tctx.tf
        seen = {}

        def body():
            seen["running"] = tf.health().status()
            # as if the loop had been stuck since: the poller has not run
            tf.heartbeat -= STALL_SECONDS + 1
            seen["stuck"] = tf.health().status()

        run_with(tf, body)
        assert seen == {"running": "ok", "stuck": "stalled"}

    def test_the_poller_beats(self, tctx, monkeypatch):
        from addon import addon as addon_module

        monkeypatch.setattr(addon_module, "POLL_SECONDS", 0.01)
        tf = tctx.tf

        async def run():
            tf.running()
            try:
                started = tf.heartbeat
                await asyncio.sleep(0.1)
                return started, tf.heartbeat
            finally:
                tf.done()

        started, later = asyncio.run(run())
        assert later > started

    def test_a_good_rules_option_change_clears_the_error(self, tctx, rules_file):
        tf = tctx.tf
        rules_file.write_text(BROKEN_RULES, encoding="utf-8")
        tf.reload()
        good = rules_file.with_name("good.yaml")
        good.write_text(RULES, encoding="utf-8")
        tctx.configure(tf, tokenfix_rules=str(good))
        assert tf.health().ok


class TestNoSecret:
    def test_health_and_metrics_after_traffic_and_a_broken_edit(self, tctx, rules_file):
        tf = tctx.tf
        flow, access_token = refresh_exchange(tf)
        assert flow.marked  # the rule did rewrite it
        rules_file.write_text(BROKEN_RULES, encoding="utf-8")
        tf.reload()

        admin = AdminServer(tf.stats, tf.health)
        text = admin.health_response()[1] + admin.metrics_response()
        assert b'tokenfix_rule_changed_total{rule="refresh-expires-in"} 1.0' in text
        for secret in (RT, CLIENT_SECRET, BASIC.split()[1], access_token):
            assert secret.encode() not in text
        for part in filter(None, access_token.split(".")[1:]):
            assert part.encode() not in text
