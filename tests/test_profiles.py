"""Client profiles: a table of exchanges and the exact findings each gets."""

import json

import pytest

from addon.profiles import PROFILES, Finding, check

GOOD = {"Content-Type": "application/json", "Cache-Control": "no-store"}
CODE = "authorization_code"
REFRESH = "refresh_token"
AT = "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJlLXZhbHVl"
RT = "v1.MrTU2ZkJb8jXoR0a8Y4wS7Nq"


def body(**fields) -> bytes:
    return json.dumps(fields).encode()


def token(**extra) -> bytes:
    fields = {"access_token": AT, "token_type": "Bearer", "expires_in": 3600}
    fields.update(extra)
    return body(**{k: v for k, v in fields.items() if v is not OMIT})


OMIT = object()
FULL = token(refresh_token=RT)

# (profile, grant type, status, headers, body, duration) -> findings
CASES = [
    pytest.param(
        "rfc6749", CODE, 200, GOOD, FULL, 0.2, [], id="rfc6749-compliant-code-exchange"
    ),
    pytest.param(
        "rfc6749",
        REFRESH,
        200,
        {"Content-Type": "application/json"},
        token(expires_in=OMIT),
        0.2,
        [
            (
                "no-store",
                "warning",
                "Cache-Control: no-store missing: a cache on the way may keep the "
                "token (RFC 6749 section 5.1)",
            )
        ],
        id="rfc6749-no-cache-control-and-no-expires-in",
    ),
    pytest.param(
        "rfc6749",
        REFRESH,
        200,
        {"Cache-Control": "private, No-Store"},
        token(expires_in=OMIT),
        None,
        [],
        id="rfc6749-no-store-among-other-directives",
    ),
    pytest.param(
        "rfc6749",
        CODE,
        200,
        GOOD,
        body(token_type="Bearer", expires_in=60),
        None,
        [
            (
                "missing-access-token",
                "error",
                "access_token missing: the client gets no token (RFC 6749 section 5.1)",
            )
        ],
        id="rfc6749-no-access-token",
    ),
    pytest.param(
        "rfc6749",
        CODE,
        200,
        GOOD,
        body(access_token=None, token_type=7),
        None,
        [
            (
                "missing-access-token",
                "error",
                "access_token is null, not a string: the client gets no token "
                "(RFC 6749 section 5.1)",
            ),
            (
                "missing-token-type",
                "error",
                "token_type is a number, not a string: the client cannot tell how "
                "to use it (RFC 6749 section 5.1)",
            ),
        ],
        id="rfc6749-null-token-and-numeric-type",
    ),
    pytest.param(
        "rfc6749",
        CODE,
        200,
        GOOD,
        body(access_token=AT),
        None,
        [
            (
                "missing-token-type",
                "error",
                "token_type missing: the client cannot tell how to use it "
                "(RFC 6749 section 5.1)",
            )
        ],
        id="rfc6749-no-token-type",
    ),
    pytest.param(
        "rfc6749",
        REFRESH,
        200,
        GOOD,
        token(expires_in="3600"),
        None,
        [
            (
                "expires-in-type",
                "warning",
                "expires_in is a string, not a number: strict clients ignore it "
                "(RFC 6749 section 5.1)",
            )
        ],
        id="rfc6749-expires-in-string",
    ),
    pytest.param(
        "rfc6749",
        REFRESH,
        200,
        GOOD,
        token(expires_in=0),
        None,
        [
            (
                "expires-in-not-positive",
                "error",
                "expires_in is 0, not a positive number: the client takes the token "
                "for expired at once (RFC 6749 section 5.1)",
            )
        ],
        id="rfc6749-expires-in-zero",
    ),
    pytest.param(
        "rfc6749",
        REFRESH,
        200,
        GOOD,
        token(expires_in=None),
        None,
        [],
        id="rfc6749-expires-in-null-is-as-absent",
    ),
    pytest.param(
        "rfc6749",
        CODE,
        200,
        {"Content-Type": "text/html"},
        b"<html>Welcome</html>",
        None,
        [
            (
                "not-json",
                "error",
                "the body is not a JSON object (not JSON (JSONDecodeError)): the "
                "client cannot read a token from it (RFC 6749 section 5.1)",
            ),
            (
                "no-store",
                "warning",
                "Cache-Control: no-store missing: a cache on the way may keep the "
                "token (RFC 6749 section 5.1)",
            ),
        ],
        id="rfc6749-html-page-with-200",
    ),
    pytest.param(
        "rfc6749",
        CODE,
        200,
        GOOD,
        b'{"access_token":"a","access_token":"b","token_type":"Bearer"}',
        None,
        [
            (
                "not-json",
                "error",
                "the body is not a JSON object (duplicate key 'access_token'): the "
                "client cannot read a token from it (RFC 6749 section 5.1)",
            )
        ],
        id="rfc6749-duplicate-key",
    ),
    pytest.param(
        "rfc6749",
        REFRESH,
        400,
        {"Content-Type": "application/json"},
        body(error="invalid_grant"),
        None,
        [],
        id="rfc6749-400-invalid-grant",
    ),
    pytest.param(
        "rfc6749",
        CODE,
        401,
        {"Content-Type": "application/json"},
        body(error="invalid_client", error_description="Unknown client."),
        None,
        [],
        id="rfc6749-401-invalid-client",
    ),
    pytest.param(
        "rfc6749",
        REFRESH,
        403,
        {"Content-Type": "application/json"},
        body(error="invalid_token"),
        None,
        [
            (
                "error-status",
                "warning",
                "error answered with 403, not 400 or 401: the client may not read "
                "it as an OAuth error (RFC 6749 section 5.2)",
            ),
            (
                "error-code",
                "warning",
                "error 'invalid_token' is not a registered error code: the client "
                "may not know what to do (RFC 6749 section 5.2)",
            ),
        ],
        id="rfc6749-403-unregistered-code",
    ),
    pytest.param(
        "rfc6749",
        REFRESH,
        400,
        {"Content-Type": "application/json"},
        body(message="refresh token revoked"),
        None,
        [
            (
                "error-code",
                "warning",
                "error missing: the client cannot tell why it was refused "
                "(RFC 6749 section 5.2)",
            )
        ],
        id="rfc6749-400-without-error",
    ),
    pytest.param(
        "rfc6749",
        REFRESH,
        400,
        {"Content-Type": "application/json"},
        body(error={"code": 17}),
        None,
        [
            (
                "error-code",
                "warning",
                "error is an object, not a string: the client cannot tell why it "
                "was refused (RFC 6749 section 5.2)",
            )
        ],
        id="rfc6749-400-error-object",
    ),
    pytest.param(
        "rfc6749",
        REFRESH,
        400,
        {"Content-Type": "application/json"},
        body(error="bad\ncode"),
        None,
        [
            (
                "error-code",
                "warning",
                "error (unprintable) is not a registered error code: the client "
                "may not know what to do (RFC 6749 section 5.2)",
            )
        ],
        id="rfc6749-400-unprintable-code-is-not-shown",
    ),
    pytest.param(
        "rfc6749",
        "urn:ietf:params:oauth:grant-type:device_code",
        400,
        {"Content-Type": "application/json"},
        body(error="authorization_pending"),
        None,
        [],
        id="rfc6749-device-flow-registered-extension-code",
    ),
    pytest.param(
        "rfc6749",
        REFRESH,
        500,
        {"Content-Type": "text/html"},
        b"<h1>Internal Server Error</h1>",
        None,
        [
            (
                "error-status",
                "warning",
                "error answered with 500, not 400 or 401: the client may not read "
                "it as an OAuth error (RFC 6749 section 5.2)",
            ),
            (
                "error-not-json",
                "warning",
                "the error body is not a JSON object (not JSON (JSONDecodeError)): "
                "the client cannot tell why it was refused (RFC 6749 section 5.2)",
            ),
        ],
        id="rfc6749-500-html",
    ),
    pytest.param(
        "alexa", CODE, 200, GOOD, FULL, 4.4, [], id="alexa-compliant-code-exchange"
    ),
    pytest.param(
        "alexa",
        REFRESH,
        200,
        GOOD,
        token(expires_in=OMIT, refresh_token=RT),
        0.3,
        [
            (
                "alexa-expires-in",
                "error",
                "expires_in missing: Alexa will not refresh this token",
            )
        ],
        id="alexa-refresh-without-expires-in",
    ),
    pytest.param(
        "alexa",
        REFRESH,
        200,
        GOOD,
        token(expires_in=None),
        0.3,
        [
            (
                "alexa-expires-in",
                "error",
                "expires_in null: Alexa will not refresh this token",
            )
        ],
        id="alexa-refresh-with-null-expires-in",
    ),
    pytest.param(
        "alexa",
        REFRESH,
        200,
        GOOD,
        token(),
        0.3,
        [],
        id="alexa-refresh-without-refresh-token-is-fine",
    ),
    pytest.param(
        "alexa",
        CODE,
        200,
        GOOD,
        token(),
        0.3,
        [
            (
                "alexa-refresh-token",
                "error",
                "refresh_token missing on the code exchange: Alexa cannot refresh, "
                "and unlinks the account when the access token expires",
            )
        ],
        id="alexa-code-exchange-without-refresh-token",
    ),
    pytest.param(
        "alexa",
        CODE,
        200,
        GOOD,
        FULL,
        4.51,
        [
            (
                "alexa-slow",
                "error",
                "answered in 4.51 s: Alexa gives up after 4.5 s",
            )
        ],
        id="alexa-just-over-the-deadline",
    ),
    pytest.param(
        "alexa",
        REFRESH,
        400,
        {"Content-Type": "application/json"},
        body(error="invalid_grant"),
        6.25,
        [
            (
                "alexa-slow",
                "error",
                "answered in 6.25 s: Alexa gives up after 4.5 s",
            )
        ],
        id="alexa-slow-error",
    ),
    pytest.param(
        "alexa",
        CODE,
        200,
        GOOD,
        token(access_token="a" * 2049, refresh_token="r" * 2048),
        None,
        [
            (
                "alexa-token-length",
                "warning",
                "access_token is 2049 bytes: Alexa advises tokens of at most 2048 "
                "bytes",
            )
        ],
        id="alexa-long-access-token",
    ),
    pytest.param(
        "alexa",
        CODE,
        200,
        {"Content-Type": "application/json"},
        token(expires_in=OMIT),
        None,
        [
            (
                "no-store",
                "warning",
                "Cache-Control: no-store missing: a cache on the way may keep the "
                "token (RFC 6749 section 5.1)",
            ),
            (
                "alexa-expires-in",
                "error",
                "expires_in missing: Alexa will not refresh this token",
            ),
            (
                "alexa-refresh-token",
                "error",
                "refresh_token missing on the code exchange: Alexa cannot refresh, "
                "and unlinks the account when the access token expires",
            ),
        ],
        id="alexa-rfc-checks-come-first",
    ),
    pytest.param(
        "google", CODE, 200, GOOD, FULL, 9.0, [], id="google-compliant-no-deadline"
    ),
    pytest.param(
        "google",
        REFRESH,
        200,
        {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"},
        token(expires_in="3600"),
        None,
        [
            (
                "google-expires-in-type",
                "error",
                "expires_in is a string, not a number: Google expects a JSON number",
            ),
            (
                "google-content-type",
                "error",
                "Content-Type text/plain, not application/json: Google expects "
                "application/json",
            ),
        ],
        id="google-text-plain-and-string-expires-in",
    ),
    pytest.param(
        "google",
        REFRESH,
        200,
        {"Cache-Control": "no-store"},
        token(expires_in=-1),
        None,
        [
            (
                "expires-in-not-positive",
                "error",
                "expires_in is -1, not a positive number: the client takes the "
                "token for expired at once (RFC 6749 section 5.1)",
            ),
            (
                "google-content-type",
                "error",
                "Content-Type missing: Google expects application/json",
            ),
        ],
        id="google-negative-expires-in-no-content-type",
    ),
    pytest.param(
        "google",
        CODE,
        200,
        GOOD,
        token(),
        None,
        [
            (
                "google-refresh-token",
                "error",
                "refresh_token missing on the code exchange: Google cannot refresh, "
                "and the user must link again when the access token expires",
            )
        ],
        id="google-code-exchange-without-refresh-token",
    ),
    pytest.param(
        "google",
        REFRESH,
        400,
        {"Content-Type": "application/json"},
        body(error="invalid_grant"),
        None,
        [],
        id="google-dead-grant-answered-right",
    ),
    pytest.param(
        "google",
        REFRESH,
        401,
        {"Content-Type": "application/json"},
        body(error="invalid_grant"),
        None,
        [
            (
                "google-dead-grant",
                "error",
                "invalid_grant answered with 401, not 400: Google retries instead "
                "of unlinking",
            )
        ],
        id="google-invalid-grant-with-401",
    ),
    pytest.param(
        "google",
        REFRESH,
        500,
        {"Content-Type": "application/json"},
        body(error="server_error"),
        None,
        [
            (
                "error-status",
                "warning",
                "error answered with 500, not 400 or 401: the client may not read "
                "it as an OAuth error (RFC 6749 section 5.2)",
            ),
            (
                "error-code",
                "warning",
                "error 'server_error' is not a registered error code: the client "
                "may not know what to do (RFC 6749 section 5.2)",
            ),
            (
                "google-dead-grant",
                "error",
                "refresh refused with 500 and no invalid_grant: if the refresh token "
                "is dead, Google retries instead of unlinking (answer 400 "
                "invalid_grant)",
            ),
        ],
        id="google-500-for-a-refresh",
    ),
    pytest.param(
        "google",
        REFRESH,
        401,
        {"Content-Type": "application/json"},
        body(error="invalid_client"),
        None,
        [],
        id="google-client-authentication-failure-is-not-a-dead-grant",
    ),
    pytest.param(
        "google",
        CODE,
        500,
        {"Content-Type": "application/json"},
        body(error="invalid_grant"),
        None,
        [
            (
                "error-status",
                "warning",
                "error answered with 500, not 400 or 401: the client may not read "
                "it as an OAuth error (RFC 6749 section 5.2)",
            )
        ],
        id="google-dead-grant-check-is-for-refreshes-only",
    ),
    pytest.param(
        "none",
        CODE,
        500,
        {},
        b"",
        60.0,
        [],
        id="none-checks-nothing",
    ),
]


class TestCheck:
    @pytest.mark.parametrize(
        "profile, grant_type, status, headers, content, duration, expected", CASES
    )
    def test_findings(
        self, profile, grant_type, status, headers, content, duration, expected
    ):
        findings = check(
            profile, grant_type, status, headers, content, duration=duration
        )

        assert [(f.code, f.severity, f.message) for f in findings] == expected

    @pytest.mark.parametrize("profile", PROFILES)
    def test_a_request_without_a_grant_type_is_not_checked(self, profile):
        assert check(profile, None, 500, {}, b"<html>", duration=60.0) == []

    def test_headers_are_read_whatever_their_case(self):
        headers = {"CONTENT-TYPE": "application/json", "cache-CONTROL": "NO-STORE"}
        assert check("google", CODE, 200, headers, FULL) == []

    def test_an_unknown_profile_names_the_allowed_ones(self):
        with pytest.raises(ValueError) as e:
            check("alexia", CODE, 200, GOOD, FULL)
        assert str(e.value) == (
            "unknown profile 'alexia' (expected one of: rfc6749, alexa, google, none)"
        )

    def test_a_missing_body_is_an_empty_one(self):
        findings = check("rfc6749", CODE, 200, GOOD, None)
        assert [f.code for f in findings] == ["not-json"]
        assert "(empty body)" in findings[0].message


class TestSecrets:
    @pytest.mark.parametrize("profile", PROFILES)
    def test_no_message_shows_a_token_or_a_secret(self, profile):
        secrets = ["A" * 3000, "R" * 3000, "the-client-secret"]
        bad = body(
            access_token=secrets[0],
            refresh_token=secrets[1],
            token_type=secrets[2],
            expires_in=secrets[2],
        )
        error = body(error="invalid_token", error_description=secrets[2])
        findings = [
            *check(profile, CODE, 200, {"Content-Type": secrets[2]}, bad, duration=5),
            *check(profile, REFRESH, 403, {}, error, duration=5),
        ]

        text = "\n".join(f.message for f in findings)
        assert all(secret not in text for secret in secrets)
        assert all(secret[:8] not in text for secret in secrets)


class TestFinding:
    def test_as_dict_is_plain_data(self):
        finding = Finding("alexa-slow", "error", "answered in 5.0 s")
        assert finding.as_dict() == {
            "code": "alexa-slow",
            "severity": "error",
            "message": "answered in 5.0 s",
        }
