"""The `tokenfix` command: `check` on rules files, `try` on YAML exchanges,
mitmproxy flow files and HAR files, with secrets never shown."""

import base64
import gzip
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy import io as mio
from mitmproxy.addons.savehar import SaveHar
from mitmproxy.test import taddons, tflow, tutils

from addon import cli
from addon.offline import unsigned_jwt
from tests.helpers import REPO, assert_no_secrets

RULES = """\
rules:
  - name: refresh-lifetime
    match:
      host: "*.auth0.com"
      path: /oauth/token
      grant_type: refresh_token
    when: {expires_in: missing}
    actions:
      - default: {expires_in: {from_jwt_exp: access_token, fallback: 3600}}
    examples:
      - name: an opaque token gets the fallback
        request:
          url: https://acme.auth0.com/oauth/token
          body: grant_type=refresh_token&refresh_token=<RT>
        response:
          body: '{"access_token":"<AT>","token_type":"Bearer"}'
        expect:
          body: {access_token: <AT>, token_type: Bearer, expires_in: 3600}
      - name: a JWT counts
        request:
          url: https://acme.auth0.com/oauth/token
          body: grant_type=refresh_token&refresh_token=<RT>
        response:
          body: '{"access_token":"<JWT exp=+600>","token_type":"Bearer"}'
        expect:
          fields: {expires_in: {gte: 598, lte: 600}}
  - name: dead-grant-is-400
    match: {host: "*.auth0.com", path: /oauth/token, status: 5xx}
    when: {error: invalid_grant}
    actions:
      - status: 400
  - name: json-type
    match: {host: "*.auth0.com", path: /oauth/token}
    when: {token_type: present}
    actions:
      - header: {Content-Type: application/json}
"""
BROKEN = [
    pytest.param(
        "rules:\n  - name: fixed\n    match: {host: a}\n    actions:\n"
        "      - sett: {expires_in: 1}\n",
        "{path}:5: rule 'fixed': unknown action 'sett' (expected one of: set, "
        "default, remove, rename, coerce, unwrap, header, request_header, status, "
        "form_to_json)",
        id="unknown-action",
    ),
    pytest.param(
        "rules:\n  - name: a\n    name: b\n    actions: [{remove: x}]\n",
        "{path}:3: rule 'a': duplicate key 'name' (first given on line 2)",
        id="duplicate-key",
    ),
    pytest.param(
        "rules:\n  - name: a\n    actions: [{remove: x}]\n"
        "  - name: a\n    actions: [{remove: y}]\n",
        "{path}:4: rule 'a': name: duplicate rule name (first used on line 2)",
        id="duplicate-name",
    ),
    pytest.param(
        "rules: [\n",
        "{path}:2: invalid YAML: expected the node content, but found '<stream end>'"
        " (while parsing a flow node)",
        id="invalid-yaml",
    ),
]

BASIC = "Basic " + base64.b64encode(b"lamp-skill:cs-lamp-cli-77").decode()
SECRETS = {
    "rt-cli-refresh-1",
    "at-cli-opaque-2",
    "cs-lamp-cli-77",
    "code-cli-3",
    BASIC.split()[1],
}


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def run_try(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    flags = [a for a in args if a.startswith("--")]
    paths = [a for a in args if not a.startswith("--")]
    rc = cli.try_flows(paths[0], paths[1:], "--fail-on-change" in flags, [], out=out)
    return rc, out.getvalue()


@pytest.fixture
def rules(tmp_path) -> str:
    return write(tmp_path, "rules.yaml", RULES)


class TestCheck:
    def test_a_valid_file_passes_with_a_summary(self, rules):
        out = io.StringIO()

        assert cli.check(rules, out=out) == 0
        assert out.getvalue() == (
            f"{rules}: 3 rules valid; 2 examples: 2 passed, 0 failed\n"
        )

    @pytest.mark.parametrize(("text", "message"), BROKEN)
    def test_a_broken_file_gets_the_loaders_message(self, tmp_path, text, message):
        path = write(tmp_path, "rules.yaml", text)
        out = io.StringIO()

        assert cli.check(path, out=out) == 1
        assert out.getvalue() == message.format(path=path) + "\n"

    def test_a_missing_file(self, tmp_path):
        out = io.StringIO()
        path = str(tmp_path / "nope.yaml")

        assert cli.check(path, out=out) == 1
        assert out.getvalue() == f"{path}: no such rules file\n"

    def test_a_failing_example_shows_expected_and_actual(self, tmp_path):
        text = RULES.replace("expires_in: 3600}", "expires_in: 7200}")
        path = write(tmp_path, "rules.yaml", text)
        out = io.StringIO()

        assert cli.check(path, out=out) == 1
        assert out.getvalue().splitlines() == [
            f"{path}:11: rule 'refresh-lifetime': an opaque token gets the "
            "fallback: FAILED",
            "    body: expected {'access_token': '<redacted>', 'token_type': "
            "'Bearer', 'expires_in': 7200}, got {'access_token': '<redacted>', "
            "'token_type': 'Bearer', 'expires_in': 3600}",
            f"{path}: 3 rules valid; 2 examples: 1 passed, 1 failed",
        ]

    def test_a_failing_field_names_it(self, tmp_path):
        text = RULES.replace("{gte: 598, lte: 600}", "{gte: 700}")
        path = write(tmp_path, "rules.yaml", text)
        out = io.StringIO()

        assert cli.check(path, out=out) == 1
        assert out.getvalue().splitlines()[1] == (
            "    expires_in: expected {'gte': 700}, got 599"
        )

    def test_an_example_that_cannot_run_says_why(self, tmp_path):
        text = RULES.replace(
            "url: https://acme.auth0.com/oauth/token\n          body: grant_type"
            "=refresh_token&refresh_token=<RT>\n        response:\n          body: "
            '\'{"access_token":"<AT>"',
            "url: /oauth/token\n        response:\n          body: "
            '\'{"access_token":"<AT>"',
            1,
        )
        path = write(tmp_path, "rules.yaml", text)
        out = io.StringIO()

        assert cli.check(path, out=out) == 1
        assert out.getvalue().splitlines()[1] == (
            "    request.url: expected an absolute URL, got '/oauth/token'"
        )

    def test_main_prints_to_the_current_stdout(self, rules, capsys):
        assert cli.main(["check", rules]) == 0
        assert capsys.readouterr().out.endswith("2 passed, 0 failed\n")


def yaml_exchanges(tmp_path: Path) -> str:
    return write(
        tmp_path,
        "exchanges.yaml",
        f"""\
exchanges:
  - name: refresh without a lifetime
    request:
      url: https://acme.auth0.com/oauth/token?client_secret=cs-lamp-cli-77
      headers: {{Authorization: "{BASIC}"}}
      body: grant_type=refresh_token&refresh_token=rt-cli-refresh-1
    response:
      headers: {{Content-Type: text/plain}}
      body: '{{"access_token":"at-cli-opaque-2","token_type":"Bearer"}}'
  - name: a dead refresh token
    request:
      url: https://acme.auth0.com/oauth/token
      body: grant_type=refresh_token&refresh_token=rt-cli-refresh-1
    response:
      status: 500
      headers: {{Content-Type: application/json}}
      body: '{{"error":"invalid_grant"}}'
  - name: a compliant code exchange
    request:
      url: https://acme.auth0.com/oauth/token
      body: grant_type=authorization_code&code=code-cli-3
    response:
      headers: {{Content-Type: application/json}}
      body: '{{"expires_in":60,"access_token":"at-cli-opaque-2"}}'
""",
    )


class TestTryOnYamlExchanges:
    def test_what_would_change(self, rules, tmp_path):
        rc, out = run_try(rules, yaml_exchanges(tmp_path))

        assert rc == 0
        assert out.splitlines() == [
            "== 1 [refresh without a lifetime]: POST https://acme.auth0.com/oauth/"
            "token?client_secret=<redacted> (grant_type refresh_token) -> 200",
            "   rules matched: refresh-lifetime, dead-grant-is-400, json-type",
            "   rule 'dead-grant-is-400' skipped: status 200 not matched",
            "   header Content-Type: 'text/plain' -> 'application/json'",
            "   --- response body (received)",
            "   +++ response body (after tokenfix)",
            "   @@ -1,4 +1,5 @@",
            "    {",
            '      "access_token": "<redacted>",',
            '   -  "token_type": "Bearer"',
            '   +  "token_type": "Bearer",',
            '   +  "expires_in": 3600',
            "    }",
            "== 2 [a dead refresh token]: POST https://acme.auth0.com/oauth/token "
            "(grant_type refresh_token) -> 500",
            "   rules matched: refresh-lifetime, dead-grant-is-400, json-type",
            "   rule 'refresh-lifetime' skipped: status 500 not matched",
            # the rule before it has made the status 400 already
            "   rule 'json-type' skipped: status 400 not matched",
            "   status: 500 -> 400",
            "== 3 [a compliant code exchange]: POST https://acme.auth0.com/oauth/"
            "token (grant_type authorization_code) -> 200",
            "   rules matched: dead-grant-is-400, json-type",
            "   rule 'dead-grant-is-400' skipped: status 200 not matched",
            "   rule 'json-type' skipped: when token_type not met",
            "   no change",
            "3 exchanges, 2 would change",
        ]

    def test_no_secret_is_shown(self, rules, tmp_path):
        _, out = run_try(rules, yaml_exchanges(tmp_path))

        assert_no_secrets(out, SECRETS)
        assert out.count("<redacted>") == 2

    def test_fail_on_change_exits_1_when_anything_would_change(self, rules, tmp_path):
        rc, out = run_try("--fail-on-change", rules, yaml_exchanges(tmp_path))

        assert rc == 1
        assert out.endswith("3 exchanges, 2 would change\n")

    def test_fail_on_change_exits_0_when_nothing_would(self, rules):
        golden = str(REPO / "tests" / "cases" / "14-compliant-refresh.yaml")

        rc, out = run_try("--fail-on-change", rules, golden)

        assert (rc, out.splitlines()[-1]) == (0, "1 exchanges, 0 would change")

    def test_more_secret_fields_may_be_named(self, rules, tmp_path):
        path = write(
            tmp_path,
            "x.yaml",
            "request: {url: 'https://acme.auth0.com/oauth/token', "
            "body: grant_type=refresh_token}\n"
            'response: {body: \'{"session":"sess-cli-9","token_type":"x"}\'}\n',
        )
        out = io.StringIO()

        cli.try_flows(rules, [path], False, ["session"], out=out)

        assert_no_secrets(out.getvalue(), {"sess-cli-9"})
        assert '"session": "<redacted>"' in out.getvalue()

    def test_secrets_inside_lists_are_redacted(self, rules, tmp_path):
        path = write(
            tmp_path,
            "x.yaml",
            "request: {url: 'https://acme.auth0.com/oauth/token', "
            "body: grant_type=refresh_token}\n"
            'response: {body: \'{"tokens":[{"refresh_token":"rt-list-4"}],'
            '"token_type":"x"}\'}\n',
        )

        _, out = run_try(rules, path)

        assert_no_secrets(out, {"rt-list-4"})
        assert '"refresh_token": "<redacted>"' in out

    def test_a_form_answer_is_labelled_as_one(self, tmp_path):
        recipe = str(REPO / "recipes" / "form-encoded-response.yaml")
        case = str(REPO / "tests" / "cases" / "13-github-form-answer.yaml")

        _, out = run_try(recipe, case)

        assert "   --- response body (received as a form, shown as JSON)" in out
        assert "gho_deploybotX91" not in out

    def test_main_parses_the_options(self, rules, tmp_path, capsys):
        path = write(
            tmp_path,
            "x.yaml",
            "request: {url: 'https://acme.auth0.com/oauth/token', "
            "body: grant_type=refresh_token}\n"
            'response: {body: \'{"session":"sess-cli-9","token_type":"x"}\'}\n',
        )

        rc = cli.main(
            ["try", "--fail-on-change", "--secret-field", "session", rules, path]
        )

        out = capsys.readouterr().out
        assert rc == 1
        assert out.endswith("1 exchanges, 1 would change\n")
        assert_no_secrets(out, {"sess-cli-9"})

    def test_the_console_script(self, rules, tmp_path):
        script = Path(sys.executable).with_name("tokenfix")
        command = (
            [str(script)] if script.exists() else [sys.executable, "-m", "addon.cli"]
        )

        done = subprocess.run(
            [*command, "try", "--fail-on-change", rules, yaml_exchanges(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )

        assert (done.returncode, done.stderr) == (1, "")
        assert done.stdout.endswith("3 exchanges, 2 would change\n")
        assert_no_secrets(done.stdout, SECRETS)


def token_flow(
    *,
    host: str = "acme.auth0.com",
    request_body: bytes = b"grant_type=refresh_token&refresh_token=rt-cli-refresh-1",
    status: int = 200,
    body: bytes = b'{"access_token":"at-cli-opaque-2","token_type":"Bearer"}',
    headers: tuple = ((b"content-type", b"application/json"),),
) -> http.HTTPFlow:
    request = tutils.treq(
        method=b"POST",
        scheme=b"https",
        host=host,
        port=443,
        authority=b"",
        path=b"/oauth/token",
        headers=http.Headers(
            [
                (b"content-type", b"application/x-www-form-urlencoded"),
                (b"authorization", BASIC.encode()),
            ]
        ),
        content=request_body,
    )
    response = tutils.tresp(
        status_code=status, headers=http.Headers(list(headers)), content=body
    )
    return tflow.tflow(req=request, resp=response)


def write_flows(path: Path, flows) -> str:
    with open(path, "wb") as f:
        writer = mio.FlowWriter(f)
        for flow in flows:
            writer.add(flow)
    return str(path)


class TestTryOnFlowFiles:
    def test_flows_recorded_by_mitmdump(self, rules, tmp_path):
        jwt = unsigned_jwt({"exp": int(time.time()) + 900})
        flows = [
            token_flow(
                body=f'{{"access_token":"{jwt}","token_type":"Bearer"}}'.encode()
            ),
            token_flow(status=503, body=b'{"error":"invalid_grant"}'),
            token_flow(host="other.example.com"),
        ]
        path = write_flows(tmp_path / "linking.flows", flows)

        rc, out = run_try("--fail-on-change", rules, path)

        assert rc == 1
        lines = out.splitlines()
        assert lines[0] == (
            f"== 1 [{flows[0].id[:8]}]: POST https://acme.auth0.com/oauth/token "
            "(grant_type refresh_token) -> 200"
        )
        assert "   @@ -1,4 +1,5 @@" in lines
        assert any(line.startswith('   +  "expires_in": 89') for line in lines)
        assert "   status: 503 -> 400" in lines
        assert lines[-3:] == [
            "   rules matched: none",
            "   no change",
            "3 exchanges, 2 would change",
        ]
        assert_no_secrets(out, SECRETS | {jwt, jwt.split(".")[1]})

    def test_an_encoded_answer_is_shown_decoded(self, rules, tmp_path):
        body = b'{"access_token":"at-cli-opaque-2","token_type":"Bearer"}'
        headers = ((b"content-type", b"text/plain"), (b"content-encoding", b"gzip"))
        flow = token_flow(body=gzip.compress(body), headers=headers)
        path = write_flows(tmp_path / "gz.flows", [flow])

        _, out = run_try(rules, path)

        assert '   +  "expires_in": 3600' in out.splitlines()
        assert "   header Content-Type: 'text/plain' -> 'application/json'" in out

    def test_a_flow_tokenfix_rewrote_is_tried_on_what_the_server_sent(
        self, rules, tmp_path
    ):
        # saved by `mitmdump -w` behind tokenfix: the backup holds the original
        flow = token_flow()
        flow.backup()
        flow.response.content = b'{"access_token":"at-cli-opaque-2","expires_in":1}'
        flow.metadata["tokenfix"] = [{"rule": "r", "field": "expires_in"}]
        kept = token_flow()
        kept.response.content = b'{"access_token":"at-cli-opaque-2","expires_in":9}'
        kept.metadata["tokenfix"] = [{"rule": "r", "field": "expires_in"}]
        path = write_flows(tmp_path / "rewritten.flows", [flow, kept])

        _, out = run_try(rules, path)

        first, second = out.split("\n== 2")
        assert '   +  "expires_in": 3600' in first.splitlines()
        assert second.startswith(
            f" [{kept.id[:8]} (rewritten by tokenfix, and the original was not "
            "saved)]: POST"
        )
        assert "   no change" in second.splitlines()

    def test_a_secret_quoted_under_another_name_is_masked(self, rules, tmp_path):
        # the server quotes the refresh token the client sent, under a name
        # that is no secret field
        rt = "rt-cli-refresh-1"
        body = f'{{"access_token":"at-cli-opaque-2","note":"issued for {rt}"}}'
        flow = token_flow(body=body.encode())
        path = write_flows(tmp_path / "quoted.flows", [flow])

        _, out = run_try(rules, path)

        assert '   +  "note": "issued for <redacted>",' in out.splitlines()
        assert rt not in out

    def test_flows_without_an_http_answer_are_passed_over(self, rules, tmp_path):
        flows = [tflow.ttcpflow(), tflow.tflow(resp=False), token_flow()]
        path = write_flows(tmp_path / "mixed.flows", flows)

        rc, out = run_try(rules, path)

        assert (rc, out.splitlines()[-1]) == (0, "1 exchanges, 1 would change")

    def test_a_file_cut_short_gives_its_whole_flows(self, rules, tmp_path, capsys):
        # mitmdump killed while it wrote the second flow
        first = write_flows(tmp_path / "one.flows", [token_flow()])
        whole = write_flows(tmp_path / "two.flows", [token_flow(), token_flow()])
        cut = tmp_path / "cut.flows"
        size = Path(first).stat().st_size
        cut.write_bytes(Path(whole).read_bytes()[: size + 100])

        rc, out = run_try(rules, str(cut))

        assert (rc, out.splitlines()[-1]) == (0, "1 exchanges, 1 would change")
        assert capsys.readouterr().err.startswith(f"{cut}: cut short after 1 flows (")

    def test_an_empty_flow_file_has_no_exchanges(self, rules, tmp_path):
        path = write_flows(tmp_path / "empty.flows", [])

        assert run_try("--fail-on-change", rules, path) == (
            0,
            "0 exchanges, 0 would change\n",
        )


def har_entry(url: str, request_body: str, status: int, content: dict) -> dict:
    return {
        "startedDateTime": "2024-05-01T10:00:00.000Z",
        "time": 42,
        "request": {
            "method": "POST",
            "url": url,
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": [
                {"name": "Content-Type", "value": "application/x-www-form-urlencoded"},
                {"name": "Authorization", "value": BASIC},
            ],
            "queryString": [],
            "postData": {
                "mimeType": "application/x-www-form-urlencoded",
                "text": request_body,
            },
            "headersSize": -1,
            "bodySize": len(request_body),
        },
        "response": {
            "status": status,
            "statusText": "",
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": [{"name": "Content-Type", "value": "application/json"}],
            "content": {"mimeType": "application/json", **content},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
        },
        "cache": {},
        "timings": {"send": 1, "wait": 40, "receive": 1},
    }


def har(entries: list[dict]) -> str:
    creator = {"name": "a browser's network tab", "version": "1"}
    return json.dumps(
        {"log": {"version": "1.2", "creator": creator, "entries": entries}}
    )


class TestTryOnHarFiles:
    URL = "https://acme.auth0.com/oauth/token"
    REFRESH = "grant_type=refresh_token&refresh_token=rt-cli-refresh-1"
    TOKEN = '{"access_token":"at-cli-opaque-2","token_type":"Bearer"}'

    def test_a_har_written_by_hand(self, rules, tmp_path):
        encoded = base64.b64encode(b'{"error":"invalid_grant"}').decode()
        path = write(
            tmp_path,
            "browser.har",
            har(
                [
                    har_entry(self.URL, self.REFRESH, 200, {"text": self.TOKEN}),
                    har_entry(
                        self.URL,
                        self.REFRESH,
                        500,
                        {"text": encoded, "encoding": "base64"},
                    ),
                ]
            ),
        )

        rc, out = run_try("--fail-on-change", rules, path)

        assert rc == 1
        assert '   +  "expires_in": 3600' in out.splitlines()
        assert "   status: 500 -> 400" in out.splitlines()
        assert out.endswith("2 exchanges, 2 would change\n")
        assert_no_secrets(out, SECRETS)

    def test_a_har_saved_by_mitmproxy(self, rules, tmp_path):
        flows = [
            token_flow(),
            token_flow(request_body=b"grant_type=authorization_code&code=code-cli-3"),
        ]
        saver = SaveHar()
        with taddons.context(saver):
            document = saver.make_har(flows)
        path = write(tmp_path, "saved.har", json.dumps(document))

        rc, out = run_try(rules, path)

        assert rc == 0
        assert "(grant_type refresh_token) -> 200" in out
        assert "(grant_type authorization_code) -> 200" in out
        assert out.endswith("2 exchanges, 1 would change\n")
        assert_no_secrets(out, SECRETS)


class TestTryOnUnreadableFiles:
    NOT_A_FLOW_FILE = "not a flow file written by mitmdump -w, nor a HAR file"

    @pytest.mark.parametrize(
        ("name", "content", "message"),
        [
            (
                "notes.flows",
                b"hello, world\n",
                f"{NOT_A_FLOW_FILE} (Invalid data format.)",
            ),
            (
                "random.bin",
                bytes(range(256)),
                f"{NOT_A_FLOW_FILE} (Invalid data format.)",
            ),
            (
                "export.har",
                b'{"log": {"entries": [{"request": {}}]}}',
                f"{NOT_A_FLOW_FILE} (Unable to read HAR file. Please provide a valid "
                "HAR file)",
            ),
            (
                "cases.yaml",
                b"exchanges: [\n",
                "line 2: invalid YAML: expected the node "
                "content, but found '<stream end>' (while parsing a flow node)",
            ),
            ("cases.yml", b"- 42\n", "line 1: expected an exchange mapping"),
            (
                "case.yaml",
                b"request: {url: /oauth/token}\nresponse: {}\n",
                "line 1: request.url: expected an absolute URL, got '/oauth/token'",
            ),
        ],
    )
    def test_a_file_that_is_no_recording(self, rules, tmp_path, name, content, message):
        path = tmp_path / name
        path.write_bytes(content)

        assert run_try(rules, str(path)) == (2, f"{path}: cannot read: {message}\n")

    def test_a_flow_file_cut_within_its_first_flow(self, rules, tmp_path):
        # a cut after whole flows keeps them (TestTryOnFlowFiles); here none is
        whole = Path(
            write_flows(tmp_path / "whole.flows", [token_flow(), token_flow()])
        )
        path = tmp_path / "cut.flows"
        path.write_bytes(whole.read_bytes()[:200])

        rc, out = run_try(rules, str(path))

        assert rc == 2
        assert (
            out
            == f"{path}: cannot read: {self.NOT_A_FLOW_FILE} (Invalid data format.)\n"
        )

    def test_a_missing_file(self, rules, tmp_path):
        path = tmp_path / "nope.flows"

        assert run_try(rules, str(path)) == (
            2,
            f"{path}: cannot read: No such file or directory\n",
        )

    def test_a_directory(self, rules, tmp_path):
        assert run_try(rules, str(tmp_path)) == (
            2,
            f"{tmp_path}: cannot read: Is a directory\n",
        )

    def test_broken_rules_stop_before_any_flow(self, tmp_path):
        path = write(tmp_path, "rules.yaml", "rules: [\n")

        rc, out = run_try(path, str(tmp_path / "whatever.flows"))

        assert rc == 2
        assert out.startswith(f"{path}:2: invalid YAML")
