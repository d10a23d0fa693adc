"""Client profiles: would this client accept the token response it receives?

A profile is a list of checks run on what the client finally receives (after
the rules) for a token request, that is a request with a `grant_type`. Each
check yields findings: an `error` when the client will fail or misbehave, a
`warning` for a deviation that common clients tolerate.

- `rfc6749`: RFC 6749 section 5.1 for successful responses and section 5.2
  for errors.
- `alexa`: rfc6749 plus what Alexa account linking needs.
- `google`: rfc6749 plus what Google's account linking needs.
- `none`: no checks.

Messages say in plain words what is wrong and what the client will do; they
name fields, statuses and media types, never a token or a secret. Everything
here is pure: the caller passes the response and how long it took.
"""

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from addon import jsonbody
from addon.values import is_number

PROFILES = ("rfc6749", "alexa", "google", "none")
DEFAULT_PROFILE = "rfc6749"

# RFC 6749 section 5.2, and the token endpoint errors registered since
# (RFC 8628 section 3.5, RFC 8693 section 2.2.2, RFC 9396 section 5, RFC 9449
# section 5 and 8)
REGISTERED_ERRORS = (
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "authorization_pending",
    "slow_down",
    "access_denied",
    "expired_token",
    "invalid_target",
    "invalid_authorization_details",
    "invalid_dpop_proof",
    "use_dpop_nonce",
)
# the characters RFC 6749 section 5.2 allows in an error code
ERROR_CODE = re.compile(r"[\x20-\x21\x23-\x5b\x5d-\x7e]{1,40}")
MEDIA_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]{1,40}/[a-z0-9!#$&^_.+-]{1,60}")

ALEXA_TIMEOUT = 4.5
ALEXA_TOKEN_BYTES = 2048

RFC_5_1 = "(RFC 6749 section 5.1)"
RFC_5_2 = "(RFC 6749 section 5.2)"


@dataclass(frozen=True, slots=True)
class Finding:
    """One way the response falls short of what the client expects."""

    code: str
    severity: str  # "error" or "warning"
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "severity": self.severity, "message": self.message}


class Answer:
    """The response as the client receives it, with its body read once."""

    def __init__(
        self,
        grant_type: str,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        duration: float | None,
    ) -> None:
        if isinstance(headers, dict):
            headers = {k.lower(): v for k, v in headers.items()}
        self.grant_type = grant_type
        self.status = status
        self.headers = headers
        self.duration = duration
        self.doc: dict | None = None
        self.not_json = ""
        try:
            self.doc = jsonbody.parse_object(body)
        except jsonbody.BodySkip as e:
            self.not_json = str(e)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


Check = Callable[[Answer], Iterator[Finding]]


def check(
    profile: str,
    grant_type: str | None,
    status: int,
    headers: Mapping[str, str],
    body: bytes | None,
    *,
    duration: float | None = None,
) -> list[Finding]:
    """The findings of a profile for one exchange; none unless it is a token request.

    `duration` is the time in seconds from the request's first byte to the
    response's last, or None when it is not known.
    """
    checks = _checks(profile)
    if grant_type is None or not checks:
        return []

    answer = Answer(grant_type, status, headers, body or b"", duration)
    return [finding for one in checks for finding in one(answer)]


def parse_profile(name: str) -> str:
    """The profile's name, or ValueError listing the profiles there are."""
    if name not in PROFILES:
        allowed = ", ".join(PROFILES)
        raise ValueError(f"unknown profile {name!r} (expected one of: {allowed})")
    return name


def _checks(profile: str) -> tuple[Check, ...]:
    return PROFILE_CHECKS[parse_profile(profile)]


def _error(code: str, message: str) -> Finding:
    return Finding(code, "error", message)


def _warning(code: str, message: str) -> Finding:
    return Finding(code, "warning", message)


def _kind(value: object) -> str:
    """A JSON value's type in words, for messages that must not show the value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if is_number(value):
        return "a number"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    return "an array" if isinstance(value, list) else "an object"


# ---------------------------------------------------------------- RFC 6749


def rfc_token(answer: Answer) -> Iterator[Finding]:
    """Section 5.1: a token response is a JSON object with the token and its type."""
    if not answer.ok:
        return
    if answer.doc is None:
        yield _error(
            "not-json",
            f"the body is not a JSON object ({answer.not_json}): the client cannot "
            f"read a token from it {RFC_5_1}",
        )
        return
    for name, code, consequence in (
        ("access_token", "missing-access-token", "the client gets no token"),
        ("token_type", "missing-token-type", "the client cannot tell how to use it"),
    ):
        value = answer.doc.get(name)
        if name not in answer.doc:
            yield _error(code, f"{name} missing: {consequence} {RFC_5_1}")
        elif not isinstance(value, str) or not value:
            yield _error(
                code, f"{name} is {_kind(value)}, not a string: {consequence} {RFC_5_1}"
            )


def rfc_expires_in(answer: Answer) -> Iterator[Finding]:
    """Section 5.1: expires_in, when present, is a positive number of seconds."""
    value = _expires_in(answer)
    if value is None:
        return
    if not is_number(value):
        yield _warning(
            "expires-in-type",
            f"expires_in is {_kind(value)}, not a number: strict clients ignore it "
            f"{RFC_5_1}",
        )
    elif value <= 0:
        yield _error(
            "expires-in-not-positive",
            f"expires_in is {value}, not a positive number: the client takes the "
            f"token for expired at once {RFC_5_1}",
        )


def _expires_in(answer: Answer) -> object:
    """expires_in of a successful JSON response; None when absent or null."""
    if not answer.ok or answer.doc is None:
        return None
    return answer.doc.get("expires_in")


def rfc_no_store(answer: Answer) -> Iterator[Finding]:
    """Section 5.1: a response with a token carries Cache-Control: no-store."""
    if not answer.ok:
        return
    directives = answer.headers.get("cache-control") or ""
    if "no-store" not in (d.strip().lower() for d in directives.split(",")):
        yield _warning(
            "no-store",
            f"Cache-Control: no-store missing: a cache on the way may keep the "
            f"token {RFC_5_1}",
        )


def rfc_error(answer: Answer) -> Iterator[Finding]:
    """Section 5.2: an error is a 400 (401 for client authentication) with a
    registered error code in a JSON object."""
    if answer.ok:
        return
    if answer.status not in (400, 401):
        yield _warning(
            "error-status",
            f"error answered with {answer.status}, not 400 or 401: the client may "
            f"not read it as an OAuth error {RFC_5_2}",
        )
    consequence = "the client cannot tell why it was refused"
    if answer.doc is None:
        yield _warning(
            "error-not-json",
            f"the error body is not a JSON object ({answer.not_json}): "
            f"{consequence} {RFC_5_2}",
        )
        return
    code = answer.doc.get("error")
    if "error" not in answer.doc:
        yield _warning("error-code", f"error missing: {consequence} {RFC_5_2}")
    elif not isinstance(code, str):
        yield _warning(
            "error-code",
            f"error is {_kind(code)}, not a string: {consequence} {RFC_5_2}",
        )
    elif code not in REGISTERED_ERRORS:
        shown = repr(code) if ERROR_CODE.fullmatch(code) else "(unprintable)"
        yield _warning(
            "error-code",
            f"error {shown} is not a registered error code: the client may not "
            f"know what to do {RFC_5_2}",
        )


# ---------------------------------------------------------------- Alexa


def alexa_expires_in(answer: Answer) -> Iterator[Finding]:
    # Alexa schedules the next refresh from expires_in and from nothing else
    if not answer.ok or answer.doc is None:
        return
    if answer.doc.get("expires_in") is None:
        state = "missing" if "expires_in" not in answer.doc else "null"
        yield _error(
            "alexa-expires-in", f"expires_in {state}: Alexa will not refresh this token"
        )


def alexa_refresh_token(answer: Answer) -> Iterator[Finding]:
    if _lacks_refresh_token(answer):
        yield _error(
            "alexa-refresh-token",
            "refresh_token missing on the code exchange: Alexa cannot refresh, and "
            "unlinks the account when the access token expires",
        )


def _lacks_refresh_token(answer: Answer) -> bool:
    if answer.grant_type != "authorization_code" or not answer.ok:
        return False
    if answer.doc is None:
        return False
    value = answer.doc.get("refresh_token")
    return not isinstance(value, str) or not value


def alexa_deadline(answer: Answer) -> Iterator[Finding]:
    if answer.duration is not None and answer.duration > ALEXA_TIMEOUT:
        yield _error(
            "alexa-slow",
            f"answered in {answer.duration:.2f} s: Alexa gives up after "
            f"{ALEXA_TIMEOUT} s",
        )


def alexa_token_length(answer: Answer) -> Iterator[Finding]:
    if not answer.ok or answer.doc is None:
        return
    for name in ("access_token", "refresh_token"):
        value = answer.doc.get(name)
        if not isinstance(value, str):
            continue
        size = len(value.encode("utf-8"))
        if size > ALEXA_TOKEN_BYTES:
            yield _warning(
                "alexa-token-length",
                f"{name} is {size} bytes: Alexa advises tokens of at most "
                f"{ALEXA_TOKEN_BYTES} bytes",
            )


# ---------------------------------------------------------------- Google


def google_content_type(answer: Answer) -> Iterator[Finding]:
    value = answer.headers.get("content-type")
    media = (value or "").split(";", 1)[0].strip().lower()
    if media == "application/json":
        return
    if not value:
        shown = "missing"
    elif MEDIA_TYPE.fullmatch(media):
        shown = f"{media}, not application/json"
    else:
        shown = "not application/json"
    yield _error(
        "google-content-type", f"Content-Type {shown}: Google expects application/json"
    )


def google_expires_in(answer: Answer) -> Iterator[Finding]:
    """Replaces rfc_expires_in's type check: a string is an error for Google."""
    value = _expires_in(answer)
    if value is not None and not is_number(value):
        yield _error(
            "google-expires-in-type",
            f"expires_in is {_kind(value)}, not a number: Google expects a JSON number",
        )
    elif value is not None:
        yield from rfc_expires_in(answer)


def google_refresh_token(answer: Answer) -> Iterator[Finding]:
    if _lacks_refresh_token(answer):
        yield _error(
            "google-refresh-token",
            "refresh_token missing on the code exchange: Google cannot refresh, and "
            "the user must link again when the access token expires",
        )


def google_dead_grant(answer: Answer) -> Iterator[Finding]:
    # Google unlinks on 400 invalid_grant; on anything else it retries the
    # refresh, for ever when the refresh token is dead
    if answer.grant_type != "refresh_token" or answer.ok:
        return
    code = answer.doc.get("error") if answer.doc is not None else None
    if code == "invalid_grant":
        if answer.status != 400:
            yield _error(
                "google-dead-grant",
                f"invalid_grant answered with {answer.status}, not 400: Google "
                f"retries instead of unlinking",
            )
    elif code not in REGISTERED_ERRORS:
        yield _error(
            "google-dead-grant",
            f"refresh refused with {answer.status} and no invalid_grant: if the "
            f"refresh token is dead, Google retries instead of unlinking (answer "
            f"400 invalid_grant)",
        )


RFC6749_CHECKS: tuple[Check, ...] = (rfc_token, rfc_expires_in, rfc_no_store, rfc_error)

PROFILE_CHECKS: dict[str, tuple[Check, ...]] = {
    "rfc6749": RFC6749_CHECKS,
    "alexa": (
        *RFC6749_CHECKS,
        alexa_expires_in,
        alexa_refresh_token,
        alexa_deadline,
        alexa_token_length,
    ),
    "google": (
        rfc_token,
        google_expires_in,
        rfc_no_store,
        rfc_error,
        google_content_type,
        google_refresh_token,
        google_dead_grant,
    ),
    "none": (),
}
