"""Counters: per rule matched/changed/skipped, and reloads."""

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from addon.throttle import shape


@dataclass
class RuleCounts:
    matched: int = 0
    changed: int = 0
    skipped: Counter = field(default_factory=Counter)


class Stats:
    def __init__(self) -> None:
        self.rules: defaultdict[str, RuleCounts] = defaultdict(RuleCounts)
        self.findings: Counter = Counter()
        self.reloads = 0
        self.failed_reloads = 0

    def count(self, outcome) -> None:
        """Add one exchange's Outcome."""
        changed = {change.rule for change in outcome.changes}
        for name in outcome.matched:
            counts = self.rules[name]
            counts.matched += 1
            counts.changed += name in changed
        for name, reason in outcome.skipped:
            self.rules[name].skipped[_reason_kind(reason)] += 1

    def skip_all(self, rules, reason: str) -> None:
        for rule in rules:
            self.rules[rule.name].skipped[reason] += 1

    def lines(self) -> list[str]:
        """A short human report, one line per rule and per finding."""
        out = []
        for name, counts in sorted(self.rules.items()):
            skipped = sum(counts.skipped.values())
            line = (
                f"rule {name!r}: matched {counts.matched}, changed {counts.changed}, "
                f"skipped {skipped}"
            )
            if counts.skipped:
                reasons = ", ".join(
                    f"{r}: {n}" for r, n in counts.skipped.most_common()
                )
                line += f" ({reasons})"
            out.append(line)
        for finding, n in self.findings.most_common():
            out.append(f"finding {finding}: {n}")
        out.append(f"reloads: {self.reloads}, failed reloads: {self.failed_reloads}")
        return out


def _reason_kind(reason: str) -> str:
    """Group reasons that differ only in detail ("status 500 not matched")."""
    if reason.startswith("body skipped: "):
        # names from the body ("duplicate key 'k1'") would make one kind each
        return shape(reason.split(" (", 1)[0], numbers=False)
    return reason
