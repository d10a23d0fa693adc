"""addon.offline: placeholders, exchanges from mappings, and `run`."""

import base64
import gzip
import json
import zlib

import brotli
import pytest

from addon.jsonbody import MAX_BODY
from addon.offline import Exchange, exchange_from_mapping, expand, run, unsigned_jwt
from addon.redact import secret_names
from addon.rules import parse_rules
from addon.values import jwt_claims, jwt_header, jwt_seconds_left

NOW = 1_700_000_000.75
URL = "https://idp.example.org/oauth/token"

RULES = parse_rules(
    """\
rules:
  - name: lifetime-from-jwt
    match: {host: idp.example.org, path: /oauth/token, grant_type: refresh_token}
    when: {expires_in: missing}
    actions:
      - default: {expires_in: {from_jwt_exp: access_token, fallback: 60}}
  - name: json-type
    match: {host: idp.example.org, path: /oauth/token}
    actions:
      - header: {content-type: application/json, X-Powered-By: null}
  - name: error-status
    match: {host: idp.example.org, path: /oauth/token, status: 500}
    when: {error: invalid_grant}
    actions:
      - status: 400
  - name: copy-session
    match: {host: idp.example.org, path: /oauth/token}
    when: {session: present}
    actions:
      - set: {session_copy: {from_field: session}}
""",
    "rules.yaml",
)
REFRESH = b"grant_type=refresh_token&refresh_token=rt-offline-1"
TOKEN = b'{"access_token":"at-offline-2","token_type":"Bearer"}'


def exchange(
    body: bytes = TOKEN,
    *,
    status: int = 200,
    headers: dict | None = None,
    url: str = URL,
    request_body: bytes = REFRESH,
) -> Exchange:
    return Exchange(
        method="POST",
        url=url,
        request_headers={"Content-Type": "application/x-www-form-urlencoded"},
        request_body=request_body,
        status=status,
        response_headers=headers or {"Content-Type": "application/json"},
        response_body=body,
    )


class TestExpand:
    @pytest.mark.parametrize("offset", [120, 86400, -30, 0])
    def test_a_jwt_expires_offset_seconds_from_now(self, offset):
        token = expand(f"<JWT exp={offset:+d}>", NOW)

        assert jwt_claims(token) == {"sub": "example", "exp": 1_700_000_000 + offset}
        assert jwt_header(token) == {"alg": "none", "typ": "JWT"}
        assert token.endswith(".")

    def test_the_engine_reads_the_lifetime_it_was_given(self):
        token = expand("<JWT exp=+120>", NOW)

        assert jwt_seconds_left(token, 1_700_000_000) == 120

    @pytest.mark.parametrize(
        ("text", "expanded"),
        [
            ("<EPOCH+21600>", "1700021600"),
            ("<EPOCH-5>", "1699999995"),
            ("<EPOCH_MS+3600>", "1700003600000"),
            ("<EPOCH_MS-2>", "1699999998000"),
            (
                '{"at":<EPOCH+0>,"ms":"<EPOCH_MS+1>"}',
                '{"at":1700000000,"ms":"1700000001000"}',
            ),
        ],
    )
    def test_epoch_placeholders(self, text, expanded):
        assert expand(text, NOW) == expanded

    @pytest.mark.parametrize(
        "text",
        [
            "<AT>",
            "<RT>",
            "<CODE>",
            "<SECRET>",
            "<JWT>",
            "<EPOCH>",
            "<JWT exp=120>",
            "<EPOCH+x>",
        ],
    )
    def test_anything_else_stays_as_written(self, text):
        assert expand(text, NOW) == text

    def test_a_body_keeps_its_json_after_expansion(self):
        body = '{"access_token":"<JWT exp=+60>","expires_at":<EPOCH+60>,"rt":"<RT>"}'

        doc = json.loads(expand(body, NOW))

        assert doc["expires_at"] == 1_700_000_060
        assert jwt_claims(doc["access_token"])["exp"] == 1_700_000_060
        assert doc["rt"] == "<RT>"

    def test_an_unsigned_jwt_carries_the_claims_given(self):
        token = unsigned_jwt({"exp": 5, "aud": "x"})

        header, claims, signature = token.split(".")
        padded = claims + "=" * (-len(claims) % 4)
        assert json.loads(base64.urlsafe_b64decode(padded)) == {"exp": 5, "aud": "x"}
        assert signature == ""


class TestExchangeFromMapping:
    def test_defaults(self):
        ex = exchange_from_mapping({"request": {"url": URL}, "response": {}}, NOW)

        assert (ex.method, ex.request_headers, ex.request_body) == ("POST", {}, b"")
        assert (ex.status, ex.response_headers, ex.response_body) == (200, {}, b"")
        assert ex.label == ""

    def test_a_full_mapping_with_placeholders(self):
        doc = {
            "name": "refresh",
            "request": {
                "method": "get",
                "url": "https://IdP.example.org/oauth/token?grant_type=refresh_token",
                "headers": {"X-At": "<EPOCH+1>"},
                "body": "refresh_token=<RT>",
            },
            "response": {
                "status": 201,
                "headers": {"Content-Type": "application/json", "X-Len": 12},
                "body": '{"exp":<EPOCH+2>}',
            },
        }

        ex = exchange_from_mapping(doc, NOW)

        assert ex.method == "GET"
        assert (ex.host, ex.path, ex.query) == (
            "idp.example.org",
            "/oauth/token",
            "grant_type=refresh_token",
        )
        assert ex.request_headers == {"X-At": "1700000001"}
        assert ex.request_body == b"refresh_token=<RT>"
        assert ex.status == 201
        assert ex.response_body == b'{"exp":1700000002}'
        assert ex.header("content-type") == "application/json"
        assert ex.header("X-LEN") == "12"
        assert ex.label == "refresh"

    def test_the_label_may_come_from_the_caller(self):
        doc = {"id": "case-7", "request": {"url": URL}, "response": {}}

        assert exchange_from_mapping(doc, NOW).label == "case-7"
        assert exchange_from_mapping(doc, NOW, "mine").label == "mine"

    @pytest.mark.parametrize(
        ("doc", "message"),
        [
            ({"response": {}}, "an exchange needs 'request' and 'response' mappings"),
            (
                {"request": {"url": URL}, "response": "200"},
                "an exchange needs 'request' and 'response' mappings",
            ),
            (
                {"request": {}, "response": {}},
                "request.url: expected an absolute URL, got ''",
            ),
            (
                {"request": {"url": "/oauth/token"}, "response": {}},
                "request.url: expected an absolute URL, got '/oauth/token'",
            ),
            (
                {"request": {"url": 7}, "response": {}},
                "request.url: expected a string, got int",
            ),
            (
                {"request": {"url": URL}, "response": {"status": "200"}},
                "response.status: expected a number, got '200'",
            ),
            (
                {"request": {"url": URL}, "response": {"status": True}},
                "response.status: expected a number, got True",
            ),
            (
                {"request": {"url": URL, "body": {"a": 1}}, "response": {}},
                "request.body: expected a string, got a mapping",
            ),
            (
                {"request": {"url": URL}, "response": {"body": ["x"]}},
                "response.body: expected a string, got a list",
            ),
            (
                {"request": {"url": URL, "headers": ["Accept: x"]}, "response": {}},
                "request.headers: expected a mapping of header: value",
            ),
            (
                {"request": {"url": URL}, "response": {"headers": {"X-Gone": None}}},
                "response.headers.X-Gone: expected a string, got null",
            ),
            (
                {"request": {"url": URL}, "response": {"headers": {"X": [1]}}},
                "response.headers.X: expected a string, got a list",
            ),
        ],
    )
    def test_a_malformed_exchange_is_refused_with_the_reason(self, doc, message):
        with pytest.raises(ValueError) as e:
            exchange_from_mapping(doc, NOW)

        assert str(e.value) == message


class TestRun:
    def test_no_rule_for_the_host(self):
        result = run(RULES, exchange(url="https://other.example.org/oauth/token"))

        assert result.matched == ()
        assert result.outcome is None
        assert not result.changed
        assert (result.body, result.original_body) == (TOKEN, TOKEN)

    def test_a_matched_rule_rewrites_the_body(self):
        token = unsigned_jwt({"exp": 1_700_000_120})
        body = f'{{"access_token":"{token}"}}'.encode()

        result = run(RULES, exchange(body), now=1_700_000_000)

        # matched on the request side: the status is judged on the response
        assert result.matched == (
            "lifetime-from-jwt",
            "json-type",
            "error-status",
            "copy-session",
        )
        assert result.grant_type == "refresh_token"
        assert result.changed
        assert result.original_body == body
        assert json.loads(result.body) == {"access_token": token, "expires_in": 120}

    def test_the_grant_type_may_come_from_the_query(self):
        ex = exchange(url=f"{URL}?grant_type=refresh_token", request_body=b"")

        result = run(RULES, ex, now=NOW)

        assert result.grant_type == "refresh_token"
        assert json.loads(result.body)["expires_in"] == 60

    def test_headers_change_whatever_the_case_of_their_names(self):
        headers = {"Content-Type": "text/html", "x-powered-by": "php", "Date": "d"}

        result = run(RULES, exchange(headers=headers), now=NOW)

        assert result.headers == {"Date": "d", "content-type": "application/json"}

    def test_a_status_change(self):
        body = b'{"error":"invalid_grant"}'

        result = run(RULES, exchange(body, status=500), now=NOW)

        assert (result.status, result.body) == (400, body)
        assert result.exchange.status == 500

    @pytest.mark.parametrize(
        ("encoding", "encode"),
        [
            ("gzip", gzip.compress),
            ("deflate", zlib.compress),
            ("br", brotli.compress),
            ("identity", lambda raw: raw),
        ],
    )
    def test_an_encoded_body_is_decoded_before_the_rules(self, encoding, encode):
        headers = {"Content-Type": "application/json", "Content-Encoding": encoding}

        result = run(RULES, exchange(encode(TOKEN), headers=headers), now=NOW)

        assert result.original_body == TOKEN
        assert json.loads(result.body)["expires_in"] == 60

    @pytest.mark.parametrize(
        ("raw", "encoding", "reason"),
        [
            (TOKEN, "compress", "unsupported Content-Encoding 'compress'"),
            (TOKEN, "gzip", "cannot decode gzip body: corrupt or truncated"),
            (
                gzip.compress(TOKEN)[:-9],
                "gzip",
                "cannot decode gzip body: corrupt or truncated",
            ),
            (
                gzip.compress(b" " * (MAX_BODY + 1)),
                "gzip",
                f"decoded body larger than {MAX_BODY} bytes",
            ),
            (b" " * (MAX_BODY + 1), None, f"body larger than {MAX_BODY} bytes"),
        ],
        ids=["unknown", "not-gzip", "truncated", "bomb", "too-large"],
    )
    def test_a_body_that_cannot_be_read_is_skipped(self, raw, encoding, reason):
        headers = {"Content-Type": "application/json"}
        if encoding:
            headers["Content-Encoding"] = encoding

        result = run(RULES, exchange(raw, headers=headers), now=NOW)

        assert result.skipped_reason == reason
        assert result.outcome is None
        assert not result.changed
        assert result.body == result.original_body == raw

    def test_a_body_that_is_no_json_object_is_left_with_reasons(self):
        result = run(RULES, exchange(b"<html>busy</html>"), now=NOW)

        assert result.body == b"<html>busy</html>"
        assert ("lifetime-from-jwt", "body skipped: not JSON (JSONDecodeError)") in (
            result.outcome.skipped
        )
        # a header action needs a candidate body too
        assert not result.changed

    def test_secrets_may_be_named_by_the_caller(self):
        body = b'{"access_token":"at","token_type":"Bearer","session":"s-123"}'
        secrets = secret_names(["session"])

        result = run(RULES, exchange(body), now=NOW, secrets=secrets)

        (copy,) = [c for c in result.outcome.changes if c.field == "session_copy"]
        assert (copy.as_dict()["old"], copy.new) == (None, "<redacted>")
        assert json.loads(result.body)["session_copy"] == "s-123"
