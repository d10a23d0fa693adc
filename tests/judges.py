"""Real OAuth client libraries as judges of token responses.

Every exchange of the project's case fixtures (`tests/cases/NN-<id>.yaml`) is
turned into two responses: the raw one, and the one tokenfix sends after the
fixture's `recipes` (run offline, as `tokenfix try` runs them). Both are given
to the token handling of real client libraries, each driven the way an
application drives it: over HTTP from a loopback token endpoint where the
library does HTTP itself, then a call to a loopback API with the token. What
the library holds afterwards (its expiry, the Authorization header it sends,
the refresh token it keeps, the error it raised) is compared with what the
exchange's `expect` says the client must receive.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from pathlib import Path
from urllib.parse import urlsplit

import requests
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from authlib.integrations.requests_client import OAuthError
from oauthlib.oauth2 import OAuth2Error, WebApplicationClient
from requests_oauthlib import OAuth2Session as RequestsOAuthlibSession

from addon import jsonbody
from addon.exchange import RequestInfo
from addon.offline import Exchange, Result, exchange_from_mapping, run
from addon.ruleset import RuleSet
from tests import caseproxy
from tests.caseproxy import CASES_DIR, expects_change, rule_documents, ruleset
from tests.helpers import REPO

CLIENT_ID = "judge-client"
CLIENT_SECRET = "judge-secret"
REDIRECT_URI = "https://client.example.org/cb"
# an expiry this close to the wanted one is right (the clock moves during a run)
EXPIRY_SLACK = 2.0


# -- what each exchange wants ---------------------------------------------------


@dataclass(frozen=True)
class Want:
    """What the client must hold after the exchange, read from its `expect`.

    expires_in: the lowest and highest lifetime, in seconds, the client may
        record; None means it must record no expiry (the token does not expire).
    refresh_token: the refresh token the client must keep afterwards.
    error: the OAuth error code the client must raise instead of a token.
    untouched: the rules must leave the response byte for byte.
    """

    expires_in: tuple[int, int] | None = None
    refresh_token: str | None = None
    error: str | None = None
    untouched: bool = False


def want_of(raw: dict, ex: Exchange, where: str) -> Want:
    """What the fixture's exchange `raw` (made real as `ex`) wants the client to hold.

    The answer the client must receive is `expect.body` when the fixture pins
    it, the response as it came when `expect.unchanged` says so, and otherwise
    the response as it came with the fields `expect.fields` names. ValueError
    when the expectation does not say enough.
    """
    expect = raw.get("expect") or {}
    conditions = expect.get("fields") or {}
    sent = _json_fields(ex.response_body)
    if expect.get("unchanged"):
        answer = sent
    elif "body" in expect:
        answer = dict(expect["body"])
    else:
        answer = {k: v for k, v in sent.items() if k not in conditions}
    status = expect.get("status", ex.status)

    if status >= 400:
        error = answer.get("error")
        if not isinstance(error, str):
            raise ValueError(f"{where}: an error answer without an `error` code")
        return Want(error=error, untouched=not expects_change(raw))
    if "expires_in" in conditions:
        expires_in = _bounds(conditions["expires_in"], where)
    else:
        expires_in = _lifetime(answer.get("expires_in"), where)
    return Want(
        expires_in=expires_in,
        refresh_token=_refresh_token_kept(answer, conditions, ex, where),
        untouched=not expects_change(raw),
    )


def _json_fields(body: bytes) -> dict:
    try:
        return jsonbody.parse_object(body)
    except jsonbody.BodySkip:
        return {}


def _is_number(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _lifetime(value: object, where: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if not _is_number(value):
        raise ValueError(f"{where}: expires_in {value!r} is not a whole number")
    return (value, value)


def _bounds(condition: object, where: str) -> tuple[int, int]:
    """The lifetimes an `expect.fields.expires_in` condition allows."""
    if _is_number(condition):
        return (condition, condition)
    if isinstance(condition, dict):
        if set(condition) == {"equals"} and _is_number(condition["equals"]):
            return (condition["equals"], condition["equals"])
        low, high = condition.get("gte"), condition.get("lte")
        if set(condition) == {"gte", "lte"} and _is_number(low) and _is_number(high):
            return (low, high)
    raise ValueError(
        f"{where}: expect.fields.expires_in {condition!r}: the judges read a "
        "number, {equals: N} or {gte: N, lte: M}"
    )


def _refresh_token_kept(
    answer: dict, conditions: dict, ex: Exchange, where: str
) -> str | None:
    """The refresh token the answer issues, else the one a refreshing client had.

    RFC 6749 section 6: a refresh answer without refresh_token leaves the
    client with the refresh token it presented.
    """
    if "refresh_token" in conditions:
        raise ValueError(f"{where}: the judges need refresh_token in expect.body")
    if answer.get("refresh_token") is not None:
        return answer["refresh_token"]
    info = request_info(ex)
    return presented_refresh_token(info) if info.grant_type == "refresh_token" else None


def presented_refresh_token(info: RequestInfo) -> str | None:
    value = info.param("refresh_token")
    return value if isinstance(value, str) else None


def request_info(ex: Exchange) -> RequestInfo:
    return RequestInfo(
        ex.method, ex.host, ex.path, ex.query, ex.request_headers, ex.request_body
    )


# -- cases ---------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Trial:
    """An exchange made real at one moment: raw and fixed response."""

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
    """One exchange of a case fixture: what the client wants, the fixing rules.

    name: the fixture's id; `<id>#N` for its Nth exchange from the second on.
    kind: the fault, in words: the fixture's `kind` for its first exchange,
        the exchange's own `name` for the others.
    """

    name: str
    kind: str
    want: Want
    doc: dict  # request, response and expect, placeholders as the fixture has them
    rules: RuleSet
    fixed_by: list[str]
    grant_type: str | None
    presented_refresh_token: str | None

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


def load_cases(cases_dir: Path = CASES_DIR) -> list[Case]:
    """Every exchange of every case fixture in `cases_dir`, in file order."""
    cases = []
    for fixture in caseproxy.load_cases(cases_dir):
        rules = ruleset(fixture.recipes)
        for number, raw in enumerate(fixture.exchanges, 1):
            name = fixture.id if number == 1 else f"{fixture.id}#{number}"
            where = f"{fixture.path.name}, exchange {number}"
            ex = exchange_from_mapping(raw, time.time(), label=name)
            info = request_info(ex)
            case = Case(
                name=name,
                kind=fixture.kind if number == 1 else raw["name"],
                want=want_of(raw, ex, where),
                doc=raw,
                rules=rules,
                fixed_by=fixed_by(fixture.recipes, run(rules, ex)),
                grant_type=info.grant_type,
                presented_refresh_token=presented_refresh_token(info),
            )
            cases.append(case)
    return cases


def fixed_by(files: tuple[str, ...], result: Result) -> list[str]:
    """Each rules file, in load order, with its rules that changed the response."""
    changing = {c.rule for c in result.outcome.changes} if result.outcome else set()
    notes = []
    for file in files:
        names = [r["name"] for r in rule_documents(REPO / file)]
        used = ", ".join(n for n in names if n in changing) or "leaves it alone"
        notes.append(f"`{file}` ({used})")
    return notes


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
                s.token = _prior_token(case)
                token = s.refresh_token(
                    token_url, refresh_token=case.presented_refresh_token
                )
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
        client.populate_token_attributes(_prior_token(case))
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
                s.token = _prior_token(case)
                token = s.refresh_token(
                    token_url,
                    refresh_token=case.presented_refresh_token,
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


def _prior_token(case: Case) -> dict:
    """What a client holds when it refreshes: its last token and the refresh
    token its request presents."""
    return {
        "access_token": "previous-access-token",
        "token_type": "Bearer",
        "refresh_token": case.presented_refresh_token,
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
        low, high = want.expires_in
        if not low - EXPIRY_SLACK <= reading.expires_in <= high + EXPIRY_SLACK:
            wanted = f"{low}" if low == high else f"{low} to {high}"
            found.append(f"expiry {round(reading.expires_in)} s, want {wanted}")
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
