"""End to end under mitmweb: tokenfix with the alexa profile in front of the demo
authorization server, read back through mitmweb's REST API.

One mitmweb for the module walks the README's walkthrough: link an account with
no rule in force (the refresh is flagged), add the rule, refresh again (the
refresh is fixed). mitmweb 12 protects its API with a password; 11 has none.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from mitmproxy import version

from tests.helpers import (
    ADDON_SCRIPT,
    LOCAL_RULE,
    LOCAL_RULES,
    Mitmdump,
    Response,
    TokenClient,
    assert_no_secrets,
    free_port,
    request,
    wait_until,
    write_atomically,
)

pytestmark = pytest.mark.e2e

MITMWEB = Path(sys.executable).with_name("mitmweb")
NEEDS_PASSWORD = int(version.VERSION.split(".")[0]) >= 12
PASSWORD = "tokenfix-e2e-web-password"
VIEW = "OAuth%20token"
FLAG_LINE = (
    "tokenfix: POST /oauth/token: alexa: expires_in missing: Alexa will not "
    "refresh this token"
)


class Mitmweb(Mitmdump):
    """A real mitmweb with tokenfix in reverse mode in front of `upstream`."""

    def __init__(self, upstream: str, rules: Path, workdir: Path, confdir: Path):
        super().__init__(upstream, rules, workdir=workdir, confdir=confdir)
        self.log_path = workdir / "mitmweb.log"
        self.web_port = 0

    def command(self) -> list[str]:
        sets = [
            f"confdir={self.confdir}",
            "web_open_browser=false",
            f"tokenfix_rules={self.rules}",
            "tokenfix_profile=alexa",
        ]
        if NEEDS_PASSWORD:
            sets.append(f"web_password={PASSWORD}")
        return [
            str(MITMWEB),
            *("--mode", f"reverse:{self.upstream}"),
            *("--listen-host", "127.0.0.1", "--listen-port", str(self.port)),
            *("--web-host", "127.0.0.1", "--web-port", str(self.web_port)),
            *("-s", str(ADDON_SCRIPT)),
            *(arg for option in sets for arg in ("--set", option)),
        ]

    def _spawn(self) -> None:
        self.web_port = free_port()
        super()._spawn()

    def wait_ready(self, timeout: float) -> None:
        # the proxy port first, then the REST API the tests read
        super().wait_ready(timeout)
        wait_until(self._api_ready, timeout=timeout, what="mitmweb's REST API")

    def _api_ready(self) -> bool:
        try:
            return self.api("/flows") is not None
        except OSError:
            return False

    def api(self, path: str):
        headers = {"Authorization": f"Bearer {PASSWORD}"} if NEEDS_PASSWORD else {}
        url = f"http://127.0.0.1:{self.web_port}{path}"
        req = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    def post(self, path: str) -> int:
        """POST with an XSRF token of our own making: tornado compares the
        header with the cookie (11 and 12 name the cookie differently)."""
        headers = {
            "Cookie": "_xsrf=tokenfix; _mitmproxy_xsrf=tokenfix",
            "X-XSRFToken": "tokenfix",
        }
        if NEEDS_PASSWORD:
            headers["Authorization"] = f"Bearer {PASSWORD}"
        url = f"http://127.0.0.1:{self.web_port}{path}"
        req = urllib.request.Request(url, data=b"", method="POST", headers=headers)
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status

    def view_text(self, flow_id: str, message: str, view: str = VIEW) -> str:
        """The text of a content view, from 11's lines or 12's text."""
        answer = self.api(f"/flows/{flow_id}/{message}/content/{view}.json")
        if "text" in answer:
            return answer["text"]
        lines = ("".join(t for _, t in line) for line in answer["lines"])
        return "\n".join(line.rstrip() for line in lines)

    def view_name(self, flow_id: str, message: str) -> str:
        """Which view mitmweb chooses by itself."""
        answer = self.api(f"/flows/{flow_id}/{message}/content/auto.json")
        return answer.get("view_name") or answer["description"]


@dataclass
class Walkthrough:
    web: Mitmweb
    client: TokenClient
    flows: dict[str, dict] = field(default_factory=dict)
    answers: dict[str, Response] = field(default_factory=dict)


@pytest.fixture(scope="module")
def walk(authserver, mitmproxy_confdir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("mitmweb")
    rules = workdir / "rules.yaml"
    rules.write_text("rules: []\n", encoding="utf-8")
    web = Mitmweb(authserver.url, rules, workdir, mitmproxy_confdir).start()
    try:
        yield _walk(web)
    finally:
        web.stop()


def _walk(web: Mitmweb) -> Walkthrough:
    client = TokenClient(web.url)
    walk = Walkthrough(web, client)
    unrelated = request("GET", f"{web.url}/.well-known/openid-configuration")
    assert unrelated.status == 404

    walk.answers["code"] = client.exchange_code(client.authorize())
    tokens = walk.answers["code"].json()
    walk.answers["flagged"] = client.refresh(tokens["refresh_token"])
    tokens = walk.answers["flagged"].json()

    # the fix: the rule goes live without a restart
    write_atomically(web.rules, LOCAL_RULES)
    wait_until(lambda: "reloaded 1 rule" in web.output(), timeout=10, what="the reload")
    walk.answers["fixed"] = client.refresh(tokens["refresh_token"])

    flows = web.api("/flows")
    by_path = {f["request"]["path"].split("?")[0]: f for f in flows}
    walk.flows["unrelated"] = by_path["/.well-known/openid-configuration"]
    walk.flows["authorize"] = by_path["/authorize"]
    token_flows = [f for f in flows if f["request"]["path"] == "/oauth/token"]
    assert len(token_flows) == 3, [f["request"]["path"] for f in flows]
    for role, flow in zip(("code", "flagged", "fixed"), token_flows, strict=True):
        walk.flows[role] = flow
    return walk


class TestFlows:
    def test_the_fixed_refresh_is_marked_commented_and_revertible(self, walk):
        flow = walk.flows["fixed"]
        expires_in = walk.answers["fixed"].json()["expires_in"]

        assert flow["marked"] == "\N{WRENCH}"
        assert flow["comment"] == (
            f"tokenfix: rule '{LOCAL_RULE}': default expires_in={expires_in}"
        )
        assert flow["modified"] is True

    def test_the_refresh_that_breaks_alexa_is_flagged(self, walk):
        flow = walk.flows["flagged"]

        assert "expires_in" not in walk.answers["flagged"].json()
        assert flow["marked"] == "\N{CROSS MARK}"
        assert flow["comment"] == (
            "tokenfix: alexa error: expires_in missing: Alexa will not refresh "
            "this token"
        )
        assert flow["modified"] is False

    def test_the_compliant_code_exchange_is_neither(self, walk):
        flow = walk.flows["code"]
        assert (flow["marked"], flow["comment"], flow["modified"]) == ("", "", False)

    @pytest.mark.parametrize("role", ["unrelated", "authorize"])
    def test_an_unrelated_flow_is_neither(self, walk, role):
        flow = walk.flows[role]
        assert (flow["marked"], flow["comment"], flow["modified"]) == ("", "", False)

    def test_one_warning_line_for_the_flagged_exchange(self, walk):
        lines = [line for line in walk.web.output().splitlines() if "alexa:" in line]
        assert len(lines) == 1, lines
        assert lines[0].endswith(FLAG_LINE)


class TestTokenView:
    def test_mitmweb_chooses_it_for_token_flows_only(self, walk):
        assert walk.web.view_name(walk.flows["fixed"]["id"], "response") == (
            "OAuth token"
        )
        assert walk.web.view_name(walk.flows["code"]["id"], "request") == (
            "OAuth token"
        )
        assert walk.web.view_name(walk.flows["unrelated"]["id"], "response") == "JSON"

    def test_the_fixed_refresh_shows_the_change_and_no_findings(self, walk):
        lines = walk.web.view_text(walk.flows["fixed"]["id"], "response").splitlines()
        expires_in = walk.answers["fixed"].json()["expires_in"]

        assert lines[:3] == [
            "OAuth token request: POST /oauth/token",
            "grant type         refresh_token",
            'client             "alexa-skill", authenticated with HTTP Basic '
            "(client_secret_basic)",
        ]
        assert f"  expires_in       {expires_in}" in lines
        assert "    signature      not shown" in lines
        start = lines.index("client profile alexa: no findings")
        assert lines[start : start + 8] == [
            "client profile alexa: no findings",
            "",
            "tokenfix changes",
            f"  rule '{LOCAL_RULE}'",
            "    default expires_in",
            "      before       (missing or null)",
            f"      after        {expires_in}",
            "",
        ]

    def test_the_flagged_refresh_shows_the_finding(self, walk):
        lines = walk.web.view_text(walk.flows["flagged"]["id"], "response")
        assert lines.splitlines()[6:11] == [
            "client profile alexa: 1 error, 0 warnings",
            "  error    expires_in missing: Alexa will not refresh this token",
            "",
            "tokenfix changes: none",
            "",
        ]

    def test_the_code_exchange_shows_the_id_token_decoded(self, walk):
        lines = walk.web.view_text(walk.flows["code"]["id"], "response").splitlines()
        start = lines.index(next(x for x in lines if x.startswith("  id_token ")))
        assert lines[start + 3] == "      iss          " + json.dumps(
            f"{walk.web.upstream}/"
        )
        assert lines[start + 1 : start + 3] == [
            '    header         {"alg": "HS256", "typ": "JWT", "kid": "tokenfix-demo"}',
            "    claims",
        ]


class TestSecrets:
    def test_no_secret_in_any_mark_comment_view_or_log_line(self, walk):
        texts = [walk.web.output()]
        for flow in walk.web.api("/flows"):
            texts += [flow["marked"], flow["comment"]]
        for role in ("code", "flagged", "fixed"):
            for message in ("request", "response"):
                texts.append(walk.web.view_text(walk.flows[role]["id"], message))

        assert_no_secrets("\n".join(texts), walk.client.sent_secrets)
        assert len(walk.client.sent_secrets) >= 8


class TestRevert:
    """Last: it changes the module's mitmweb state."""

    def test_revert_restores_what_the_server_sent(self, walk):
        flow_id = walk.flows["fixed"]["id"]

        assert walk.web.post(f"/flows/{flow_id}/revert") == 200

        flow = next(f for f in walk.web.api("/flows") if f["id"] == flow_id)
        assert (flow["marked"], flow["comment"], flow["modified"]) == ("", "", False)
        lines = walk.web.view_text(flow_id, "response").splitlines()
        assert not [line for line in lines if "expires_in" in line]
        assert "tokenfix changes: none" in lines
