"""Real OAuth client libraries judge the case fixtures, raw and as tokenfix fixes them.

The judging itself lives in tests/judges.py; the README's client table is what
it measured, and `python -m tools.client_table --check README.md` must agree.
"""

import time

import pytest

from addon.offline import exchange_from_mapping
from tests import caseproxy
from tests.helpers import REPO
from tests.judges import (
    JUDGES,
    Loopback,
    Want,
    judge_case,
    load_cases,
    problems,
    want_of,
)
from tools import client_table

CASES = {case.name: case for case in load_cases()}


@pytest.fixture(scope="module")
def http():
    with Loopback() as loopback:
        yield loopback


def test_every_exchange_of_every_case_fixture_is_judged():
    fixtures = caseproxy.load_cases()
    exchanges = [
        fixture.id if n == 1 else f"{fixture.id}#{n}"
        for fixture in fixtures
        for n in range(1, len(fixture.exchanges) + 1)
    ]

    assert len(fixtures) == 20
    assert list(CASES) == exchanges


WANTS = [
    (
        "auth0-refresh-json-body",
        Want(expires_in=(178, 180), refresh_token="rt-lamp-Vb81LmZq"),
    ),
    (
        "auth0-code-exchange-compliant",
        Want(expires_in=(180, 180), refresh_token="rt-lamp-Vb81LmZq", untouched=True),
    ),
    (
        "home-server-three-faults",
        Want(expires_in=(7776000, 7776000), refresh_token="rt-porch-Jw3nB6"),
    ),
    (
        "cognito-refresh-keeps-refresh-token#2",
        Want(
            expires_in=(3600, 3600),
            refresh_token="rt-pantry-rotated-77",
            untouched=True,
        ),
    ),
    ("survey-null-lifetime", Want()),
    ("linkedin-token-type-missing", Want(expires_in=(5183999, 5183999))),
    ("github-form-answer", Want()),
    ("github-form-answer#2", Want(error="bad_verification_code")),
    (
        "compliant-refresh",
        Want(expires_in=(86400, 86400), refresh_token="rt-thermo-9QaZ", untouched=True),
    ),
    (
        "cortana-grant-type-in-query",
        Want(expires_in=(3600, 3600), refresh_token="rt-tvagent-Hh72"),
    ),
    ("iot-dead-refresh-token-500", Want(error="invalid_grant")),
    (
        "fitness-absolute-expiry",
        Want(expires_in=(21598, 21600), refresh_token="rt-run-0Lm4"),
    ),
]


@pytest.mark.parametrize("name, want", WANTS)
def test_wants_come_from_the_fixture(name, want):
    # expect.body, expect.fields or the response as it came; a refresh answer
    # without refresh_token leaves the client the one it presented
    assert CASES[name].want == want


REFRESH = {
    "url": "https://sso.example.org/token",
    "body": "grant_type=refresh_token&refresh_token=rt-1",
}


@pytest.mark.parametrize(
    "expect, message",
    [
        (
            {"fields": {"expires_in": {"gt": 60}}},
            "x.yaml, exchange 1: expect.fields.expires_in {'gt': 60}: the judges "
            "read a number, {equals: N} or {gte: N, lte: M}",
        ),
        (
            {"fields": {"refresh_token": {"matches": "rt-.*"}}},
            "x.yaml, exchange 1: the judges need refresh_token in expect.body",
        ),
        (
            {"body": {"access_token": "at-1", "expires_in": "60"}},
            "x.yaml, exchange 1: expires_in '60' is not a whole number",
        ),
        (
            {"status": 400, "unchanged": True},
            "x.yaml, exchange 1: an error answer without an `error` code",
        ),
    ],
)
def test_an_expectation_the_judges_cannot_read_is_refused(expect, message):
    raw = {
        "request": REFRESH,
        "response": {"body": '{"access_token":"at-1","expires_in":60}'},
        "expect": expect,
    }
    ex = exchange_from_mapping(raw, time.time())

    with pytest.raises(ValueError) as e:
        want_of(raw, ex, "x.yaml, exchange 1")

    assert str(e.value) == message


@pytest.mark.parametrize("judge", JUDGES, ids=lambda j: j.read.__name__)
@pytest.mark.parametrize("name", list(CASES))
def test_fixed_response_is_accepted(http, name, judge):
    # the right expiry, "Authorization: Bearer <access token>" at the API, the
    # refresh token the case wants kept, or the OAuth error the server meant
    case = CASES[name]
    trial = case.trial()

    reading = judge.read(case, trial.fixed, http)

    assert problems(case, trial, reading) == [], reading


@pytest.mark.parametrize("name", list(CASES))
def test_rules_change_only_faulty_responses(name):
    case = CASES[name]
    trial = case.trial(now=1_700_000_000)

    untouched = trial.fixed == trial.raw

    assert untouched == case.want.untouched


# raw responses the judges must find fault with: proof that they can say no
RAW_FAULTS = [
    ("auth0-refresh-json-body", "judge_authlib", "no expiry: never refreshes"),
    (
        "auth0-refresh-json-body",
        "judge_requests_oauthlib",
        "no expiry: never refreshes",
    ),
    ("home-server-three-faults", "judge_oauthlib", "unsupported token_type"),
    ("linkedin-token-type-missing", "judge_oauthlib_strict", "missing_token_type"),
    ("github-form-answer", "judge_authlib", "not JSON"),
    ("school-api-envelope", "judge_oauthlib", "missing_token"),
    ("iot-dead-refresh-token-500", "judge_authlib", "HTTP 500"),
]


@pytest.mark.parametrize("name, judge_name, words", RAW_FAULTS)
def test_raw_fault_is_seen(http, name, judge_name, words):
    judge = next(j for j in JUDGES if j.read.__name__ == judge_name)

    raw, fixed = judge_case(CASES[name], judge, http)

    assert any(words in p for p in raw), raw
    assert fixed == []


def test_readme_client_table_is_current(capsys):
    status = client_table.main(["--check", str(REPO / "README.md")])

    assert status == 0, capsys.readouterr().err


class TestClientTableCommand:
    BLOCK = f"{client_table.START}\n| measured |\n{client_table.END}\n"

    @pytest.fixture(autouse=True)
    def measured(self, monkeypatch):
        # the command's plumbing only: the real measurement is judged above
        monkeypatch.setattr(client_table, "measure", lambda cases_dir: self.BLOCK)

    def test_write_then_check(self, tmp_path, capsys):
        readme = tmp_path / "README.md"
        start, end = client_table.START, client_table.END
        readme.write_text(f"# x\n\nbefore\n\n{start}\nold\n{end}\n\nafter\n")

        assert client_table.main(["--check", str(readme)]) == 1
        err = capsys.readouterr().err
        assert "-old\n+| measured |\n" in err
        assert err.endswith(
            f"{readme}: the client table is stale; run "
            "`python -m tools.client_table --write README.md`\n"
        )
        assert client_table.main(["--write", str(readme)]) == 0
        assert client_table.main(["--check", str(readme)]) == 0
        assert readme.read_text() == f"# x\n\nbefore\n\n{self.BLOCK}\nafter\n"

    def test_without_a_file_prints_the_block(self, capsys):
        assert client_table.main([]) == 0
        assert capsys.readouterr().out == self.BLOCK

    def test_a_file_without_the_block_is_refused(self, tmp_path, capsys):
        readme = tmp_path / "README.md"
        readme.write_text("# no table here\n")

        assert client_table.main(["--write", str(readme)]) == 1
        assert capsys.readouterr().err == (
            f"{readme}: no <!-- client-table:start --> ... "
            "<!-- client-table:end --> block to replace\n"
        )
        assert readme.read_text() == "# no table here\n"
