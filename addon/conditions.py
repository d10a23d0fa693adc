"""Globs and `when` conditions, compiled once when the rules are loaded."""

import fnmatch
import functools
import re
from collections.abc import Callable

from addon.values import MISSING, is_number

Test = Callable[[object], bool]

GLOB_CHARS = frozenset("*?[")
ORDER_OPS = {
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
}


def is_glob(pattern: str) -> bool:
    return not GLOB_CHARS.isdisjoint(pattern)


class Literals:
    """Globs with no wildcard: a set lookup answers what a regex would."""

    __slots__ = ("names",)

    def __init__(self, patterns: tuple[str, ...]) -> None:
        self.names = frozenset(p.lower() for p in patterns)

    def match(self, text: str) -> bool:
        return text.lower() in self.names


@functools.lru_cache(maxsize=4096)
def compile_globs(patterns: tuple[str, ...]) -> re.Pattern | Literals:
    """A case-insensitive matcher for shell-style globs; `*` crosses `.` and `/`.

    Its `match(text)` is true when some glob matches the whole text. Most
    rules name literal hosts and paths, and many share them: both cost a
    1000-rule file more compiling than everything else it asks.
    """
    if not any(is_glob(p) for p in patterns):
        return Literals(patterns)
    body = "|".join(fnmatch.translate(p) for p in patterns)
    return re.compile(body, re.IGNORECASE | re.DOTALL)


def strict_equal(a: object, b: object) -> bool:
    """JSON equality where booleans are not numbers (`true` is not `1`)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if is_number(a) and is_number(b):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(strict_equal, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(strict_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def missing(value: object) -> bool:
    return value is MISSING


def present(value: object) -> bool:
    return value is not MISSING


def is_null(value: object) -> bool:
    return value is None


def equals(expected: object) -> Test:
    return lambda value: value is not MISSING and strict_equal(value, expected)


def one_of(choices: list) -> Test:
    return lambda value: (
        value is not MISSING and any(strict_equal(value, c) for c in choices)
    )


def ordered(bounds: dict[str, float]) -> Test:
    """Numeric comparisons; strings and booleans never satisfy them."""
    checks = [(ORDER_OPS[op], bound) for op, bound in bounds.items()]
    return lambda value: is_number(value) and all(f(value, b) for f, b in checks)


def matches(regex: re.Pattern) -> Test:
    return lambda value: isinstance(value, str) and regex.fullmatch(value) is not None


def all_of(tests: list[Test]) -> Test:
    if len(tests) == 1:
        return tests[0]
    return lambda value: all(t(value) for t in tests)
