from addon.engine import Change, Outcome
from addon.rules import parse_rules
from addon.stats import Stats

RULES = parse_rules(
    """\
rules:
  - name: add-expiry
    actions:
      - default: {expires_in: 3600}
  - name: fix-type
    actions:
      - set: {token_type: Bearer}
"""
).rules


def change(rule: str, field: str = "expires_in") -> Change:
    return Change(rule, "body", field, "default", None, 3600)


class TestCount:
    def test_matched_and_changed(self):
        stats = Stats()
        stats.count(
            Outcome(matched=["add-expiry", "fix-type"], changes=[change("add-expiry")])
        )
        stats.count(Outcome(matched=["add-expiry"]))
        add_expiry, fix_type = stats.rules["add-expiry"], stats.rules["fix-type"]
        assert (add_expiry.matched, add_expiry.changed) == (2, 1)
        assert (fix_type.matched, fix_type.changed) == (1, 0)

    def test_several_changes_of_one_rule_count_once(self):
        stats = Stats()
        changes = [change("add-expiry"), change("add-expiry", "token_type")]
        stats.count(Outcome(matched=["add-expiry"], changes=changes))
        assert stats.rules["add-expiry"].changed == 1

    def test_skip_reasons_are_grouped_by_kind(self):
        stats = Stats()
        for reason in (
            "body skipped: not JSON (JSONDecodeError)",
            "body skipped: not JSON (ValueError)",
            "when expires_in not met",
            "when expires_in not met",
        ):
            stats.count(Outcome(skipped=[("add-expiry", reason)]))
        assert dict(stats.rules["add-expiry"].skipped) == {
            "body skipped: not JSON": 2,
            "when expires_in not met": 2,
        }
        assert stats.rules["add-expiry"].matched == 0

    def test_skip_all(self):
        stats = Stats()
        stats.skip_all(RULES, "body skipped: streamed body")
        stats.skip_all(RULES[:1], "body skipped: streamed body")
        assert stats.rules["add-expiry"].skipped["body skipped: streamed body"] == 2
        assert stats.rules["fix-type"].skipped["body skipped: streamed body"] == 1


class TestLines:
    def test_empty(self):
        assert Stats().lines() == ["reloads: 0, failed reloads: 0"]

    def test_report(self):
        stats = Stats()
        stats.count(
            Outcome(
                matched=["fix-type"],
                changes=[change("fix-type", "token_type")],
                skipped=[("add-expiry", "when expires_in not met")],
            )
        )
        stats.skip_all(RULES[:1], "body skipped: empty body")
        stats.skip_all(RULES[:1], "body skipped: empty body")
        stats.findings["expires_in missing"] += 3
        stats.reloads = 2
        stats.failed_reloads = 1
        assert stats.lines() == [
            "rule 'add-expiry': matched 0, changed 0, skipped 3 "
            "(body skipped: empty body: 2, when expires_in not met: 1)",
            "rule 'fix-type': matched 1, changed 1, skipped 0",
            "finding expires_in missing: 3",
            "reloads: 2, failed reloads: 1",
        ]

    def test_rules_sorted_by_name(self):
        stats = Stats()
        stats.count(Outcome(matched=["zeta", "alpha"]))
        assert [line.split(":")[0] for line in stats.lines()[:2]] == [
            "rule 'alpha'",
            "rule 'zeta'",
        ]
