"""`tokenfix token`: the client credentials grant against the local server,
directly, through a mitmdump with tokenfix and over verified TLS; its errors;
and what it writes where (the token on stdout alone, no secret on stderr)."""

import gzip
import io
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from addon import cli, tokencmd
from demo.authserver import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from tests.deployhelpers import TestCA, TLSFront
from tests.helpers import REPO, assert_no_secrets, basic_auth, free_port, jwt_claims
from tests.jwtutil import make_jwt

AUDIENCE = "https://api.example.com/v2/"
SECRET_ENV = "TOKENFIX_TEST_CLIENT_SECRET"
BASIC = basic_auth(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET).split()[1]


def utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def token_args(url: str, *extra: str, audience: str = AUDIENCE) -> list[str]:
    return [
        "token",
        "--token-url",
        url,
        "--client-id",
        DEMO_CLIENT_ID,
        "--audience",
        audience,
        *extra,
    ]


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv(SECRET_ENV, DEMO_CLIENT_SECRET)
    return ["--client-secret-env", SECRET_ENV]


def run_token(capsys, url: str, *extra: str, **kwargs) -> tuple[int, str, str]:
    rc = cli.main(token_args(url, *extra, **kwargs))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def secrets_of(token: str) -> set[str]:
    # a JWT cut short would still show its payload or signature
    return {token, DEMO_CLIENT_SECRET, BASIC, *token.split(".")[1:]}


def console_script() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "tokenfix")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "addon.cli"]


class TestTheGrant:
    def test_stdout_is_the_token_for_the_asked_audience(
        self, capsys, authserver, secret_env
    ):
        rc, out, err = run_token(capsys, f"{authserver.url}/oauth/token", *secret_env)

        assert rc == 0, err
        token = out.removesuffix("\n")
        assert out == token + "\n" and "\n" not in token
        claims = jwt_claims(token)
        assert claims["aud"] == AUDIENCE
        assert claims["sub"] == f"{DEMO_CLIENT_ID}@clients"
        assert claims["exp"] - claims["iat"] == authserver.lifetime
        assert_no_secrets(err, secrets_of(token))

    def test_stderr_shows_the_claims_and_the_expiry(
        self, capsys, authserver, secret_env
    ):
        before = time.time()
        rc, out, err = run_token(capsys, f"{authserver.url}/oauth/token", *secret_env)

        assert rc == 0, err
        claims = jwt_claims(out.strip())
        lines = err.splitlines()
        assert (
            lines[0] == f"Bearer token for {AUDIENCE} from 127.0.0.1:{authserver.port}"
        )
        assert lines[1].startswith("expires_in   300 s (until ")
        assert lines[2] == "claims (read, not verified):"
        assert f"  iss          {authserver.url}/" in lines
        assert f"  aud          {AUDIENCE}" in lines
        assert f"  iat          {claims['iat']}  {utc(claims['iat'])}" in lines
        exp = next(line for line in lines if line.startswith("  exp "))
        left = int(re.fullmatch(r".*, expires in (\d+) s", exp).group(1))
        assert exp.startswith(f"  exp          {claims['exp']}  {utc(claims['exp'])}")
        assert claims["exp"] - before - 2 <= left <= claims["exp"] - before
        assert "warning" not in err

    def test_the_scope_asked_for_is_granted(self, capsys, authserver, secret_env):
        url = f"{authserver.url}/oauth/token"
        rc, out, err = run_token(capsys, url, "--scope", "profile email", *secret_env)

        assert rc == 0, err
        assert jwt_claims(out.strip())["scope"] == "profile email"
        assert "scope        profile email" in err.splitlines()

    def test_the_request_is_a_client_credentials_grant_with_basic_auth(
        self, capsys, canned, secret_env
    ):
        access = make_jwt({"aud": AUDIENCE})
        canned.respond("/oauth/token", body=f'{{"access_token":"{access}"}}')
        # the upstream is shared: count only what this test sends
        before = len(canned.received)
        rc, out, _ = run_token(
            capsys, f"{canned.url}/oauth/token", "--scope", "read", *secret_env
        )

        assert (rc, out) == (0, f"{access}\n")
        (sent,) = canned.received[before:]
        headers = dict(sent.headers)
        assert (sent.method, sent.path) == ("POST", "/oauth/token")
        assert headers["Authorization"] == f"Basic {BASIC}"
        assert headers["Content-Type"].startswith("application/x-www-form-urlencoded")
        assert sent.body == (
            b"grant_type=client_credentials"
            b"&audience=https%3A%2F%2Fapi.example.com%2Fv2%2F&scope=read"
        )

    def test_the_secret_may_be_typed_at_the_prompt(self, authserver):
        asked = []

        def prompt(text):
            asked.append(text)
            return DEMO_CLIENT_SECRET

        out, err = io.StringIO(), io.StringIO()
        args = SimpleNamespace(
            token_url=f"{authserver.url}/oauth/token",
            client_id=DEMO_CLIENT_ID,
            audience=AUDIENCE,
            scope=None,
            client_secret_env=None,
            ca_file=None,
        )
        rc = tokencmd.run(args, environ={}, prompt=prompt, out=out, err=err)

        assert (rc, asked) == (0, ["client secret: "])
        assert jwt_claims(out.getvalue().strip())["aud"] == AUDIENCE


class TestThroughTheProxy:
    def test_the_console_script_through_mitmdump(self, proxy, authserver):
        env = {**os.environ, SECRET_ENV: DEMO_CLIENT_SECRET}
        done = subprocess.run(
            [
                *console_script(),
                *token_args(f"{proxy.url}/oauth/token"),
                "--client-secret-env",
                SECRET_ENV,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
            env=env,
        )

        assert done.returncode == 0, done.stderr
        token = done.stdout.removesuffix("\n")
        assert jwt_claims(token)["aud"] == AUDIENCE
        # the server issued it, and the proxy passed it on unchanged
        assert authserver.answers[-1].body.startswith(
            f'{{"access_token":"{token}"'.encode()
        )
        assert done.stderr.startswith(
            f"Bearer token for {AUDIENCE} from 127.0.0.1:{proxy.port}\n"
        )
        assert "Traceback" not in done.stderr
        assert_no_secrets(done.stderr, secrets_of(token))
        assert_no_secrets(proxy.output(), secrets_of(token))


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory, authserver):
    ca = TestCA(tmp_path_factory.mktemp("token-tls"))
    front = TLSFront(authserver.port, ca.leaf("authserver")).start()
    yield ca, f"https://127.0.0.1:{front.port}/oauth/token"
    front.stop()


class TestTLS:
    def test_the_certificate_is_verified_against_the_ca_file(
        self, capsys, tls_server, secret_env
    ):
        ca, url = tls_server
        rc, out, err = run_token(capsys, url, "--ca-file", str(ca.path), *secret_env)

        assert rc == 0, err
        assert jwt_claims(out.strip())["aud"] == AUDIENCE

    def test_a_certificate_no_known_ca_signed_is_refused(
        self, capsys, tls_server, secret_env
    ):
        _, url = tls_server
        rc, out, err = run_token(capsys, url, *secret_env)

        port = url.split(":")[2].split("/")[0]
        assert (rc, out) == (1, "")
        assert err == (
            f"tokenfix token: cannot verify the certificate of 127.0.0.1:{port}: "
            "unable to get local issuer certificate\n"
        )


class TestErrors:
    @pytest.mark.parametrize(
        ("url", "message"),
        [
            (
                "auth.example.com/oauth/token",
                "--token-url: expected an https:// URL such as "
                "https://TENANT.auth0.com/oauth/token, got "
                "'auth.example.com/oauth/token'",
            ),
            (
                "ftp://auth.example.com/oauth/token",
                "--token-url: expected an https:// URL such as "
                "https://TENANT.auth0.com/oauth/token, got "
                "'ftp://auth.example.com/oauth/token'",
            ),
            (
                "https://auth.example.com:99999/oauth/token",
                "--token-url: Port out of range 0-65535: "
                "'https://auth.example.com:99999/oauth/token'",
            ),
            (
                "http://auth.example.com/oauth/token",
                "--token-url: plain http would send the client secret to "
                "auth.example.com unencrypted; use https (plain http is for "
                "loopback hosts only)",
            ),
            (
                "https://id:pw@auth.example.com/oauth/token",
                "--token-url: credentials do not belong in the URL",
            ),
        ],
    )
    def test_a_bad_url(self, capsys, secret_env, url, message):
        rc, out, err = run_token(capsys, url, *secret_env)

        assert (rc, out, err) == (2, "", f"tokenfix token: {message}\n")

    def test_a_refused_connection(self, capsys, secret_env):
        port = free_port()
        url = f"http://127.0.0.1:{port}/oauth/token"
        rc, out, err = run_token(capsys, url, *secret_env)

        assert (rc, out) == (1, "")
        assert err == (
            f"tokenfix token: cannot connect to 127.0.0.1:{port}: Connection refused\n"
        )

    def test_a_wrong_secret_gets_the_oauth_error(self, capsys, authserver, monkeypatch):
        monkeypatch.setenv(SECRET_ENV, "not-the-secret")
        rc, out, err = run_token(
            capsys, f"{authserver.url}/oauth/token", "--client-secret-env", SECRET_ENV
        )

        assert (rc, out) == (1, "")
        assert err == (
            "tokenfix token: the token endpoint refused the request (401 "
            "Unauthorized): invalid_client: The client cannot authenticate with "
            "methods: ['client_secret_basic', 'client_secret_post']\n"
        )
        assert "not-the-secret" not in err

    def test_a_wrong_path(self, capsys, authserver, secret_env):
        rc, out, err = run_token(capsys, f"{authserver.url}/token", *secret_env)

        assert (rc, out) == (1, "")
        assert err == (
            "tokenfix token: the token endpoint refused the request (404 Not "
            "Found): not_found: No such endpoint.\n"
        )

    @pytest.mark.parametrize(
        ("status", "headers", "body", "message"),
        [
            (
                200,
                {"Content-Type": "text/html; charset=utf-8"},
                "<html>sign in</html>",
                "the token endpoint answered 200 OK with a body that is not JSON "
                "(text/html)",
            ),
            (
                502,
                {},
                "",
                "the token endpoint answered 502 Bad Gateway with a body that is "
                "not JSON (no Content-Type)",
            ),
            (
                200,
                {"Content-Type": "application/json"},
                '["access_token"]',
                "the token endpoint answered 200 OK with no JSON object",
            ),
            (
                200,
                {"Content-Type": "application/json"},
                '{"token_type":"Bearer","expires_in":3600}',
                "the token endpoint answered 200 OK without an access_token (the "
                "response holds expires_in, token_type)",
            ),
            (
                500,
                {"Content-Type": "application/json"},
                '{"message":"boom"}',
                "the token endpoint answered 500 Internal Server Error with no "
                "OAuth error",
            ),
            (
                403,
                {"Content-Type": "application/json"},
                '{"error":"access_denied","error_description":"Service not '
                'enabled within domain: https://api.example.com/v2/"}',
                "the token endpoint refused the request (403 Forbidden): "
                "access_denied: Service not enabled within domain: "
                "https://api.example.com/v2/",
            ),
            (
                302,
                {"Location": "https://auth.example.com/login?state=abc#x"},
                "",
                "the token endpoint answered 302 Found, a redirect to "
                "https://auth.example.com/login: is --token-url the token "
                "endpoint itself?",
            ),
        ],
    )
    def test_a_response_that_is_no_token(
        self, capsys, canned, secret_env, status, headers, body, message
    ):
        canned.respond("/oauth/token", status=status, headers=headers, body=body)
        before = len(canned.received)
        rc, out, err = run_token(capsys, f"{canned.url}/oauth/token", *secret_env)

        assert (rc, out, err) == (1, "", f"tokenfix token: {message}\n")
        assert len(canned.received) == before + 1  # a redirect is not followed

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            # 100 MiB of zeros, gzipped to about 100 KiB
            (
                gzip.compress(b"0" * (100 << 20)),
                "decoded body larger than 1048576 bytes",
            ),
            (
                b"\x1f\x8b not gzip at all",
                "cannot decode gzip body: corrupt or truncated",
            ),
        ],
    )
    def test_a_body_that_cannot_be_decoded_within_the_limit(
        self, capsys, canned, secret_env, body, message
    ):
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        canned.respond("/oauth/token", headers=headers, body=body)
        rc, out, err = run_token(capsys, f"{canned.url}/oauth/token", *secret_env)

        assert (rc, out) == (1, "")
        assert err == f"tokenfix token: the token endpoint answered 200 OK: {message}\n"

    def test_a_body_over_the_limit_is_not_read(self, capsys, canned, secret_env):
        body = '{"access_token":"' + "a" * (1 << 20) + '"}'
        canned.respond("/oauth/token", body=body)
        rc, out, err = run_token(capsys, f"{canned.url}/oauth/token", *secret_env)

        assert (rc, out) == (1, "")
        assert err == (
            "tokenfix token: the token endpoint answered 200 OK with a body of "
            "more than 1048576 bytes\n"
        )

    def test_a_gzip_answer_is_read(self, capsys, canned, secret_env):
        access = "at-gzipped-answer-1"
        body = gzip.compress(f'{{"access_token":"{access}"}}'.encode())
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        canned.respond("/oauth/token", headers=headers, body=body)
        rc, out, _ = run_token(capsys, f"{canned.url}/oauth/token", *secret_env)

        assert (rc, out) == (0, f"{access}\n")

    def test_a_server_that_echoes_the_secret_back(self, capsys, canned, secret_env):
        canned.respond(
            "/oauth/token",
            status=401,
            body=f'{{"error":"invalid_client","error_description":"bad secret '
            f'{DEMO_CLIENT_SECRET}"}}',
        )
        rc, _, err = run_token(capsys, f"{canned.url}/oauth/token", *secret_env)

        assert rc == 1
        assert err == (
            "tokenfix token: the token endpoint refused the request (401 "
            "Unauthorized): invalid_client: bad secret <redacted>\n"
        )

    @pytest.mark.parametrize(
        ("environ", "message"),
        [
            ({}, f"--client-secret-env: {SECRET_ENV} is not set"),
            ({SECRET_ENV: ""}, f"--client-secret-env: {SECRET_ENV} is empty"),
        ],
    )
    def test_a_missing_secret_variable(self, environ, message):
        out, err = io.StringIO(), io.StringIO()
        args = SimpleNamespace(
            token_url="https://auth.example.com/oauth/token",
            client_id=DEMO_CLIENT_ID,
            audience=AUDIENCE,
            scope=None,
            client_secret_env=SECRET_ENV,
            ca_file=None,
        )
        rc = tokencmd.run(args, environ=environ, out=out, err=err)

        assert (rc, out.getvalue()) == (2, "")
        assert err.getvalue() == f"tokenfix token: {message}\n"

    @pytest.mark.parametrize("typed", [EOFError, KeyboardInterrupt, ""])
    def test_no_secret_at_the_prompt(self, typed):
        def prompt(text):
            if isinstance(typed, type):
                raise typed
            return typed

        with pytest.raises(tokencmd.TokenError) as caught:
            tokencmd.read_secret(None, {}, prompt)

        assert caught.value.status == 2
        assert str(caught.value) == (
            "no client secret given (type it at the prompt, or name an "
            "environment variable with --client-secret-env)"
        )

    def test_errors_from_the_console_script_have_no_traceback(self):
        env = {k: v for k, v in os.environ.items() if k != SECRET_ENV}
        port = free_port()
        done = subprocess.run(
            [
                *console_script(),
                *token_args(f"http://127.0.0.1:{port}/oauth/token"),
                "--client-secret-env",
                SECRET_ENV,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
            env=env,
        )

        assert (done.returncode, done.stdout) == (2, "")
        assert done.stderr == (
            f"tokenfix token: --client-secret-env: {SECRET_ENV} is not set\n"
        )

    def test_the_secret_has_no_argument_of_its_own(self, capsys):
        # nor may --client-secret pass for an abbreviation of --client-secret-env
        with pytest.raises(SystemExit) as caught:
            cli.main(token_args("https://a.example/t", "--client-secret", "s3cr3t"))

        assert caught.value.code == 2
        err = capsys.readouterr().err
        assert err.endswith(
            "tokenfix: error: unrecognized arguments: --client-secret s3cr3t\n"
        )

    @pytest.mark.parametrize("name", ["s3cr3t-value!", "9LIVES", "A B"])
    def test_a_secret_given_as_the_variable_name_is_not_echoed(self, capsys, name):
        rc, out, err = run_token(
            capsys, "https://a.example/t", "--client-secret-env", name
        )

        assert (rc, out) == (2, "")
        assert err == (
            "tokenfix token: --client-secret-env takes the name of an environment "
            "variable (letters, digits and _), not the secret itself\n"
        )


REQUEST = tokencmd.TokenRequest("https://acme.auth0.com/oauth/token", "c", AUDIENCE)
NOW = 1_800_000_000


class TestDescribe:
    def test_a_jwt_with_its_times_in_utc(self):
        token = {
            "access_token": make_jwt(
                {
                    "aud": [AUDIENCE, "https://acme.auth0.com/userinfo"],
                    "iat": NOW,
                    "exp": NOW + 86400,
                    "gty": "client-credentials",
                    "permissions": [],
                }
            ),
            "token_type": "Bearer",
            "expires_in": 86400,
        }

        assert tokencmd.describe(token, NOW + 10, REQUEST) == [
            f"Bearer token for {AUDIENCE} from acme.auth0.com",
            "expires_in   86400 s (until 2027-01-16 08:00:10 UTC)",
            "claims (read, not verified):",
            f'  aud          ["{AUDIENCE}", "https://acme.auth0.com/userinfo"]',
            "  iat          1800000000  2027-01-15 08:00:00 UTC",
            "  exp          1800086400  2027-01-16 08:00:00 UTC, expires in 86390 s",
            "  gty          client-credentials",
            "  permissions  []",
        ]

    def test_an_expired_token_and_the_wrong_audience(self):
        token = {
            "access_token": make_jwt({"aud": "https://other.example/", "exp": NOW}),
            "token_type": "Bearer",
        }

        assert tokencmd.describe(token, NOW + 5, REQUEST)[1:] == [
            "expires_in   not in the response",
            "claims (read, not verified):",
            "  aud          https://other.example/",
            "  exp          1800000000  2027-01-15 08:00:00 UTC, expired 5 s ago",
            'warning: the token\'s aud is "https://other.example/", not the '
            f"audience asked for ({AUDIENCE}); the API will refuse it",
        ]

    def test_an_opaque_token_and_other_secrets_are_not_shown(self):
        token = {
            "access_token": "opaque-access-token-value",
            "refresh_token": "rt-value-never-shown",
            "id_token": make_jwt({"sub": "u"}),
            "expires_in": "3600",
            "scope": "read:things",
        }

        lines = tokencmd.describe(token, NOW, REQUEST)

        assert lines == [
            f"no token_type token for {AUDIENCE} from acme.auth0.com",
            "expires_in   '3600', not a number",
            "scope        read:things",
            "not shown    id_token, refresh_token",
            "access token: opaque (not a JWT), so no claims to show",
        ]

    def test_secret_claims_are_redacted(self):
        access = make_jwt({"aud": AUDIENCE, "client_secret": "leaked-in-a-claim"})
        lines = tokencmd.describe({"access_token": access}, NOW, REQUEST)

        assert "  client_secret <redacted>" in lines
        assert_no_secrets("\n".join(lines), {"leaked-in-a-claim", access})
