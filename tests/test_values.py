import base64
from datetime import UTC, datetime

import pytest

from addon.values import (
    MISSING,
    epoch_of,
    finite,
    get_path,
    is_number,
    jwt_claims,
    jwt_header,
    jwt_seconds_left,
    parent_of,
    seconds_until,
)
from tests.jwtutil import jwt_expiring, make_jwt

NOW = 1_700_000_000.0


class TestGetPath:
    DOC = {"a": {"b": {"c": 1}}, "n": None, "list": [{"x": 1}], "s": "text"}

    @pytest.mark.parametrize(
        "path, expected",
        [
            (("a", "b", "c"), 1),
            (("a", "b"), {"c": 1}),
            (("n",), None),
            (("s",), "text"),
        ],
    )
    def test_found(self, path, expected):
        assert get_path(self.DOC, path) == expected

    @pytest.mark.parametrize(
        "path",
        [
            ("nope",),
            ("a", "nope"),
            ("a", "b", "c", "d"),  # through a number
            ("s", "x"),  # through a string
            ("n", "x"),  # through null
            ("list", "0"),  # paths never enter arrays
            ("list", "0", "x"),
        ],
    )
    def test_missing(self, path):
        assert get_path(self.DOC, path) is MISSING

    def test_null_is_not_missing(self):
        assert get_path({"a": None}, ("a",)) is None


class TestParentOf:
    def test_existing_parent(self):
        doc = {"a": {"b": 1}}
        assert parent_of(doc, ("a", "b"), create=False) is doc["a"]

    def test_top_level_parent_is_the_document(self):
        doc = {"a": 1}
        assert parent_of(doc, ("a",), create=False) is doc

    def test_missing_parent_without_create(self):
        doc = {"a": {}}
        assert parent_of(doc, ("a", "b", "c"), create=False) is None
        assert doc == {"a": {}}

    def test_missing_parents_are_created(self):
        doc = {"a": {}}
        parent = parent_of(doc, ("a", "b", "c", "d"), create=True)
        assert doc == {"a": {"b": {"c": {}}}}
        assert parent is doc["a"]["b"]["c"]

    @pytest.mark.parametrize("blocker", [None, 1, "x", [], [{}]])
    def test_non_object_parent_is_never_replaced(self, blocker):
        doc = {"a": blocker}
        assert parent_of(doc, ("a", "b"), create=True) is None
        assert doc == {"a": blocker}


class TestNumbers:
    @pytest.mark.parametrize("value", [0, -1, 1.5, 10**30, float("nan")])
    def test_is_number(self, value):
        assert is_number(value)

    @pytest.mark.parametrize("value", [True, False, "1", None, [1]])
    def test_is_not_number(self, value):
        assert not is_number(value)

    @pytest.mark.parametrize(
        "value, expected", [(3, 3.0), (2.5, 2.5), (-7, -7.0), (10**300, 1e300)]
    )
    def test_finite(self, value, expected):
        assert finite(value) == expected

    @pytest.mark.parametrize(
        "value",
        [float("nan"), float("inf"), float("-inf"), 10**400, True, "1", None],
    )
    def test_not_finite(self, value):
        assert finite(value) is None


class TestJwtClaims:
    def test_claims_of_an_unsigned_token(self):
        assert jwt_claims(make_jwt({"exp": 5, "sub": "u"})) == {"exp": 5, "sub": "u"}

    def test_signature_is_not_verified(self):
        token = make_jwt({"exp": 5}) + "bm90LWEtc2lnbmF0dXJl"
        assert jwt_claims(token) == {"exp": 5}

    def test_header(self):
        token = make_jwt({}, header={"alg": "RS256", "kid": "k1"})
        assert jwt_header(token) == {"alg": "RS256", "kid": "k1"}

    def test_padding_is_not_needed(self):
        # a payload whose base64 needs padding that the token leaves out
        token = make_jwt({"exp": 1})
        assert "=" not in token
        assert jwt_claims(token) == {"exp": 1}

    @pytest.mark.parametrize(
        "token",
        [
            None,
            42,
            "",
            "opaque-access-token",
            "a.b",
            "a.b.c.d.e",  # JWE compact form
            "e30.%%%%.",  # payload not base64
            make_jwt(b"not json"),
            make_jwt(b"[1,2]"),  # JSON, but not an object
            make_jwt(b"[" * 5000 + b"]" * 5000),
            make_jwt(b'{"exp": ' + b"1" * 5000 + b"}"),  # beyond int() digit limits
            "x." + base64.urlsafe_b64encode(b"\xff\xfe").decode() + ".",
        ],
    )
    def test_not_a_jwt(self, token):
        assert jwt_claims(token) is None

    def test_bad_header_gives_none(self):
        assert jwt_header("not-json.e30.") is None


class TestSecondsUntil:
    @pytest.mark.parametrize(
        "epoch, expected",
        [(NOW + 120, 120), (NOW + 120.9, 120), (NOW, 0), (NOW - 5, 0), (0, 0)],
    )
    def test_whole_seconds_never_negative(self, epoch, expected):
        assert seconds_until(epoch, NOW) == expected


class TestJwtSecondsLeft:
    @pytest.mark.parametrize(
        "exp, expected",
        [
            (NOW + 120, 120),
            (NOW + 86400, 86400),
            (NOW + 59.5, 59),
            (NOW - 1, 0),  # past: 0
            (1, 0),
        ],
    )
    def test_remaining_seconds(self, exp, expected):
        assert jwt_seconds_left(jwt_expiring(exp), NOW) == expected

    @pytest.mark.parametrize(
        "claims",
        [
            {"sub": "no exp"},
            {"exp": None},
            {"exp": "1700000120"},  # a string is not a NumericDate
            {"exp": True},
            {"exp": [NOW]},
        ],
    )
    def test_no_numeric_exp(self, claims):
        assert jwt_seconds_left(make_jwt(claims), NOW) is None

    @pytest.mark.parametrize(
        "payload", [b'{"exp": NaN}', b'{"exp": Infinity}', b'{"exp": 1e400}']
    )
    def test_non_finite_exp(self, payload):
        assert jwt_seconds_left(make_jwt(payload), NOW) is None

    def test_exp_too_large_for_a_float(self):
        # json.loads reads it as an int that no float can hold
        token = make_jwt(b'{"exp": ' + b"9" * 400 + b"}")
        assert jwt_seconds_left(token, NOW) is None

    def test_not_a_jwt(self):
        assert jwt_seconds_left("opaque", NOW) is None

    @pytest.mark.parametrize(
        "payload",
        [
            b'{"exp": 1e300}',
            # an exp sent in milliseconds would be a lifetime of 54,000 years
            b'{"exp": 1700000120000}',
            b'{"exp": 253402300800}',  # a second after the year 9999
        ],
    )
    def test_an_exp_no_client_can_use_gives_no_lifetime(self, payload):
        # the rule's fallback applies instead
        assert jwt_seconds_left(make_jwt(payload), NOW) is None

    def test_the_last_second_of_9999_is_still_a_time(self):
        token = make_jwt(b'{"exp": 253402300799}')
        assert jwt_seconds_left(token, NOW) == 253402300799 - NOW


class TestEpochOf:
    @pytest.mark.parametrize(
        "value, expected",
        [
            (1_700_021_600, 1_700_021_600.0),
            (1_700_021_600.5, 1_700_021_600.5),
            (1_700_021_600_000, 1_700_021_600.0),  # above 10^11: milliseconds
            ("1700021600", 1_700_021_600.0),
            (" 1700021600 ", 1_700_021_600.0),
            ("1700021600000", 1_700_021_600.0),
            ("1676372418560", 1_676_372_418.56),
            (10**11, 10**11),  # the threshold itself is still seconds
            (10**11 + 1, (10**11 + 1) / 1000),
            (0, 0.0),
        ],
    )
    def test_epoch_numbers(self, value, expected):
        assert epoch_of(value) == pytest.approx(expected)

    @pytest.mark.parametrize(
        "text, expected",
        [
            ("2023-11-14T22:13:20Z", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
            (
                "2023-11-14T22:13:20+00:00",
                datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
            ),
            (
                "2023-11-15T00:13:20+02:00",
                datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
            ),
            # no offset: UTC, whatever the machine's time zone
            ("2023-11-14T22:13:20", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
            (
                "2023-11-14 22:13:20.250",
                datetime(2023, 11, 14, 22, 13, 20, 250000, UTC),
            ),
        ],
    )
    def test_iso_8601(self, text, expected):
        assert epoch_of(text) == expected.timestamp()

    @pytest.mark.parametrize("value", [1e300, "1e300", 253402300800 * 1000 + 1000])
    def test_a_time_after_the_year_9999_is_none(self, value):
        assert epoch_of(value) is None

    @pytest.mark.parametrize(
        "value",
        [
            None,
            True,
            "soon",
            "",
            "NaN",
            "inf",
            "1e400",
            float("nan"),
            float("inf"),
            10**400,
            "2023-13-40T00:00:00Z",
            ["1700000000"],
            {"at": 1},
        ],
    )
    def test_unreadable(self, value):
        assert epoch_of(value) is None
