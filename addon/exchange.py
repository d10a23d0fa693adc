"""What a rule may ask of a token request, read lazily.

The body is parsed only when a rule needs a parameter from it, so that
traffic no rule can match costs no parsing at all.
"""

import base64
import binascii
import json
from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote_plus


class RequestInfo:
    """A token request: method, host, path, headers and its OAuth parameters."""

    __slots__ = (
        "method",
        "host",
        "path",
        "query",
        "headers",
        "body",
        "_form",
        "_params",
    )

    def __init__(
        self,
        method: str,
        host: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> None:
        self.method = method.upper()
        self.host = host
        self.path = path
        self.query = query
        # mitmproxy's Headers are case-insensitive already; plain dicts are not
        if isinstance(headers, dict):
            headers = {k.lower(): v for k, v in headers.items()}
        self.headers = headers
        self.body = body
        self._form: dict[str, object] | None = None
        self._params: dict[str, object] | None = None

    def header(self, name: str) -> str | None:
        """A request header by lowercase name."""
        return self.headers.get(name)

    @property
    def _sent(self) -> dict[str, object]:
        """The parameters the body and query carry: the body's win."""
        if self._form is None:
            form = _query_params(self.query) if self.query else {}
            form.update(_body_params(self.body))
            self._form = form
        return self._form

    @property
    def params(self) -> dict[str, object]:
        """Body parameters first, then the query's, then client_id from Basic."""
        if self._params is None:
            params = dict(self._sent)
            if "client_id" not in params:
                basic_id = basic_client_id(self.header("authorization"))
                if basic_id is not None:
                    params["client_id"] = basic_id
            self._params = params
        return self._params

    def param(self, name: str) -> object:
        # only client_id can come from the Authorization header, whose
        # decoding most exchanges never need
        if name == "client_id":
            return self.params.get(name)
        return self._sent.get(name)

    @property
    def grant_type(self) -> str | None:
        value = self._sent.get("grant_type")
        return value if isinstance(value, str) else None

    @property
    def client_auth(self) -> str:
        """How the client authenticated: "basic", "body" or "none"."""
        auth = self.header("authorization") or ""
        if auth[:6].lower() == "basic ":
            return "basic"
        return "body" if "client_secret" in self.params else "none"


def _query_params(query: str) -> dict[str, object]:
    params: dict[str, object] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        params.setdefault(key, value)
    return params


def _body_params(body: bytes | None) -> dict[str, object]:
    """Parameters of a form or JSON request body; the first of a repeated key."""
    if not body or len(body) > 65536:
        return {}
    head = body.lstrip()[:1]
    if head == b"{":
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            return {}
        return doc if isinstance(doc, dict) else {}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return {}
    params: dict[str, object] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        params.setdefault(key, value)
    return params


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """The client id and secret of an HTTP Basic header, decoded per RFC 6749
    section 2.3.1 (each was form-encoded before the pair was base64-encoded)."""
    if not authorization or authorization[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True)
        user, colon, password = decoded.decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if not colon:
        return None  # RFC 7617 section 2: user-id ":" password
    return unquote_plus(user), unquote_plus(password)


def basic_client_id(authorization: str | None) -> str | None:
    """The client_id of an HTTP Basic header."""
    credentials = basic_credentials(authorization)
    return credentials[0] if credentials else None


def basic_secret(authorization: str | None) -> str | None:
    """The client secret of an HTTP Basic header."""
    credentials = basic_credentials(authorization)
    return credentials[1] if credentials else None


def request_info(
    method: str,
    host: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes | None,
) -> RequestInfo:
    """A RequestInfo; `path` may still carry its query, which is split off."""
    if not query and "?" in path:
        path, query = path.split("?", 1)
    return RequestInfo(method, host, path, query, headers, body)
