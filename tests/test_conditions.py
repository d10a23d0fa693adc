"""Globs, strict JSON equality and the `when` condition forms."""

import re

import pytest

from addon import conditions as cond
from addon.rules import compile_condition
from addon.values import MISSING
from addon.yamlsrc import load


def glob(*patterns: str) -> re.Pattern:
    return cond.compile_globs(patterns)


def when(condition_yaml: str) -> cond.Test:
    """The test a rule's `when: {field: <condition_yaml>}` compiles to."""
    raw = load(f"field: {condition_yaml}\n")["field"]
    return compile_condition("field", raw, "rules.yaml", 1, "r", "when")


class TestIsGlob:
    @pytest.mark.parametrize(
        ("pattern", "expected"),
        [
            ("*.auth0.com", True),
            ("auth?.example.com", True),
            ("tenant[12].example.com", True),
            ("login.example.com", False),
            ("/oauth/token", False),
            ("", False),
        ],
    )
    def test_glob_characters(self, pattern, expected):
        assert cond.is_glob(pattern) is expected


class TestGlobs:
    @pytest.mark.parametrize(
        ("pattern", "text"),
        [
            ("*.auth0.com", "tenant.auth0.com"),
            ("*.auth0.com", "TENANT.Auth0.COM"),
            ("*.AUTH0.com", "tenant.auth0.com"),
            # `*` crosses dots and slashes, unlike a path glob in a shell
            ("*.auth0.com", "a.b.eu.auth0.com"),
            ("/oauth/*", "/oauth/v2/token"),
            ("*/token", "/tenant/x/oauth/token"),
            ("*", ""),
            ("*", "anything/at.all"),
            ("auth?.example.com", "auth1.example.com"),
            ("tenant[12].example.com", "tenant2.example.com"),
            ("tenant[!12].example.com", "tenant3.example.com"),
            ("tenant[a-c].example.com", "TENANTB.example.com"),
            ("/oauth/token", "/oauth/token"),
            ("/OAuth/Token", "/oauth/token"),
        ],
    )
    def test_matches(self, pattern, text):
        assert glob(pattern).match(text)

    @pytest.mark.parametrize(
        ("pattern", "text"),
        [
            ("*.auth0.com", "auth0.com"),
            ("*.auth0.com", "tenant.auth0.com.evil.net"),
            ("*.auth0.com", "tenant.auth0.community"),
            ("auth?.example.com", "auth.example.com"),
            ("auth?.example.com", "auth12.example.com"),
            ("tenant[12].example.com", "tenant3.example.com"),
            ("tenant[!12].example.com", "tenant1.example.com"),
            # whole-string: no prefix or suffix matches
            ("/oauth/token", "/oauth/token/extra"),
            ("/oauth/token", "/v1/oauth/token"),
            # `.` is literal, not a regex wildcard
            ("a.com", "abcom"),
        ],
    )
    def test_does_not_match(self, pattern, text):
        assert not glob(pattern).match(text)

    def test_a_newline_is_crossed_too(self):
        assert glob("a*b").match("a\nb")

    def test_several_globs_match_any(self):
        regex = glob("login.example.com", "*.auth0.com")
        assert regex.match("login.example.com")
        assert regex.match("t.auth0.com")
        assert not regex.match("example.com")

    def test_each_glob_of_several_is_whole_string(self):
        regex = glob("a", "b")
        assert not regex.match("ab")
        assert not regex.match("ba")


class TestStrictEqual:
    @pytest.mark.parametrize(
        ("a", "b"),
        [
            (1, 1),
            (1, 1.0),
            (0, -0.0),
            ("Bearer", "Bearer"),
            (None, None),
            (True, True),
            (False, False),
            ([1, "a", None], [1.0, "a", None]),
            ({"a": 1, "b": [2]}, {"b": [2.0], "a": 1}),
            ({"a": {"b": {"c": True}}}, {"a": {"b": {"c": True}}}),
            ([], []),
            ({}, {}),
        ],
    )
    def test_equal(self, a, b):
        assert cond.strict_equal(a, b)
        assert cond.strict_equal(b, a)

    @pytest.mark.parametrize(
        ("a", "b"),
        [
            (True, 1),
            (False, 0),
            (True, 1.0),
            (1, "1"),
            ("true", True),
            (None, 0),
            (None, ""),
            (None, False),
            ("", False),
            ("Bearer", "bearer"),
            ([1], [True]),
            ([1, 2], [2, 1]),
            ([1], [1, 1]),
            ({"a": 1}, {"a": True}),
            ({"a": 1}, {"a": 1, "b": 2}),
            ({"a": [0]}, {"a": [False]}),
            ([], {}),
            ("a", ["a"]),
        ],
    )
    def test_not_equal(self, a, b):
        assert not cond.strict_equal(a, b)
        assert not cond.strict_equal(b, a)

    def test_mapping_subclasses_compare_by_content(self):
        loaded = load("a: {b: [1]}\n")
        assert cond.strict_equal(loaded, {"a": {"b": [1]}})


class TestSimpleTests:
    def test_missing(self):
        assert cond.missing(MISSING)
        assert not cond.missing(None)
        assert not cond.missing(0)

    def test_present(self):
        assert cond.present(None)
        assert cond.present("")
        assert not cond.present(MISSING)

    def test_is_null(self):
        assert cond.is_null(None)
        assert not cond.is_null(MISSING)
        assert not cond.is_null(0)

    def test_all_of_needs_every_test(self):
        test = cond.all_of([cond.present, cond.equals(3)])
        assert test(3)
        assert not test(4)
        assert not test(MISSING)

    def test_all_of_one_test_is_that_test(self):
        assert cond.all_of([cond.present]) is cond.present


class TestWhenWords:
    @pytest.mark.parametrize(
        ("condition", "value", "expected"),
        [
            ("missing", MISSING, True),
            ("missing", None, False),
            ("missing", 0, False),
            ("present", MISSING, False),
            ("present", None, True),
            ("present", "", True),
            ("present", False, True),
            ("null", None, True),
            ("~", None, True),
            ("null", MISSING, False),
            ("null", 0, False),
            ("null", "", False),
            ("null", "null", False),
        ],
    )
    def test_missing_present_null(self, condition, value, expected):
        assert when(condition)(value) is expected


class TestWhenEquality:
    @pytest.mark.parametrize(
        ("condition", "value", "expected"),
        [
            ("Bearer", "Bearer", True),
            ("Bearer", "bearer", False),
            ("Bearer", MISSING, False),
            ("true", True, True),
            ("true", 1, False),
            ("true", "true", False),
            ("1", 1, True),
            ("1", 1.0, True),
            ("1", True, False),
            ("1", "1", False),
            ("'1'", "1", True),
            ("0", False, False),
            ("0", MISSING, False),
            ("[a, b]", ["a", "b"], True),
            ("[a, b]", ["b", "a"], False),
            ("{equals: {a: 1}}", {"a": 1}, True),
            ("{equals: {a: 1}}", {"a": True}, False),
            ("{equals: {a: {b: [1, 2]}}}", {"a": {"b": [1.0, 2]}}, True),
            ("{equals: null}", None, True),
            ("{equals: null}", MISSING, False),
            ("{equals: 3600}", 3600, True),
            ("{equals: 3600}", "3600", False),
            ("{equals: missing}", "missing", True),
            ("{equals: missing}", MISSING, False),
        ],
    )
    def test_equals(self, condition, value, expected):
        assert when(condition)(value) is expected

    @pytest.mark.parametrize(
        ("condition", "value", "expected"),
        [
            ("{in: [Bearer, bearer]}", "bearer", True),
            ("{in: [Bearer, bearer]}", "BEARER", False),
            ("{in: [0, null]}", None, True),
            ("{in: [0, null]}", 0.0, True),
            ("{in: [0, null]}", False, False),
            ("{in: [0, null]}", MISSING, False),
            ("{in: [true]}", 1, False),
            ("{in: [[1], {a: 2}]}", {"a": 2}, True),
            ("{in: ['3600']}", 3600, False),
        ],
    )
    def test_in(self, condition, value, expected):
        assert when(condition)(value) is expected


class TestWhenOrder:
    @pytest.mark.parametrize(
        ("condition", "value", "expected"),
        [
            ("{lt: 60}", 59, True),
            ("{lt: 60}", 59.9, True),
            ("{lt: 60}", 60, False),
            ("{lte: 60}", 60, True),
            ("{lte: 60}", 60.5, False),
            ("{gt: 0}", 1, True),
            ("{gt: 0}", 0, False),
            ("{gt: 0}", -1, False),
            ("{gte: 0}", 0.0, True),
            ("{gte: 0.5}", 0, False),
            ("{gt: 1, lt: 10}", 5, True),
            ("{gt: 1, lt: 10}", 10, False),
            ("{gt: 1, lt: 10}", 1, False),
            ("{gte: 1, lte: 1}", 1, True),
            ("{lt: 60, equals: 30}", 30, True),
            ("{lt: 60, equals: 30}", 31, False),
        ],
    )
    def test_numbers(self, condition, value, expected):
        assert when(condition)(value) is expected

    # bounds that the number 5 satisfies
    BOUNDS = ["{lt: 6}", "{lte: 5}", "{gt: 4}", "{gte: 5}", "{gte: 0, lte: 10}"]

    @pytest.mark.parametrize("condition", BOUNDS)
    def test_the_number_satisfies(self, condition):
        assert when(condition)(5) is True
        assert when(condition)(5.0) is True

    @pytest.mark.parametrize("condition", BOUNDS)
    @pytest.mark.parametrize("value", ["5", "", True, False, None, MISSING, [5], {}])
    def test_only_numbers_ever_satisfy(self, condition, value):
        assert when(condition)(value) is False

    def test_booleans_are_not_numbers(self):
        assert when("{lt: 2}")(True) is False
        assert when("{gte: 0}")(False) is False


class TestWhenMatches:
    @pytest.mark.parametrize(
        ("regex", "value", "expected"),
        [
            ("'[Bb]earer'", "Bearer", True),
            ("'[Bb]earer'", "bearer", True),
            # whole-string: a prefix or part is not enough
            ("'[Bb]earer'", "Bearer x", False),
            ("'[Bb]earer'", "xBearer", False),
            ("'ab|cd'", "abcd", False),
            ("'ab|cd'", "cd", True),
            ("'\\d+'", "3600", True),
            ("'\\d+'", "3600s", False),
            ("'(?i)bearer'", "BEARER", True),
            ("'.*'", "", True),
            # strings only
            ("'\\d+'", 3600, False),
            ("'.*'", None, False),
            ("'.*'", MISSING, False),
            ("'.*'", True, False),
            ("'.*'", ["a"], False),
        ],
    )
    def test_matches(self, regex, value, expected):
        assert when(f"{{matches: {regex}}}")(value) is expected
