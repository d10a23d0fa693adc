"""Real OAuth client libraries as judges of token responses.

Each shared case (`../shared/cases/*.yaml`: a real exchange with its fault) is
turned into two responses: the raw one, and the one tokenfix sends after the
case's recipe rules (run offline, as `tokenfix try` runs them). Both are given
to the token handling of real client libraries, each driven the way an
application drives it: over HTTP from a loopback token endpoint where the
library does HTTP itself, then a call to a loopback API with the token. What
the library holds afterwards (its expiry, the Authorization header it sends,
the refresh token it keeps, the error it raised) is compared with what the
case says the client must get.

The recipe rules are adapted as each recipe's "Adapt" note tells a user to:
`match.host` and `match.path` are set to the case's token endpoint; nothing
else changes.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from pathlib import Path
from urllib.parse import urlsplit

import requests
import yaml
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from authlib.integrations.requests_client import OAuthError
from oauthlib.oauth2 import OAuth2Error, WebApplicationClient
from requests_oauthlib import OAuth2Session as RequestsOAuthlibSession

from addon.exchange import RequestInfo
from addon.offline import Exchange, exchange_from_mapping, run
from addon.rules import Rule, load_rules, parse_rules
from addon.ruleset import RuleSet
from tests.helpers import REPO

CASES_DIR = REPO.parent / "shared" / "cases"

CLIENT_ID = "judge-client"
CLIENT_SECRET = "judge-secret"
REDIRECT_URI = "https://client.example.org/cb"
# the refresh token a client holds before a refresh_token grant: the one the
# cases' requests present
PRESENTED_RT = "<RT>"
# an expiry this close to the wanted one is right (the clock moves during a run)
EXPIRY_SLACK = 2.0


# -- what each case wants -------------------------------------------------------


@dataclass(frozen=True)
class Want:
    """What the client must hold after the exchange, per the case's `expect`.

    recipes: rule files (from the repository's root), applied in this order.
    expires_in: seconds until the access token expires; None means the client
        must see no expiry (the token does not expire).
    refresh_token: the refresh token the client must keep afterwards.
    error: the OAuth error code the client must raise instead of a token.
    untouched: the rules must leave the response byte for byte.
    fault: words for the fault, where the case's `kind` is not about this
        response.
    """

    recipes: tuple[str, ...]
    expires_in: int | None = None
    refresh_token: str | None = PRESENTED_RT
    error: str | None = None
    untouched: bool = False
    fault: str | None = None


DEFAULT_RULES = "rules.yaml"

# keyed by case file name without ".yaml"; "#second_response" is the case's
# second exchange (same request, the response under `second_response`)
WANTS: dict[str, Want] = {
    "01-auth0-refresh-json-body": Want((DEFAULT_RULES,), expires_in=120),
    "02-auth0-code-exchange-untouched": Want(
        (DEFAULT_RULES,), expires_in=120, untouched=True
    ),
    "03-alexa-form-refresh-basic": Want((DEFAULT_RULES,), expires_in=86400),
    "04-oauth2orize-nonstandard": Want(
        (
            "recipes/nonstandard-token-type.yaml",
            "recipes/fixed-lifetime.yaml",
            "recipes/refresh-token-echo.yaml",
        ),
        expires_in=7776000,
    ),
    "05-cognito-refresh-no-rt": Want(
        ("recipes/refresh-token-echo.yaml",), expires_in=3600
    ),
    "06-firebase-string-expires-in": Want(
        ("recipes/expires-in-as-string.yaml",), expires_in=3600
    ),
    "07-custom-server-html-content-type": Want(
        (
            "recipes/wrong-content-type.yaml",
            "recipes/expires-in-as-string.yaml",
        ),
        expires_in=3600,
    ),
    "08-null-expires-in": Want(
        ("recipes/null-expires-in.yaml",),
        expires_in=None,
        refresh_token=None,
    ),
    "09-keycloak-zero-refresh-expiry": Want(
        ("recipes/zero-means-no-expiry.yaml",),
        expires_in=300,
    ),
    "10-salesforce-no-expiry": Want(
        ("recipes/fixed-lifetime.yaml",),
        expires_in=7200,
    ),
    "11-linkedin-no-token-type": Want(
        ("recipes/missing-token-type.yaml",),
        expires_in=5184000,
        refresh_token=None,
    ),
    "12-lowercase-bearer": Want(
        ("recipes/token-type-case.yaml",),
        expires_in=299,
        refresh_token=None,
    ),
    "13-github-form-body": Want(
        ("recipes/form-encoded-response.yaml",),
        expires_in=None,
        refresh_token=None,
    ),
    "13-github-form-body#second_response": Want(
        ("recipes/error-status.yaml",),
        error="bad_verification_code",
        fault="an OAuth error (a bad code) answered with status 200",
    ),
    "14-google-sample-golden": Want((DEFAULT_RULES,), expires_in=86400, untouched=True),
    "15-data-envelope": Want(("recipes/data-envelope.yaml",), expires_in=3600),
    "16-grant-type-in-query": Want(
        ("recipes/grant-type-in-query.yaml",),
        # the access token is opaque: the rule's fallback
        expires_in=3600,
    ),
    "17-lwa-string-lowercase": Want(
        ("recipes/expires-in-as-string.yaml",), expires_in=3600
    ),
    "18-server-error-for-bad-grant": Want(
        ("recipes/error-status.yaml",),
        error="invalid_grant",
    ),
    "19-expires-at-only": Want(
        ("recipes/absolute-expiry-only.yaml",),
        expires_in=21600,
    ),
}


# -- cases ---------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Trial:
    """A case's exchange made real at one moment: raw and fixed response."""

    raw: Response
    fixed: Response

    @property
    def access_token(self) -> str | None:
        """The access token of the fixed response: what an API must receive."""
        try:
            doc = json.loads(self.fixed.body)
        except ValueError:
            return None
        return doc.get("access_token") if isinstance(doc, dict) else None


@dataclass
class Case:
    """One shared case: its exchange, what the client wants, the fixing rules."""

    name: str
    kind: str
    want: Want
    doc: dict  # request and response, placeholders as the project writes them
    rules: RuleSet
    fixed_by: list[str]
    grant_type: str | None

    def trial(self, now: float | None = None) -> Trial:
        """Raw and fixed response, with placeholders expanded at `now`.

        Judge a trial at once: its expiry times count from `now`.
        """
        now = time.time() if now is None else now
        ex = exchange_from_mapping(self.doc, now, label=self.name)
        result = run(self.rules, ex, now=now)
        return Trial(
            raw=Response(ex.status, dict(ex.response_headers), ex.response_body),
            fixed=Response(result.status, dict(result.headers), result.body),
        )


# the shared files write some placeholders in words
_PROSE = [
    (re.compile(r"<epoch seconds now\+(\d+)>"), lambda m: f"<EPOCH+{m[1]}>"),
    (
        re.compile(r"<base64 of ([^>]+)>"),
        lambda m: base64.b64encode(m[1].encode()).decode(),
    ),
]


def _in_words(value: object) -> object:
    """The shared files' placeholders in words, as the project's placeholders."""
    if isinstance(value, str):
        for pattern, repl in _PROSE:
            value = pattern.sub(repl, value)
        return value
    if isinstance(value, dict):
        return {k: _in_words(v) for k, v in value.items()}
    return value


def case_rules(files: tuple[str, ...], ex: Exchange) -> tuple[RuleSet, list[str]]:
    """The rules of `files` that serve this exchange, and how they were chosen.

    A file's rules whose request conditions hold for the exchange are used as
    they are. When none holds, every rule of the file is adapted to the
    exchange's endpoint (host and path), as its recipe tells a user to.
    """
    info = _request_info(ex)
    chosen: list[Rule] = []
    notes = []
    for file in files:
        rules = load_rules(REPO / file).for_request(info)
        how = ""
        if not rules:
            rules = _adapted(REPO / file, ex).for_request(info)
            how = ", adapted"
        chosen += rules
        names = ", ".join(r.name for r in rules) or "no rule applies"
        notes.append(f"`{file}` ({names}{how if rules else ''})")
    return RuleSet(tuple(chosen), path=" + ".join(files)), notes


def _adapted(path: Path, ex: Exchange) -> RuleSet:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    rules = []
    for rule in doc["rules"]:
        rule = {k: v for k, v in rule.items() if k != "examples"}
        rule["match"] = {**rule["match"], "host": ex.host, "path": ex.path}
        rules.append(rule)
    text = yaml.safe_dump({"rules": rules}, sort_keys=False, allow_unicode=True)
    return parse_rules(text, filename=f"{path.name} (adapted)")


def load_cases(cases_dir: Path = CASES_DIR) -> list[Case]:
    """Every case of WANTS, read from `cases_dir`, with the rules that fix it."""
    cases = []
    for name, want in WANTS.items():
        stem, _, second = name.partition("#")
        doc = yaml.safe_load((cases_dir / f"{stem}.yaml").read_text("utf-8"))
        exchange = {
            "request": _in_words(doc["request"]),
            "response": _in_words(doc[second] if second else doc["response"]),
        }
        ex = exchange_from_mapping(exchange, time.time(), label=name)
        rules, notes = case_rules(want.recipes, ex)
        info = _request_info(ex)
        case = Case(
            name=name,
            kind=want.fault or doc["kind"],
            want=want,
            doc=exchange,
            rules=rules,
            fixed_by=notes,
            grant_type=info.grant_type,
        )
        cases.append(case)
    return cases


def _request_info(ex: Exchange) -> RequestInfo:
    return RequestInfo(
        ex.method, ex.host, ex.path, ex.query, ex.request_headers, ex.request_body
    )


# -- what a library made of a response -----------------------------------------


@dataclass
class Reading:
    """What one client library holds after one token response.

    error: the OAuth error code it raised instead of returning a token.
    failure: how it failed otherwise, in words.
    authorization: the Authorization header it sent to an API with the token.
    expires_in: seconds until the expiry it recorded; None when it has none.
    refresh_token: the refresh token it keeps.
    """

    error: str | None = None
    failure: str | None = None
    authorization: str | None = None
    expires_in: float | None = None
    refresh_token: str | None = None


class Loopback:
    """A token endpoint and an API on 127.0.0.1, for one judging run.

    `token_endpoint(response)` gives a URL that answers with `response`;
    `api()` gives a URL that answers 200 and keeps the Authorization header
    it was sent, which `authorization_at(url)` returns.
    """

    def __init__(self) -> None:
        self.answers: dict[str, Response] = {}
        self.authorizations: dict[str, str | None] = {}
        self._ids = count(1)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _LoopbackHandler)
        self._httpd.daemon_threads = True
        self._httpd.loopback = self
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="judges-loopback", daemon=True
        )

    def __enter__(self) -> Loopback:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._thread.join(timeout=5)
        self._httpd.server_close()

    def token_endpoint(self, response: Response) -> str:
        path = f"/token/{next(self._ids)}"
        self.answers[path] = response
        return self.url + path

    def api(self) -> str:
        path = f"/api/{next(self._ids)}"
        self.answers[path] = Response(200, {"Content-Type": "application/json"}, b"{}")
        return self.url + path

    def authorization_at(self, url: str) -> str | None:
        return self.authorizations.get(urlsplit(url).path)


class _LoopbackHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body leave in two writes: without TCP_NODELAY each exchange
    # waits for a delayed ACK, which made a judging run ten times slower
    disable_nagle_algorithm = True

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        loopback: Loopback = self.server.loopback
        loopback.authorizations[self.path] = self.headers.get("Authorization")
        answer = loopback.answers.get(self.path)
        if answer is None:
            answer = Response(404, {"Content-Type": "text/plain"}, b"no such path")
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    do_GET = do_POST = _answer

    def log_message(self, format, *args) -> None:
        pass


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _seconds_left(expires_at: object) -> float | None:
    if isinstance(expires_at, int | float) and not isinstance(expires_at, bool):
        return expires_at - time.time()
    return None


def _rejects(exc: BaseException) -> str:
    """Why a library refused a token response, in words that outlive versions."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"takes HTTP {exc.response.status_code} for a server failure"
    if isinstance(exc, ValueError):
        # requests' JSONDecodeError, or authlib's own "not a JSON object"
        return "rejects the response (not JSON)"
    return f"rejects the response ({type(exc).__name__})"


def _unusable(exc: BaseException) -> str:
    """Why a library could not call an API with the token it holds."""
    name = type(exc).__name__
    if "Expired" in name or name == "InvalidTokenError":
        return "cannot use the token (already expired)"
    if name == "UnsupportedTokenTypeError" or "token type" in str(exc).lower():
        return "cannot use the token (unsupported token_type)"
    return f"cannot use the token ({name})"


def judge_authlib(case: Case, response: Response, http: Loopback) -> Reading:
    """authlib's requests client: fetch_token or refresh_token, then an API call."""
    token_url = http.token_endpoint(response)
    with AuthlibSession(CLIENT_ID, CLIENT_SECRET, redirect_uri=REDIRECT_URI) as s:
        try:
            if case.grant_type == "refresh_token":
                s.token = _prior_token()
                token = s.refresh_token(token_url, refresh_token=PRESENTED_RT)
            else:
                token = s.fetch_token(
                    token_url, grant_type="authorization_code", code="<CODE>"
                )
        except OAuthError as e:
            return Reading(error=e.error)
        except Exception as e:  # the library's own way of refusing the response
            return Reading(failure=_rejects(e))
        reading = Reading(
            expires_in=_seconds_left(token.get("expires_at")),
            refresh_token=token.get("refresh_token"),
        )
        return _use(reading, lambda url: s.get(url, timeout=5), http)


def judge_oauthlib(case: Case, response: Response, http: Loopback) -> Reading:
    """oauthlib's WebApplicationClient: parse_request_body_response, add_token."""
    client = WebApplicationClient(CLIENT_ID)
    if case.grant_type == "refresh_token":
        client.populate_token_attributes(_prior_token())
    try:
        token = client.parse_request_body_response(response.body.decode("utf-8"))
    except OAuth2Error as e:
        return Reading(error=e.error)
    except (Exception, Warning) as e:
        return Reading(failure=_rejects(e))
    reading = Reading(
        expires_in=_seconds_left(token.get("expires_at")),
        refresh_token=client.refresh_token,
    )
    try:
        _, headers, _ = client.add_token("https://api.example.org/v1/me")
    except Exception as e:
        reading.failure = _unusable(e)
        return reading
    reading.authorization = headers.get("Authorization")
    return reading


def judge_oauthlib_strict(case: Case, response: Response, http: Loopback) -> Reading:
    """oauthlib with OAUTHLIB_STRICT_TOKEN_TYPE set, as strict deployments run it."""
    with _environ(OAUTHLIB_STRICT_TOKEN_TYPE="1"):
        return judge_oauthlib(case, response, http)


def judge_requests_oauthlib(case: Case, response: Response, http: Loopback) -> Reading:
    """requests-oauthlib's OAuth2Session: fetch_token or refresh_token, API call."""
    token_url = http.token_endpoint(response)
    # loopback is plain http; oauthlib refuses it unless told otherwise
    with (
        _environ(OAUTHLIB_INSECURE_TRANSPORT="1"),
        RequestsOAuthlibSession(CLIENT_ID, redirect_uri=REDIRECT_URI) as s,
    ):
        try:
            if case.grant_type == "refresh_token":
                s.token = _prior_token()
                token = s.refresh_token(
                    token_url,
                    refresh_token=PRESENTED_RT,
                    auth=(CLIENT_ID, CLIENT_SECRET),
                    timeout=5,
                )
            else:
                token = s.fetch_token(
                    token_url, code="<CODE>", client_secret=CLIENT_SECRET, timeout=5
                )
        except OAuth2Error as e:
            return Reading(error=e.error)
        except (Exception, Warning) as e:
            return Reading(failure=_rejects(e))
        reading = Reading(
            expires_in=_seconds_left(token.get("expires_at")),
            refresh_token=token.get("refresh_token"),
        )
        return _use(reading, lambda url: s.get(url, timeout=5), http)


def _prior_token() -> dict:
    """What a client holds when it refreshes: its last token and refresh token."""
    return {
        "access_token": "previous-access-token",
        "token_type": "Bearer",
        "refresh_token": PRESENTED_RT,
    }


def _use(reading: Reading, get: Callable[[str], object], http: Loopback) -> Reading:
    url = http.api()
    try:
        get(url)
    except Exception as e:
        reading.failure = _unusable(e)
        return reading
    reading.authorization = http.authorization_at(url)
    return reading


@dataclass(frozen=True)
class Judge:
    name: str  # a column heading of the README's table
    read: Callable[[Case, Response, Loopback], Reading]


JUDGES = (
    Judge("authlib `OAuth2Session`", judge_authlib),
    Judge("oauthlib `WebApplicationClient`", judge_oauthlib),
    Judge("oauthlib, `OAUTHLIB_STRICT_TOKEN_TYPE`", judge_oauthlib_strict),
    Judge("requests-oauthlib `OAuth2Session`", judge_requests_oauthlib),
)


# -- verdicts ------------------------------------------------------------------


def problems(case: Case, trial: Trial, reading: Reading) -> list[str]:
    """How what the library holds differs from what the case wants, in words."""
    want = case.want
    if want.error is not None:
        return _error_problems(want.error, reading)
    if reading.error is not None:
        return [f"rejects the response ({reading.error})"]
    if reading.failure is not None and reading.failure.startswith("rejects"):
        return [reading.failure]

    found = []
    if want.expires_in is not None and reading.expires_in is None:
        found.append("no expiry: never refreshes")
    elif want.expires_in is None and reading.expires_in is not None:
        found.append("sees an expiry the token does not have")
    elif want.expires_in is not None:
        if abs(reading.expires_in - want.expires_in) > EXPIRY_SLACK:
            found.append(
                f"expiry {round(reading.expires_in)} s, want {want.expires_in}"
            )
    if reading.failure is not None:
        found.append(reading.failure)
    elif reading.authorization != f"Bearer {trial.access_token}":
        found.append("sends the wrong Authorization header")
    if reading.refresh_token != want.refresh_token:
        if want.refresh_token is None:
            found.append("keeps a refresh token the server did not issue")
        elif reading.refresh_token is None:
            found.append("loses the refresh token")
        else:
            found.append("keeps the wrong refresh token")
    return found


def _error_problems(code: str, reading: Reading) -> list[str]:
    if reading.error == code:
        return []
    if reading.error is not None:
        return [f"raises {reading.error!r}, want {code!r}"]
    if reading.failure is not None:
        return [reading.failure]
    return [f"reads a token where the server said {code!r}"]


@dataclass
class Verdicts:
    """Per (case, judge): what is wrong with the raw and the fixed response."""

    cases: list[Case]
    raw: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    fixed: dict[tuple[str, str], list[str]] = field(default_factory=dict)


def judge_case(case: Case, judge: Judge, http: Loopback) -> tuple[list, list]:
    """The problems a library has with the case's raw and fixed response."""
    trial = case.trial()
    raw = problems(case, trial, judge.read(case, trial.raw, http))
    fixed = problems(case, trial, judge.read(case, trial.fixed, http))
    return raw, fixed


def judge_all(cases: list[Case]) -> Verdicts:
    verdicts = Verdicts(cases)
    with Loopback() as http:
        for case in cases:
            for judge in JUDGES:
                key = (case.name, judge.name)
                verdicts.raw[key], verdicts.fixed[key] = judge_case(case, judge, http)
    return verdicts
