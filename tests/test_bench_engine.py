"""Micro-benchmarks of the rule engine and the addon's hooks (pytest-benchmark).

`make test` skips them (pyproject's addopts carry --benchmark-skip); `make bench`
runs them with --benchmark-only and puts their medians in bench/RESULTS.md.
Each one measures the work addon/addon.py's hooks do for one exchange
(bench/work.py): the request hook's index lookup, RequestInfo and rule choice,
then the response hook's bounded decoding and rewrite.
"""

from __future__ import annotations

import pytest

from addon.rules import load_rules, parse_rules
from bench.exchanges import TARGET_RULE, rules_yaml
from bench.work import (
    OTHER,
    TOKEN,
    UNCHANGED,
    exchange,
    hooks,
    make_flow,
    running_addon,
)


@pytest.fixture(scope="module")
def rulesets():
    return {n: parse_rules(rules_yaml(n), f"bench-{n}.yaml") for n in (1, 20, 1000)}


@pytest.mark.parametrize("count", [1, 20, 1000])
def test_token_exchange(benchmark, rulesets, count):
    """Decide and rewrite one refresh response: the goal is <= 25 µs at 20 rules."""
    outcome = benchmark(exchange, rulesets[count], TOKEN)
    assert outcome.matched == [TARGET_RULE]
    assert b'"expires_in":' in outcome.body


def test_other_exchange(benchmark, rulesets):
    """Decide one exchange no rule matches: the goal is <= 5 µs at 1000 rules."""
    assert benchmark(exchange, rulesets[1000], OTHER) is None


def test_token_exchange_unchanged(benchmark, rulesets):
    """A token request rules are chosen for, whose response none of them changes."""
    outcome = benchmark(exchange, rulesets[1000], UNCHANGED)
    assert outcome is not None and not outcome.changed and outcome.body is None


def test_load_rules(benchmark, tmp_path):
    """Load and validate a 1000-rule file: the goal is <= 200 ms."""
    path = tmp_path / "rules.yaml"
    path.write_text(rules_yaml(1000), encoding="utf-8")
    rules = benchmark.pedantic(
        load_rules, args=(path,), rounds=5, iterations=1, warmup_rounds=1
    )
    assert len(rules) == 1000


@pytest.mark.parametrize("kind", ["token", "other"])
def test_addon_hooks(benchmark, tmp_path, kind):
    """TokenFix.request then .response on one flow, with 20 rules, as in mitmdump.

    The addon's whole share of a proxied exchange: the engine's work plus the
    flow backup, the client profile check, the report (log record, comment,
    metadata) and the new body with its Content-Length.
    """
    x = TOKEN if kind == "token" else OTHER
    path = tmp_path / "rules.yaml"
    path.write_text(rules_yaml(20), encoding="utf-8")
    with running_addon(path) as addon:
        flow = benchmark.pedantic(
            hooks,
            setup=lambda: ((addon, make_flow(x)), {}),
            rounds=2000,
            iterations=1,
            warmup_rounds=100,
        )
    if kind == "token":
        assert b'"expires_in":' in flow.response.content
    else:
        assert flow.response.content == x.resp_body
