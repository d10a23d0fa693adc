"""The demo authorization server: Auth0 as it was, fault included."""

import json
import logging
import re
import subprocess
import sys
import time

import pytest

from demo.authserver import (
    DEFAULT_AUDIENCE,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_REDIRECT_URI,
    DEMO_USER,
    start_in_thread,
    verify_jwt,
)
from tests.helpers import (
    REPO,
    TokenClient,
    assert_no_secrets,
    request,
)

STYLES = ["alexa", "auth0"]


def linked(base_url: str, style: str = "alexa", **authorize_params) -> dict:
    client = TokenClient(base_url, style)
    resp = client.exchange_code(client.authorize(**authorize_params))
    assert resp.status == 200, resp.body
    return resp.json()


class TestAuthorize:
    def test_known_client_is_redirected_with_code_and_state(self, authserver):
        code = TokenClient(authserver.url).authorize()
        assert re.fullmatch(r"[A-Za-z0-9]{40,}", code)

    def test_redirect_goes_to_the_registered_uri(self, authserver):
        params = (
            f"response_type=code&client_id={DEMO_CLIENT_ID}&state=s1"
            "&redirect_uri=https%3A%2F%2Flayla.amazon.com%2Fapi%2Fskill%2Flink%2FM2TOKENFIXDEMO"
        )
        resp = request("GET", f"{authserver.url}/authorize?{params}")
        assert resp.status == 302
        assert resp.header("Location").startswith(f"{DEMO_REDIRECT_URI}?code=")
        assert resp.header("Location").endswith("&state=s1")

    def test_unknown_client_is_refused_without_redirect(self, authserver):
        resp = request(
            "GET", f"{authserver.url}/authorize?response_type=code&client_id=nobody"
        )
        assert resp.status == 400
        assert resp.header("Location") is None
        assert resp.json()["error"] == "invalid_client"

    def test_unregistered_redirect_uri_is_refused_without_redirect(self, authserver):
        params = (
            f"response_type=code&client_id={DEMO_CLIENT_ID}"
            "&redirect_uri=https%3A%2F%2Fevil.example%2Fcb"
        )
        resp = request("GET", f"{authserver.url}/authorize?{params}")
        assert resp.status == 400
        assert resp.header("Location") is None
        assert resp.json()["error"] == "invalid_request"


class TestCodeExchange:
    @pytest.mark.parametrize("style", STYLES)
    def test_answers_expires_in_and_an_id_token(self, authserver, style):
        before = int(time.time())
        body = linked(authserver.url, style)
        assert list(body) == [
            "access_token",
            "refresh_token",
            "id_token",
            "scope",
            "expires_in",
            "token_type",
        ]
        assert body["expires_in"] == authserver.lifetime == 300
        assert body["token_type"] == "Bearer"
        assert body["scope"] == "openid offline_access"

        claims = verify_jwt(body["access_token"])
        assert claims["iss"] == f"{authserver.url}/"
        assert claims["sub"] == DEMO_USER
        assert claims["aud"] == DEFAULT_AUDIENCE
        assert claims["azp"] == DEMO_CLIENT_ID
        assert before <= claims["iat"] <= time.time()
        assert claims["exp"] - claims["iat"] == 300
        assert verify_jwt(body["id_token"])["aud"] == DEMO_CLIENT_ID

    def test_response_headers_forbid_caching(self, authserver):
        client = TokenClient(authserver.url)
        resp = client.exchange_code(client.authorize())
        assert resp.header("Content-Type") == "application/json"
        assert resp.header("Cache-Control") == "no-store"
        assert resp.header("Pragma") == "no-cache"
        assert resp.header("Content-Length") == str(len(resp.body))

    def test_audience_and_nonce_of_the_authorization_request_are_kept(self, authserver):
        body = linked(authserver.url, audience="https://api.example/", nonce="n-1")
        assert verify_jwt(body["access_token"])["aud"] == "https://api.example/"
        assert verify_jwt(body["id_token"])["nonce"] == "n-1"

    def test_a_code_is_good_once(self, authserver):
        client = TokenClient(authserver.url)
        code = client.authorize()
        assert client.exchange_code(code).status == 200
        again = client.exchange_code(code)
        assert again.status == 400
        assert again.json()["error"] == "invalid_grant"

    def test_the_record_of_answers_holds_the_bytes_sent(self, authserver):
        client = TokenClient(authserver.url)
        resp = client.exchange_code(client.authorize())
        sent = authserver.answers[-1]
        assert (sent.status, sent.body) == (resp.status, resp.body)
        assert sent.header("Cache-Control") == "no-store"


class TestRefresh:
    @pytest.mark.parametrize("style", STYLES)
    def test_omits_expires_in_and_rotates_the_refresh_token(self, authserver, style):
        tokens = linked(authserver.url, style)
        client = TokenClient(authserver.url, style)
        resp = client.refresh(tokens["refresh_token"])

        assert resp.status == 200
        body = resp.json()
        assert list(body) == ["access_token", "refresh_token", "scope", "token_type"]
        assert body["refresh_token"] != tokens["refresh_token"]
        claims = verify_jwt(body["access_token"])
        assert claims["exp"] - claims["iat"] == 300
        assert claims["aud"] == DEFAULT_AUDIENCE

    def test_the_old_refresh_token_is_revoked(self, authserver):
        tokens = linked(authserver.url)
        client = TokenClient(authserver.url)
        assert client.refresh(tokens["refresh_token"]).status == 200
        again = client.refresh(tokens["refresh_token"])
        assert (again.status, again.body) == (400, b'{"error":"invalid_grant"}')

    def test_a_refresh_token_is_bound_to_its_client(self, authserver):
        tokens = linked(authserver.url)
        client = TokenClient(authserver.url, client_id="other", client_secret="x")
        assert client.refresh(tokens["refresh_token"]).status == 401


class TestClientCredentials:
    @pytest.mark.parametrize("style", STYLES)
    def test_audience_becomes_the_tokens_aud(self, authserver, style):
        client = TokenClient(authserver.url, style)
        params = {"grant_type": "client_credentials", "audience": "https://api.b/"}
        resp = client.token(params)

        assert resp.status == 200
        body = resp.json()
        assert list(body) == ["access_token", "expires_in", "token_type"]
        assert body["expires_in"] == 300
        claims = verify_jwt(body["access_token"])
        assert claims["aud"] == "https://api.b/"
        assert claims["sub"] == f"{DEMO_CLIENT_ID}@clients"


class TestErrors:
    """RFC 6749 section 5.2: a JSON error object, never cached."""

    def test_unknown_refresh_token_is_invalid_grant(self, authserver):
        resp = TokenClient(authserver.url).refresh("no-such-refresh-token")
        assert resp.status == 400
        assert resp.body == b'{"error":"invalid_grant"}'
        assert resp.header("Content-Type") == "application/json"
        assert resp.header("Cache-Control") == "no-store"

    def test_wrong_secret_in_basic_is_401_with_a_challenge(self, authserver):
        client = TokenClient(authserver.url, client_secret="wrong")
        resp = client.token({"grant_type": "client_credentials"})
        assert resp.status == 401
        assert resp.json()["error"] == "invalid_client"
        assert resp.header("WWW-Authenticate").startswith("Basic ")
        assert resp.header("Cache-Control") == "no-store"

    def test_wrong_secret_in_the_body_is_invalid_client(self, authserver):
        client = TokenClient(authserver.url, "auth0", client_secret="wrong")
        resp = client.token({"grant_type": "client_credentials"})
        assert resp.status == 401
        assert resp.json()["error"] == "invalid_client"

    def test_unsupported_grant_type(self, authserver):
        resp = TokenClient(authserver.url).token({"grant_type": "password"})
        assert (resp.status, resp.body) == (400, b'{"error":"unsupported_grant_type"}')

    @pytest.mark.parametrize(
        "body, description",
        [
            (b"{not json", "The request body is not valid JSON."),
            (b'["grant_type"]', "The JSON request body must be an object."),
            (
                b'{"grant_type": {"a": 1}}',
                "The parameter 'grant_type' must not be nested.",
            ),
        ],
    )
    def test_malformed_json_body_is_invalid_request(
        self, authserver, body, description
    ):
        headers = {"Content-Type": "application/json"}
        resp = request(
            "POST", f"{authserver.url}/oauth/token", body=body, headers=headers
        )
        assert resp.status == 400
        assert resp.json() == {
            "error": "invalid_request",
            "error_description": description,
        }
        assert resp.header("Cache-Control") == "no-store"

    def test_json_scalars_are_read_as_their_text(self, authserver):
        body = json.dumps(
            {
                "grant_type": "client_credentials",
                "client_id": DEMO_CLIENT_ID,
                "client_secret": DEMO_CLIENT_SECRET,
                "audience": None,
                "extra": 1,
            }
        )
        headers = {"Content-Type": "application/json"}
        resp = request(
            "POST", f"{authserver.url}/oauth/token", body=body, headers=headers
        )
        assert resp.status == 200
        assert verify_jwt(resp.json()["access_token"])["aud"] == DEFAULT_AUDIENCE

    def test_unknown_path_is_404(self, authserver):
        resp = request("GET", f"{authserver.url}/userinfo")
        assert resp.status == 404
        assert resp.json()["error"] == "not_found"


class TestJwt:
    def test_a_tampered_token_is_refused(self, authserver):
        token = linked(authserver.url)["access_token"]
        header, payload, signature = token.split(".")
        with pytest.raises(ValueError, match="not a JWT signed by the demo server"):
            verify_jwt(f"{header}.{payload}x.{signature}")
        with pytest.raises(ValueError):
            verify_jwt("opaque")


class TestLogging:
    def test_log_lines_carry_no_secret_at_any_level(self, authserver, caplog):
        caplog.set_level(logging.DEBUG)
        client = TokenClient(authserver.url)
        tokens = client.exchange_code(client.authorize()).json()
        client.refresh(tokens["refresh_token"])

        assert "POST /oauth/token 200" in caplog.text
        assert "GET /authorize 302" in caplog.text
        assert client.sent_secrets
        assert_no_secrets(caplog.text, client.sent_secrets)


class TestRunning:
    def test_start_in_thread_returns_the_url_and_a_stop_function(self):
        url, stop = start_in_thread()
        try:
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
            assert request("GET", f"{url}/nowhere").status == 404
        finally:
            stop()
        with pytest.raises(OSError):
            request("GET", f"{url}/nowhere", timeout=1)

    def test_command_line_prints_its_url_when_ready(self):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "demo.authserver",
                "--port",
                "0",
                "--lifetime",
                "60",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            line = proc.stdout.readline()
            match = re.fullmatch(r"listening on (http://127\.0\.0\.1:\d+)\n", line)
            assert match, line
            body = linked(match.group(1))
            assert body["expires_in"] == 60
        finally:
            proc.terminate()
            _, stderr = proc.communicate(timeout=5)
        assert "POST /oauth/token 200" in stderr
        assert DEMO_CLIENT_SECRET not in stderr
        assert body["access_token"] not in stderr
