"""`tokenfix token`: a test access token from the client credentials grant.

This is the other half of the Auth0 advice for Alexa account linking: a
machine client gets a token for an API (Auth0's `audience`) to call that API
by hand or from a script. RFC 6749 section 4.4: the client authenticates with
HTTP Basic (section 2.3.1) and asks for a token, with no user involved.

stdout gets the access token and nothing else, so `TOKEN=$(tokenfix token
...)` holds exactly the token. The decoded claims, the expiry and any error
go to stderr, and they never show the token, the client secret or the
Authorization header.
"""

import getpass
import ipaddress
import json
import os
import re
import ssl
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from addon.decoding import decode_bounded
from addon.jsonbody import MAX_BODY, BodySkip
from addon.redact import SECRET_FIELDS, redact_value
from addon.values import finite, jwt_claims, jwt_header

TIMEOUT = 10.0
TIME_CLAIMS = ("exp", "iat", "nbf", "auth_time")
LABEL = 12
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# exit statuses: the token endpoint said no, or could not be asked; and the
# command line itself was wrong
FAILED = 1
USAGE = 2


class TokenError(Exception):
    """No token. The message says why, and it never holds a secret."""

    def __init__(self, message: str, status: int = FAILED) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class TokenRequest:
    token_url: str
    client_id: str
    audience: str
    scope: str | None = None
    ca_file: str | None = None
    timeout: float = TIMEOUT

    @property
    def where(self) -> str:
        parts = urlsplit(self.token_url)
        return parts.netloc.rpartition("@")[2]


def add_parser(sub) -> None:
    """The `token` subcommand's arguments, on the `tokenfix` parser's `sub`."""
    p = sub.add_parser(
        "token",
        # no abbreviations: `--client-secret VALUE` must not pass for
        # `--client-secret-env`, and there is no option that takes the secret
        allow_abbrev=False,
        help="get a test access token by the client credentials grant",
        description="Get an access token by the client credentials grant. Only "
        "the token goes to stdout; its claims and expiry go to stderr.",
    )
    p.add_argument(
        "--token-url",
        required=True,
        metavar="URL",
        help="the token endpoint, such as https://TENANT.auth0.com/oauth/token",
    )
    p.add_argument("--client-id", required=True, metavar="ID")
    p.add_argument(
        "--audience",
        required=True,
        metavar="AUD",
        help="the API the token is for (the API's identifier in Auth0)",
    )
    p.add_argument("--scope", metavar="S", help="space-delimited scopes to ask for")
    p.add_argument(
        "--client-secret-env",
        metavar="NAME",
        help="read the client secret from the environment variable NAME; "
        "without it, the secret is prompted for",
    )
    p.add_argument(
        "--ca-file",
        metavar="PEM",
        help="verify the token endpoint's certificate against these CA "
        "certificates instead of the system's",
    )


def run(
    args,
    *,
    environ: Mapping[str, str] | None = None,
    prompt: Callable[[str], str] | None = None,
    out=None,
    err=None,
) -> int:
    # sys.stdout at call time, not at import: tests and callers may swap it
    out = out or sys.stdout
    err = err or sys.stderr
    secret = ""
    try:
        request = TokenRequest(
            check_token_url(args.token_url),
            args.client_id,
            args.audience,
            args.scope or None,
            args.ca_file,
        )
        environ = os.environ if environ is None else environ
        secret = read_secret(args.client_secret_env, environ, prompt or _prompt)
        token = fetch_token(request, secret)
    except TokenError as e:
        print(f"tokenfix token: {scrub(str(e), secret)}", file=err)
        return e.status

    for line in describe(token, time.time(), request):
        print(scrub(line, secret), file=err)
    print(token["access_token"], file=out)
    return 0


# ---------------------------------------------------------------- arguments


def check_token_url(url: str) -> str:
    """The token endpoint's URL, if a client secret may be sent to it.

    RFC 6749 section 2.3.1 wants TLS wherever client credentials travel:
    plain http is accepted for loopback hosts only.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as e:
        raise TokenError(f"--token-url: {e}: {url!r}", USAGE) from None
    if parts.scheme not in ("http", "https") or not host:
        raise TokenError(
            f"--token-url: expected an https:// URL such as "
            f"https://TENANT.auth0.com/oauth/token, got {url!r}",
            USAGE,
        )
    if parts.username or parts.password:
        raise TokenError("--token-url: credentials do not belong in the URL", USAGE)
    if parts.scheme == "http" and not _is_loopback(host):
        raise TokenError(
            f"--token-url: plain http would send the client secret to {host} "
            "unencrypted; use https (plain http is for loopback hosts only)",
            USAGE,
        )
    return url


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_secret(
    env_name: str | None, environ: Mapping[str, str], prompt: Callable[[str], str]
) -> str:
    """The client secret: from the environment variable `env_name`, else asked
    for. Never from the command line, where `ps` and shell history see it."""
    if env_name:
        if not ENV_NAME.fullmatch(env_name):
            # not echoed: it may be the secret itself, given by mistake
            raise TokenError(
                "--client-secret-env takes the name of an environment variable "
                "(letters, digits and _), not the secret itself",
                USAGE,
            )
        if env_name not in environ:
            raise TokenError(f"--client-secret-env: {env_name} is not set", USAGE)
        secret = environ[env_name]
        if not secret:
            raise TokenError(f"--client-secret-env: {env_name} is empty", USAGE)
        return secret

    try:
        secret = prompt("client secret: ")
    except (EOFError, KeyboardInterrupt):
        secret = ""
    if not secret:
        raise TokenError(
            "no client secret given (type it at the prompt, or name an "
            "environment variable with --client-secret-env)",
            USAGE,
        )
    return secret


def _prompt(text: str) -> str:
    # the prompt goes to stderr, so that stdout stays the token alone
    return getpass.getpass(text, stream=sys.stderr)


def scrub(text: str, secret: str) -> str:
    """`text` with the client secret cut out, should a server echo it back."""
    return text.replace(secret, "<redacted>") if secret else text


# ---------------------------------------------------------------- the grant


class _Answer(Exception):
    """A token response, carried out of authlib's response hook."""

    def __init__(self, token: dict) -> None:
        super().__init__("token response")
        self.token = token


def fetch_token(request: TokenRequest, secret: str) -> dict:
    """The token response of a client credentials grant (RFC 6749 section 4.4).

    authlib builds and sends the request: client_secret_basic, with the client
    id and secret form-encoded before base64 as section 2.3.1 says. The
    response is read here, in a hook that runs before authlib's own parser,
    because tokenfix exists for servers whose responses are off the spec, and
    a clear word about what came back beats a parser's exception.
    """
    # imported here: `tokenfix check` and `try` need neither library
    import requests
    from authlib.integrations.requests_client import OAuth2Session

    extra = {"scope": request.scope} if request.scope else {}
    session = OAuth2Session(
        request.client_id, secret, token_endpoint_auth_method="client_secret_basic"
    )
    session.register_compliance_hook("access_token_response", read_response)
    try:
        with session:
            session.fetch_token(
                request.token_url,
                grant_type="client_credentials",
                audience=request.audience,
                timeout=request.timeout,
                verify=request.ca_file or True,
                allow_redirects=False,
                # read_response reads the body itself, within MAX_BODY
                stream=True,
                **extra,
            )
    except _Answer as answer:
        return answer.token
    except requests.exceptions.SSLError as e:
        raise TokenError(
            f"cannot verify the certificate of {request.where}: {_reason(e)}"
        ) from None
    except requests.exceptions.Timeout:
        raise TokenError(
            f"no answer from {request.where} within {request.timeout:g} s"
        ) from None
    except requests.exceptions.ConnectionError as e:
        raise TokenError(f"cannot connect to {request.where}: {_reason(e)}") from None
    except requests.exceptions.RequestException as e:
        raise TokenError(f"cannot ask {request.where}: {_reason(e)}") from None
    raise AssertionError("read_response answers every response")


def read_response(resp) -> None:
    """Raise the token response of `resp` (a requests Response) as `_Answer`,
    or a `TokenError` that says what is wrong with it."""
    status = f"{resp.status_code} {resp.reason or ''}".rstrip()
    if resp.is_redirect:
        location = urlsplit(resp.headers.get("Location", ""))
        target = location._replace(query="", fragment="").geturl() or "nowhere"
        raise TokenError(
            f"the token endpoint answered {status}, a redirect to {target}: "
            "is --token-url the token endpoint itself?"
        )
    try:
        doc = json.loads(_bounded_body(resp, status))
    except ValueError:
        kind = resp.headers.get("Content-Type", "").split(";")[0].strip()
        raise TokenError(
            f"the token endpoint answered {status} with a body that is not JSON "
            f"({kind or 'no Content-Type'})"
        ) from None
    if not isinstance(doc, dict):
        raise TokenError(f"the token endpoint answered {status} with no JSON object")

    if "error" in doc:
        raise TokenError(_refusal(status, doc["error"], doc.get("error_description")))
    if resp.status_code != 200:
        raise TokenError(f"the token endpoint answered {status} with no OAuth error")
    access = doc.get("access_token")
    if not isinstance(access, str) or not access:
        names = ", ".join(sorted(doc)) or "nothing"
        raise TokenError(
            f"the token endpoint answered {status} without an access_token "
            f"(the response holds {names})"
        )
    raise _Answer(doc)


def _bounded_body(resp, status: str) -> bytes:
    """The decoded body, never more than MAX_BODY bytes of it, before or after
    its Content-Encoding is undone: a token response is a few kilobytes, and a
    compressed bomb must not cost memory."""
    raw = resp.raw.read(MAX_BODY + 1, decode_content=False) or b""
    if len(raw) > MAX_BODY:
        raise TokenError(
            f"the token endpoint answered {status} with a body of more than "
            f"{MAX_BODY} bytes"
        )
    try:
        return decode_bounded(raw, resp.headers.get("Content-Encoding"))
    except BodySkip as e:
        raise TokenError(f"the token endpoint answered {status}: {e}") from None


def _refusal(status: str, error: object, description: object) -> str:
    """RFC 6749 section 5.2's error code and description, cut short."""
    text = f"the token endpoint refused the request ({status}): {_short(error)}"
    return f"{text}: {_short(description)}" if description else text


def _short(value: object, limit: int = 200) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reason(error: BaseException) -> str:
    """The innermost reason in a requests error's chain, such as "Connection
    refused", rather than the whole chain's repr."""
    found = ""
    todo, seen = [error], set()
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ssl.SSLCertVerificationError) and e.verify_message:
            return e.verify_message
        if isinstance(e, OSError) and e.strerror and not found:
            found = e.strerror
        linked = (getattr(e, "reason", None), e.__cause__, e.__context__, *e.args)
        todo.extend(x for x in linked if isinstance(x, BaseException))
    return found or type(error).__name__


# ---------------------------------------------------------------- what it is


def describe(token: Mapping, now: float, request: TokenRequest) -> list[str]:
    """Lines for stderr about a token response received at `now`: its type,
    lifetime and scope, the access token's claims, and what looks wrong.

    No token value appears, nor any member named as a secret.
    """
    access = token["access_token"]
    kind = token.get("token_type") or "no token_type"
    lines = [f"{kind} token for {request.audience} from {request.where}"]
    lines.append(_pair("expires_in", _expires_in(token.get("expires_in"), now)))
    if token.get("scope"):
        lines.append(_pair("scope", str(token["scope"])))
    others = sorted(n for n in token if n in SECRET_FIELDS and n != "access_token")
    if others:
        lines.append(_pair("not shown", ", ".join(others)))

    claims = jwt_claims(access) if jwt_header(access) is not None else None
    if claims is None:
        lines.append("access token: opaque (not a JWT), so no claims to show")
        return lines
    lines.append("claims (read, not verified):")
    for name, value in redact_value(claims).items():
        lines.append(_pair(name, _claim(name, value, now), 2))
    lines.extend(_warnings(claims, request.audience))
    return lines


def _pair(label: str, value: str, indent: int = 0) -> str:
    head = " " * indent + label
    return f"{head:<{LABEL + indent}} {value}" if value else head


def _expires_in(value: object, now: float) -> str:
    seconds = finite(value)
    if seconds is None:
        return "not in the response" if value is None else f"{value!r}, not a number"
    moment = _utc(now + seconds)
    return f"{seconds:g} s (until {moment})" if moment else f"{seconds:g} s"


def _claim(name: str, value: object, now: float) -> str:
    """A claim's value; a time claim also as a UTC time, and exp as time left."""
    text = isinstance(value, str) and value
    shown = value if text else json.dumps(value, ensure_ascii=False)
    epoch = finite(value) if name in TIME_CLAIMS else None
    moment = _utc(epoch) if epoch is not None else None
    if moment is None:
        return shown
    if name != "exp":
        return f"{shown}  {moment}"
    left = int(epoch - now)
    when = f"expires in {left} s" if left >= 0 else f"expired {-left} s ago"
    return f"{shown}  {moment}, {when}"


def _utc(epoch: float) -> str | None:
    try:
        moment = datetime.fromtimestamp(epoch, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _warnings(claims: Mapping, audience: str) -> Iterator[str]:
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if audience not in audiences:
        yield (
            f"warning: the token's aud is {json.dumps(aud)}, not the audience "
            f"asked for ({audience}); the API will refuse it"
        )
