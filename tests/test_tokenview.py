"""The "OAuth token" view's text, without mitmproxy."""

import base64
import json

import pytest

from addon.exchange import RequestInfo
from addon.redact import secret_names
from addon.tokenview import render
from tests.helpers import basic_auth

# 2026-01-01 00:00:00 UTC
RECEIVED = 1767225600
SIGNATURE = "c2lnbmF0dXJlLW9mLXRoZS1kZW1vLXRva2Vu"
CLIENT_SECRET = "the-client-secret-value"
REFRESH = "v1.rotating-refresh-token-value"
FORM = "application/x-www-form-urlencoded"
JSON_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store"}


def b64(doc: dict) -> str:
    raw = json.dumps(doc, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt(claims: dict, header: dict | None = None) -> str:
    header = header or {"alg": "RS256", "typ": "JWT", "kid": "k1"}
    return f"{b64(header)}.{b64(claims)}.{SIGNATURE}"


ACCESS = jwt(
    {"iss": "https://t.auth0.com/", "sub": "auth0|42", "iat": RECEIVED - 1,
     "exp": RECEIVED + 299, "scope": "openid offline_access"}
)  # fmt: skip
ID = jwt({"sub": "auth0|42", "nbf": RECEIVED - 60, "exp": RECEIVED - 5, "nonce": "n"})


def refresh_request(**headers) -> RequestInfo:
    body = f"grant_type=refresh_token&refresh_token={REFRESH}".encode()
    headers = {"Content-Type": FORM, **headers}
    return RequestInfo("POST", "t.auth0.com", "/oauth/token", "", headers, body)


def alexa_refresh() -> RequestInfo:
    return refresh_request(Authorization=basic_auth("alexa-skill", CLIENT_SECRET))


def response_body(**fields) -> bytes:
    return json.dumps(fields).encode()


class TestWholeView:
    def test_a_repaired_refresh_for_alexa(self):
        body = response_body(
            access_token=ACCESS,
            refresh_token=REFRESH + "-2",
            scope="openid offline_access",
            expires_in=299,
            token_type="Bearer",
        )
        changes = [
            {
                "rule": "auth0-refresh",
                "target": "body",
                "field": "expires_in",
                "op": "default",
                "old": None,
                "new": 299,
            }
        ]
        findings = [
            {
                "code": "no-store",
                "severity": "warning",
                "message": "Cache-Control: no-store missing: a cache on the way "
                "may keep the token (RFC 6749 section 5.1)",
            }
        ]

        lines = render(
            alexa_refresh(),
            status=200,
            reason="OK",
            headers={"Content-Type": "application/json"},
            body=body,
            received=RECEIVED,
            changes=changes,
            profile="alexa",
            findings=findings,
        )

        assert lines == [
            "OAuth token request: POST /oauth/token",
            "grant type         refresh_token",
            'client             "alexa-skill", authenticated with HTTP Basic '
            "(client_secret_basic)",
            "parameters",
            "  refresh_token    v1.rot…(31 chars)",
            "",
            "client profile alexa: 0 errors, 1 warning",
            "  warning  Cache-Control: no-store missing: a cache on the way may keep "
            "the token (RFC 6749 section 5.1)",
            "",
            "tokenfix changes",
            "  rule 'auth0-refresh'",
            "    default expires_in",
            "      before       (missing or null)",
            "      after        299",
            "",
            "response           200 OK, received 2026-01-01 00:00:00 UTC",
            "  Content-Type     application/json",
            "  Cache-Control    (absent)",
            "  access_token     JWT, eyJhbG…(" + str(len(ACCESS)) + " chars)",
            '    header         {"alg": "RS256", "typ": "JWT", "kid": "k1"}',
            "    claims",
            '      iss          "https://t.auth0.com/"',
            '      sub          "auth0|42"',
            "      iat          1767225599  2025-12-31 23:59:59 UTC",
            "      exp          1767225899  2026-01-01 00:04:59 UTC, expires in 299 s",
            '      scope        "openid offline_access"',
            "    signature      not shown",
            "  refresh_token    opaque, v1.rot…(33 chars)",
            '  scope            "openid offline_access"',
            "  expires_in       299",
            '  token_type       "Bearer"',
        ]

    def test_a_request_still_in_flight(self):
        assert render(alexa_refresh())[-2:] == ["", "response: not received yet"]


class TestClient:
    @pytest.mark.parametrize(
        "body, headers, expected",
        [
            (
                b"grant_type=client_credentials&client_id=c1&client_secret=s3cr3t-xyz",
                {},
                '"c1", authenticated in the body (client_secret_post)',
            ),
            (
                b'{"grant_type":"client_credentials","client_id":"c1",'
                b'"client_assertion":"eyJ.eyJ.sig"}',
                {"Content-Type": "application/json"},
                '"c1", authenticated with a client assertion (private_key_jwt)',
            ),
            (
                b"grant_type=authorization_code&code=abc&client_id=spa",
                {},
                '"spa", no client authentication (a public client)',
            ),
            (
                b"grant_type=refresh_token&refresh_token=r",
                {"Authorization": "Bearer xyz"},
                "(no client_id), with an Authorization header (Bearer) that is not "
                "Basic",
            ),
        ],
    )
    def test_how_the_client_authenticated(self, body, headers, expected):
        req = RequestInfo("POST", "h", "/token", "", headers, body)
        assert render(req)[2] == f"client             {expected}"

    def test_the_body_secret_is_shortened_and_other_parameters_shown(self):
        body = (
            b"grant_type=authorization_code&code=SplxlOBeZQQYbYS6WxSbIA"
            b"&redirect_uri=https%3A%2F%2Flayla.amazon.com%2Fapi&client_id=c1"
            b"&client_secret=s3cr3t-xyz"
        )
        req = RequestInfo("POST", "h", "/token", "", {}, body)
        assert render(req)[3:7] == [
            "parameters",
            "  code             SplxlO…(22 chars)",
            '  redirect_uri     "https://layla.amazon.com/api"',
            "  client_secret    s3cr3t…(10 chars)",
        ]


class TestResponseBody:
    def view(self, body: bytes, **kw) -> list[str]:
        kw.setdefault("headers", JSON_HEADERS)
        lines = render(alexa_refresh(), status=200, body=body, received=RECEIVED, **kw)
        return lines[lines.index("  Cache-Control    no-store") + 1 :]

    def test_an_expired_id_token_and_its_nbf(self):
        assert self.view(response_body(id_token=ID)) == [
            "  id_token         JWT, eyJhbG…(" + str(len(ID)) + " chars)",
            '    header         {"alg": "RS256", "typ": "JWT", "kid": "k1"}',
            "    claims",
            '      sub          "auth0|42"',
            "      nbf          1767225540  2025-12-31 23:59:00 UTC",
            "      exp          1767225595  2025-12-31 23:59:55 UTC, expired 5 s ago",
            '      nonce        "n"',
            "    signature      not shown",
        ]

    def test_a_refresh_token_that_is_a_jwt_is_decoded(self):
        token = jwt({"typ": "Refresh", "exp": RECEIVED + 86400})
        assert self.view(response_body(refresh_token=token))[3:5] == [
            '      typ          "Refresh"',
            "      exp          1767312000  2026-01-02 00:00:00 UTC, expires in "
            "86400 s",
        ]

    def test_an_encrypted_token_is_named_and_shortened(self):
        token = "eyJlbmMiOiJBMjU2R0NNIn0.key.iv.ciphertext.tag"
        assert self.view(response_body(access_token=token)) == [
            "  access_token     JWE, encrypted, eyJlbm…(45 chars)"
        ]

    def test_odd_time_claims_are_shown_as_they_are(self):
        token = jwt({"exp": 1e300, "iat": "yesterday", "nbf": True})
        assert self.view(response_body(access_token=token))[3:6] == [
            "      exp          1e+300",
            '      iat          "yesterday"',
            "      nbf          true",
        ]

    def test_secret_fields_nested_or_named_by_the_operator_are_hidden(self):
        body = response_body(
            authed_user={"id": "U1", "access_token": "xoxp-user-token-value"},
            session_key="operator-named-secret-value",
            short="ab",
        )
        lines = self.view(body, secrets=secret_names(["session_key", "short"]))
        assert lines == [
            '  authed_user      {"id": "U1", "access_token": "<redacted>"}',
            "  session_key      operat…(27 chars)",
            "  short            <redacted>",
        ]

    def test_a_form_body_is_read_as_fields(self):
        body = b"access_token=gho_16C7e42F292c6912E7710c838347Ae178B4a&scope=repo"
        assert self.view(body) == [
            "  body             a form, not JSON",
            "  access_token     opaque, gho_16…(40 chars)",
            '  scope            "repo"',
        ]

    def test_a_body_that_is_neither_is_not_shown(self):
        lines = render(
            alexa_refresh(), status=502, reason="Bad Gateway", body=b"<html>oops"
        )
        assert lines[-4:] == [
            "response           502 Bad Gateway",
            "  Content-Type     (absent)",
            "  Cache-Control    (absent)",
            "  body             not a JSON object (not JSON (JSONDecodeError)), "
            "10 bytes, not shown",
        ]


class TestChanges:
    def view(self, *changes: dict) -> list[str]:
        lines = render(alexa_refresh(), status=200, body=b"{}", changes=changes)
        start = lines.index("tokenfix changes")
        return lines[start : lines.index("", start)]

    def test_every_kind_of_change_as_before_and_after(self):
        def change(rule, target, field, op, old, new):
            return dict(rule=rule, target=target, field=field, op=op, old=old, new=new)

        assert self.view(
            change("a", "body", "body", "form_to_json", None, None),
            change("a", "body", "expires_in", "coerce integer", "3600", 3600),
            change("b", "body", "data", "unwrap", None, ["access_token", "scope"]),
            change("a", "body", "accessToken", "rename", None, "access_token"),
            change("b", "body", "id_token", "remove", "<redacted>", None),
            change("b", "header", "Cache-Control", "header", None, "no-store"),
            change("b", "status", "status", "status", 500, 400),
        ) == [
            "tokenfix changes",
            "  rule 'a'",
            "    form_to_json   the form body became a JSON object",
            "    coerce integer expires_in",
            '      before       "3600"',
            "      after        3600",
            "    rename accessToken -> access_token",
            "  rule 'b'",
            "    unwrap data    lifted access_token, scope",
            "    remove id_token",
            '      before       "<redacted>"',
            "      after        (removed)",
            "    header Cache-Control",
            "      before       (absent)",
            "      after        no-store",
            "    status status",
            "      before       500",
            "      after        400",
        ]

    def test_a_secret_field_is_hidden_even_when_the_record_holds_it(self):
        lines = self.view(
            dict(rule="r", target="body", field="refresh_token", op="set",
                 old=None, new="a-refresh-token-value")
        )  # fmt: skip
        assert lines[-2:] == [
            "      before       (missing or null)",
            '      after        "<redacted>"',
        ]

    def test_no_changes(self):
        lines = render(alexa_refresh(), status=200, body=b"{}")
        assert "tokenfix changes: none" in lines


class TestFindings:
    @pytest.mark.parametrize(
        "profile, findings, expected",
        [
            (None, None, ["client profile: not checked"]),
            ("none", [], ["client profile: not checked"]),
            ("rfc6749", [], ["client profile rfc6749: no findings"]),
            (
                "google",
                [
                    {"code": "x", "severity": "error", "message": "first"},
                    {"code": "y", "severity": "error", "message": "second"},
                ],
                [
                    "client profile google: 2 errors, 0 warnings",
                    "  error    first",
                    "  error    second",
                ],
            ),
        ],
    )
    def test_findings_section(self, profile, findings, expected):
        lines = render(
            alexa_refresh(), status=200, body=b"{}", profile=profile, findings=findings
        )
        start = next(i for i, x in enumerate(lines) if x.startswith("client profile"))
        assert lines[start : lines.index("", start)] == expected


class TestSecrets:
    def test_no_token_or_secret_whole_and_no_signature(self):
        body = response_body(
            access_token=ACCESS, id_token=ID, refresh_token=REFRESH + "-2"
        )
        text = "\n".join(
            render(alexa_refresh(), status=200, body=body, received=RECEIVED)
        )

        for secret in (ACCESS, ID, REFRESH, REFRESH + "-2", CLIENT_SECRET):
            assert secret not in text
        assert SIGNATURE[:8] not in text
        assert ACCESS.split(".")[1][:12] not in text
        assert basic_auth("alexa-skill", CLIENT_SECRET).split()[1] not in text


class TestSecretsUnderOtherNames:
    def test_an_error_description_quoting_the_refresh_token_hides_it(self):
        body = response_body(
            error="invalid_grant",
            error_description=f"refresh token {REFRESH} was revoked",
        )
        text = "\n".join(render(alexa_refresh(), status=400, body=body))

        assert '  error_description "refresh token <redacted> was revoked"' in text
        assert REFRESH not in text

    def test_a_copy_of_a_request_secret_is_hidden_at_any_depth(self):
        body = response_body(
            access_token="opaque-access-token",
            echo={"client": CLIENT_SECRET, "list": [REFRESH]},
        )
        text = "\n".join(render(alexa_refresh(), status=200, body=body))

        assert (
            '  echo             {"client": "<redacted>", "list": ["<redacted>"]}'
            in (text)
        )

    def test_a_copy_of_a_response_token_is_hidden(self):
        body = response_body(
            access_token="opaque-access-token-1", copy="opaque-access-token-1"
        )
        text = "\n".join(render(alexa_refresh(), status=200, body=body))

        assert '  copy             "<redacted>"' in text.splitlines()

    def test_a_jwt_under_another_name_is_shown_as_a_token(self):
        body = response_body(oidc_token=ID)
        lines = render(alexa_refresh(), status=200, body=body)

        assert f"  oidc_token       JWT, eyJhbG…({len(ID)} chars)" in lines
        assert "    signature      not shown" in lines
        assert ID.split(".")[1] not in "\n".join(lines)

    def test_short_values_are_left_to_their_field_names(self):
        request = RequestInfo(
            "POST", "h", "/token", "", {"Content-Type": FORM},
            b"grant_type=authorization_code&code=abc",
        )  # fmt: skip
        body = response_body(access_token="opaque-access-token", note="abc abc")
        lines = render(request, status=200, body=body)

        assert '  note             "abc abc"' in lines
