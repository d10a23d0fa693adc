"""End to end: a real mitmdump with tokenfix in reverse mode in front of the demo
authorization server, driven by Alexa-style and Auth0-style clients."""

import gzip
import json
import re
import subprocess
import sys
import time

import pytest

from demo.authserver import DEMO_CLIENT_SECRET
from tests.helpers import (
    LOCAL_RULE,
    LOCAL_RULES,
    REPO,
    TokenClient,
    assert_no_secrets,
    basic_auth,
    jwt_claims,
    request,
    wait_until,
    write_atomically,
)

pytestmark = pytest.mark.e2e

REFRESH_FIELDS = ["access_token", "refresh_token", "scope", "token_type"]

FIXED_RULES = """\
rules:
  - name: fixed-lifetime
    match:
      host: 127.0.0.1
      path: /oauth/token
      grant_type: refresh_token
    actions:
      - set: {expires_in: 4242}
"""

# line 7 holds the mistake
BROKEN_RULES = """\
rules:
  - name: broken-edit
    match:
      host: 127.0.0.1
      path: /oauth/token
    actions:
      - sett: {expires_in: 1}
"""
BROKEN_MESSAGE = re.compile(
    r"rules\.yaml:7: rule 'broken-edit': unknown action 'sett' \(expected one of: "
)


def lifetime_left(access_token: str) -> float:
    return jwt_claims(access_token)["exp"] - time.time()


def linked_client(base_url: str, style: str) -> tuple[TokenClient, dict]:
    client = TokenClient(base_url, style)
    resp = client.exchange_code(client.authorize())
    assert resp.status == 200, resp.body
    return client, resp.json()


class TestRefreshThroughTokenfix:
    @pytest.mark.parametrize(
        "style",
        [
            pytest.param("alexa", id="alexa-form-body-http-basic"),
            pytest.param("auth0", id="auth0-json-body-credentials-in-body"),
        ],
    )
    def test_expires_in_is_the_access_tokens_remaining_lifetime(
        self, proxy, authserver, style
    ):
        client, tokens = linked_client(proxy.url, style)
        resp = client.refresh(tokens["refresh_token"])

        assert resp.status == 200
        body = resp.json()
        assert type(body["expires_in"]) is int
        assert abs(body["expires_in"] - lifetime_left(body["access_token"])) <= 1
        assert [name for name in body if name != "expires_in"] == REFRESH_FIELDS
        assert resp.header("Content-Length") == str(len(resp.body))

        # the same refresh straight to the server: the fault tokenfix repairs
        direct = TokenClient(authserver.url, style).refresh(body["refresh_token"])
        assert direct.status == 200
        assert list(direct.json()) == REFRESH_FIELDS

    def test_one_info_line_names_the_rule_and_no_token(self, proxy):
        client, tokens = linked_client(proxy.url, "alexa")
        since = proxy.mark()
        body = client.refresh(tokens["refresh_token"]).json()

        proxy.wait_for_output(re.escape(LOCAL_RULE), since=since)
        lines = [
            line for line in proxy.output()[since:].splitlines() if LOCAL_RULE in line
        ]
        assert len(lines) == 1, lines
        assert "expires_in" in lines[0]
        assert str(body["expires_in"]) in lines[0]
        assert_no_secrets(proxy.output(), client.sent_secrets)


class TestPassThrough:
    def test_the_compliant_code_exchange_arrives_byte_for_byte(self, proxy, authserver):
        client = TokenClient(proxy.url)
        resp = client.exchange_code(client.authorize())

        sent = authserver.answers[-1]
        assert resp.status == sent.status == 200
        assert resp.body == sent.body
        for name, value in sent.headers:
            assert resp.header(name) == value
        assert resp.json()["expires_in"] == authserver.lifetime

    @pytest.mark.parametrize("style", ["alexa", "auth0"])
    def test_an_error_response_arrives_byte_for_byte(self, proxy, authserver, style):
        # matched by host, path and grant type, but a 400 is not a 2xx
        direct = TokenClient(authserver.url, style).refresh("no-such-refresh-token")
        via = TokenClient(proxy.url, style).refresh("no-such-refresh-token")

        assert direct.status == via.status == 400
        assert via.body == direct.body == b'{"error":"invalid_grant"}'
        assert without_date(via.headers) == without_date(direct.headers)


def without_date(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers if name.lower() != "date"]


class TestCannedUpstream:
    def test_a_gzip_body_is_repaired_and_stays_gzip(
        self, shared_mitmdump, canned, local_rules
    ):
        original = b'{"access_token":"opaque-at","token_type":"Bearer"}'
        canned.respond(
            "/oauth/token",
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
            body=gzip.compress(original),
        )
        proxy = shared_mitmdump(canned.url, local_rules)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": basic_auth("alexa-skill", "s3cret"),
        }
        body = "grant_type=refresh_token&refresh_token=rt-1"
        resp = request("POST", f"{proxy.url}/oauth/token", body=body, headers=headers)

        assert resp.status == 200
        assert resp.header("Content-Encoding") == "gzip"
        assert resp.header("Content-Length") == str(len(resp.body))
        repaired = json.loads(gzip.decompress(resp.body))
        assert repaired == {**json.loads(original), "expires_in": 3600}
        assert [(r.method, r.path, r.body) for r in canned.received] == [
            ("POST", "/oauth/token", body.encode())
        ]

    def test_an_unregistered_path_is_a_404(self, canned):
        resp = request("GET", f"{canned.url}/nothing-here")
        assert (resp.status, resp.body) == (
            404,
            b"no canned response for /nothing-here",
        )


class TestHotReload:
    def test_an_atomic_rename_applies_and_a_broken_edit_keeps_the_last_good_rules(
        self, start_mitmdump, authserver, tmp_path
    ):
        rules = tmp_path / "rules.yaml"
        rules.write_text(LOCAL_RULES, encoding="utf-8")
        # at debug verbosity, to show that no level logs a token
        proxy = start_mitmdump(authserver.url, rules, verbosity="debug")
        client, tokens = linked_client(proxy.url, "alexa")
        refresh_token = tokens["refresh_token"]

        def refreshed_expires_in():
            nonlocal refresh_token
            body = client.refresh(refresh_token).json()
            refresh_token = body["refresh_token"]
            return body.get("expires_in")

        assert refreshed_expires_in() in (authserver.lifetime - 1, authserver.lifetime)

        started = time.monotonic()
        write_atomically(rules, FIXED_RULES)
        wait_until(
            lambda: refreshed_expires_in() == 4242, timeout=5, what="the new rules"
        )
        assert time.monotonic() - started < 3

        since = proxy.mark()
        write_atomically(rules, BROKEN_RULES)
        proxy.wait_for_output(BROKEN_MESSAGE, since=since, timeout=5)
        assert refreshed_expires_in() == 4242

        output = proxy.output()
        assert "Traceback" not in output
        assert_no_secrets(output, client.sent_secrets)


class TestStartUp:
    def test_a_broken_rules_file_stops_mitmdump_with_its_message(
        self, start_mitmdump, tmp_path
    ):
        rules = tmp_path / "rules.yaml"
        rules.write_text(BROKEN_RULES, encoding="utf-8")
        proxy = start_mitmdump("http://127.0.0.1:9", rules, wait=False)

        assert proxy.wait_exit(timeout=10) != 0
        output = proxy.output()
        assert BROKEN_MESSAGE.search(output), output
        assert "Traceback" not in output

    def test_a_missing_rules_file_stops_mitmdump(self, start_mitmdump, tmp_path):
        rules = tmp_path / "absent.yaml"
        proxy = start_mitmdump("http://127.0.0.1:9", rules, wait=False)

        assert proxy.wait_exit(timeout=10) != 0
        output = proxy.output()
        assert "absent.yaml" in output, output
        assert "Traceback" not in output


class TestDemo:
    def test_make_demo_shows_the_repair_and_exits_zero(self):
        done = subprocess.run(
            [sys.executable, "-m", "demo"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        refresh = done.stdout.split("\nrefresh ", 1)[1]
        assert re.search(r"expires_in +\(missing\) +(\d+)\n", refresh)
        assert re.search(r"NO: no expires_in +yes, in \d+ s\n", refresh)
        # tokens are shown shortened, never whole
        assert not re.search(r"eyJ[\w-]{20,}\.[\w-]+\.", done.stdout)
        assert DEMO_CLIENT_SECRET not in done.stdout
