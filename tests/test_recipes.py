"""The shipped rules and the recipes: each file checks out, each case fixture is
fixed by the recipes it names, and each recipe fixes its kind of fault at a
second provider too, not only the sample it was written from."""

import io
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from addon import offline
from addon.cli import check
from addon.rules import load_rules
from tests.caseproxy import (
    RULES_FILES,
    combined_rules,
    expects_change,
    judge,
    load_cases,
    load_other_providers,
    rule_documents,
    ruleset,
)
from tests.helpers import REPO

CASES = load_cases()
OTHERS = load_other_providers()
SUMMARY = re.compile(
    r"(?P<path>.+): (?P<rules>\d+) rules? valid; (?P<examples>\d+) examples?: "
    r"(?P=examples) passed, 0 failed"
)
AUTH0_REFRESH = "https://brightlamp.auth0.com/oauth/token"


def exchange_params(items, keep=lambda raw: True):
    return [
        pytest.param(item, i, id=f"{item.path.stem}-{i + 1}")
        for item in items
        for i, raw in enumerate(item.exchanges)
        if keep(raw)
    ]


def is_error_answer(raw: dict) -> bool:
    response = raw["response"]
    return response.get("status", 200) >= 400 or '"error"' in response.get("body")


def outcome(rules, raw: dict):
    now = time.time()
    result = offline.run(rules, offline.exchange_from_mapping(raw, now), now=now)
    return result, now


def relative(path: Path) -> str:
    return str(path.relative_to(REPO))


class TestTokenfixCheck:
    @pytest.mark.parametrize("path", RULES_FILES, ids=relative)
    def test_the_file_is_valid_and_its_examples_pass(self, path):
        out = io.StringIO()

        assert check(str(path), out=out) == 0, out.getvalue()

        rules = load_rules(path)
        summary = SUMMARY.fullmatch(out.getvalue().strip())
        assert summary, out.getvalue()
        assert int(summary["rules"]) == len(rules)
        assert int(summary["examples"]) == sum(len(r.examples) for r in rules.rules)

    @pytest.mark.parametrize("path", RULES_FILES, ids=relative)
    def test_every_rule_documents_itself_with_an_example(self, path):
        rules = load_rules(path)

        assert [r.name for r in rules.rules if not r.examples] == []

    def test_the_console_script_checks_rules_yaml_by_default(self):
        script = Path(sys.executable).with_name("tokenfix")
        command = (
            [str(script)] if script.exists() else [sys.executable, "-m", "addon.cli"]
        )

        done = subprocess.run(
            [*command, "check"], cwd=REPO, capture_output=True, text=True, timeout=60
        )

        assert (done.returncode, done.stderr) == (0, "")
        examples = sum(len(r.examples) for r in load_rules(REPO / "rules.yaml").rules)
        assert done.stdout == (
            f"rules.yaml: 1 rule valid; {examples} examples: "
            f"{examples} passed, 0 failed\n"
        )


class TestCaseFixtures:
    def test_every_reported_case_has_one_fixture(self):
        numbers = [case.number for case in CASES if case.number <= "19"]

        assert numbers == [f"{n:02d}" for n in range(1, 20)]

    def test_ids_are_unique_and_name_their_files(self):
        assert [case.path.name for case in CASES] == [
            f"{case.number}-{case.id}.yaml" for case in CASES
        ]

    @pytest.mark.parametrize("case", CASES, ids=lambda c: c.path.stem)
    def test_a_case_names_existing_rules_files_and_expects_something(self, case):
        assert case.recipes
        assert all((REPO / name).is_file() for name in case.recipes)
        assert case.kind
        assert all(raw.get("expect") for raw in case.exchanges)

    def test_every_recipe_file_has_its_own_rule_names(self):
        # one mitmdump loads many of them together
        combined = yaml.safe_load(combined_rules(relative(p) for p in RULES_FILES))

        assert len(combined["rules"]) == sum(
            len(rule_documents(p)) for p in RULES_FILES
        )


class TestCasesFixedByTheirRecipes:
    @pytest.mark.parametrize(("case", "index"), exchange_params(CASES))
    def test_the_client_receives_what_the_case_expects(self, case, index):
        raw = case.exchanges[index]

        result, now = outcome(ruleset(case.recipes), raw)

        assert judge(result, raw, now, case.path.name) == []
        assert result.changed == expects_change(raw)

    @pytest.mark.parametrize(("case", "index"), exchange_params(CASES))
    def test_every_recipe_loaded_at_once_still_gives_the_expected_answer(
        self, case, index
    ):
        raw = case.exchanges[index]
        everything = ruleset(relative(p) for p in RULES_FILES)

        result, now = outcome(everything, raw)

        assert judge(result, raw, now, case.path.name) == []


def error_exchange(status: int, content_type: str, body: str) -> dict:
    return {
        "request": {
            "url": AUTH0_REFRESH,
            "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            "body": "grant_type=refresh_token&refresh_token=rt-lamp-dead&client_id=x",
        },
        "response": {
            "status": status,
            "headers": {"Content-Type": content_type},
            "body": body,
        },
    }


INVALID_GRANT = (
    '{"error":"invalid_grant","error_description":"Unknown or invalid refresh token."}'
)
ERRORS = [
    pytest.param(400, "application/json", INVALID_GRANT, id="400-invalid-grant"),
    pytest.param(401, "application/json", '{"error":"invalid_client"}', id="401"),
    pytest.param(403, "application/json", '{"error":"access_denied"}', id="403"),
    pytest.param(429, "application/json", '{"error":"too_many_requests"}', id="429"),
    pytest.param(500, "text/html", "<h1>Internal Server Error</h1>", id="500-html"),
    pytest.param(
        503, "application/json", '{"error":"temporarily_unavailable"}', id="503"
    ),
    pytest.param(
        200,
        "application/json",
        '{"error":"invalid_grant"}',
        id="200-error-body",
    ),
]


class TestShippedRules:
    RULES = load_rules(REPO / "rules.yaml")

    @pytest.mark.parametrize(
        ("case", "index"),
        exchange_params(c for c in CASES if c.number in ("02", "14")),
    )
    def test_compliant_answers_pass_byte_for_byte(self, case, index):
        raw = case.exchanges[index]

        result, now = outcome(self.RULES, raw)

        ex = result.exchange
        assert not result.changed
        assert (result.status, result.headers, result.body) == (
            ex.status,
            ex.response_headers,
            ex.response_body,
        )

    @pytest.mark.parametrize(("case", "index"), exchange_params(CASES))
    def test_only_the_auth0_cases_change(self, case, index):
        raw = case.exchanges[index]

        result, _ = outcome(self.RULES, raw)

        auth0 = case.recipes == ("rules.yaml",)
        assert result.changed == (auth0 and expects_change(raw))

    @pytest.mark.parametrize(("status", "content_type", "body"), ERRORS)
    def test_an_error_answer_passes_untouched(self, status, content_type, body):
        result, _ = outcome(self.RULES, error_exchange(status, content_type, body))

        assert not result.changed
        assert (result.status, result.body) == (status, body.encode())

    @pytest.mark.parametrize(
        ("case", "index"), exchange_params(CASES, keep=is_error_answer)
    )
    def test_the_error_answers_of_the_cases_pass_untouched(self, case, index):
        result, _ = outcome(self.RULES, case.exchanges[index])

        assert not result.changed


class TestKindNotSample:
    def test_every_rules_file_is_tried_at_another_provider(self):
        assert sorted(o.recipe for o in OTHERS) == sorted(
            relative(p) for p in RULES_FILES
        )

    @pytest.mark.parametrize("other", OTHERS, ids=lambda o: o.path.stem)
    def test_the_copy_differs_from_the_recipe_only_in_host_and_path(self, other):
        copy = yaml.safe_load(combined_rules([other.recipe], other.adapt))["rules"]
        originals = {r["name"]: r for r in rule_documents(REPO / other.recipe)}

        assert [r["name"] for r in copy] == list(other.adapt)
        for rule in copy:
            original = dict(originals[rule["name"]])
            original.pop("examples", None)
            assert set(other.adapt[rule["name"]]) <= {"host", "path"}
            assert {**original, "match": None} == {**rule, "match": None}
            kept = {k: v for k, v in rule["match"].items() if k not in ("host", "path")}
            assert kept == {
                k: v for k, v in original["match"].items() if k not in ("host", "path")
            }

    @pytest.mark.parametrize(("other", "index"), exchange_params(OTHERS))
    def test_the_recipe_as_shipped_does_not_reach_the_other_provider(
        self, other, index
    ):
        result, _ = outcome(load_rules(REPO / other.recipe), other.exchanges[index])

        assert result.matched == ()

    @pytest.mark.parametrize(("other", "index"), exchange_params(OTHERS))
    def test_the_adapted_copy_fixes_the_other_provider(self, other, index):
        raw = other.exchanges[index]

        result, now = outcome(ruleset([other.recipe], other.adapt), raw)

        assert judge(result, raw, now, other.path.name) == []
        assert result.changed == expects_change(raw)
