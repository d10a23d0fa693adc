"""Real OAuth client libraries judge the shared cases, raw and as tokenfix fixes them.

The judging itself lives in tests/judges.py; the README's client table is what
it measured, and `python -m tools.client_table --check README.md` must agree.
"""

import os

import pytest

from tests.helpers import REPO
from tests.judges import (
    CASES_DIR,
    JUDGES,
    WANTS,
    Loopback,
    judge_case,
    load_cases,
    problems,
)
from tools import client_table


def _require_cases() -> None:
    if CASES_DIR.is_dir():
        return
    message = f"the shared cases are not at {CASES_DIR}: the client judges cannot run"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def cases():
    _require_cases()
    return {case.name: case for case in load_cases()}


@pytest.fixture(scope="module")
def http():
    with Loopback() as loopback:
        yield loopback


def test_every_shared_case_is_judged():
    _require_cases()
    shared = {path.stem for path in CASES_DIR.glob("*.yaml")}
    judged = {name.partition("#")[0] for name in WANTS}
    assert shared == judged


@pytest.mark.parametrize("judge", JUDGES, ids=lambda j: j.read.__name__)
@pytest.mark.parametrize("name", list(WANTS))
def test_fixed_response_is_accepted(cases, http, name, judge):
    # the right expiry, "Authorization: Bearer <access token>" at the API, the
    # refresh token the case wants kept, or the OAuth error the server meant
    case = cases[name]
    trial = case.trial()

    reading = judge.read(case, trial.fixed, http)

    assert problems(case, trial, reading) == [], reading


@pytest.mark.parametrize("name", list(WANTS))
def test_rules_change_only_faulty_responses(cases, name):
    case = cases[name]
    trial = case.trial(now=1_700_000_000)

    untouched = trial.fixed == trial.raw

    assert untouched == case.want.untouched


# raw responses the judges must find fault with: proof that they can say no
RAW_FAULTS = [
    ("01-auth0-refresh-json-body", "judge_authlib", "no expiry: never refreshes"),
    (
        "01-auth0-refresh-json-body",
        "judge_requests_oauthlib",
        "no expiry: never refreshes",
    ),
    ("04-oauth2orize-nonstandard", "judge_oauthlib", "unsupported token_type"),
    ("11-linkedin-no-token-type", "judge_oauthlib_strict", "missing_token_type"),
    ("13-github-form-body", "judge_authlib", "not JSON"),
    ("15-data-envelope", "judge_oauthlib", "missing_token"),
    ("18-server-error-for-bad-grant", "judge_authlib", "HTTP 500"),
]


@pytest.mark.parametrize("name, judge_name, words", RAW_FAULTS)
def test_raw_fault_is_seen(cases, http, name, judge_name, words):
    judge = next(j for j in JUDGES if j.read.__name__ == judge_name)

    raw, fixed = judge_case(cases[name], judge, http)

    assert any(words in p for p in raw), raw
    assert fixed == []


def test_readme_client_table_is_current(capsys):
    _require_cases()

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
