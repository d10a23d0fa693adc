"""Running rules on recorded exchanges, away from the proxy.

`tokenfix check` runs the `examples` of each rule and `tokenfix try` runs
recorded flows; both go through `run`, which does what the addon does to a
live response: match the request, decode the body within the limit, rewrite.
"""

import base64
import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from addon import engine
from addon.decoding import decode_bounded
from addon.exchange import RequestInfo
from addon.jsonbody import BodySkip
from addon.redact import SECRET_FIELDS
from addon.ruleset import RuleSet

PLACEHOLDER = re.compile(r"<(JWT exp=|EPOCH_MS|EPOCH)([+-]\d+)>")


def unsigned_jwt(claims: dict) -> str:
    """A JWT with alg "none": enough for rules, which never verify signatures."""

    def part(obj: dict) -> str:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def expand(text: str, now: float) -> str:
    """Placeholders of example exchanges, made real at the moment of the run.

    `<JWT exp=+N>` is an unsigned JWT expiring N seconds from now; `<EPOCH+N>`
    and `<EPOCH_MS+N>` are epoch seconds and milliseconds N seconds from now.
    """

    def real(m: re.Match) -> str:
        offset = int(m.group(2))
        if m.group(1) == "JWT exp=":
            return unsigned_jwt({"sub": "example", "exp": int(now) + offset})
        if m.group(1) == "EPOCH":
            return str(int(now) + offset)
        return str((int(now) + offset) * 1000)

    return PLACEHOLDER.sub(real, text)


@dataclass
class Exchange:
    """One request and its response, as recorded or as written in an example."""

    method: str
    url: str
    request_headers: dict[str, str]
    request_body: bytes
    status: int
    response_headers: dict[str, str]
    response_body: bytes
    label: str = ""

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def path(self) -> str:
        return urlsplit(self.url).path or "/"

    @property
    def query(self) -> str:
        return urlsplit(self.url).query

    def request_info(self) -> RequestInfo:
        return RequestInfo(
            self.method,
            self.host,
            self.path,
            self.query,
            self.request_headers,
            self.request_body,
        )

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.response_headers.items():
            if key.lower() == name:
                return value
        return None


@dataclass
class Result:
    exchange: Exchange
    grant_type: str | None
    matched: tuple[str, ...]
    outcome: engine.Outcome | None
    skipped_reason: str | None
    body: bytes  # the decoded body the client would receive
    original_body: bytes  # the decoded body as received
    status: int
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.outcome is not None and self.outcome.changed


def run(
    rules: RuleSet,
    ex: Exchange,
    *,
    now: float | None = None,
    secrets: frozenset[str] = SECRET_FIELDS,
) -> Result:
    """What the addon would send the client for this exchange."""
    info = ex.request_info()
    matched = rules.for_request(info)
    headers = dict(ex.response_headers)
    result = Result(
        exchange=ex,
        grant_type=info.grant_type,
        matched=tuple(r.name for r in matched),
        outcome=None,
        skipped_reason=None,
        body=b"",
        original_body=b"",
        status=ex.status,
        headers=headers,
    )
    try:
        body = decode_bounded(ex.response_body, ex.header("content-encoding"))
    except BodySkip as e:
        result.skipped_reason = str(e)
        result.body = result.original_body = ex.response_body
        return result
    result.body = result.original_body = body
    if not matched:
        return result
    outcome = engine.rewrite(
        matched, info, ex.status, headers, body, now=now, secrets=secrets
    )
    result.outcome = outcome
    if outcome.body is not None:
        result.body = outcome.body
    if outcome.status is not None:
        result.status = outcome.status
    for name, value in outcome.headers.items():
        for key in [k for k in headers if k.lower() == name.lower()]:
            del headers[key]
        if value is not None:
            headers[name] = value
    return result


def _kind(value: object) -> str:
    """What a YAML value is, in words (never an internal class's name)."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "a boolean" if isinstance(value, bool) else type(value).__name__


def _text(value: object, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{what}: expected a string, got {_kind(value)}")
    return value


def exchange_from_mapping(doc: dict, now: float, label: str = "") -> Exchange:
    """An Exchange from a mapping shaped like an example or a recorded case."""
    req = doc.get("request")
    resp = doc.get("response")
    if not isinstance(req, dict) or not isinstance(resp, dict):
        raise ValueError("an exchange needs 'request' and 'response' mappings")
    url = _text(req.get("url"), "request.url")
    if not urlsplit(url).hostname:
        raise ValueError(f"request.url: expected an absolute URL, got {url!r}")

    def headers(raw: object, what: str) -> dict[str, str]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise ValueError(f"{what}: expected a mapping of header: value")
        for name, value in raw.items():
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                kind = _kind(value)
                raise ValueError(f"{what}.{name}: expected a string, got {kind}")
        return {str(k): expand(str(v), now) for k, v in raw.items()}

    status = resp.get("status", 200)
    if not isinstance(status, int) or isinstance(status, bool):
        raise ValueError(f"response.status: expected a number, got {status!r}")
    return Exchange(
        method=str(req.get("method", "POST")).upper(),
        url=url,
        request_headers=headers(req.get("headers"), "request.headers"),
        request_body=expand(_text(req.get("body"), "request.body"), now).encode(),
        status=status,
        response_headers=headers(resp.get("headers"), "response.headers"),
        response_body=expand(_text(resp.get("body"), "response.body"), now).encode(),
        label=label or str(doc.get("name") or doc.get("id") or ""),
    )
