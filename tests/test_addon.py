"""The addon glue, through mitmproxy's own test tools (taddons, tflow, tutils)."""

import asyncio
import base64
import json
import logging
import os
import time
import zlib

import pytest
from mitmproxy import exceptions, http
from mitmproxy.addons import save, view
from mitmproxy.net import encoding
from mitmproxy.test import taddons, tflow, tutils

from addon import addon as addon_module
from addon.addon import MARK, TokenFix
from addon.jsonbody import MAX_BODY
from addon.redact import REDACTED
from tests.jwtutil import jwt_expiring

AT = "at-opaque-5d1e"
RT = "rt-presented-77aa"
RT_NEW = "rt-rotated-0b42"
CLIENT_SECRET = "cs-7Hq2-very-secret"
CODE = "code-6c2f"
BASIC = "Basic " + base64.b64encode(f"alexa-skill:{CLIENT_SECRET}".encode()).decode()
SECRETS = (AT, RT, RT_NEW, CLIENT_SECRET, CODE, BASIC.split()[1])

RULES = """\
rules:
  - name: auth0-refresh-expires-in
    match: {host: "*.auth0.com", path: /oauth/token, grant_type: refresh_token}
    when: {expires_in: missing}
    actions:
      - default: {expires_in: {from_jwt_exp: access_token, fallback: 3600}}
  - name: keep-refresh-token
    match: {host: "*.auth0.com", path: /oauth/token, grant_type: refresh_token}
    actions:
      - default: {refresh_token: {from_request: refresh_token}}
  - name: dead-grant-is-400
    match: {host: "*.auth0.com", path: /oauth/token, status: 500}
    when: {error: invalid_grant}
    actions:
      - status: 400
      - header: {Retry-After: null, Cache-Control: no-store}
  - name: github-form-answer
    match: {host: github.com, path: /login/oauth/access_token}
    actions:
      - form_to_json: true
      - request_header: {Accept: application/json}
      - coerce: {scope: space_delimited}
"""
OTHER_RULES = """\
rules:
  - name: fixed-lifetime
    match: {host: "*.auth0.com", path: /oauth/token}
    actions:
      - set: {expires_in: 60}
"""
BROKEN_RULES = """\
rules:
  - name: fixed-lifetime
    actions:
      - sett: {expires_in: 60}
"""
BROKEN_MESSAGE = (
    "rules.yaml:4: rule 'fixed-lifetime': unknown action 'sett' (expected one of: "
    "set, default, remove, rename, coerce, unwrap, header, request_header, status, "
    "form_to_json)"
)

REFRESH_FORM = f"grant_type=refresh_token&refresh_token={RT}".encode()
TOKENS = {"access_token": AT, "token_type": "Bearer"}


def compact(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def headers(**fields: str) -> http.Headers:
    return http.Headers(**fields)


def token_flow(
    body: bytes = REFRESH_FORM,
    *,
    host: str = "tenant-a.auth0.com",
    path: str = "/oauth/token",
    method: str = "POST",
    req_headers: http.Headers | None = None,
) -> http.HTTPFlow:
    req = tutils.treq(
        host=host,
        port=443,
        scheme=b"https",
        method=method.encode(),
        path=path.encode(),
        headers=req_headers
        or headers(
            content_type="application/x-www-form-urlencoded",
            authorization=BASIC,
            content_length=str(len(body)),
        ),
        content=body,
    )
    return tflow.tflow(req=req)


def token_response(
    body: bytes | dict = TOKENS, *, status: int = 200, **fields: str
) -> http.Response:
    raw = compact(body) if isinstance(body, dict) else body
    fields = {"content_type": "application/json", **fields}
    fields.setdefault("content_length", str(len(raw)))
    return tutils.tresp(
        status_code=status,
        reason=b"Internal Server Error" if status == 500 else b"OK",
        headers=headers(**fields),
        content=raw,
    )


def exchange(tf: TokenFix, flow: http.HTTPFlow, response: http.Response):
    tf.request(flow)
    flow.response = response
    tf.response(flow)
    return flow


@pytest.fixture
def rules_file(tmp_path, monkeypatch):
    # relative to the working directory, as mitmdump is usually run
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    return path


@pytest.fixture
def tctx(rules_file):
    tf = TokenFix()
    # with a flow view, as under mitmweb: it shows and reverts backups
    with taddons.context(tf, view.View()) as tctx:
        options = {"tokenfix_rules": "rules.yaml"}
        if "tokenfix_profile" in tctx.options.keys():
            # client profile findings are another module's; test_profiles has them
            options["tokenfix_profile"] = "none"
        tctx.configure(tf, **options)
        tctx.tf = tf
        yield tctx


@pytest.fixture
def tf(tctx) -> TokenFix:
    return tctx.tf


def replace_file(path, text: str) -> None:
    """An atomic rename over the rules file, as editors and ConfigMaps do."""
    tmp = path.with_name(".rules.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class TestOptions:
    def test_defaults(self):
        tf = TokenFix()
        with taddons.context(tf) as tctx:
            assert tctx.options.tokenfix_rules == "rules.yaml"
            assert tctx.options.tokenfix_secret_fields == []
            assert tctx.options.tokenfix_dry_run is False

    def test_rules_loaded_at_start(self, rules_file, caplog):
        caplog.set_level(logging.INFO)
        tf = TokenFix()
        with taddons.context(tf) as tctx:
            tctx.configure(tf, tokenfix_rules=str(rules_file))
        assert [r.name for r in tf.rules.rules] == [
            "auth0-refresh-expires-in",
            "keep-refresh-token",
            "dead-grant-is-400",
            "github-form-answer",
        ]
        assert f"tokenfix: loaded 4 rules from {rules_file}" in caplog.messages

    def test_extra_secret_fields(self, tctx, tf):
        tctx.configure(tf, tokenfix_secret_fields=["api_key"])
        assert "api_key" in tf.secrets and "access_token" in tf.secrets


class TestStartupErrors:
    def start(self, path: str):
        tf = TokenFix()
        with taddons.context(tf) as tctx:
            tctx.configure(tf, tokenfix_rules=path)
        return tf

    def test_broken_file_logged_at_error_without_traceback(
        self, tmp_path, monkeypatch, caplog
    ):
        (tmp_path / "rules.yaml").write_text(BROKEN_RULES)
        monkeypatch.chdir(tmp_path)
        tf = self.start("rules.yaml")
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert [r.getMessage() for r in errors] == [BROKEN_MESSAGE]
        assert errors[0].exc_info is None and errors[0].exc_text is None
        assert "Traceback" not in caplog.text
        assert tf.rules is None

    def test_missing_file(self, tmp_path, caplog):
        tf = self.start(str(tmp_path / "nope.yaml"))
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors == [f"{tmp_path / 'nope.yaml'}: no such rules file"]
        assert tf.rules is None

    def test_no_rules_no_rewrite(self, tmp_path):
        tf = self.start(str(tmp_path / "nope.yaml"))
        flow = exchange(tf, token_flow(), token_response())
        assert flow.response.content == compact(TOKENS)
        assert not flow.marked

    def test_a_broken_option_change_at_run_time_is_refused(self, tctx, tf, tmp_path):
        (tmp_path / "broken.yaml").write_text(BROKEN_RULES)
        before = tf.rules

        async def run():
            tf.running()
            try:
                with pytest.raises(exceptions.OptionsError, match="unknown action"):
                    tctx.configure(tf, tokenfix_rules=str(tmp_path / "broken.yaml"))
            finally:
                tf.done()

        asyncio.run(run())
        # the option rolls back, and the rules it names stay in force
        assert tctx.options.tokenfix_rules == "rules.yaml"
        assert [r.name for r in tf.rules.rules] == [r.name for r in before.rules]


class TestRewrite:
    def test_refresh_gets_expires_in(self, tf):
        flow = exchange(tf, token_flow(), token_response())
        assert flow.response.content == compact(
            {**TOKENS, "expires_in": 3600, "refresh_token": RT}
        )

    def test_from_the_access_tokens_exp(self, tf):
        tokens = {"access_token": jwt_expiring(time.time() + 120), "refresh_token": RT}
        flow = exchange(tf, token_flow(), token_response(tokens))
        assert json.loads(flow.response.content)["expires_in"] in (119, 120)

    def test_mark_and_comment(self, tf):
        flow = exchange(tf, token_flow(), token_response())
        assert flow.marked == MARK == ":wrench:"
        assert flow.comment == (
            "tokenfix: rule 'auth0-refresh-expires-in': default expires_in=3600; "
            "rule 'keep-refresh-token': default refresh_token=\"<redacted>\""
        )

    def test_a_comment_already_there_is_kept(self, tf):
        flow = token_flow()
        flow.comment = "looked at by a person"
        exchange(tf, flow, token_response())
        assert flow.comment.startswith("looked at by a person\ntokenfix: rule ")

    def test_metadata(self, tf):
        flow = exchange(tf, token_flow(), token_response())
        assert flow.metadata["tokenfix"] == [
            {
                "rule": "auth0-refresh-expires-in",
                "target": "body",
                "field": "expires_in",
                "op": "default",
                "old": None,
                "new": 3600,
            },
            {
                "rule": "keep-refresh-token",
                "target": "body",
                "field": "refresh_token",
                "op": "default",
                "old": None,
                "new": REDACTED,
            },
        ]
        # plain data that `mitmdump -w` can save
        assert (
            json.loads(json.dumps(flow.metadata["tokenfix"]))
            == (flow.metadata["tokenfix"])
        )

    def test_backup_makes_revert_work(self, tf):
        original = token_response()
        raw = original.raw_content
        flow = exchange(tf, token_flow(), original)
        assert flow.modified()
        flow.revert()
        assert flow.response.raw_content == raw
        assert flow.response.headers["content-length"] == str(len(raw))
        assert not flow.marked and not flow.modified()
        assert "tokenfix" not in flow.metadata

    def test_no_backup_where_nothing_can_revert_it(self, rules_file):
        # mitmdump without -w: no flow view and no flow file, so no copy
        tf = TokenFix()
        with taddons.context(tf) as tctx:
            tctx.configure(tf, tokenfix_rules="rules.yaml")
            flow = exchange(tf, token_flow(), token_response())
            tf.done()
        assert "expires_in" in flow.response.json()
        assert flow.marked == MARK
        assert flow._backup is None

    def test_a_flow_file_keeps_the_backup(self, rules_file, tmp_path):
        # mitmdump -w: the saved flow shows as modified when opened in mitmweb
        tf = TokenFix()
        with taddons.context(tf, save.Save()) as tctx:
            tctx.configure(
                tf,
                tokenfix_rules="rules.yaml",
                save_stream_file=str(tmp_path / "flows"),
            )
            original = token_response()
            raw = original.raw_content
            flow = exchange(tf, token_flow(), original)
            tf.done()
        assert flow.modified()
        flow.revert()
        assert flow.response.raw_content == raw

    def test_content_length_is_correct(self, tf):
        flow = exchange(tf, token_flow(), token_response())
        raw = flow.response.raw_content
        assert flow.response.headers["content-length"] == str(len(raw))
        assert len(flow.response.headers.get_all("content-length")) == 1

    @pytest.mark.parametrize("name", ["gzip", "deflate", "br", "zstd"])
    def test_encoded_response_is_re_encoded(self, tf, name):
        raw = encoding.encode(compact(TOKENS), name)
        response = token_response(raw, content_encoding=name)
        flow = exchange(tf, token_flow(), response)
        assert flow.response.headers["content-encoding"] == name
        assert flow.response.headers["content-length"] == str(
            len(flow.response.raw_content)
        )
        assert encoding.decode(flow.response.raw_content, name) == compact(
            {**TOKENS, "expires_in": 3600, "refresh_token": RT}
        )

    def test_x_gzip_keeps_its_name(self, tf):
        raw = encoding.encode(compact(TOKENS), "gzip")
        flow = exchange(
            tf, token_flow(), token_response(raw, content_encoding="x-gzip")
        )
        assert flow.response.headers["content-encoding"] == "x-gzip"
        assert json.loads(encoding.decode(flow.response.raw_content, "gzip")) == {
            **TOKENS,
            "expires_in": 3600,
            "refresh_token": RT,
        }

    def test_gzip_request_body_is_read(self, tf):
        body = zlib.compress(REFRESH_FORM)
        req_headers = headers(
            content_type="application/x-www-form-urlencoded", content_encoding="deflate"
        )
        flow = exchange(tf, token_flow(body, req_headers=req_headers), token_response())
        assert json.loads(flow.response.content)["refresh_token"] == RT

    def test_status_and_headers(self, tf):
        response = token_response(
            {"error": "invalid_grant"}, status=500, retry_after="30"
        )
        raw = response.raw_content
        flow = exchange(tf, token_flow(), response)
        assert (flow.response.status_code, flow.response.reason) == (400, "Bad Request")
        assert "retry-after" not in flow.response.headers
        assert flow.response.headers["cache-control"] == "no-store"
        assert flow.response.raw_content == raw  # the body's bytes are left alone
        assert flow.marked == MARK
        assert flow.comment == (
            "tokenfix: rule 'dead-grant-is-400': status status=400, "
            'header Retry-After=null, header Cache-Control="no-store"'
        )

    def test_form_answer_and_request_header(self, tf):
        flow = token_flow(
            f"client_id=c1&client_secret={CLIENT_SECRET}&code={CODE}".encode(),
            host="github.com",
            path="/login/oauth/access_token",
        )
        tf.request(flow)
        assert flow.request.headers["accept"] == "application/json"

        flow.response = token_response(
            f"access_token={AT}&scope=repo%2Cgist&token_type=bearer".encode(),
            content_type="application/x-www-form-urlencoded; charset=utf-8",
        )
        tf.response(flow)
        assert flow.response.headers["content-type"] == "application/json"
        assert flow.response.content == compact(
            {"access_token": AT, "scope": "repo gist", "token_type": "bearer"}
        )

    def test_one_info_line_per_rule(self, tf, caplog):
        caplog.set_level(logging.INFO)
        exchange(tf, token_flow(), token_response())
        assert [r.getMessage() for r in caplog.records if r.name == "addon.addon"] == [
            "tokenfix: POST /oauth/token: rule 'auth0-refresh-expires-in': "
            "default expires_in=3600",
            "tokenfix: POST /oauth/token: rule 'keep-refresh-token': "
            'default refresh_token="<redacted>"',
        ]

    def test_warning_names_rule_and_field(self, tf, tmp_path, caplog):
        replace_file(
            tmp_path / "rules.yaml",
            RULES.replace(
                "      - default: {refresh_token: {from_request: refresh_token}}",
                "      - coerce: {expires_in: integer}",
            ),
        )
        tf.reload()
        flow = exchange(
            tf, token_flow(), token_response({**TOKENS, "expires_in": "soon"})
        )
        assert flow.response.content == compact({**TOKENS, "expires_in": "soon"})
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert warnings == [
            "tokenfix: rule 'keep-refresh-token': expires_in: "
            'cannot coerce "soon" to integer'
        ]


class TestLeftAlone:
    def assert_untouched(self, flow, raw: bytes) -> None:
        assert flow.response.raw_content == raw
        assert not flow.modified()
        assert not flow.marked
        assert flow.comment == ""
        assert "tokenfix" not in flow.metadata

    @pytest.mark.parametrize(
        "raw, reason",
        [
            (b"<html>Bad gateway</html>", "not JSON (JSONDecodeError)"),
            (b"[1,2]", "JSON is a top-level list, not an object"),
            (b"", "empty body"),
            (
                b'{"access_token":"a","access_token":"b"}',
                "duplicate key 'access_token'",
            ),
            (b'{"expires_in":NaN}', "non-standard number NaN"),
        ],
    )
    def test_skipped_bodies(self, tf, caplog, raw, reason):
        caplog.set_level(logging.DEBUG)
        flow = exchange(tf, token_flow(), token_response(raw))
        self.assert_untouched(flow, raw)
        assert caplog.messages == [
            f"tokenfix: POST /oauth/token: response left as is: {reason}"
        ]

    @pytest.mark.parametrize(
        "raw, name, reason",
        [
            (
                b"\x1f\x8bnot really gzip",
                "gzip",
                "cannot decode gzip body: corrupt or truncated",
            ),
            (compact(TOKENS), "compress", "unsupported Content-Encoding 'compress'"),
        ],
    )
    def test_undecodable(self, tf, caplog, raw, name, reason):
        caplog.set_level(logging.DEBUG)
        flow = exchange(tf, token_flow(), token_response(raw, content_encoding=name))
        self.assert_untouched(flow, raw)
        assert caplog.messages == [
            f"tokenfix: POST /oauth/token: response left as is: {reason}"
        ]

    def test_gzip_bomb(self, tf, caplog):
        caplog.set_level(logging.DEBUG)
        raw = encoding.encode(b"\0" * (50 * 1024 * 1024), "gzip")
        started = time.perf_counter()
        flow = exchange(tf, token_flow(), token_response(raw, content_encoding="gzip"))
        assert time.perf_counter() - started < 2
        self.assert_untouched(flow, raw)
        assert caplog.messages == [
            "tokenfix: POST /oauth/token: response left as is: "
            f"decoded body larger than {MAX_BODY} bytes"
        ]

    def test_streamed(self, tf, caplog):
        caplog.set_level(logging.DEBUG)
        flow = token_flow()
        tf.request(flow)
        flow.response = token_response()
        flow.response.stream = True
        raw = flow.response.raw_content
        tf.response(flow)
        self.assert_untouched(flow, raw)
        assert caplog.messages == [
            "tokenfix: POST /oauth/token: response left as is: streamed body"
        ]

    def test_skip_lines_are_throttled(self, tf, caplog):
        caplog.set_level(logging.DEBUG)
        for _ in range(8):
            exchange(tf, token_flow(), token_response(b"not json"))
        assert len(caplog.messages) == 5
        assert tf.stats.rules["keep-refresh-token"].skipped == {
            "body skipped: not JSON": 8
        }

    def test_compliant_response_byte_for_byte(self, tf):
        raw = b'{ "access_token": "a", "expires_in": 60, "refresh_token": "r" }'
        flow = exchange(tf, token_flow(), token_response(raw))
        self.assert_untouched(flow, raw)

    @pytest.mark.parametrize(
        "flow",
        [
            pytest.param(lambda: token_flow(host="login.example.com"), id="other host"),
            pytest.param(lambda: token_flow(path="/userinfo"), id="other path"),
            pytest.param(lambda: token_flow(method="GET"), id="other method"),
            pytest.param(
                lambda: token_flow(b"grant_type=authorization_code&code=c"),
                id="other grant",
            ),
        ],
    )
    def test_requests_no_rule_matches(self, tf, flow):
        f = flow()
        tf.request(f)
        f.response = token_response()
        raw = f.response.raw_content
        tf.response(f)
        self.assert_untouched(f, raw)

    def test_a_request_no_rule_can_match_is_not_kept(self, tf):
        flow = token_flow(host="login.example.com")
        tf.request(flow)
        assert flow not in tf.pinned

    def test_error_status_with_the_refresh_rules(self, tf):
        raw = compact({"error": "invalid_request"})
        flow = exchange(tf, token_flow(), token_response(raw, status=400))
        self.assert_untouched(flow, raw)

    def test_flow_with_an_error(self, tf):
        flow = token_flow()
        tf.request(flow)
        flow.response = token_response()
        flow.error = tflow.terr()
        raw = flow.response.raw_content
        tf.response(flow)
        assert flow.response.raw_content == raw


class TestDryRun:
    @pytest.fixture(autouse=True)
    def dry_run(self, tctx, tf):
        tctx.configure(tf, tokenfix_dry_run=True)

    def test_reports_would_without_changing_the_flow(self, tf):
        flow = exchange(tf, token_flow(), token_response())
        assert flow.response.content == compact(TOKENS)
        assert not flow.marked and not flow.modified()
        assert flow.comment == (
            "tokenfix: rule 'auth0-refresh-expires-in': would default expires_in=3600; "
            "rule 'keep-refresh-token': would default refresh_token=\"<redacted>\""
        )
        assert [c["field"] for c in flow.metadata["tokenfix"]] == [
            "expires_in",
            "refresh_token",
        ]

    def test_logs_would(self, tf, caplog):
        caplog.set_level(logging.INFO)
        exchange(tf, token_flow(), token_response())
        assert (
            "tokenfix: POST /oauth/token: rule 'auth0-refresh-expires-in': "
            "would default expires_in=3600" in caplog.messages
        )

    def test_no_request_header_no_form_conversion(self, tf):
        flow = token_flow(
            b"client_id=c1&code=x", host="github.com", path="/login/oauth/access_token"
        )
        tf.request(flow)
        assert "accept" not in flow.request.headers
        flow.response = token_response(b"access_token=a&scope=x%2Cy")
        tf.response(flow)
        assert flow.response.content == b"access_token=a&scope=x%2Cy"
        assert not flow.marked


class TestRuleSetPinnedPerExchange:
    def test_reload_between_request_and_response(self, tf, rules_file):
        flow = token_flow()
        tf.request(flow)
        replace_file(rules_file, OTHER_RULES)
        tf.reload()
        assert [r.name for r in tf.rules.rules] == ["fixed-lifetime"]

        flow.response = token_response()
        tf.response(flow)
        # the old rules, both of them, and nothing of the new one
        assert flow.response.content == compact(
            {**TOKENS, "expires_in": 3600, "refresh_token": RT}
        )
        # the next exchange gets the new rules
        flow = exchange(tf, token_flow(), token_response())
        assert flow.response.content == compact({**TOKENS, "expires_in": 60})

    def test_new_rules_do_not_reach_an_exchange_that_matched_none(self, tf, rules_file):
        flow = token_flow(b"grant_type=client_credentials")
        tf.request(flow)
        replace_file(rules_file, OTHER_RULES)
        tf.reload()
        flow.response = token_response()
        tf.response(flow)
        assert flow.response.content == compact(TOKENS)


class TestReload:
    def test_command_reload(self, tctx, tf, rules_file, caplog):
        caplog.set_level(logging.INFO)
        replace_file(rules_file, OTHER_RULES)
        tctx.master.commands.execute("tokenfix.reload")
        assert [r.name for r in tf.rules.rules] == ["fixed-lifetime"]
        assert "tokenfix: reloaded 1 rule from rules.yaml" in caplog.messages
        assert tf.stats.reloads == 1

    def test_broken_file_keeps_the_last_good_rules(self, tf, rules_file, caplog):
        before = tf.rules
        replace_file(rules_file, BROKEN_RULES)
        tf.reload()
        assert tf.rules is before
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert [r.getMessage() for r in errors] == [
            f"{BROKEN_MESSAGE} (keeping the last good rules: 4 rules)"
        ]
        assert errors[0].exc_info is None
        assert tf.stats.failed_reloads == 1
        flow = exchange(tf, token_flow(), token_response())
        assert json.loads(flow.response.content)["expires_in"] == 3600

    def test_deleted_file_keeps_the_last_good_rules(self, tf, rules_file, caplog):
        before = tf.rules
        rules_file.unlink()
        tf.reload()
        assert tf.rules is before
        assert caplog.messages[-1] == (
            f"rules.yaml: no such rules file in {os.getcwd()} (--set "
            "tokenfix_rules=PATH names another) (keeping the last good rules: 4 rules)"
        )

    def test_polling_sees_an_atomic_rename(self, tf, rules_file, monkeypatch):
        monkeypatch.setattr(addon_module, "POLL_SECONDS", 0.02)

        async def run():
            tf.running()
            try:
                replace_file(rules_file, OTHER_RULES)
                for _ in range(200):
                    await asyncio.sleep(0.02)
                    if len(tf.rules) == 1:
                        break
            finally:
                tf.done()

        asyncio.run(run())
        assert [r.name for r in tf.rules.rules] == ["fixed-lifetime"]

    def test_polling_reports_a_broken_edit_once(
        self, tf, rules_file, monkeypatch, caplog
    ):
        monkeypatch.setattr(addon_module, "POLL_SECONDS", 0.02)
        before = tf.rules

        async def run():
            tf.running()
            try:
                replace_file(rules_file, BROKEN_RULES)
                await asyncio.sleep(0.3)
            finally:
                tf.done()

        asyncio.run(run())
        assert tf.rules is before
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert errors == [f"{BROKEN_MESSAGE} (keeping the last good rules: 4 rules)"]

    def test_a_loader_fault_is_reported_and_polling_goes_on(
        self, tf, rules_file, monkeypatch, caplog
    ):
        # a bug of the loader's own must not end live reloading
        monkeypatch.setattr(addon_module, "POLL_SECONDS", 0.02)
        real = addon_module.load_rules
        calls = []

        def flaky(path):
            calls.append(path)
            if len(calls) == 1:
                raise RuntimeError("loader bug")
            return real(path)

        monkeypatch.setattr(addon_module, "load_rules", flaky)

        async def run():
            tf.running()
            try:
                replace_file(rules_file, BROKEN_RULES)
                await asyncio.sleep(0.2)
                replace_file(rules_file, OTHER_RULES)
                for _ in range(200):
                    await asyncio.sleep(0.02)
                    if len(tf.rules) == 1:
                        break
            finally:
                tf.done()

        asyncio.run(run())
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert errors == [
            "rules.yaml: cannot load the rules (RuntimeError: loader bug) "
            "(keeping the last good rules: 4 rules)"
        ]
        assert [r.name for r in tf.rules.rules] == ["fixed-lifetime"]


class TestStatsCommand:
    def test_counts(self, tctx, tf, caplog):
        caplog.set_level(logging.INFO)
        exchange(tf, token_flow(), token_response())
        exchange(tf, token_flow(), token_response({**TOKENS, "expires_in": 5}))
        exchange(tf, token_flow(), token_response(b"not json"))
        text = tctx.master.commands.execute("tokenfix.stats")
        assert text.splitlines() == [
            "rule 'auth0-refresh-expires-in': matched 1, changed 1, "
            "skipped 2 (when expires_in not met: 1, body skipped: not JSON: 1)",
            "rule 'dead-grant-is-400': matched 0, changed 0, "
            "skipped 3 (status 200 not matched: 3)",
            "rule 'keep-refresh-token': matched 2, changed 2, "
            "skipped 1 (body skipped: not JSON: 1)",
            "reloads: 0, failed reloads: 0",
        ]
        assert [f"tokenfix stats: {line}" for line in text.splitlines()] == [
            m for m in caplog.messages if m.startswith("tokenfix stats:")
        ]


class TestNoSecretsAnywhere:
    @pytest.mark.parametrize("profile", ["none", "default"])
    def test_logs_marks_comments_metadata(self, tctx, tf, caplog, profile):
        if profile == "default" and "tokenfix_profile" in tctx.options.keys():
            # client profile checks comment and log on top of the rewrite
            default = tctx.options.default("tokenfix_profile")
            tctx.configure(tf, tokenfix_profile=default)
        caplog.set_level(logging.DEBUG)
        flows = [
            exchange(tf, token_flow(), token_response()),
            exchange(
                tf,
                token_flow(),
                token_response(
                    {"access_token": AT, "refresh_token": RT_NEW, "expires_in": "x"}
                ),
            ),
            exchange(tf, token_flow(), token_response(f"{AT} is no JSON".encode())),
            exchange(
                tf,
                token_flow(),
                token_response({"error": "invalid_grant", "code": CODE}, status=500),
            ),
            exchange(
                tf,
                token_flow(
                    f"client_secret={CLIENT_SECRET}&code={CODE}".encode(),
                    host="github.com",
                    path="/login/oauth/access_token",
                ),
                token_response(f"access_token={AT}&refresh_token={RT_NEW}".encode()),
            ),
        ]
        tf.show_stats()
        shown = "\n".join(
            [r.getMessage() for r in caplog.records]
            + [f"{f.marked} {f.comment} {json.dumps(f.metadata)}" for f in flows]
        )
        assert caplog.records
        for secret in SECRETS:
            assert secret not in shown, shown
