"""The addon's client profile glue: findings in metadata, comments, marks, the
log, the counters, and the content view's registration."""

import json
import logging

import pytest
from mitmproxy import contentviews, exceptions, http
from mitmproxy.addons import view
from mitmproxy.test import taddons, tflow

from addon import contentview
from addon.addon import FLAG, MARK, TokenFix
from tests.helpers import basic_auth

RULES = """\
rules:
  - name: refresh-expires-in
    match:
      host: auth.example.com
      path: /oauth/token
      grant_type: refresh_token
    when:
      expires_in: missing
    actions:
      - default: {expires_in: 3600}
"""
ACCESS = "opaque-access-token-value-0123456789"
REFRESH = "v1.rotating-refresh-token-value"
CLIENT_SECRET = "client-secret-value"
NO_EXPIRES_IN = (
    "tokenfix: alexa error: expires_in missing: Alexa will not refresh this token"
)
NO_STORE = (
    "tokenfix: rfc6749 warning: Cache-Control: no-store missing: a cache on the "
    "way may keep the token (RFC 6749 section 5.1)"
)


def token_flow(
    grant: str = "refresh_token",
    path: str = "/oauth/token",
    *,
    status: int = 200,
    cache_control: str | None = "no-store",
    seconds: float = 0.25,
    **fields,
) -> http.HTTPFlow:
    flow = tflow.tflow(resp=True)
    req = flow.request
    req.method, req.host, req.path = "POST", "auth.example.com", path
    req.headers["Content-Type"] = "application/x-www-form-urlencoded"
    req.headers["Authorization"] = basic_auth("alexa-skill", CLIENT_SECRET)
    req.content = f"grant_type={grant}&refresh_token={REFRESH}".encode()

    resp = flow.response
    resp.status_code = status
    resp.headers["Content-Type"] = "application/json"
    if cache_control:
        resp.headers["Cache-Control"] = cache_control
    body = {"access_token": ACCESS, "refresh_token": REFRESH + "2"} | fields
    resp.content = json.dumps(body | {"token_type": "Bearer"}).encode()
    resp.timestamp_end = req.timestamp_start + seconds
    return flow


@pytest.fixture
def rules_path(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    return path


@pytest.fixture
def tokenfix(rules_path):
    addon = TokenFix()
    # with a flow view, as under mitmweb: it shows and reverts backups
    with taddons.context(addon, view.View()) as tctx:
        tctx.configure(addon, tokenfix_rules=str(rules_path), tokenfix_profile="alexa")
        addon.tctx = tctx
        yield addon
        addon.done()


def run(addon: TokenFix, flow: http.HTTPFlow) -> http.HTTPFlow:
    addon.request(flow)
    addon.response(flow)
    return flow


def findings(flow: http.HTTPFlow) -> list[tuple[str, str]]:
    return [(f["code"], f["severity"]) for f in flow.metadata["tokenfix_findings"]]


class TestOption:
    def test_the_default_profile_is_rfc6749(self):
        addon = TokenFix()
        with taddons.context(addon) as tctx:
            assert tctx.options.tokenfix_profile == "rfc6749"
            addon.done()

    def test_an_unknown_profile_is_refused_with_the_choices(self, tokenfix):
        with pytest.raises(exceptions.OptionsError) as e:
            tokenfix.tctx.configure(tokenfix, tokenfix_profile="alexia")
        assert str(e.value) == (
            "tokenfix_profile: unknown profile 'alexia' "
            "(expected one of: rfc6749, alexa, google, none)"
        )
        assert tokenfix.tctx.options.tokenfix_profile == "alexa"


class TestFlags:
    def test_a_fixed_refresh_is_marked_as_a_rewrite_and_has_no_findings(self, tokenfix):
        flow = run(tokenfix, token_flow())

        assert json.loads(flow.response.content)["expires_in"] == 3600
        assert flow.marked == MARK
        assert (
            flow.comment
            == "tokenfix: rule 'refresh-expires-in': default expires_in=3600"
        )
        assert flow.metadata["tokenfix_profile"] == "alexa"
        assert flow.metadata["tokenfix_findings"] == []
        assert flow.modified()

    def test_a_response_that_breaks_alexa_is_flagged(self, tokenfix, caplog):
        caplog.set_level(logging.INFO)
        flow = run(tokenfix, token_flow(path="/other/token"))

        assert flow.marked == FLAG == ":x:"
        assert flow.comment == NO_EXPIRES_IN
        assert flow.metadata["tokenfix_findings"] == [
            {
                "code": "alexa-expires-in",
                "severity": "error",
                "message": "expires_in missing: Alexa will not refresh this token",
            }
        ]
        assert not flow.modified()
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert warnings == [
            "tokenfix: POST /other/token: alexa: expires_in missing: Alexa will not "
            "refresh this token"
        ]

    def test_the_error_mark_outranks_the_rewrite_mark_and_both_are_commented(
        self, tokenfix, rules_path
    ):
        rules_path.write_text(
            RULES.replace("default: {expires_in: 3600}", "set: {scope: openid}"),
            encoding="utf-8",
        )
        tokenfix.reload()

        flow = run(tokenfix, token_flow())

        assert flow.marked == FLAG
        assert flow.comment.splitlines() == [
            "tokenfix: rule 'refresh-expires-in': set scope=\"openid\"",
            NO_EXPIRES_IN,
        ]
        assert flow.modified()

    def test_a_warning_is_commented_but_neither_marked_nor_logged(
        self, tokenfix, caplog
    ):
        tokenfix.tctx.configure(tokenfix, tokenfix_profile="rfc6749")
        caplog.set_level(logging.INFO)

        flow = run(tokenfix, token_flow(cache_control=None, expires_in=60))

        assert flow.marked == ""
        assert flow.comment == NO_STORE
        assert findings(flow) == [("no-store", "warning")]
        assert [r for r in caplog.records if r.levelname == "WARNING"] == []

    def test_the_duration_is_from_the_request_start_to_the_response_end(self, tokenfix):
        flow = run(tokenfix, token_flow(expires_in=60, seconds=4.75))
        assert findings(flow) == [("alexa-slow", "error")]
        assert flow.comment == (
            "tokenfix: alexa error: answered in 4.75 s: Alexa gives up after 4.5 s"
        )

    def test_the_code_exchange_without_refresh_token(self, tokenfix):
        flow = token_flow("authorization_code", expires_in=60)
        flow.response.content = json.dumps(
            {"access_token": ACCESS, "token_type": "Bearer", "expires_in": 60}
        ).encode()
        run(tokenfix, flow)
        assert findings(flow) == [("alexa-refresh-token", "error")]

    def test_a_gzipped_response_is_checked_as_the_client_decodes_it(self, tokenfix):
        flow = token_flow(path="/other/token")
        flow.response.encode("gzip")
        run(tokenfix, flow)
        assert findings(flow) == [("alexa-expires-in", "error")]


class TestNotChecked:
    def test_a_request_without_grant_type(self, tokenfix):
        flow = tflow.tflow(resp=True)
        flow.response.content = b"<html>not a token</html>"
        run(tokenfix, flow)
        assert "tokenfix_findings" not in flow.metadata
        assert (flow.marked, flow.comment) == ("", "")

    def test_profile_none(self, tokenfix):
        tokenfix.tctx.configure(tokenfix, tokenfix_profile="none")
        flow = run(tokenfix, token_flow(path="/other/token"))
        assert "tokenfix_findings" not in flow.metadata
        assert (flow.marked, flow.comment) == ("", "")

    def test_a_failed_flow(self, tokenfix):
        flow = token_flow(path="/other/token")
        flow.error = tflow.terr()
        run(tokenfix, flow)
        assert "tokenfix_findings" not in flow.metadata


class TestStats:
    def test_findings_are_counted_per_code_in_tokenfix_stats(self, tokenfix):
        run(tokenfix, token_flow(path="/other/token"))
        run(tokenfix, token_flow(path="/other/token", cache_control=None))
        run(tokenfix, token_flow())

        lines = tokenfix.show_stats().splitlines()

        assert "finding alexa-expires-in (error): 2" in lines
        assert "finding no-store (warning): 1" in lines
        assert "rule 'refresh-expires-in': matched 1, changed 1, skipped 0" in lines


class TestSecrets:
    def test_no_secret_in_comment_metadata_or_log(self, tokenfix, caplog):
        caplog.set_level(logging.DEBUG)
        flows = [
            run(tokenfix, token_flow(path="/other/token", cache_control=None)),
            run(tokenfix, token_flow(seconds=9)),
        ]
        text = caplog.text + "".join(
            f.comment + json.dumps(f.metadata, default=str) for f in flows
        )
        for secret in (ACCESS, REFRESH, CLIENT_SECRET):
            assert secret not in text


class TestContentView:
    def test_loading_registers_the_view_and_done_removes_it_on_mitmproxy_11(self):
        addon = TokenFix()
        with taddons.context(addon):
            if contentview.NEW_API:
                assert contentviews.registry["oauth token"] is addon.view
            else:
                assert contentviews.get("OAuth token") is addon.view
            addon.done()
            if not contentview.NEW_API:
                assert contentviews.get("OAuth token") is None

    def test_the_view_hides_the_operators_secret_fields(self, tokenfix):
        tokenfix.tctx.configure(tokenfix, tokenfix_secret_fields=["session_key"])
        assert "session_key" in tokenfix.view.secrets
