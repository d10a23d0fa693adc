"""RequestInfo: a token request's OAuth parameters, read lazily."""

import base64

import pytest
from mitmproxy.http import Headers

from addon.exchange import (
    RequestInfo,
    basic_client_id,
    basic_credentials,
    basic_secret,
    request_info,
)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}


def basic(credentials: str | bytes) -> str:
    raw = credentials.encode() if isinstance(credentials, str) else credentials
    return "Basic " + base64.b64encode(raw).decode()


def info(body: bytes | None = None, query: str = "", **headers: str) -> RequestInfo:
    names = {k.replace("_", "-"): v for k, v in headers.items()}
    return RequestInfo("POST", "auth.example.com", "/oauth/token", query, names, body)


class TestRequestInfo:
    def test_fields(self):
        req = RequestInfo("post", "t.auth0.com", "/oauth/token", "a=1", {}, b"x=1")
        assert (req.method, req.host, req.path, req.query, req.body) == (
            "POST",
            "t.auth0.com",
            "/oauth/token",
            "a=1",
            b"x=1",
        )

    def test_plain_dict_headers_are_read_by_lowercase_name(self):
        req = info(User_Agent="Alexa", Authorization="Basic x")
        assert req.header("user-agent") == "Alexa"
        assert req.header("authorization") == "Basic x"
        assert req.header("accept") is None

    def test_mitmproxy_headers_are_case_insensitive_already(self):
        headers = Headers(**{"User-Agent": "Alexa"})
        req = RequestInfo("POST", "h", "/", "", headers, None)
        assert req.header("user-agent") == "Alexa"

    def test_request_info_splits_the_query_off_the_path(self):
        req = request_info("POST", "h", "/oauth/token?grant_type=x", "", {}, None)
        assert (req.path, req.query) == ("/oauth/token", "grant_type=x")
        assert req.grant_type == "x"

    def test_request_info_keeps_a_query_given_apart(self):
        req = request_info("POST", "h", "/oauth/token", "a=1", {}, None)
        assert (req.path, req.query) == ("/oauth/token", "a=1")


class TestParams:
    def test_form_body(self):
        req = info(b"grant_type=refresh_token&refresh_token=RT&scope=a+b%20c", **FORM)
        assert req.params == {
            "grant_type": "refresh_token",
            "refresh_token": "RT",
            "scope": "a b c",
        }

    def test_json_body_keeps_its_types(self):
        req = info(b'  {"grant_type": "refresh_token", "n": 1, "x": null}', **JSON)
        assert req.params == {"grant_type": "refresh_token", "n": 1, "x": None}
        assert req.param("n") == 1

    def test_form_whatever_the_content_type(self):
        req = info(b"grant_type=password", Content_Type="text/plain")
        assert req.grant_type == "password"

    def test_query_only(self):
        # case 16: grant_type arrives only in the query string
        req = info(
            b"refresh_token=RT",
            query="redirect_uri=https%3A%2F%2Fwww.bing.com%2Fagents%2Foauth"
            "&grant_type=refresh_token",
            **FORM,
        )
        assert req.grant_type == "refresh_token"
        assert req.param("redirect_uri") == "https://www.bing.com/agents/oauth"
        assert req.param("refresh_token") == "RT"

    def test_body_wins_over_query(self):
        req = info(b"grant_type=refresh_token", query="grant_type=password&a=q")
        assert req.grant_type == "refresh_token"
        assert req.param("a") == "q"

    def test_json_body_wins_over_query(self):
        req = info(b'{"client_id": "body"}', query="client_id=query")
        assert req.param("client_id") == "body"

    def test_first_of_a_repeated_key(self):
        req = info(b"scope=a&scope=b", query="x=1&x=2")
        assert (req.param("scope"), req.param("x")) == ("a", "1")

    def test_blank_values_are_kept(self):
        assert info(b"client_secret=&a=1").params == {"client_secret": "", "a": "1"}

    def test_missing_parameter_is_none(self):
        assert info(b"a=1").param("b") is None

    def test_no_body(self):
        assert info(None, query="a=1").params == {"a": "1"}
        assert info(b"").params == {}

    def test_parsed_once(self):
        req = info(b"a=1")
        assert req.params is req.params


class TestClientIdPrecedence:
    def test_from_basic(self):
        req = info(b"grant_type=refresh_token", Authorization=basic("alexa:secret"))
        assert req.param("client_id") == "alexa"

    def test_body_first(self):
        req = info(b"client_id=body", Authorization=basic("basic:secret"))
        assert req.param("client_id") == "body"

    def test_query_before_basic(self):
        req = info(b"", query="client_id=query", Authorization=basic("basic:s"))
        assert req.param("client_id") == "query"

    def test_json_body_first(self):
        req = info(b'{"client_id": "json"}', Authorization=basic("basic:s"))
        assert req.param("client_id") == "json"

    def test_basic_gives_only_the_client_id(self):
        req = info(b"", Authorization=basic("alexa:secret"))
        assert req.params == {"client_id": "alexa"}


class TestBasicClientId:
    @pytest.mark.parametrize(
        ("credentials", "client_id"),
        [
            ("alexa:secret", "alexa"),
            # RFC 6749 section 2.3.1: the id is form-encoded before base64
            ("my%20client:secret", "my client"),
            ("my+client:secret", "my client"),
            ("a%3Ab:secret", "a:b"),
            ("caf%C3%A9:s", "café"),
            ("alexa:", "alexa"),
            (":secret", ""),
            ("alexa:pass:word", "alexa"),
        ],
    )
    def test_decoded(self, credentials, client_id):
        assert basic_client_id(basic(credentials)) == client_id

    @pytest.mark.parametrize(
        "scheme", ["Basic ", "basic ", "BASIC ", "Basic   "], ids=repr
    )
    def test_scheme_is_case_insensitive(self, scheme):
        encoded = base64.b64encode(b"alexa:s").decode()
        assert basic_client_id(scheme + encoded) == "alexa"

    @pytest.mark.parametrize(
        "authorization",
        [
            None,
            "",
            "Bearer abc.def.ghi",
            "Basic",
            "Basic ",
            "Basicabc",
            "Basic !!!not-base64!!!",
            "Basic YWxleGE6c2VjcmV",  # truncated: bad padding
            basic("no colon at all"),  # RFC 7617: user-id ":" password
            basic(b"\xff\xfe:secret"),  # not UTF-8
        ],
        ids=repr,
    )
    def test_malformed(self, authorization):
        assert basic_client_id(authorization) is None

    def test_malformed_basic_leaves_the_params_alone(self):
        req = info(b"grant_type=refresh_token", Authorization="Basic %%%")
        assert req.params == {"grant_type": "refresh_token"}
        assert req.client_auth == "basic"


class TestBasicCredentials:
    def test_both_halves_are_form_decoded(self):
        # RFC 6749 section 2.3.1: each is form-encoded before base64
        header = "Basic " + base64.b64encode(b"my%20skill:s%3Acret+x").decode()
        assert basic_credentials(header) == ("my skill", "s:cret x")
        assert basic_secret(header) == "s:cret x"

    @pytest.mark.parametrize(
        "header", [None, "Bearer abc", "Basic !!!", "Basic " + "bm9jb2xvbg=="]
    )
    def test_not_basic_credentials(self, header):
        # the last is "nocolon": no user-id ":" password
        assert basic_credentials(header) is None
        assert basic_secret(header) is None


class TestBodies:
    def test_non_utf8_form_body_is_ignored(self):
        req = info(b"grant_type=refresh_token&name=\xe9t\xe9", query="a=1")
        assert req.params == {"a": "1"}

    def test_percent_encoded_non_utf8_is_replaced_not_refused(self):
        assert info(b"grant_type=x&n=%FF").params == {"grant_type": "x", "n": "\ufffd"}

    def test_utf16_body_gives_no_params(self):
        body = '{"grant_type": "refresh_token"}'.encode("utf-16")
        assert info(body, query="a=1").params == {"a": "1"}

    @pytest.mark.parametrize(
        "body",
        [
            b'{"grant_type": "refresh_token"',
            b'{"grant_type": \xff}',
            b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
            b"{not json}",
        ],
        ids=["truncated", "invalid utf-8", "too deep", "not json"],
    )
    def test_broken_json_gives_no_params(self, body):
        assert info(body, query="a=1").params == {"a": "1"}

    def test_json_that_is_not_an_object_gives_no_oauth_params(self):
        req = info(b'["grant_type", "refresh_token"]', query="a=1")
        assert (req.grant_type, req.param("client_id")) == (None, None)
        assert req.param("a") == "1"

    def test_up_to_64_kib_is_read(self):
        body = b"grant_type=refresh_token&pad=" + b"x" * (65536 - 29)
        assert len(body) == 65536
        assert info(body).grant_type == "refresh_token"

    def test_oversized_body_is_ignored(self):
        body = b"grant_type=refresh_token&pad=" + b"x" * (65536 - 28)
        assert len(body) == 65537
        req = info(body, query="grant_type=password")
        assert req.grant_type == "password"

    def test_oversized_json_body_is_ignored(self):
        body = b'{"grant_type": "refresh_token", "pad": "' + b"x" * 65536 + b'"}'
        assert info(body).params == {}


class TestGrantType:
    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            (b"grant_type=refresh_token", "refresh_token"),
            (b'{"grant_type": "authorization_code"}', "authorization_code"),
            (b'{"grant_type": 1}', None),
            (b'{"grant_type": ["refresh_token"]}', None),
            (b'{"grant_type": null}', None),
            (b"refresh_token=RT", None),
        ],
    )
    def test_only_strings(self, body, expected):
        assert info(body).grant_type == expected


class TestClientAuth:
    @pytest.mark.parametrize(
        ("body", "headers", "expected"),
        [
            (b"grant_type=x", {"Authorization": basic("a:b")}, "basic"),
            (b"grant_type=x", {"Authorization": "basic abc"}, "basic"),
            (b"client_id=a&client_secret=b", {}, "body"),
            (b'{"client_id": "a", "client_secret": "b"}', {}, "body"),
            (b"client_id=a&client_secret=", {}, "body"),
            (b"client_id=a", {}, "none"),
            (b"client_id=a", {"Authorization": "Bearer x"}, "none"),
            (b"", {}, "none"),
        ],
    )
    def test_how_the_client_authenticated(self, body, headers, expected):
        req = RequestInfo("POST", "h", "/", "", headers, body)
        assert req.client_auth == expected

    def test_basic_wins_over_a_secret_in_the_body(self):
        req = info(b"client_secret=s", Authorization=basic("a:b"))
        assert req.client_auth == "basic"
