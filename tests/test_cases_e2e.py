"""Every case fixture through a real mitmdump with tokenfix and the recipe rules
as written (their real host globs), and through `tokenfix try`.

mitmdump runs in upstream mode, so `flow.request.host` is the host the client
asked for (`brightlamp.auth0.com`): the client sends absolute-form requests
for `http://<case host><path>` to mitmdump, which forwards them to a loopback
CaseProxy that answers with the case's canned response.
"""

import http.client
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlunsplit

import pytest

from addon import engine, offline
from addon.decoding import decode_bounded
from addon.exchange import RequestInfo
from addon.rules import ACTIONS
from tests.caseproxy import (
    CaseProxy,
    Seen,
    UpstreamMitmdump,
    combined_rules,
    expects_change,
    judge,
    load_cases,
    proxy_groups,
    ruleset,
    secret_values,
    touching_files,
)
from tests.helpers import REPO, Mitmdump, assert_no_secrets

pytestmark = pytest.mark.e2e

CASES = load_cases()
PARAMS = [
    pytest.param(case, i, id=f"{case.path.stem}-{i + 1}")
    for case in CASES
    for i in range(len(case.exchanges))
]
REWRITE_LINE = re.compile(r"rule '(?P<rule>[^']+)': (?P<done>.*)")
OP = re.compile(
    r"(?:^|, )(set|default|remove|rename|coerce|unwrap|header|status|form_to_json)\b"
)


@dataclass
class Stage:
    """One mitmdump, the rules file it loaded, and the cases it serves."""

    files: list[str]
    rules_path: Path
    mitmdump: Mitmdump


@dataclass
class Run:
    """One exchange through the proxy: what each side saw."""

    stage: Stage
    exchange: offline.Exchange
    now: float
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    upstream: list[Seen]
    log: str

    def result(self) -> offline.Result:
        """What the client received, in the shape `expect.check` judges."""
        headers = dict(self.headers)
        encoding = next(
            (v for k, v in self.headers if k.lower() == "content-encoding"), None
        )
        original = decode_bounded(
            self.exchange.response_body, self.exchange.header("content-encoding")
        )
        return offline.Result(
            exchange=self.exchange,
            grant_type=None,
            matched=(),
            outcome=None,
            skipped_reason=None,
            body=decode_bounded(self.body, encoding),
            original_body=original,
            status=self.status,
            headers=headers,
        )


def send(port: int, ex: offline.Exchange) -> tuple[int, list, bytes]:
    """The exchange's request in absolute form to the proxy at `port`."""
    url = urlunsplit(("http", ex.host, ex.path, ex.query, ""))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(ex.method, url, skip_accept_encoding=True)
        for name, value in ex.request_headers.items():
            conn.putheader(name, value)
        if ex.request_body or ex.method not in ("GET", "HEAD"):
            conn.putheader("Content-Length", str(len(ex.request_body)))
        conn.endheaders(ex.request_body or None)
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read()
    finally:
        conn.close()


def rewriting_rules(files: list[str], raw: dict, now: float) -> list[str]:
    """The rules that change this exchange, as the offline run sees it."""
    result = offline.run(
        ruleset(files), offline.exchange_from_mapping(raw, now), now=now
    )
    if result.outcome is None:
        return []
    return list(dict.fromkeys(c.rule for c in result.outcome.changes))


def added_request_headers(files: list[str], ex: offline.Exchange) -> dict:
    info = RequestInfo(
        ex.method, ex.host, ex.path, ex.query, ex.request_headers, ex.request_body
    )
    return engine.request_headers(ruleset(files).for_request(info))


@pytest.fixture(scope="module")
def case_proxy():
    proxy = CaseProxy().start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def stages(case_proxy, tmp_path_factory, mitmproxy_confdir):
    """One mitmdump per group of cases whose recipes do not meet (usually one)."""
    groups = proxy_groups(CASES, time.time())
    folder = tmp_path_factory.mktemp("case-rules")
    by_case, started = {}, []
    try:
        for n, (files, members) in enumerate(groups):
            rules_path = folder / f"group-{n + 1}.yaml"
            rules_path.write_text(combined_rules(files), encoding="utf-8")
            proc = UpstreamMitmdump(
                case_proxy.url,
                rules_path,
                workdir=tmp_path_factory.mktemp("mitmdump"),
                confdir=mitmproxy_confdir,
            )
            started.append(proc)
            proc.start()
            stage = Stage(files, rules_path, proc)
            by_case.update({case.id: stage for case in members})
        yield by_case
    finally:
        for proc in started:
            proc.stop()


@pytest.fixture(scope="module")
def runs(stages, case_proxy) -> dict[tuple[str, int], Run]:
    """Every exchange of every case, sent once through its mitmdump."""
    done = {}
    for case in CASES:
        stage = stages[case.id]
        for index, raw in enumerate(case.exchanges):
            now = time.time()
            ex = offline.exchange_from_mapping(raw, now)
            url = urlunsplit(("http", ex.host, ex.path, "", ""))
            case_proxy.respond(url, ex.status, ex.response_headers, ex.response_body)
            mark, seen = stage.mitmdump.mark(), len(case_proxy.seen)

            status, headers, body = send(stage.mitmdump.port, ex)

            for rule in rewriting_rules(stage.files, raw, now):
                try:
                    stage.mitmdump.wait_for_output(
                        f"rule '{re.escape(rule)}':", since=mark, timeout=3
                    )
                except AssertionError:
                    break  # the test of this exchange says what is missing
            log = stage.mitmdump.output()[mark:]
            upstream = case_proxy.seen[seen:]
            done[(case.id, index)] = Run(
                stage, ex, now, status, headers, body, upstream, log
            )
    return done


class TestCasesThroughMitmdump:
    @pytest.mark.parametrize(("case", "index"), PARAMS)
    def test_the_client_receives_what_the_case_expects(self, runs, case, index):
        run = runs[(case.id, index)]
        raw = case.exchanges[index]

        assert judge(run.result(), raw, run.now, case.path.name) == []

    @pytest.mark.parametrize(("case", "index"), PARAMS)
    def test_the_server_receives_the_request_as_sent(self, runs, case, index):
        run = runs[(case.id, index)]
        ex = run.exchange

        (seen,) = run.upstream
        assert (seen.method, seen.host, seen.path, seen.query) == (
            ex.method,
            ex.host,
            ex.path,
            ex.query,
        )
        assert seen.body == ex.request_body
        added = added_request_headers(run.stage.files, ex)
        for name, value in ex.request_headers.items():
            if name not in added:
                assert seen.header(name) == value
        for name, value in added.items():
            assert seen.header(name) == value

    @pytest.mark.parametrize(("case", "index"), PARAMS)
    def test_the_addon_logs_each_rule_that_rewrote(self, runs, case, index):
        run = runs[(case.id, index)]
        raw = case.exchanges[index]

        logged = [m["rule"] for m in REWRITE_LINE.finditer(run.log)]

        assert logged == rewriting_rules(run.stage.files, raw, run.now)
        assert bool(logged) == expects_change(raw)

    def test_github_is_asked_for_json(self, runs):
        run = runs[("github-form-answer", 0)]

        (seen,) = run.upstream
        assert "Accept" not in run.exchange.request_headers
        assert seen.header("Accept") == "application/json"

    def test_every_action_runs_in_mitmdump(self, runs):
        done = set()
        for run in runs.values():
            for line in REWRITE_LINE.finditer(run.log):
                done.update(OP.findall(line["done"]))
            if any(
                seen.header(name) != run.exchange.request_headers.get(name)
                for seen in run.upstream
                for name in added_request_headers(run.stage.files, run.exchange)
            ):
                done.add("request_header")

        assert sorted(done) == sorted(ACTIONS)

    def test_no_secret_reaches_mitmdumps_output(self, runs):
        secrets = set()
        for run in runs.values():
            secrets |= secret_values(run.exchange)
        logs = {
            run.stage.mitmdump.log_path: run.stage.mitmdump for run in runs.values()
        }

        for proc in logs.values():
            assert_no_secrets(proc.output(), secrets)

    @pytest.mark.parametrize("case", CASES, ids=lambda c: c.path.stem)
    def test_no_rule_from_another_recipe_reaches_the_case(self, stages, case):
        # several recipes share one mitmdump only where this holds
        files = stages[case.id].files

        assert touching_files(case, files, time.time()) <= set(case.recipes)


def tokenfix_command() -> list[str]:
    script = Path(sys.executable).with_name("tokenfix")
    return [str(script)] if script.exists() else [sys.executable, "-m", "addon.cli"]


class TestCasesThroughTokenfixTry:
    def test_try_reports_a_change_exactly_for_the_cases_that_change(self, stages):
        for stage in {id(s): s for s in stages.values()}.values():
            cases = [c for c in CASES if stages[c.id] is stage]
            done = subprocess.run(
                [*tokenfix_command(), "try", str(stage.rules_path)]
                + [str(c.path) for c in cases],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=REPO,
            )

            assert done.stderr == ""
            blocks = re.split(r"^== \d+ ", done.stdout, flags=re.MULTILINE)[1:]
            reported = [
                "   no change" not in block and "   left as is:" not in block
                for block in blocks
            ]
            assert reported == [
                expects_change(raw) for c in cases for raw in c.exchanges
            ]
            changed = sum(reported)
            assert done.stdout.endswith(
                f"{len(reported)} exchanges, {changed} would change\n"
            )
            assert done.returncode == 0

    def test_fail_on_change_passes_only_the_compliant_cases(self, stages):
        stage = stages["compliant-refresh"]
        compliant = [c for c in CASES if not any(map(expects_change, c.exchanges))]

        done = subprocess.run(
            [*tokenfix_command(), "try", "--fail-on-change", str(stage.rules_path)]
            + [str(c.path) for c in compliant],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )

        assert [c.id for c in compliant] == [
            "auth0-code-exchange-compliant",
            "compliant-refresh",
        ]
        assert done.returncode == 0, done.stdout
