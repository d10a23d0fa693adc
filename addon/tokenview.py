"""The "OAuth token" view as text: what the client sent, whether it will accept
what it received, what tokenfix changed, and what it received.

Pure: the caller passes the request, the response as the client received it,
tokenfix's change records, the profile's findings and the time the response
arrived. Token and secret values are shown as a short prefix and their length,
never whole; JWT signatures are never shown.
"""

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime

from addon import jsonbody
from addon.exchange import RequestInfo, basic_client_id, basic_secret
from addon.redact import (
    REDACTED,
    SECRET_FIELDS,
    mask_known,
    redact_value,
    secret_values,
    shorten,
)
from addon.values import is_number, jwt_claims, jwt_header

TOKEN_FIELDS = ("access_token", "id_token", "refresh_token")
TIME_CLAIMS = ("exp", "iat", "nbf")
LABEL = 18
MAX_VALUE = 100


def render(
    request: RequestInfo,
    *,
    status: int | None = None,
    reason: str = "",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    received: float | None = None,
    changes: Sequence[Mapping] = (),
    profile: str | None = None,
    findings: Sequence[Mapping] | None = None,
    secrets: frozenset[str] = SECRET_FIELDS,
) -> list[str]:
    """The view's lines. `status` None means no response yet; `received` is the
    epoch time the response arrived, from which "expires in" counts.

    The short answers come first (would the client accept the response, what
    did tokenfix change), the long response with its decoded tokens last.
    """
    hide = _Hider(secrets, _known_secrets(request, body, secrets))
    lines = list(_request(request, hide))
    lines.append("")
    if status is None:
        lines.append("response: not received yet")
        return lines

    lines.extend(_findings(profile, findings))
    lines.append("")
    lines.extend(_changes(changes, hide))
    lines.append("")
    lines.extend(_response(status, reason, headers or {}, body, received, hide))
    return lines


class _Hider:
    """Redacts the members of secret fields, and the values of secret fields
    wherever else they appear."""

    def __init__(self, names: frozenset[str], known: Sequence[str]) -> None:
        self.names = names
        self.known = known

    def __call__(self, value: object) -> object:
        return mask_known(redact_value(value, self.names), self.known)


def _known_secrets(
    request: RequestInfo, body: bytes | None, secrets: frozenset[str]
) -> list[str]:
    """The values of secret fields in the request and the response."""
    try:
        doc = jsonbody.parse_object(body or b"")
    except jsonbody.BodySkip:
        doc = None
    password = basic_secret(request.header("authorization"))
    return secret_values([request.params, doc], secrets, also=[password])


def _pair(label: str, value: str, indent: int = 0) -> str:
    head = " " * indent + label
    return f"{head:<{LABEL}} {value}".rstrip()


def _show(value: object) -> str:
    """A JSON value for one line, shortened when long."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 3] + "..."


def _secret(value: object) -> str:
    if isinstance(value, str):
        return shorten(value)
    return REDACTED if value is not None else "null"


# ---------------------------------------------------------------- request


def _request(request: RequestInfo, hide: _Hider) -> Iterator[str]:
    yield f"OAuth token request: {request.method} {request.path}"
    yield _pair("grant type", str(request.grant_type or "(none)"))
    yield _pair("client", _client(request))
    params = request.params
    if not params.keys() - {"grant_type", "client_id"}:
        return
    yield "parameters"
    for name, value in params.items():
        if name in ("grant_type", "client_id"):
            continue  # shown above
        if name in hide.names:
            yield _pair(name, _secret(value), 2)
        else:
            yield _pair(name, _show(hide(value)), 2)


def _client(request: RequestInfo) -> str:
    """Who the client is and how it authenticated (RFC 6749 section 2.3)."""
    authorization = request.header("authorization") or ""
    basic_id = basic_client_id(authorization)
    client_id = request.param("client_id")
    shown_id = _show(client_id) if isinstance(client_id, str) else "(no client_id)"
    if basic_id is not None:
        return f"{shown_id}, authenticated with HTTP Basic (client_secret_basic)"
    if authorization:
        scheme = authorization.split(" ", 1)[0][:20]
        return f"{shown_id}, with an Authorization header ({scheme}) that is not Basic"
    if "client_assertion" in request.params:
        return f"{shown_id}, authenticated with a client assertion (private_key_jwt)"
    if "client_secret" in request.params:
        return f"{shown_id}, authenticated in the body (client_secret_post)"
    return f"{shown_id}, no client authentication (a public client)"


# ---------------------------------------------------------------- response


def _response(
    status: int,
    reason: str,
    headers: Mapping[str, str],
    body: bytes | None,
    received: float | None,
    hide: _Hider,
) -> Iterator[str]:
    if isinstance(headers, dict):
        headers = {k.lower(): v for k, v in headers.items()}
    moment = _utc(received)
    when = f", received {moment}" if moment is not None else ""
    yield _pair("response", f"{status} {reason}".rstrip() + when)
    for name in ("Content-Type", "Cache-Control"):
        yield _pair(name, _show_header(headers.get(name.lower())), 2)

    doc, kind = _body(body or b"")
    if doc is None:
        yield _pair("body", kind, 2)
        return
    if kind:
        yield _pair("body", kind, 2)
    for name, value in doc.items():
        if (name in TOKEN_FIELDS and isinstance(value, str)) or _is_jwt(value):
            # a JWT under another name (a renamed id_token) is a token too
            yield from _token(name, value, received, hide)
        elif name in hide.names:
            yield _pair(name, _secret(value), 2)
        else:
            yield _pair(name, _show(hide(value)), 2)


def _is_jwt(value: object) -> bool:
    if not isinstance(value, str) or value.count(".") != 2:
        return False
    return jwt_header(value) is not None and jwt_claims(value) is not None


def _show_header(value: str | None) -> str:
    if value is None:
        return "(absent)"
    return value if len(value) <= MAX_VALUE else value[: MAX_VALUE - 3] + "..."


def _body(body: bytes) -> tuple[dict | None, str]:
    """The body's fields and how they were read; None and why when unreadable."""
    try:
        return jsonbody.parse_object(body), ""
    except jsonbody.BodySkip as e:
        reason = str(e)
    try:
        return jsonbody.parse_form(body), "a form, not JSON"
    except jsonbody.BodySkip:
        pass
    return None, f"not a JSON object ({reason}), {len(body)} bytes, not shown"


def _token(
    name: str, value: str, received: float | None, hide: _Hider
) -> Iterator[str]:
    header = jwt_header(value)
    claims = jwt_claims(value)
    if header is None or claims is None:
        kind = "JWE, encrypted" if value.count(".") == 4 else "opaque"
        yield _pair(name, f"{kind}, {shorten(value)}", 2)
        return
    yield _pair(name, f"JWT, {shorten(value)}", 2)
    yield _pair("header", _show(hide(header)), 4)
    yield _pair("claims", "", 4)
    for claim, claim_value in claims.items():
        if claim in hide.names:
            yield _pair(claim, _secret(claim_value), 6)
        else:
            shown = _show(hide(claim_value))
            yield _pair(claim, _claim(claim, claim_value, shown, received), 6)
    yield _pair("signature", "not shown", 4)


def _claim(name: str, value: object, shown: str, received: float | None) -> str:
    """A claim; a time claim also as a UTC time, and exp as the time left."""
    if name not in TIME_CLAIMS or not is_number(value):
        return shown
    moment = _utc(value)
    if moment is None:
        return shown
    if name == "exp" and received is not None:
        left = int(value - received)
        when = f"expires in {left} s" if left >= 0 else f"expired {-left} s ago"
        return f"{shown}  {moment}, {when}"
    return f"{shown}  {moment}"


def _utc(epoch: object) -> str | None:
    try:
        if not math.isfinite(epoch):
            return None
        moment = datetime.fromtimestamp(epoch, UTC)
    except (OverflowError, OSError, ValueError, TypeError):
        return None
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


# ---------------------------------------------------------------- tokenfix


def _changes(changes: Sequence[Mapping], hide: _Hider) -> Iterator[str]:
    if not changes:
        yield "tokenfix changes: none"
        return
    yield "tokenfix changes"
    for rule in dict.fromkeys(change.get("rule") for change in changes):
        yield f"  rule {rule!r}"
        for change in changes:
            if change.get("rule") == rule:
                yield from _change(change, hide)


def _change(change: Mapping, hide: _Hider) -> Iterator[str]:
    op, name = change.get("op"), change.get("field")
    old, new = hide(change.get("old")), hide(change.get("new"))
    if name in hide.names:
        old = REDACTED if old is not None else None
        new = REDACTED if new is not None else None
    if op == "rename":
        yield _pair(f"rename {name}", f"-> {new}", 4)
    elif op == "unwrap":
        lifted = ", ".join(str(key) for key in new or ())
        yield _pair(f"unwrap {name}", f"lifted {lifted}", 4)
    elif op == "form_to_json":
        yield _pair("form_to_json", "the form body became a JSON object", 4)
    else:
        yield _pair(f"{op} {name}", "", 4)
        yield _pair("before", _before_after(op, old, before=True), 6)
        yield _pair("after", _before_after(op, new, before=False), 6)


def _before_after(op: str, value: object, *, before: bool) -> str:
    if value is not None:
        return _show_header(str(value)) if op == "header" else _show(value)
    if op == "remove" and not before:
        return "(removed)"
    if op == "header":
        return "(absent)"
    # the record keeps a missing field and a null alike
    return "(missing or null)"


def _findings(profile: str | None, findings: Sequence[Mapping] | None) -> Iterator[str]:
    if not profile or profile == "none" or findings is None:
        yield "client profile: not checked"
        return
    if not findings:
        yield f"client profile {profile}: no findings"
        return
    errors = sum(1 for f in findings if f.get("severity") == "error")
    counts = f"{_count(errors, 'error')}, {_count(len(findings) - errors, 'warning')}"
    yield f"client profile {profile}: {counts}"
    for finding in findings:
        yield f"  {finding.get('severity')!s:<8} {finding.get('message')}"


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")
