"""End to end: distinctive secrets in every place a token exchange carries them,
through mitmdump at debug verbosity with rules that read, copy and move them.

None may appear, whole or in part, in mitmdump's output, in the marks, comments
and metadata of the flows it saved, in the "OAuth token" view of those flows,
or in what `tokenfix try` prints for them.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest
from mitmproxy import http, io

from addon import contentview
from addon.redact import secret_names
from tests.helpers import assert_no_secret_fragments, basic_auth, request

pytestmark = pytest.mark.e2e

CLIENT_SECRET = "cs-Zq81-distinctive-client-secret-4711"
CODE = "code-Xj29-distinctive-authorization-code"
VERIFIER = "cv-Pw47-distinctive-code-verifier-0123456789abcdef"
REFRESH_TOKEN = "rt-Lm55-distinctive-refresh-token-presented"
NEW_REFRESH_TOKEN = "rt-Hk02-distinctive-refresh-token-rotated"
SESSION_KEY = "sk-Ty63-distinctive-session-key-of-the-operator"
BASIC = basic_auth("alexa-skill", CLIENT_SECRET)


def jwt(claims: dict, signature: str) -> str:
    def part(obj: dict) -> str:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.{signature}"


ACCESS_TOKEN = jwt(
    {"sub": "user-1", "exp": 4102444800, "jti": "jti-Ab12-distinctive-access"},
    "sigAccessQw12distinctiveSignatureOfTheAccessToken",
)
ID_TOKEN = jwt(
    {"sub": "user-1", "exp": 4102444800, "nonce": "nonce-Cd34-distinctive"},
    "sigIdTokenEr34distinctiveSignatureOfTheIdToken",
)
# a JWT's header part is the same for many tokens: its other parts are secret
SECRETS = [
    CLIENT_SECRET,
    CODE,
    VERIFIER,
    REFRESH_TOKEN,
    NEW_REFRESH_TOKEN,
    SESSION_KEY,
    BASIC.split()[1],
    *ACCESS_TOKEN.split(".")[1:],
    *ID_TOKEN.split(".")[1:],
]

RULES = """\
rules:
  - name: refresh-copies-secrets
    match: {host: 127.0.0.1, path: /secrets/refresh, grant_type: refresh_token}
    actions:
      - default: {refresh_token: {from_request: refresh_token}}
      - set: {access_copy: {from_field: access_token}}
      - set: {expires_in: {from_jwt_exp: access_token, fallback: 60}}
      - rename: {id_token: oidc_token}
      - coerce: {session_key: integer, access_copy: integer}
  - name: code-exchange-copies-request-secrets
    match: {host: 127.0.0.1, path: /secrets/code, grant_type: authorization_code}
    actions:
      - set:
          client_echo: {from_request: client_secret}
          verifier_echo: {from_request: code_verifier}
          code_echo: {from_request: code}
          token_type: Bearer
      - coerce: {client_echo: integer, verifier_echo: number}
  - name: dead-refresh-token-is-400
    match: {host: 127.0.0.1, path: /secrets/error, status: 500}
    when: {error: invalid_grant}
    actions:
      - status: 400
      - set: {hint: {from_request: refresh_token}}
"""

EXCHANGES = [
    # (path, request headers, request body, status, response body)
    (
        "/secrets/refresh",
        {"Content-Type": "application/x-www-form-urlencoded", "Authorization": BASIC},
        f"grant_type=refresh_token&refresh_token={REFRESH_TOKEN}",
        200,
        {
            "access_token": ACCESS_TOKEN,
            "id_token": ID_TOKEN,
            "token_type": "Bearer",
            "session_key": SESSION_KEY,
        },
    ),
    (
        "/secrets/code",
        {"Content-Type": "application/json"},
        json.dumps(
            {
                "grant_type": "authorization_code",
                "code": CODE,
                "code_verifier": VERIFIER,
                "client_id": "alexa-skill",
                "client_secret": CLIENT_SECRET,
            }
        ),
        200,
        {
            "access_token": ACCESS_TOKEN,
            "refresh_token": NEW_REFRESH_TOKEN,
            "id_token": ID_TOKEN,
            "token_type": "bearer",
            "expires_in": 3600,
        },
    ),
    (
        "/secrets/error",
        {"Content-Type": "application/x-www-form-urlencoded", "Authorization": BASIC},
        f"grant_type=refresh_token&refresh_token={REFRESH_TOKEN}",
        500,
        {
            "error": "invalid_grant",
            "error_description": f"refresh token {REFRESH_TOKEN} was revoked",
            "client_secret": CLIENT_SECRET,
        },
    ),
]


@pytest.fixture(scope="module")
def exchanged(shared_mitmdump, buffered_upstream, tmp_path_factory):
    """The proxy and the flows it saved, after every exchange went through it."""
    workdir = tmp_path_factory.mktemp("secrets")
    rules = workdir / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    flows = workdir / "secrets.flows"
    proxy = shared_mitmdump(
        buffered_upstream.url,
        rules,
        f"save_stream_file={flows}",
        "tokenfix_secret_fields=session_key",
        "tokenfix_profile=alexa",
        verbosity="debug",
    )
    answers = []
    for path, headers, body, status, document in EXCHANGES:
        buffered_upstream.respond(path, status=status, body=json.dumps(document))
        answers.append(
            request("POST", f"{proxy.url}{path}", body=body, headers=headers)
        )
    proxy.wait_for_output("dead-refresh-token-is-400")
    with open(flows, "rb") as f:
        saved = [x for x in io.FlowReader(f).stream() if isinstance(x, http.HTTPFlow)]
    return proxy, answers, saved, rules, flows


class TestSecretsStayHidden:
    def test_the_rules_did_their_work(self, exchanged):
        _, answers, saved, _, _ = exchanged
        refresh, code, error = (a.json() for a in answers)

        # the client gets the real values: only what people see is redacted
        assert refresh["refresh_token"] == REFRESH_TOKEN
        assert refresh["access_copy"] == ACCESS_TOKEN
        assert refresh["oidc_token"] == ID_TOKEN
        assert code["client_echo"] == CLIENT_SECRET
        assert code["verifier_echo"] == VERIFIER
        assert code["code_echo"] == CODE
        assert (answers[2].status, error["hint"]) == (400, REFRESH_TOKEN)
        assert [len(flow.metadata["tokenfix"]) for flow in saved] == [4, 4, 2]

    def test_not_in_the_debug_output(self, exchanged):
        proxy = exchanged[0]
        output = proxy.output()
        assert "rule 'refresh-copies-secrets'" in output
        assert "cannot coerce <redacted> to integer" in output
        assert_no_secret_fragments(output, SECRETS)

    def test_not_in_marks_comments_or_metadata(self, exchanged):
        saved = exchanged[2]
        assert [flow.marked for flow in saved] == [":wrench:"] * 3
        shown = [
            (flow.marked, flow.comment, json.dumps(flow.metadata, default=str))
            for flow in saved
        ]
        assert all("tokenfix:" in comment for _, comment, _ in shown)
        assert_no_secret_fragments(repr(shown), SECRETS)

    def test_not_in_the_token_view(self, exchanged):
        saved = exchanged[2]
        secrets = secret_names(["session_key"])
        views = ["\n".join(contentview.lines(flow, secrets)) for flow in saved]
        assert all("tokenfix changes" in view for view in views)
        assert_no_secret_fragments("\n\n".join(views), SECRETS)

    def test_not_in_what_tokenfix_try_prints(self, exchanged):
        _, _, _, rules, flows = exchanged
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "addon.cli",
                "try",
                "--secret-field",
                "session_key",
                str(rules),
                str(flows),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "3 exchanges" in done.stdout
        assert_no_secret_fragments(done.stdout + done.stderr, SECRETS)
