"""addon.expect: the `expect` part of example exchanges, key by key."""

import pytest

from addon import expect, offline
from addon.offline import Exchange, Result
from addon.rules import RuleError
from addon.yamlsrc import load

NOW = 1_700_000_000.25
RECEIVED = b'{"access_token":"at-secret-1","token_type":"bearer","expires_in":"60"}'
SENT = (
    b'{"access_token":"at-secret-1","token_type":"Bearer","expires_in":60,'
    b'"scope":"a b","user":{"id":7,"name":"kim"}}'
)


def result(
    body: bytes = SENT,
    *,
    original: bytes = RECEIVED,
    status: int = 200,
    headers: dict | None = None,
) -> Result:
    exchange = Exchange("POST", "https://id.example/token", {}, b"", 200, {}, original)
    return Result(
        exchange=exchange,
        grant_type=None,
        matched=(),
        outcome=None,
        skipped_reason=None,
        body=body,
        original_body=original,
        status=status,
        headers={"Content-Type": "application/json"} if headers is None else headers,
    )


def check(wanted, res: Result | None = None) -> list:
    if isinstance(wanted, str):
        wanted = load(wanted)
    return expect.check(res or result(), wanted, "rules.yaml", 5, "r", NOW)


class TestShape:
    def test_no_expectation_holds(self):
        assert check(None) == []

    def test_an_expectation_must_be_a_mapping(self):
        assert check(["status"]) == [
            "rules.yaml:5: expect: expected a mapping, got a list"
        ]

    def test_an_unknown_key_is_named_with_its_line(self):
        assert check("status: 200\nstatsu: 400\n") == [
            "rules.yaml:2: expect: unknown key 'statsu' (expected one of: "
            "status, headers, unchanged, body, fields)"
        ]

    @pytest.mark.parametrize("key", ["headers", "fields"])
    def test_headers_and_fields_must_be_mappings(self, key):
        assert check(f"status: 200\n{key}: [a, b]\n") == [
            f"rules.yaml:2: expect.{key}: expected a mapping, got a list"
        ]


class TestStatus:
    def test_the_final_status_holds(self):
        assert check({"status": 400}, result(status=400)) == []

    def test_another_status_fails(self):
        assert check({"status": 400}, result(status=500)) == [
            "status: expected 400, got 500"
        ]


class TestHeaders:
    HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store"}

    def test_values_hold_whatever_the_names_case(self):
        wanted = {"headers": {"content-type": "application/json"}}

        assert check(wanted, result(headers=self.HEADERS)) == []

    def test_null_means_absent(self):
        wanted = {"headers": {"X-Gone": None}}

        assert check(wanted, result(headers=self.HEADERS)) == []

    @pytest.mark.parametrize(
        ("wanted", "message"),
        [
            (
                {"Content-Type": "text/html"},
                "header Content-Type: expected 'text/html', got 'application/json'",
            ),
            (
                {"Cache-Control": None},
                "header Cache-Control: expected None, got 'no-store'",
            ),
            ({"Pragma": "no-cache"}, "header Pragma: expected 'no-cache', got None"),
        ],
    )
    def test_a_different_value_fails(self, wanted, message):
        assert check({"headers": wanted}, result(headers=self.HEADERS)) == [message]


class TestUnchanged:
    def test_the_body_as_received_holds(self):
        assert check({"unchanged": True}, result(RECEIVED)) == []

    def test_a_status_change_leaves_the_body_unchanged(self):
        res = result(RECEIVED, status=400)

        assert check({"unchanged": True, "status": 400}, res) == []

    def test_a_rewritten_body_fails(self):
        assert check({"unchanged": True}) == [
            "body: expected byte for byte as received, but it changed"
        ]

    def test_the_same_json_with_other_bytes_is_a_change(self):
        res = result(RECEIVED.replace(b",", b", "))

        assert check({"unchanged": True}, res) == [
            "body: expected byte for byte as received, but it changed"
        ]


class TestBody:
    WHOLE = (
        "body: {access_token: at-secret-1, token_type: Bearer, expires_in: 60,"
        " scope: a b, user: {id: 7, name: kim}}"
    )

    def test_the_whole_body_in_its_order_holds(self):
        assert check(self.WHOLE) == []

    @pytest.mark.parametrize(
        "wrong",
        [
            pytest.param(
                "body: {token_type: Bearer, access_token: at-secret-1, expires_in: 60,"
                " scope: a b, user: {id: 7, name: kim}}",
                id="top-level-order",
            ),
            pytest.param(
                "body: {access_token: at-secret-1, token_type: Bearer, expires_in: 60,"
                " scope: a b, user: {name: kim, id: 7}}",
                id="nested-order",
            ),
            pytest.param(
                "body: {access_token: at-secret-1, token_type: Bearer,"
                ' expires_in: "60", scope: a b, user: {id: 7, name: kim}}',
                id="string-for-number",
            ),
            pytest.param(
                "body: {access_token: at-secret-1, token_type: Bearer, expires_in: 60,"
                " scope: a b}",
                id="member-missing",
            ),
        ],
    )
    def test_any_difference_fails(self, wrong):
        assert len(check(wrong)) == 1

    def test_a_boolean_is_not_a_number(self):
        res = result(b'{"ok":true}')

        assert check({"body": {"ok": 1}}, res) == [
            "body: expected {'ok': 1}, got {'ok': True}"
        ]

    def test_the_failure_shows_no_secret(self):
        failures = check({"body": {"access_token": "at-secret-2"}})

        assert failures == [
            "body: expected {'access_token': '<redacted>'}, got {'access_token': "
            "'<redacted>', 'token_type': 'Bearer', 'expires_in': 60, 'scope': 'a b', "
            "'user': {'id': 7, 'name': 'kim'}}"
        ]

    def test_secrets_in_lists_are_redacted_too(self):
        res = result(b'{"tokens":[{"refresh_token":"rt-secret-3"}]}')

        (failure,) = check({"body": {}}, res)

        assert "rt-secret-3" not in failure
        assert failure.endswith("got {'tokens': [{'refresh_token': '<redacted>'}]}")

    def test_placeholders_stand_for_the_same_values_as_the_exchange(self):
        token = offline.expand("<JWT exp=+60>", NOW)
        res = result(f'{{"access_token":"{token}","at":"{int(NOW) - 9}"}}'.encode())

        assert (
            check('body: {access_token: "<JWT exp=+60>", at: "<EPOCH-9>"}', res) == []
        )
        assert check('body: {access_token: "<JWT exp=+61>", at: "<EPOCH-9>"}', res) == [
            "body: expected {'access_token': '<redacted>', 'at': '1699999991'}, "
            "got {'access_token': '<redacted>', 'at': '1699999991'}"
        ]

    def test_a_body_that_is_no_json_object_fails(self):
        res = result(b"access_token=at-secret-1")

        assert check({"body": {}}, res) == [
            "body: expected a JSON object, got one that is not (not JSON "
            "(JSONDecodeError))"
        ]


class TestFields:
    @pytest.mark.parametrize(
        "condition",
        [
            "expires_in: 60",
            "expires_in: {equals: 60}",
            "expires_in: {gte: 59, lte: 61}",
            "token_type: {in: [Bearer, bearer]}",
            "token_type: {matches: '[Bb]earer'}",
            "refresh_token: missing",
            "access_token: present",
            "user.id: 7",
            "user.email: missing",
        ],
    )
    def test_a_condition_that_holds(self, condition):
        assert check(f"fields:\n  {condition}\n") == []

    @pytest.mark.parametrize(
        ("condition", "message"),
        [
            ("expires_in: '60'", "expires_in: expected '60', got 60"),
            ("expires_in: {lt: 60}", "expires_in: expected {'lt': 60}, got 60"),
            ("scope: null", "scope: expected None, got 'a b'"),
            ("scope: missing", "scope: expected 'missing', got 'a b'"),
            ("id_token: present", "id_token: expected 'present', got missing"),
            ("user.id: {in: [1, 2]}", "user.id: expected {'in': [1, 2]}, got 7"),
            (
                "access_token: at-secret-2",
                "access_token: expected 'at-secret-2', got <redacted>",
            ),
        ],
    )
    def test_a_condition_that_fails_says_what_it_found(self, condition, message):
        assert check(f"fields:\n  {condition}\n") == [message]

    def test_a_failing_placeholder_is_shown_as_written(self):
        assert check("fields:\n  expires_in: '<EPOCH+60>'\n") == [
            "expires_in: expected '<EPOCH+60>', got 60"
        ]

    def test_a_broken_condition_is_a_rule_error_at_its_line(self):
        with pytest.raises(RuleError) as e:
            check("status: 200\nfields:\n  expires_in: {gt: soon}\n")

        assert str(e.value) == (
            "rules.yaml:3: rule 'r': expect.fields.expires_in.gt: "
            "expected a finite number, got string 'soon'"
        )
