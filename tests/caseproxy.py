"""The project's case fixtures, and what it takes to run them end to end.

- `load_cases()`: tests/cases/NN-*.yaml, each a kind of fault with the rules
  files (`recipes`) that fix it and its `exchanges` (request, response,
  expect), in the shape of rule examples.
- `combined_rules(files)`: the rules of several files in one rules text,
  examples dropped, so that one mitmdump can load them all.
- `proxy_groups(cases)`: the cases split so that, within a group, no case is
  touched by a rule from a file it does not name (one mitmdump per group).
- `CaseProxy`: a loopback HTTP proxy that answers each absolute-form request
  (`POST http://tenant.auth0.com/oauth/token`) with the raw response
  registered for its host and path.
- `UpstreamMitmdump`: tests.helpers.Mitmdump in upstream mode in front of a
  CaseProxy, so that `flow.request.host` is the host the client asked for and
  recipe rules match with their real host globs.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import yaml

from addon import expect, jsonbody, offline
from addon.exchange import RequestInfo
from addon.redact import SECRET_FIELDS
from addon.rules import parse_rules
from addon.ruleset import RuleSet
from addon.yamlsrc import load
from tests.helpers import REPO, Mitmdump

CASES_DIR = REPO / "tests" / "cases"
OTHER_PROVIDERS_DIR = CASES_DIR / "other-providers"
RECIPES = sorted((REPO / "recipes").glob("*.yaml"))
RULES_FILES = [REPO / "rules.yaml", *RECIPES]


@dataclass
class Case:
    path: Path
    id: str
    kind: str
    recipes: tuple[str, ...]
    exchanges: list[dict]

    @property
    def number(self) -> str:
        return self.path.name.split("-", 1)[0]


def load_cases(directory: Path = CASES_DIR) -> list[Case]:
    cases = []
    for path in sorted(directory.glob("[0-9][0-9]-*.yaml")):
        doc = load(path.read_text(encoding="utf-8"))
        cases.append(
            Case(
                path=path,
                id=doc["id"],
                kind=doc["kind"],
                recipes=tuple(doc["recipes"]),
                exchanges=list(doc["exchanges"]),
            )
        )
    return cases


@dataclass
class OtherProvider:
    """A second provider with a recipe's kind of fault, for a copy of its rules."""

    path: Path
    recipe: str
    provider: str
    adapt: dict[str, dict[str, str]]
    exchanges: list[dict]


def load_other_providers() -> list[OtherProvider]:
    found = []
    for path in sorted(OTHER_PROVIDERS_DIR.glob("*.yaml")):
        doc = load(path.read_text(encoding="utf-8"))
        found.append(
            OtherProvider(
                path=path,
                recipe=doc["recipe"],
                provider=doc["provider"],
                adapt={name: dict(m) for name, m in doc["adapt"].items()},
                exchanges=list(doc["exchanges"]),
            )
        )
    return found


# -- rules ----------------------------------------------------------------------


def rule_documents(path: Path) -> list[dict]:
    """The rules of a file as plain data, a fresh copy on every call."""
    key = str(path)
    if key not in _DOCUMENTS:
        _DOCUMENTS[key] = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return copy.deepcopy(_DOCUMENTS[key]["rules"])


_DOCUMENTS: dict[str, dict] = {}


def combined_rules(files: Iterable[str | Path], adapt: dict | None = None) -> str:
    """The rules of `files`, in order and without their examples, as one file.

    With `adapt` ({rule name: {host: ..., path: ...}}), only the named rules
    are kept and only their match host and path are changed.
    """
    rules, names = [], set()
    for name in files:
        for rule in rule_documents(REPO / name):
            if adapt is not None:
                if rule["name"] not in adapt:
                    continue
                rule["match"].update(adapt[rule["name"]])
            rule.pop("examples", None)
            if rule["name"] in names:
                raise ValueError(f"rule name {rule['name']!r} is not unique")
            names.add(rule["name"])
            rules.append(rule)
    return yaml.safe_dump({"rules": rules}, sort_keys=False, allow_unicode=True)


def ruleset(files: Iterable[str | Path], adapt: dict | None = None) -> RuleSet:
    """The rules of `files` (see combined_rules), parsed once per test session."""
    key = (tuple(str(f) for f in files), json.dumps(adapt, sort_keys=True))
    if key not in _RULESETS:
        _RULESETS[key] = parse_rules(combined_rules(key[0], adapt), "<combined>")
    return _RULESETS[key]


_RULESETS: dict[tuple, RuleSet] = {}


# -- running and judging one exchange -------------------------------------------


def judge(result: offline.Result, raw: dict, now: float, where: str) -> list[str]:
    """What the expectation says is wrong, plus any untouched field that moved."""
    line = getattr(raw, "line", 0)
    failures = expect.check(result, raw.get("expect"), where, line, "case", now)
    return failures + others_untouched(
        result.original_body, result.body, raw.get("expect")
    )


def others_untouched(original: bytes, final: bytes, wanted: dict | None) -> list:
    """Fields the expectation does not name arrive as they came, in order.

    Nothing to add when the expectation already pins the whole body (`body`,
    `unchanged`) or when the body is not a JSON object on both sides.
    """
    wanted = wanted or {}
    if "body" in wanted or wanted.get("unchanged"):
        return []
    try:
        before = jsonbody.parse_object(original)
        after = jsonbody.parse_object(final)
    except jsonbody.BodySkip:
        return []
    named = set(wanted.get("fields") or {})
    kept = {k: v for k, v in before.items() if k not in named}
    got = {k: v for k, v in after.items() if k not in named}
    if json.dumps(kept) == json.dumps(got):
        return []
    moved = [
        k for k in {**kept, **got} if json.dumps(kept.get(k)) != json.dumps(got.get(k))
    ]
    if list(kept) != list(got):
        moved.append("(their order)")
    return [f"fields not named in expect changed: {', '.join(moved)}"]


def expects_change(raw: dict) -> bool:
    """Whether the exchange's expectation differs from what the server sent."""
    wanted = raw.get("expect") or {}
    response = raw["response"]
    if not wanted.get("unchanged"):
        return True
    if wanted.get("status", response.get("status", 200)) != response.get("status", 200):
        return True
    sent = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    return any(
        sent.get(k.lower()) != v for k, v in (wanted.get("headers") or {}).items()
    )


def secret_values(ex: offline.Exchange) -> set[str]:
    """Every secret the exchange carries: parameters, Basic header, token fields."""
    found: set[str] = set()
    params = dict(parse_qsl(urlsplit(ex.url).query))
    body = ex.request_body.decode("utf-8")
    if body.startswith("{"):
        params.update(json.loads(body))
    else:
        params.update(parse_qsl(body))
    found.update(str(v) for k, v in params.items() if k in SECRET_FIELDS)
    for name, value in ex.request_headers.items():
        if name.lower() == "authorization":
            found.update({value, value.split()[-1]})
    try:
        doc = jsonbody.parse_object(ex.response_body)
    except jsonbody.BodySkip:
        try:
            doc = jsonbody.parse_form(ex.response_body)
        except jsonbody.BodySkip:
            doc = {}
    found.update(_secret_leaves(doc))
    return found


def _secret_leaves(doc: object, secret: bool = False) -> Iterable[str]:
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _secret_leaves(value, secret or key in SECRET_FIELDS)
    elif isinstance(doc, str) and secret:
        yield doc


# -- one mitmdump for several recipes -------------------------------------------


def touching_files(case: Case, files: Iterable[str], now: float) -> set[str]:
    """The files among `files` with a rule whose request side matches the case."""
    touching = set()
    for raw in case.exchanges:
        ex = offline.exchange_from_mapping(raw, now)
        info = RequestInfo(
            ex.method, ex.host, ex.path, ex.query, ex.request_headers, ex.request_body
        )
        touching.update(f for f in files if ruleset([f]).for_request(info))
    return touching


def proxy_groups(cases: Sequence[Case], now: float) -> list[tuple[list[str], list]]:
    """Cases grouped so that one rules file per group serves all of its cases.

    A case joins the first group in which, with its recipes added, no case's
    requests are matched by a rule from a file that case does not name.
    """
    files = sorted({f for case in cases for f in case.recipes})
    touching = {case.id: touching_files(case, files, now) for case in cases}
    groups: list[tuple[list[str], list[Case]]] = []
    for case in cases:
        for group_files, members in groups:
            merged = group_files + [f for f in case.recipes if f not in group_files]
            if all(
                touching[m.id] & set(merged) <= set(m.recipes) for m in [*members, case]
            ):
                group_files[:] = merged
                members.append(case)
                break
        else:
            groups.append((list(case.recipes), [case]))
    return groups


# -- the case proxy ---------------------------------------------------------------


@dataclass
class Seen:
    method: str
    host: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


@dataclass
class Canned:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class CaseProxy:
    """A loopback HTTP proxy answering canned responses by (host, path).

    It plays mitmdump's upstream proxy: every request arrives in absolute
    form, and the answer is written as raw bytes with the registered headers
    (a Content-Length is added unless they carry one).
    """

    canned: dict[tuple[str, str], Canned] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _CaseProxyHandler)
        self._httpd.daemon_threads = True
        self._httpd.case_proxy = self
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="case-proxy",
            daemon=True,
        )

    def respond(self, url: str, status: int, headers, body: bytes) -> None:
        parts = urlsplit(url)
        pairs = list(headers.items() if isinstance(headers, dict) else headers)
        reason = _reason(status)
        self.canned[(parts.hostname, parts.path)] = Canned(status, reason, pairs, body)

    def start(self) -> CaseProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._thread.join(timeout=5)
        self._httpd.server_close()


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class _CaseProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        proxy: CaseProxy = self.server.case_proxy
        target = urlsplit(self.path)
        proxy.seen.append(
            Seen(
                self.command,
                target.hostname or "",
                target.path,
                target.query,
                list(self.headers.items()),
                body,
            )
        )
        canned = proxy.canned.get((target.hostname, target.path))
        if canned is None:
            text = f"no canned response for {self.path}".encode()
            canned = Canned(502, "Bad Gateway", [("Content-Type", "text/plain")], text)

        head = [f"HTTP/1.1 {canned.status} {canned.reason}"]
        head += [f"{name}: {value}" for name, value in canned.headers]
        if not any(name.lower() == "content-length" for name, _ in canned.headers):
            head.append(f"Content-Length: {len(canned.body)}")
        raw = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + canned.body
        self.wfile.write(raw)
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, format, *args):
        pass


class UpstreamMitmdump(Mitmdump):
    """mitmdump with tokenfix in upstream mode: `upstream` is the next proxy."""

    def command(self) -> list[str]:
        cmd = super().command()
        cmd[cmd.index("--mode") + 1] = f"upstream:{self.upstream}"
        return cmd
