"""A local OAuth 2.0 authorization server that behaves as Auth0 once did.

Built on authlib's server side (`authlib.oauth2.rfc6749`), with a small
`http.server` front. What it does, and the one fault it keeps on purpose:

- `GET /authorize` approves every request of a known client at once (there is one
  demo user) and redirects to the client's redirect URI with `code` and `state`.
- `POST /oauth/token` serves the grants authorization_code, refresh_token (rotating:
  each refresh returns a new refresh token and revokes the old one) and
  client_credentials (with Auth0's `audience` parameter). Bodies may be
  application/x-www-form-urlencoded or application/json, as Auth0 accepts both;
  clients authenticate with HTTP Basic (client_secret_basic) or in the body
  (client_secret_post). Errors follow RFC 6749 section 5.2.
- Access tokens are HS256-signed JWTs with `iss`, `sub`, `aud`, `iat`, `exp`, `azp`
  and `scope`; they live `DEFAULT_LIFETIME` seconds unless told otherwise. The code
  exchange also returns an `id_token`.
- The fault: refresh_token-grant responses leave out `expires_in`. RFC 6749 section
  5.1 makes the field only RECOMMENDED, but Alexa schedules the next refresh from it.

It listens on loopback only, and its log lines name the method, the path and the
status, never a parameter, a header or a body, so no token or secret reaches them.

Run it alone with `python -m demo.authserver --port N`, or in a thread with
`start_in_thread()`.
"""

from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    AuthorizationServer,
    ClientMixin,
    InvalidRequestError,
    OAuth2Payload,
    OAuth2Request,
    TokenMixin,
    grants,
)

logger = logging.getLogger(__name__)

# the demo client is shaped as an Alexa skill's account linking: Alexa redirects to
# layla.amazon.com (or pitangui/alexa.amazon.co.jp) with the skill's vendor id.
DEMO_CLIENT_ID = "alexa-skill"
# known to everyone who reads this file; it protects nothing but the demo.
DEMO_CLIENT_SECRET = "tokenfix-demo-client-secret"
DEMO_REDIRECT_URI = "https://layla.amazon.com/api/skill/link/M2TOKENFIXDEMO"
DEMO_USER = "auth0|tokenfix-demo-user"
DEMO_SCOPES = ("openid", "profile", "email", "offline_access")

DEFAULT_AUDIENCE = "https://api.tokenfix.invalid/"
# five minutes: short as Alexa-facing tokens often are, and unlike the shipped rules'
# fallback (3600) so that a repaired `expires_in` shows it came from the token.
DEFAULT_LIFETIME = 300
CODE_LIFETIME = 60
SIGNING_KEY = b"tokenfix demo signing key, not a secret"
KEY_ID = "tokenfix-demo"
MAX_BODY = 1 << 20

AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


# -- JWT ------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _compact_json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def _sign(signing_input: str) -> bytes:
    return hmac.new(SIGNING_KEY, signing_input.encode("ascii"), hashlib.sha256).digest()


def encode_jwt(claims: dict) -> str:
    """Sign `claims` as a compact HS256 JWT (RFC 7519) with the demo key."""
    header = {"alg": "HS256", "typ": "JWT", "kid": KEY_ID}
    signing_input = f"{_b64url(_compact_json(header))}.{_b64url(_compact_json(claims))}"
    return f"{signing_input}.{_b64url(_sign(signing_input))}"


def verify_jwt(token: str) -> dict:
    """Return the claims of a JWT this server signed; ValueError for any other.

    `exp` is not checked: callers compare it with their own clock.
    """
    try:
        header, payload, signature = token.split(".")
        ok = hmac.compare_digest(
            _b64url_decode(signature), _sign(f"{header}.{payload}")
        )
        claims = json.loads(_b64url_decode(payload))
    except ValueError as e:
        raise ValueError("not a JWT signed by the demo server") from e
    if not ok or not isinstance(claims, dict):
        raise ValueError("not a JWT signed by the demo server")
    return claims


# -- the models authlib asks for ---------------------------------------------------


@dataclass
class Client(ClientMixin):
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...] = (
        "authorization_code",
        "refresh_token",
        "client_credentials",
    )

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope):
        if not scope:
            return ""
        return " ".join(s for s in scope.split() if s in DEMO_SCOPES)

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret):
        return hmac.compare_digest(client_secret.encode(), self.client_secret.encode())

    def check_endpoint_auth_method(self, method, endpoint):
        return method in AUTH_METHODS

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type in self.grant_types


@dataclass
class AuthorizationCode(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str | None
    scope: str
    audience: str
    subject: str
    nonce: str | None
    expires_at: float

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope


@dataclass
class RefreshToken(TokenMixin):
    value: str
    client_id: str
    subject: str
    scope: str
    audience: str
    revoked: bool = False

    def check_client(self, client):
        return client.get_client_id() == self.client_id

    def get_scope(self):
        return self.scope

    def is_revoked(self):
        return self.revoked

    def get_user(self):
        return self.subject


@dataclass
class Store:
    """Everything the server remembers, in memory."""

    clients: dict[str, Client] = field(default_factory=dict)
    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


# -- requests -------------------------------------------------------------------


class _Payload(OAuth2Payload):
    def __init__(self, params: list[tuple[str, str]]):
        self._data: dict[str, str] = {}
        self._datalist = collections.defaultdict(list)
        for name, value in params:
            self._data.setdefault(name, value)
            self._datalist[name].append(value)

    @property
    def data(self):
        return self._data

    @property
    def datalist(self):
        return self._datalist


class Request(OAuth2Request):
    """An HTTP request as authlib reads it: parameters from the query for GET and
    from the body for POST (RFC 6749 sections 4.1.1 and 4.1.3)."""

    def __init__(self, method: str, uri: str, headers, body: bytes):
        super().__init__(method, uri, headers=headers)
        query = parse_qsl(urlsplit(uri).query, keep_blank_values=True)
        self._query = dict(query)
        if method == "GET":
            self.payload = _Payload(query)
        else:
            self.payload = _Payload(_body_params(headers.get("Content-Type", ""), body))

    @property
    def args(self):
        return self._query

    @property
    def form(self):
        return self.payload.data


def _body_params(content_type: str, body: bytes) -> list[tuple[str, str]]:
    media_type = content_type.split(";", 1)[0].strip().lower()
    if not body:
        return []
    if media_type == "application/x-www-form-urlencoded":
        try:
            return parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError as e:
            raise InvalidRequestError("The request body is not UTF-8.") from e
    if media_type == "application/json":
        return _json_params(body)
    return []


def _json_params(body: bytes) -> list[tuple[str, str]]:
    # Auth0 accepts a JSON object of parameters; authlib reads only form
    # parameters, so the object becomes the form it stands for.
    try:
        document = json.loads(body)
    except ValueError as e:
        raise InvalidRequestError("The request body is not valid JSON.") from e
    if not isinstance(document, dict):
        raise InvalidRequestError("The JSON request body must be an object.")

    params = []
    for name, value in document.items():
        if value is None:
            continue
        if isinstance(value, dict | list):
            raise InvalidRequestError(f"The parameter '{name}' must not be nested.")
        params.append((name, value if isinstance(value, str) else json.dumps(value)))
    return params


# -- grants ---------------------------------------------------------------------


class _Auth0Tokens:
    """Token responses shaped as Auth0's, for every grant below."""

    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def audience(self) -> str:
        raise NotImplementedError

    def nonce(self) -> str | None:
        return None

    def generate_token(
        self,
        user=None,
        scope=None,
        grant_type=None,
        expires_in=None,
        include_refresh_token=True,
    ):
        return self.server.issue_tokens(
            grant_type=grant_type or self.GRANT_TYPE,
            client_id=self.request.client.get_client_id(),
            subject=user,
            scope=scope or "",
            audience=self.audience(),
            with_refresh_token=include_refresh_token,
            nonce=self.nonce(),
        )


class CodeGrant(_Auth0Tokens, grants.AuthorizationCodeGrant):
    def audience(self):
        return self.request.authorization_code.audience

    def nonce(self):
        return self.request.authorization_code.nonce

    def save_authorization_code(self, code, request):
        client = request.client
        record = AuthorizationCode(
            code=code,
            client_id=client.get_client_id(),
            redirect_uri=request.payload.redirect_uri,
            scope=client.get_allowed_scope(request.payload.scope),
            audience=request.payload.data.get("audience") or DEFAULT_AUDIENCE,
            subject=request.user,
            nonce=request.payload.data.get("nonce"),
            expires_at=time.time() + CODE_LIFETIME,
        )
        with self.server.store.lock:
            self.server.store.codes[code] = record

    def query_authorization_code(self, code, client):
        record = self.server.store.codes.get(code)
        if record is None or record.client_id != client.get_client_id():
            return None
        if record.expires_at < time.time():
            return None
        return record

    def delete_authorization_code(self, authorization_code):
        with self.server.store.lock:
            self.server.store.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code):
        return authorization_code.subject


class RefreshGrant(_Auth0Tokens, grants.RefreshTokenGrant):
    # refresh token rotation, as Auth0 does when it is switched on
    INCLUDE_NEW_REFRESH_TOKEN = True

    def audience(self):
        return self.request.refresh_token.audience

    def authenticate_refresh_token(self, refresh_token):
        record = self.server.store.refresh_tokens.get(refresh_token)
        if record is not None and not record.revoked:
            return record
        return None

    def authenticate_user(self, refresh_token):
        return refresh_token.subject

    def revoke_old_credential(self, refresh_token):
        refresh_token.revoked = True


class ClientCredentialsGrant(_Auth0Tokens, grants.ClientCredentialsGrant):
    def audience(self):
        return self.request.form.get("audience") or DEFAULT_AUDIENCE


# -- the authorization server ---------------------------------------------------


@dataclass
class Answer:
    """A response as sent: status, headers (besides Date and Server) and body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


class Auth0LikeServer(AuthorizationServer):
    def __init__(self, *, lifetime: int = DEFAULT_LIFETIME, issuer: str = ""):
        super().__init__()
        self.lifetime = lifetime
        self.issuer = issuer
        self.store = Store()
        self.store.clients[DEMO_CLIENT_ID] = Client(
            DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, (DEMO_REDIRECT_URI,)
        )
        for grant in (CodeGrant, RefreshGrant, ClientCredentialsGrant):
            self.register_grant(grant)

    def query_client(self, client_id):
        return self.store.clients.get(client_id)

    def save_token(self, token, request):
        pass  # issue_tokens keeps what must be remembered

    def send_signal(self, name, *args, **kwargs):
        pass

    def create_oauth2_request(self, request):
        return request

    def create_json_request(self, request):
        raise NotImplementedError("the demo server has no JSON endpoints")

    def handle_response(self, status, body, headers):
        if isinstance(body, dict):
            body = _compact_json(body)
        return Answer(
            status, list(headers), body.encode() if isinstance(body, str) else body
        )

    def authorize(self, request: Request) -> Answer:
        try:
            grant = self.get_consent_grant(request, end_user=DEMO_USER)
        except OAuth2Error as error:
            return self.handle_error_response(request, error)
        # the one demo user approves every request of a known client
        return self.create_authorization_response(
            request, grant_user=DEMO_USER, grant=grant
        )

    def issue_tokens(
        self,
        *,
        grant_type: str,
        client_id: str,
        subject: str | None,
        scope: str,
        audience: str,
        with_refresh_token: bool,
        nonce: str | None,
    ) -> dict:
        now = int(time.time())
        subject = subject or f"{client_id}@clients"
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "exp": now + self.lifetime,
            "azp": client_id,
            "scope": scope,
            "jti": secrets.token_urlsafe(12),
        }
        token = {"access_token": encode_jwt(claims)}

        if with_refresh_token:
            token["refresh_token"] = self._new_refresh_token(
                client_id, subject, scope, audience
            )
        if grant_type == "authorization_code":
            token["id_token"] = self._id_token(client_id, subject, now, nonce)
        if scope:
            token["scope"] = scope
        # the Auth0 fault: a refreshed access token came without its lifetime
        if grant_type != "refresh_token":
            token["expires_in"] = self.lifetime
        token["token_type"] = "Bearer"
        return token

    def _new_refresh_token(self, client_id, subject, scope, audience) -> str:
        value = secrets.token_urlsafe(32)
        record = RefreshToken(value, client_id, subject, scope, audience)
        with self.store.lock:
            self.store.refresh_tokens[value] = record
        return value

    def _id_token(self, client_id, subject, now, nonce) -> str:
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": client_id,
            "iat": now,
            "exp": now + 36000,
            "name": "Tokenfix Demo",
        }
        if nonce:
            claims["nonce"] = nonce
        return encode_jwt(claims)


# -- the HTTP front -------------------------------------------------------------


def _not_found() -> Answer:
    body = {"error": "not_found", "error_description": "No such endpoint."}
    return Answer(404, [("Content-Type", "application/json")], _compact_json(body))


class _Handler(BaseHTTPRequestHandler):
    server_version = "tokenfix-demo-authserver"
    protocol_version = "HTTP/1.1"
    timeout = 30
    server: _HTTPServer

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def _dispatch(self):
        body = self._read_body()
        if body is None:
            return
        path = urlsplit(self.path).path
        uri = f"{self.server.owner.url}{self.path}"
        oauth = self.server.owner.oauth

        if (self.command, path) == ("GET", "/authorize"):
            answer = self._call(oauth.authorize, uri, body)
        elif (self.command, path) == ("POST", "/oauth/token"):
            answer = self._call(oauth.create_token_response, uri, body)
        else:
            answer = _not_found()
        # recorded first: a client that has the response finds it recorded
        self.server.owner.answers.append(answer)
        self._send(answer)

    def _call(self, endpoint: Callable[[Request], Answer], uri: str, body: bytes):
        oauth = self.server.owner.oauth
        try:
            request = Request(self.command, uri, self.headers, body)
        except OAuth2Error as error:
            return oauth.handle_response(*error())
        return endpoint(request)

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._refuse(411)
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self._refuse(413 if length > MAX_BODY else 400)
            return None
        return self.rfile.read(length)

    def _refuse(self, status: int):
        self.close_connection = True
        self._send(Answer(status, [("Connection", "close")], b""))

    def _send(self, answer: Answer):
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def version_string(self):
        return self.server_version

    def log_request(self, code="-", size="-"):
        # method, path and status only: queries and bodies carry codes and secrets
        path = urlsplit(self.path).path
        logger.info("%s %s %s", self.command, path, code)

    def log_error(self, format, *args):
        logger.warning("could not read a request from %s", self.client_address[0])

    def log_message(self, format, *args):
        pass


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: LocalAuthServer


class LocalAuthServer:
    """The server on a loopback port (0 picks a free one), served by a thread."""

    def __init__(self, port: int = 0, *, lifetime: int = DEFAULT_LIFETIME):
        # authlib logs whole issued tokens at debug level; keep it above that
        logging.getLogger("authlib").setLevel(logging.INFO)

        self._httpd = _HTTPServer(("127.0.0.1", port), _Handler)
        self._httpd.owner = self
        self.port: int = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.oauth = Auth0LikeServer(lifetime=lifetime, issuer=f"{self.url}/")
        self.lifetime = lifetime
        # the last responses, as sent: tests compare them with what a proxy passed on
        self.answers: collections.deque[Answer] = collections.deque(maxlen=64)
        self._thread: threading.Thread | None = None

    def start(self) -> LocalAuthServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="demo-authserver",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self):
        self._httpd.serve_forever(poll_interval=0.1)

    def stop(self):
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> LocalAuthServer:
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


def start_in_thread(
    port: int = 0, *, lifetime: int = DEFAULT_LIFETIME
) -> tuple[str, Callable[[], None]]:
    """Start the server in a background thread; return its URL and a stop function."""
    server = LocalAuthServer(port, lifetime=lifetime).start()
    return server.url, server.stop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demo.authserver",
        description="A local OAuth 2.0 server whose refresh responses, as Auth0's "
        "once did, leave out expires_in.",
    )
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--lifetime",
        type=int,
        default=DEFAULT_LIFETIME,
        help=f"access token lifetime in seconds (default {DEFAULT_LIFETIME})",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    server = LocalAuthServer(args.port, lifetime=args.lifetime)
    print(f"listening on {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
