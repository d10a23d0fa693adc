"""demo/alexa.py: the Alexa-style client the README's walkthrough runs."""

import re
import subprocess
import sys

from demo.alexa import link_account, refresh_plan, shorten
from demo.authserver import DEMO_CLIENT_SECRET
from tests.helpers import REPO, jwt_claims


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "demo.alexa", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )


class TestLinkAccount:
    def test_straight_to_the_server_the_refresh_has_no_expires_in(self, authserver):
        linking = link_account(authserver.url, f"{authserver.url}/oauth/token")

        assert linking.code_exchange.status == 200
        assert isinstance(linking.code_exchange.body["expires_in"], int)
        assert linking.refresh.status == 200
        assert "expires_in" not in linking.refresh.body
        assert refresh_plan(linking.refresh) == "NO: no expires_in"

    def test_through_tokenfix_the_refresh_can_be_scheduled(self, authserver, proxy):
        linking = link_account(authserver.url, f"{proxy.url}/oauth/token")

        body = linking.refresh.body
        left = jwt_claims(body["access_token"])["exp"] - linking.refresh.received_at
        assert abs(body["expires_in"] - left) <= 1
        assert refresh_plan(linking.refresh) == f"yes, in {body['expires_in']} s"


class TestShorten:
    def test_a_token_is_cut_to_a_prefix_and_its_length(self):
        token = "eyJhbGciOi.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
        assert shorten("access_token", token) == f"eyJhbG… (JWT, {len(token)} chars)"

    def test_other_values_show_as_json(self):
        assert shorten("expires_in", 300) == "300"
        assert shorten("expires_in", None) == "(missing)"


class TestCommand:
    def test_it_plays_alexa_through_the_proxy_without_showing_secrets(
        self, authserver, proxy
    ):
        done = run_cli(
            "--server",
            authserver.url,
            "--token-url",
            f"{proxy.url}/oauth/token",
            "--refreshes",
            "2",
        )

        assert done.returncode == 0, done.stderr
        sections = done.stdout.split("\n\n")
        assert sections[0].startswith("code exchange: HTTP 200")
        for refresh in sections[1:3]:
            assert re.search(r"refresh \d: HTTP 200", refresh)
            assert re.search(r"Alexa schedules a refresh\? +yes, in \d+ s", refresh)
        assert not re.search(r"eyJ[\w-]{20,}\.[\w-]+\.", done.stdout)
        assert DEMO_CLIENT_SECRET not in done.stdout + done.stderr

    def test_straight_to_the_server_it_says_alexa_cannot_refresh(self, authserver):
        done = run_cli(
            "--server", authserver.url, "--token-url", f"{authserver.url}/oauth/token"
        )

        assert done.returncode == 0, done.stderr
        refresh = done.stdout.split("refresh 1: ", 1)[1]
        assert not re.search(r"^  expires_in ", refresh, re.MULTILINE)
        assert re.search(r"Alexa schedules a refresh\? +NO: no expires_in", refresh)

    def test_an_unreachable_server_is_one_line_and_exit_1(self):
        done = run_cli(
            "--server", "http://127.0.0.1:9", "--token-url", "http://127.0.0.1:9/t"
        )

        assert done.returncode == 1
        assert done.stderr.startswith("demo.alexa: ")
        assert "Traceback" not in done.stderr
