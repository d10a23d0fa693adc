"""The rewrite engine: every action and value source, on bodies as they arrive.

Rules are written as the YAML an operator would write (built from Python data
where that reads better), compiled by the real loader, and applied with a
fixed `now` so that lifetimes are exact.
"""

import base64
import json
import re
import time
from urllib.parse import urlencode, urlsplit

import pytest
import yaml

from addon.engine import Change, request_headers, rewrite
from addon.exchange import request_info
from addon.redact import REDACTED, secret_names
from addon.rules import RuleError, load_rules, parse_rules
from tests.helpers import REPO
from tests.jwtutil import jwt_expiring, make_jwt

NOW = 1_700_000_000

# the project's own fixture values: opaque tokens and client credentials
AT = "at-opaque-5d1e"
RT = "rt-presented-77aa"
RT_NEW = "rt-rotated-0b42"
CODE = "code-6c2f"
CLIENT_ID = "alexa-skill"
CLIENT_SECRET = "cs-7Hq2-very-secret"
BASIC = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
REFRESH = request_info(
    "POST",
    "auth.example.com",
    "/oauth/token",
    "",
    FORM,
    f"grant_type=refresh_token&refresh_token={RT}&client_id=cid-in-body".encode(),
)


def body_of(doc: dict) -> bytes:
    """A body as a compact server sends it, keys in the order given."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def compile_rules(*rules: dict) -> tuple:
    text = yaml.safe_dump({"rules": list(rules)}, sort_keys=False)
    return parse_rules(text, "test-rules.yaml").rules


def rule(*actions, name: str = "fix", when=None, match=None) -> dict:
    spec: dict = {"name": name}
    if match is not None:
        spec["match"] = match
    if when is not None:
        spec["when"] = when
    spec["actions"] = list(actions)
    return spec


def run(body, *actions, when=None, match=None, **kwargs):
    """Apply one rule with these actions; `body` is bytes or a dict."""
    return run_rules([rule(*actions, when=when, match=match)], body, **kwargs)


def run_rules(
    rules, body, *, status=200, headers=None, req=REFRESH, now=NOW, secrets=None
):
    raw = body if isinstance(body, bytes) else body_of(body)
    extra = {} if secrets is None else {"secrets": secrets}
    compiled = compile_rules(*rules)
    return rewrite(
        compiled,
        req,
        status,
        headers if headers is not None else {"Content-Type": "application/json"},
        raw,
        now=now,
        **extra,
    )


def records(outcome) -> list[dict]:
    return [change.as_dict() for change in outcome.changes]


def assert_unchanged(outcome) -> None:
    assert outcome.body is None
    assert outcome.changes == []
    assert outcome.status is None
    assert outcome.headers == {}


# ---------------------------------------------------------------- actions


class TestSet:
    def test_adds_a_missing_field_at_the_end(self):
        out = run({"access_token": AT}, {"set": {"token_type": "Bearer"}})
        assert out.body == body_of({"access_token": AT, "token_type": "Bearer"})
        assert records(out) == [
            {
                "rule": "fix",
                "target": "body",
                "field": "token_type",
                "op": "set",
                "old": None,
                "new": "Bearer",
            }
        ]

    def test_overwrites_in_place(self):
        out = run({"token_type": "bearer", "x": 1}, {"set": {"token_type": "Bearer"}})
        assert out.body == b'{"token_type":"Bearer","x":1}'
        assert (out.changes[0].old, out.changes[0].new) == ("bearer", "Bearer")

    def test_several_pairs_in_mapping_order(self):
        out = run({}, {"set": {"b": 2, "a": 1, "c": 3}})
        assert out.body == b'{"b":2,"a":1,"c":3}'
        assert [c.field for c in out.changes] == ["b", "a", "c"]

    @pytest.mark.parametrize(
        "value, written",
        [
            ({"k": [1, None, True]}, b'{"k":[1,null,true]}'),
            ([], b"[]"),
            (None, b"null"),
            (False, b"false"),
            (2.5, b"2.5"),
            ("Zoë", '"Zoë"'.encode()),
        ],
    )
    def test_json_literals(self, value, written):
        out = run({}, {"set": {"x": value}})
        assert out.body == b'{"x":' + written + b"}"

    @pytest.mark.parametrize(
        "doc, value",
        [
            ({"x": "Bearer"}, "Bearer"),
            ({"x": 3600}, 3600),
            ({"x": None}, None),
            ({"x": {"a": [1, "b"]}}, {"a": [1, "b"]}),
        ],
    )
    def test_equal_value_changes_nothing(self, doc, value):
        assert_unchanged(run(doc, {"set": {"x": value}}))

    @pytest.mark.parametrize(
        "doc, value",
        [
            ({"x": 1}, True),  # true is not 1
            ({"x": 0}, False),
            ({"x": "3600"}, 3600),
            ({"x": {"a": 1}}, {"a": True}),  # not even inside an object
            ({"x": [0]}, [False]),
        ],
    )
    def test_values_of_another_type_are_written(self, doc, value):
        out = run(doc, {"set": {"x": value}})
        assert out.body == body_of({"x": value})

    def test_a_literal_is_never_shared_between_exchanges(self):
        rules = compile_rules(
            rule({"set": {"meta": {"a": 1}}}, {"set": {"meta.b": 2}}),
        )
        bodies = [rewrite(rules, REFRESH, 200, {}, b"{}", now=NOW).body for _ in "12"]
        assert bodies == [b'{"meta":{"a":1,"b":2}}'] * 2
        assert rules[0].actions[0].items[0][2] == {"a": 1}

    def test_records_are_snapshots(self):
        out = run({}, {"set": {"meta": {"a": 1}}}, {"set": {"meta.b": 2}})
        assert [c.new for c in out.changes] == [{"a": 1}, 2]


class TestDefault:
    def test_missing(self):
        out = run({"access_token": AT}, {"default": {"expires_in": 3600}})
        assert out.body == body_of({"access_token": AT, "expires_in": 3600})
        assert out.changes[0].op == "default"

    def test_null_is_replaced_in_place(self):
        out = run({"expires_in": None, "x": 1}, {"default": {"expires_in": 3600}})
        assert out.body == b'{"expires_in":3600,"x":1}'
        assert records(out)[0]["old"] is None

    @pytest.mark.parametrize("value", ["", 0, False, [], {}, "soon", 0.0])
    def test_any_other_value_is_kept(self, value):
        assert_unchanged(run({"expires_in": value}, {"default": {"expires_in": 3600}}))

    def test_several_pairs(self):
        out = run(
            {"token_type": "bearer"},
            {"default": {"token_type": "Bearer", "expires_in": 60}},
        )
        assert out.body == b'{"token_type":"bearer","expires_in":60}'


class TestRemove:
    def test_list_of_fields(self):
        out = run({"a": 1, "b": 2, "c": 3}, {"remove": ["a", "c"]})
        assert out.body == b'{"b":2}'
        assert [(c.field, c.op, c.old, c.new) for c in out.changes] == [
            ("a", "remove", 1, None),
            ("c", "remove", 3, None),
        ]

    def test_single_field_name(self):
        assert run({"a": 1, "b": 2}, {"remove": "a"}).body == b'{"b":2}'

    def test_a_null_field_is_present(self):
        assert run({"a": None, "b": 2}, {"remove": ["a"]}).body == b'{"b":2}'

    def test_missing_field_does_nothing(self):
        assert_unchanged(run({"a": 1}, {"remove": ["b", "c.d"]}))

    def test_nested(self):
        out = run({"a": {"b": 1, "c": 2}}, {"remove": ["a.b"]})
        assert out.body == b'{"a":{"c":2}}'


class TestRename:
    def test_takes_the_place_of_the_old_name(self):
        out = run(
            {"a": 1, "expires": 3600, "z": 2}, {"rename": {"expires": "expires_in"}}
        )
        assert out.body == b'{"a":1,"expires_in":3600,"z":2}'
        assert records(out) == [
            {
                "rule": "fix",
                "target": "body",
                "field": "expires",
                "op": "rename",
                "old": None,
                "new": "expires_in",
            }
        ]

    def test_overwrites_the_target(self):
        doc = {"expires_in": "junk", "expires": 3600, "z": 2}
        out = run(doc, {"rename": {"expires": "expires_in"}})
        assert out.body == b'{"expires_in":3600,"z":2}'

    def test_missing_source_does_nothing_even_when_the_target_exists(self):
        assert_unchanged(run({"expires_in": 1}, {"rename": {"expires": "expires_in"}}))

    def test_several_pairs_in_order(self):
        out = run({"a": 1, "b": 2}, {"rename": {"a": "b", "b": "c"}})
        # a becomes b (overwriting it), then that b becomes c
        assert out.body == b'{"c":1}'

    def test_nested_within_its_object(self):
        out = run({"o": {"x": 1, "y": 2}}, {"rename": {"o.x": "o.w"}})
        assert out.body == b'{"o":{"w":1,"y":2}}'

    def test_to_another_object(self):
        out = run(
            {"data": {"token": AT}, "z": 1}, {"rename": {"data.token": "access_token"}}
        )
        assert out.body == body_of({"data": {}, "z": 1, "access_token": AT})

    def test_to_a_missing_parent_does_nothing(self):
        assert_unchanged(run({"a": 1}, {"rename": {"a": "nope.a"}}))

    @pytest.mark.parametrize("target", ["a", "a.b", "a.b.c"])
    def test_onto_or_into_itself_does_nothing(self, target):
        assert_unchanged(run({"a": {"b": {}}, "z": 1}, {"rename": {"a": target}}))

    def test_never_records_the_value(self):
        out = run({"tok": AT}, {"rename": {"tok": "access_token"}})
        assert AT not in repr(records(out))


class TestCoerce:
    @pytest.mark.parametrize(
        "kind, value, expected",
        [
            ("integer", 3600.0, 3600),
            ("integer", "3600", 3600),
            ("integer", " 3600\n", 3600),
            ("integer", "3600.0", 3600),
            ("integer", "3.6e3", 3600),
            ("integer", "-5", -5),
            ("integer", "0", 0),
            ("integer", 1e20, 10**20),
            ("number", "3600", 3600),
            ("number", "36.5", 36.5),
            ("number", 3600.0, 3600),
            ("number", "1E2", 100),
            ("number", "-0.25", -0.25),
            ("string", 3600, "3600"),
            ("string", 2.5, "2.5"),
            ("string", True, "true"),
            ("string", False, "false"),
            ("string", -1, "-1"),
            ("space_delimited", "repo,gist", "repo gist"),
            ("space_delimited", "openid, email  profile", "openid email profile"),
            ("space_delimited", ",openid,,\temail,", "openid email"),
            ("space_delimited", ["openid", "email"], "openid email"),
            ("space_delimited", ["openid email", " profile "], "openid email profile"),
            ("space_delimited", [], ""),
            ("space_delimited", "", ""),
        ],
    )
    def test_accepted(self, kind, value, expected):
        out = run({"x": value, "z": 1}, {"coerce": {"x": kind}})
        if json.dumps(value) == json.dumps(expected):
            assert_unchanged(out)
        else:
            assert out.body == body_of({"x": expected, "z": 1})
            assert [(c.op, c.old, c.new) for c in out.changes] == [
                (f"coerce {kind}", value, expected)
            ]
        assert out.warnings == []

    @pytest.mark.parametrize(
        "kind, value",
        [
            ("integer", 3600),
            ("number", 3600),
            ("number", 2.5),
            ("string", "3600"),
            ("space_delimited", "openid email"),
        ],
    )
    def test_already_that_type_changes_nothing(self, kind, value):
        out = run({"x": value}, {"coerce": {"x": kind}})
        assert_unchanged(out)
        assert out.warnings == []

    @pytest.mark.parametrize(
        "kind, value, shown",
        [
            ("integer", "soon", '"soon"'),
            ("integer", True, "true"),
            ("integer", False, "false"),
            ("integer", 3600.5, "3600.5"),
            ("integer", "3600.5", '"3600.5"'),
            ("integer", "", '""'),
            ("integer", "0x10", '"0x10"'),
            ("integer", "+5", '"+5"'),
            ("integer", "1,000", '"1,000"'),
            ("integer", "1e400", '"1e400"'),
            ("integer", "NaN", '"NaN"'),
            ("integer", "Infinity", '"Infinity"'),
            ("integer", "٣", '"٣"'),  # a digit, but not an ASCII one
            ("integer", None, "null"),
            ("integer", [1], "[1]"),
            ("integer", {"v": 1}, '{"v": 1}'),
            ("number", True, "true"),
            ("number", "soon", '"soon"'),
            ("number", "-1e999", '"-1e999"'),
            ("number", None, "null"),
            ("string", None, "null"),
            ("string", [1], "[1]"),
            ("string", {}, "{}"),
            ("space_delimited", 5, "5"),
            ("space_delimited", ["a", 1], '["a", 1]'),
            ("space_delimited", None, "null"),
        ],
    )
    def test_refused_with_a_warning(self, kind, value, shown):
        out = run({"x": value}, {"coerce": {"x": kind}})
        assert_unchanged(out)
        assert out.warnings == [f"rule 'fix': x: cannot coerce {shown} to {kind}"]
        # the same kind of warning, whatever the value: the log counts it once
        assert out.warnings[0].kind == f"fix\0x\0cannot coerce to {kind}"

    def test_too_many_digits_for_int(self):
        out = run({"x": "9" * 5000}, {"coerce": {"x": "integer"}})
        assert_unchanged(out)
        assert len(out.warnings) == 1
        assert out.warnings[0].startswith("rule 'fix': x: cannot coerce \"999")
        assert len(out.warnings[0]) < 200

    def test_a_refused_field_does_not_stop_the_others(self):
        out = run(
            {"expires_in": "soon", "ext_expires_in": "60"},
            {"coerce": {"expires_in": "integer", "ext_expires_in": "integer"}},
        )
        assert out.body == b'{"expires_in":"soon","ext_expires_in":60}'
        assert out.warnings == [
            "rule 'fix': expires_in: cannot coerce \"soon\" to integer"
        ]

    def test_missing_field_is_not_an_error(self):
        out = run({"a": 1}, {"coerce": {"expires_in": "integer"}})
        assert_unchanged(out)
        assert out.warnings == []

    def test_nested(self):
        out = run({"t": {"ttl": "60"}}, {"coerce": {"t.ttl": "integer"}})
        assert out.body == b'{"t":{"ttl":60}}'

    def test_warning_never_shows_a_secret(self):
        out = run(
            {"refresh_token": 12}, {"coerce": {"refresh_token": "space_delimited"}}
        )
        assert out.warnings == [
            "rule 'fix': refresh_token: cannot coerce <redacted> to space_delimited"
        ]


class TestUnwrap:
    ENVELOPE = {
        "status": 200,
        "message": "OK",
        "data": {"access_token": AT, "token_type": "Bearer", "expires_in": 3600},
    }

    def test_top_level_members_take_the_wrappers_place(self):
        out = run({**self.ENVELOPE, "trace": "t1"}, {"unwrap": "data"})
        assert out.body == body_of(
            {
                "status": 200,
                "message": "OK",
                "access_token": AT,
                "token_type": "Bearer",
                "expires_in": 3600,
                "trace": "t1",
            }
        )
        assert records(out) == [
            {
                "rule": "fix",
                "target": "body",
                "field": "data",
                "op": "unwrap",
                "old": None,
                "new": ["access_token", "expires_in", "token_type"],
            }
        ]

    def test_lifted_members_win(self):
        doc = {
            "status": 200,
            "expires_in": 1,
            "data": {"status": "ok", "expires_in": 60},
        }
        out = run(doc, {"unwrap": "data"})
        assert out.body == b'{"status":"ok","expires_in":60}'

    def test_nested_path_lifts_to_the_top_level(self):
        doc = {"result": {"data": {"access_token": AT}, "code": 0}, "expires_in": 5}
        out = run(doc, {"unwrap": "result.data"})
        assert out.body == body_of(
            {"result": {"code": 0}, "expires_in": 5, "access_token": AT}
        )

    def test_nested_lifted_members_win(self):
        doc = {"expires_in": 5, "r": {"d": {"expires_in": 60}}}
        out = run(doc, {"unwrap": "r.d"})
        assert out.body == b'{"r":{},"expires_in":60}'

    @pytest.mark.parametrize(
        "doc",
        [
            {"access_token": AT},
            {"data": None},
            {"data": "text"},
            {"data": [{"access_token": AT}]},
            {"data": 1},
            {"result": "x"},
        ],
    )
    def test_missing_or_not_an_object_does_nothing(self, doc):
        assert_unchanged(run(doc, {"unwrap": "data"}))
        assert_unchanged(run(doc, {"unwrap": "result.data"}))

    def test_then_later_actions_see_the_lifted_fields(self):
        out = run(self.ENVELOPE, {"unwrap": "data"}, {"remove": ["status", "message"]})
        assert out.body == body_of(self.ENVELOPE["data"])


class TestHeader:
    def test_set(self):
        out = run(
            {"a": 1},
            {"header": {"Content-Type": "application/json"}},
            headers={"Content-Type": "text/html; charset=UTF-8"},
        )
        assert out.headers == {"Content-Type": "application/json"}
        assert out.body is None
        assert records(out) == [
            {
                "rule": "fix",
                "target": "header",
                "field": "Content-Type",
                "op": "header",
                "old": "text/html; charset=UTF-8",
                "new": "application/json",
            }
        ]

    def test_null_removes(self):
        out = run({"a": 1}, {"header": {"X-Debug": None}}, headers={"x-debug": "on"})
        assert out.headers == {"X-Debug": None}
        assert (out.changes[0].old, out.changes[0].new) == ("on", None)

    def test_removing_an_absent_header_does_nothing(self):
        assert_unchanged(run({"a": 1}, {"header": {"X-Debug": None}}, headers={}))

    def test_same_value_in_another_case_of_name_does_nothing(self):
        out = run(
            {"a": 1},
            {"header": {"Content-Type": "application/json"}},
            headers={"content-type": "application/json"},
        )
        assert_unchanged(out)

    def test_new_header(self):
        out = run({"a": 1}, {"header": {"Cache-Control": "no-store"}}, headers={})
        assert out.headers == {"Cache-Control": "no-store"}

    def test_last_write_wins(self):
        out = run(
            {"a": 1}, {"header": {"X-A": "1"}}, {"header": {"x-a": "2"}}, headers={}
        )
        assert out.headers == {"x-a": "2"}
        assert [(c.old, c.new) for c in out.changes] == [(None, "1"), ("1", "2")]


class TestStatus:
    def test_set(self):
        out = run(
            {"error": "invalid_grant"},
            {"status": 400},
            match={"status": 500},
            status=500,
        )
        assert out.status == 400
        assert out.body is None
        assert records(out) == [
            {
                "rule": "fix",
                "target": "status",
                "field": "status",
                "op": "status",
                "old": 500,
                "new": 400,
            }
        ]

    def test_same_status_does_nothing(self):
        out = run({"error": "x"}, {"status": 400}, match={"status": 400}, status=400)
        assert_unchanged(out)

    def test_status_class_matching_sees_the_new_status(self):
        rules = [
            rule({"status": 400}, name="to-400", match={"status": "5xx"}),
            rule(
                {"set": {"seen": "4xx"}}, name="client-error", match={"status": "4xx"}
            ),
            rule(
                {"set": {"seen": "5xx"}}, name="server-error", match={"status": "5xx"}
            ),
            rule({"set": {"seen": "2xx"}}, name="success"),
        ]
        out = run_rules(rules, {"error": "invalid_grant"}, status=503)
        assert out.status == 400
        assert out.body == b'{"error":"invalid_grant","seen":"4xx"}'
        assert out.matched == ["to-400", "client-error"]
        assert out.skipped == [
            ("server-error", "status 400 not matched"),
            ("success", "status 400 not matched"),
        ]

    def test_status_defaults_to_2xx(self):
        out = run({"error": "invalid_grant"}, {"set": {"x": 1}}, status=400)
        assert_unchanged(out)
        assert out.skipped == [("fix", "status 400 not matched")]


class TestFormToJson:
    FORM_BODY = f"access_token={AT}&scope=repo%2Cgist&token_type=bearer".encode()

    def test_converts_and_sets_content_type(self):
        out = run(
            self.FORM_BODY,
            {"form_to_json": True},
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert out.body == body_of(
            {"access_token": AT, "scope": "repo,gist", "token_type": "bearer"}
        )
        assert out.headers == {"Content-Type": "application/json"}
        assert [(c.target, c.field, c.op, c.old, c.new) for c in out.changes] == [
            ("body", "body", "form_to_json", None, None),
            (
                "header",
                "Content-Type",
                "header",
                "application/x-www-form-urlencoded",
                "application/json",
            ),
        ]

    def test_values_are_strings_that_later_actions_can_fix(self):
        out = run(
            b"access_token=a1&expires_in=28800&scope=repo%2Cgist",
            {"form_to_json": True},
            {"coerce": {"expires_in": "integer", "scope": "space_delimited"}},
        )
        assert (
            out.body == b'{"access_token":"a1","expires_in":28800,"scope":"repo gist"}'
        )

    def test_when_is_evaluated_on_the_converted_form(self):
        out = run(
            self.FORM_BODY,
            {"form_to_json": True},
            when={"token_type": "bearer", "access_token": "present"},
        )
        assert out.matched == ["fix"]
        assert json.loads(out.body)["token_type"] == "bearer"

    def test_when_not_met_leaves_the_form(self):
        out = run(self.FORM_BODY, {"form_to_json": True}, when={"error": "present"})
        assert_unchanged(out)
        assert out.skipped == [("fix", "when error not met")]

    def test_a_later_rule_sees_json(self):
        rules = [
            rule({"form_to_json": True}, name="to-json"),
            rule(
                {"set": {"token_type": "Bearer"}},
                name="fix-type",
                when={"token_type": "bearer"},
            ),
        ]
        out = run_rules(rules, self.FORM_BODY)
        assert out.body == body_of(
            {"access_token": AT, "scope": "repo,gist", "token_type": "Bearer"}
        )
        assert out.matched == ["to-json", "fix-type"]

    def test_duplicate_form_keys_skip(self):
        out = run(b"access_token=a&access_token=b", {"form_to_json": True})
        assert_unchanged(out)
        assert out.skipped == [
            (
                "fix",
                "body skipped: not JSON (JSONDecodeError); form has a duplicate key",
            )
        ]

    @pytest.mark.parametrize("body", [b"", b"plain text", b"<html>a=b</html>"])
    def test_not_a_form_skips(self, body):
        out = run(body, {"form_to_json": True})
        assert_unchanged(out)
        assert out.skipped[0][1].startswith("body skipped: ")

    def test_a_json_object_is_left_to_the_other_actions(self):
        out = run(
            {"token_type": "bearer"},
            {"form_to_json": True},
            {"set": {"token_type": "Bearer"}},
        )
        assert out.body == b'{"token_type":"Bearer"}'
        assert out.headers == {}
        assert [c.op for c in out.changes] == ["set"]

    def test_a_json_object_alone_is_byte_for_byte(self):
        assert_unchanged(run(b'{ "a" : 1 }', {"form_to_json": True}))

    def test_without_form_to_json_a_form_is_skipped(self):
        out = run(self.FORM_BODY, {"set": {"token_type": "Bearer"}})
        assert_unchanged(out)
        assert out.skipped == [("fix", "body skipped: not JSON (JSONDecodeError)")]

    def test_only_as_the_first_action(self):
        with pytest.raises(RuleError, match="form_to_json must be the rule's first"):
            compile_rules(rule({"set": {"a": "1"}}, {"form_to_json": True}))

    def test_records_hold_no_form_values(self):
        out = run(self.FORM_BODY, {"form_to_json": True})
        assert AT not in repr(records(out))


class TestRequestHeaders:
    RULES = """\
rules:
  - name: ask-for-json
    match: {host: github.com, path: /login/oauth/access_token}
    actions:
      - form_to_json: true
      - request_header: {Accept: application/json, X-Legacy: null}
  - name: other-endpoint
    match: {host: github.com, path: /other}
    actions:
      - request_header: {Accept: text/plain}
  - name: pin-version
    match: {host: "*.com"}
    actions:
      - request_header: {Accept: application/vnd.v2+json}
      - set: {x: 1}
"""

    def headers_for(self, host: str, path: str, method: str = "POST") -> dict:
        ruleset = parse_rules(self.RULES)
        req = request_info(method, host, path, "", FORM, b"client_id=c&code=x")
        return request_headers(ruleset.for_request(req))

    def test_matching_rules_in_file_order(self):
        assert self.headers_for("github.com", "/login/oauth/access_token") == {
            "Accept": "application/vnd.v2+json",
            "X-Legacy": None,
        }

    def test_one_rule(self):
        assert self.headers_for("api.example.com", "/token") == {
            "Accept": "application/vnd.v2+json"
        }

    def test_request_side_conditions_must_hold(self):
        assert self.headers_for("github.com", "/x", method="GET") == {}
        assert self.headers_for("example.org", "/other") == {}

    def test_rules_without_request_headers(self):
        assert request_headers(compile_rules(rule({"set": {"x": 1}}))) == {}

    def test_no_effect_on_the_response(self):
        out = run({"a": 1}, {"request_header": {"Accept": "application/json"}})
        assert_unchanged(out)
        assert out.matched == ["fix"]


# ---------------------------------------------------------------- value sources


class TestFromJwtExp:
    SOURCE = {"from_jwt_exp": "access_token", "fallback": 3600}

    @pytest.mark.parametrize(
        "exp, expected",
        [
            (NOW + 120, 120),
            (NOW + 120.9, 120),
            (NOW + 86400, 86400),
            (NOW, 0),
            (NOW - 600, 0),
        ],
    )
    def test_remaining_seconds(self, exp, expected):
        doc = {"access_token": jwt_expiring(exp), "token_type": "Bearer"}
        out = run(doc, {"default": {"expires_in": self.SOURCE}})
        assert json.loads(out.body)["expires_in"] == expected

    def test_reads_the_named_field_not_another_token(self):
        doc = {
            "access_token": jwt_expiring(NOW + 120),
            "id_token": jwt_expiring(NOW + 36000),
        }
        out = run(doc, {"default": {"expires_in": self.SOURCE}})
        assert json.loads(out.body)["expires_in"] == 120

    @pytest.mark.parametrize(
        "doc",
        [
            {"access_token": AT},  # opaque
            {"access_token": make_jwt({"sub": "u"})},  # no exp
            {"access_token": make_jwt({"exp": "1700000120"})},  # exp not numeric
            {"access_token": make_jwt(b"not json")},
            {"access_token": None},
            {"access_token": 12345},
            {"token_type": "Bearer"},  # missing
        ],
    )
    def test_fallback(self, doc):
        out = run(doc, {"default": {"expires_in": self.SOURCE}})
        assert json.loads(out.body)["expires_in"] == 3600

    def test_no_value_and_no_fallback_skips_the_action(self):
        out = run(
            {"access_token": AT},
            {"default": {"expires_in": {"from_jwt_exp": "access_token"}}},
            {"default": {"token_type": "Bearer"}},
        )
        assert out.body == body_of({"access_token": AT, "token_type": "Bearer"})
        assert out.notes == [
            "rule 'fix': default expires_in: from_jwt_exp access_token gave no value "
            "and there is no fallback"
        ]

    def test_nested_path(self):
        doc = {"authed_user": {"access_token": jwt_expiring(NOW + 43200)}}
        out = run(
            doc,
            {
                "set": {
                    "authed_user.expires_in": {
                        "from_jwt_exp": "authed_user.access_token"
                    }
                }
            },
        )
        assert json.loads(out.body)["authed_user"]["expires_in"] == 43200

    def test_a_lifetime_is_not_secret(self):
        out = run(
            {"access_token": jwt_expiring(NOW + 120)},
            {"set": {"expires_in": self.SOURCE}},
        )
        assert records(out)[0]["new"] == 120

    def test_the_clock_by_default(self):
        doc = {"access_token": jwt_expiring(time.time() + 120)}
        out = run(doc, {"set": {"expires_in": self.SOURCE}}, now=None)
        assert json.loads(out.body)["expires_in"] in (119, 120)


class TestFromRequest:
    def value(self, name: str, req, fallback=...) -> object:
        source = {"from_request": name}
        if fallback is not ...:
            source["fallback"] = fallback
        out = run({"a": 1}, {"set": {"v": source}}, req=req)
        return json.loads(out.body)["v"] if out.body else None

    def req(self, body: bytes = b"", query: str = "", headers=None):
        return request_info(
            "POST", "auth.example.com", "/oauth/token", query, headers or FORM, body
        )

    def test_form_body(self):
        assert self.value("refresh_token", REFRESH) == RT

    def test_json_body(self):
        req = self.req(
            b'{"grant_type":"refresh_token","refresh_token":"rt-json","n":5}',
            headers={"Content-Type": "application/json"},
        )
        assert self.value("refresh_token", req) == "rt-json"
        assert self.value("n", req) == 5

    def test_body_before_query(self):
        req = self.req(b"scope=from-body", query="scope=from-query&extra=q")
        assert self.value("scope", req) == "from-body"
        assert self.value("extra", req) == "q"

    def test_query_when_no_body(self):
        assert self.value("grant_type", self.req(query="grant_type=refresh_token")) == (
            "refresh_token"
        )

    def test_client_id_from_basic(self):
        req = self.req(
            b"grant_type=refresh_token", headers={**FORM, "Authorization": BASIC}
        )
        assert self.value("client_id", req) == CLIENT_ID

    def test_client_id_from_basic_is_form_decoded(self):
        # RFC 6749 section 2.3.1: the id is form-encoded before base64
        basic = "Basic " + base64.b64encode(b"my%3Aclient+1:s%40cret").decode()
        req = self.req(b"", headers={"Authorization": basic})
        assert self.value("client_id", req) == "my:client 1"

    def test_client_id_in_the_body_wins_over_basic(self):
        req = self.req(b"client_id=from-body", headers={"Authorization": BASIC})
        assert self.value("client_id", req) == "from-body"

    def test_client_secret_is_not_taken_from_basic(self):
        req = self.req(b"", headers={"Authorization": BASIC})
        assert self.value("client_secret", req, fallback="none") == "none"

    @pytest.mark.parametrize(
        "req",
        [
            request_info("POST", "h", "/t", "", FORM, None),
            request_info("POST", "h", "/t", "", FORM, b"other=1"),
            request_info("POST", "h", "/t", "", {}, b'{"refresh_token":null}'),
        ],
    )
    def test_missing_or_null_uses_the_fallback(self, req):
        assert self.value("refresh_token", req, fallback="none") == "none"

    def test_missing_without_fallback_skips(self):
        out = run({"a": 1}, {"set": {"v": {"from_request": "nope"}}})
        assert_unchanged(out)
        assert len(out.notes) == 1

    def test_a_secret_parameter_is_redacted(self):
        out = run({"a": 1}, {"set": {"rt_copy": {"from_request": "refresh_token"}}})
        assert json.loads(out.body)["rt_copy"] == RT
        assert records(out)[0]["new"] == REDACTED


class TestFromField:
    def test_copy(self):
        out = run({"expires": 60}, {"set": {"expires_in": {"from_field": "expires"}}})
        assert out.body == b'{"expires":60,"expires_in":60}'

    def test_nested(self):
        out = run(
            {"data": {"ttl": 60}},
            {"default": {"expires_in": {"from_field": "data.ttl"}}},
        )
        assert json.loads(out.body)["expires_in"] == 60

    @pytest.mark.parametrize("doc", [{}, {"expires": None}, {"data": 5}])
    def test_missing_or_null_uses_the_fallback(self, doc):
        source = {"from_field": "expires", "fallback": 300}
        assert (
            json.loads(run(doc, {"set": {"expires_in": source}}).body)["expires_in"]
            == 300
        )

    def test_missing_without_fallback_skips(self):
        assert_unchanged(run({"a": 1}, {"set": {"b": {"from_field": "c"}}}))

    def test_the_copy_is_independent(self):
        out = run(
            {"src": {"a": 1, "b": 2}},
            {"set": {"dst": {"from_field": "src"}}},
            {"remove": ["src.a"]},
        )
        assert out.body == b'{"src":{"b":2},"dst":{"a":1,"b":2}}'

    def test_a_value_copied_from_a_secret_field_stays_secret(self):
        out = run(
            {"access_token": AT},
            {"set": {"token": {"from_field": "access_token"}}},
            {"coerce": {"token": "integer"}},
            {"set": {"token": "replaced"}},
        )
        assert json.loads(out.body)["token"] == "replaced"
        assert [(r["field"], r["old"], r["new"]) for r in records(out)] == [
            ("token", None, REDACTED),
            ("token", REDACTED, "replaced"),
        ]
        assert out.warnings == [
            "rule 'fix': token: cannot coerce <redacted> to integer"
        ]

    def test_a_copied_secret_stays_secret_in_later_rules(self):
        rules = [
            rule({"set": {"token": {"from_field": "access_token"}}}, name="copy"),
            rule({"remove": ["token"]}, name="drop"),
        ]
        out = run_rules(rules, {"access_token": AT})
        assert AT not in repr(records(out))
        assert records(out)[1]["old"] == REDACTED

    def test_a_copied_object_holding_secrets_is_redacted_inside(self):
        doc = {"authed_user": {"id": "U1", "access_token": "xoxp-user-token"}}
        out = run(
            doc,
            {"set": {"user": {"from_field": "authed_user"}}},
            {"remove": ["authed_user"]},
        )
        assert records(out)[0]["new"] == {"id": "U1", "access_token": REDACTED}
        assert records(out)[1]["old"] == {"id": "U1", "access_token": REDACTED}
        assert json.loads(out.body) == {
            "user": {"id": "U1", "access_token": "xoxp-user-token"}
        }


class TestFromTimestamp:
    SOURCE = {"from_timestamp": "expires_at", "fallback": 3600}

    @pytest.mark.parametrize(
        "expires_at, expected",
        [
            (NOW + 21600, 21600),
            (NOW + 21600.7, 21600),
            ((NOW + 21600) * 1000, 21600),  # milliseconds: above 10^11
            (str(NOW + 21600), 21600),
            (str((NOW + 21600) * 1000), 21600),
            ("2023-11-15T04:13:20Z", 21600),  # NOW is 2023-11-14T22:13:20Z
            ("2023-11-15T04:13:20+00:00", 21600),
            ("2023-11-15T06:13:20+02:00", 21600),
            ("2023-11-15T04:13:20", 21600),  # no offset: UTC
            (NOW - 5, 0),  # past
            ("2020-01-01T00:00:00Z", 0),
        ],
    )
    def test_seconds_until(self, expires_at, expected):
        doc = {"access_token": AT, "expires_at": expires_at}
        out = run(doc, {"default": {"expires_in": self.SOURCE}})
        assert out.body == body_of({**doc, "expires_in": expected})

    @pytest.mark.parametrize("expires_at", ["soon", None, True, "", [NOW], {"t": NOW}])
    def test_unreadable_uses_the_fallback(self, expires_at):
        doc = {"expires_at": expires_at}
        out = run(doc, {"default": {"expires_in": self.SOURCE}})
        assert json.loads(out.body)["expires_in"] == 3600

    def test_missing_without_fallback_skips(self):
        out = run(
            {"a": 1}, {"default": {"expires_in": {"from_timestamp": "expires_at"}}}
        )
        assert_unchanged(out)


# ---------------------------------------------------------------- paths


class TestDottedPaths:
    def test_set_creates_parents(self):
        out = run({"a": 1}, {"set": {"x.y.z": 1}})
        assert out.body == b'{"a":1,"x":{"y":{"z":1}}}'

    def test_default_creates_parents(self):
        out = run({"x": {}}, {"default": {"x.y.expires_in": 60}})
        assert out.body == b'{"x":{"y":{"expires_in":60}}}'

    @pytest.mark.parametrize("blocker", [None, "text", 5, ["a"]])
    def test_a_parent_that_is_not_an_object_is_not_replaced(self, blocker):
        out = run({"x": blocker}, {"set": {"x.y": 1}})
        assert_unchanged(out)
        assert out.warnings == [
            "rule 'fix': x.y: a parent of the field is not an object"
        ]

    @pytest.mark.parametrize(
        "action",
        [
            {"remove": ["x.y"]},
            {"rename": {"x.y": "z"}},
            {"coerce": {"x.y": "integer"}},
            {"unwrap": "x.y"},
        ],
    )
    def test_other_actions_do_nothing_when_a_parent_is_missing(self, action):
        out = run({"a": 1}, action)
        assert_unchanged(out)
        assert out.warnings == []

    def test_paths_never_enter_arrays(self):
        doc = {"list": [{"y": "1"}]}
        assert_unchanged(run(doc, {"remove": ["list.0"]}))
        assert_unchanged(run(doc, {"coerce": {"list.0.y": "integer"}}))
        out = run(doc, {"set": {"list.0": 1}})
        assert_unchanged(out)
        assert len(out.warnings) == 1

    def test_when_with_a_dotted_path(self):
        doc = {"authed_user": {"access_token": "xoxp-1"}}
        out = run(
            doc, {"set": {"ok": True}}, when={"authed_user.access_token": "present"}
        )
        assert out.matched == ["fix"]
        out = run(
            doc, {"set": {"ok": True}}, when={"authed_user.expires_in": "present"}
        )
        assert out.matched == []


# ---------------------------------------------------------------- rules together


class TestSeveralRules:
    def test_file_order_each_seeing_the_previous_result(self):
        rules = [
            rule({"set": {"expires_in": "3600"}}, name="first"),
            rule(
                {"coerce": {"expires_in": "integer"}},
                name="second",
                when={"expires_in": {"equals": "3600"}},
            ),
            rule({"set": {"seen": True}}, name="third", when={"expires_in": 3600}),
        ]
        out = run_rules(rules, {"access_token": AT})
        assert out.body == body_of(
            {"access_token": AT, "expires_in": 3600, "seen": True}
        )
        assert out.matched == ["first", "second", "third"]
        assert [(c.rule, c.op) for c in out.changes] == [
            ("first", "set"),
            ("second", "coerce integer"),
            ("third", "set"),
        ]

    def test_a_rule_can_undo_the_condition_of_the_next(self):
        rules = [
            rule({"remove": ["expires_in"]}, name="drop", when={"expires_in": 0}),
            rule(
                {"set": {"never": True}},
                name="needs-it",
                when={"expires_in": "present"},
            ),
        ]
        out = run_rules(rules, {"expires_in": 0})
        assert out.body == b"{}"
        assert out.skipped == [("needs-it", "when expires_in not met")]

    def test_when_all_conditions_must_hold(self):
        when = {"token_type": "bearer", "expires_in": {"gt": 0}}
        assert (
            run(
                {"token_type": "bearer", "expires_in": 0}, {"set": {"x": 1}}, when=when
            ).matched
            == []
        )
        assert run(
            {"token_type": "bearer", "expires_in": 5}, {"set": {"x": 1}}, when=when
        ).matched == ["fix"]


class TestRedaction:
    SECRETS = (AT, RT, RT_NEW, CLIENT_SECRET, CODE, "xoxp-user-token", "k-live-1")

    def assert_clean(self, out) -> None:
        shown = repr(
            (
                records(out),
                [c.describe() for c in out.changes],
                out.warnings,
                out.notes,
                out.skipped,
            )
        )
        for secret in self.SECRETS:
            assert secret not in shown

    @pytest.mark.parametrize(
        "field",
        [
            "access_token",
            "refresh_token",
            "id_token",
            "code",
            "code_verifier",
            "client_secret",
            "client_assertion",
            "assertion",
            "password",
            "device_code",
            "subject_token",
            "actor_token",
        ],
    )
    def test_every_secret_field(self, field):
        out = run({field: RT}, {"set": {field: RT_NEW}})
        assert json.loads(out.body)[field] == RT_NEW
        assert (out.changes[0].old, out.changes[0].new) == (REDACTED, REDACTED)
        self.assert_clean(out)

    def test_removed_and_defaulted_secrets(self):
        out = run(
            {"refresh_token": RT, "id_token": None},
            {"remove": ["refresh_token"]},
            {"default": {"refresh_token": {"from_request": "refresh_token"}}},
            {"default": {"id_token": AT}},
        )
        assert json.loads(out.body)["refresh_token"] == RT
        assert [(r["op"], r["old"], r["new"]) for r in records(out)] == [
            ("remove", REDACTED, None),
            ("default", None, REDACTED),
            ("default", None, REDACTED),
        ]
        self.assert_clean(out)

    def test_nested_secret_paths(self):
        out = run(
            {"authed_user": {"access_token": "xoxp-user-token"}},
            {"set": {"authed_user.access_token": "x"}},
        )
        assert records(out)[0]["old"] == REDACTED
        self.assert_clean(out)

    def test_extra_secret_fields(self):
        out = run(
            {"api_key": "k-live-1"},
            {"remove": ["api_key"]},
            secrets=secret_names(["api_key"]),
        )
        assert records(out)[0]["old"] == REDACTED
        self.assert_clean(out)

    def test_without_the_extra_name_it_is_shown(self):
        out = run({"api_key": "k-live-1"}, {"remove": ["api_key"]})
        assert records(out)[0]["old"] == "k-live-1"

    def test_secret_request_parameters_copied_anywhere(self):
        req = request_info(
            "POST",
            "h",
            "/t",
            "",
            FORM,
            f"client_secret={CLIENT_SECRET}&code={CODE}".encode(),
        )
        out = run(
            {},
            {
                "set": {
                    "a": {"from_request": "client_secret"},
                    "b": {"from_request": "code"},
                }
            },
            req=req,
        )
        assert json.loads(out.body) == {"a": CLIENT_SECRET, "b": CODE}
        self.assert_clean(out)

    def test_authorization_header(self):
        out = run(
            {"a": 1},
            {"header": {"Authorization": "Bearer new-value"}},
            headers={"Authorization": f"Bearer {AT}"},
        )
        assert out.headers == {"Authorization": "Bearer new-value"}
        assert (out.changes[0].old, out.changes[0].new) == (REDACTED, REDACTED)
        self.assert_clean(out)

    def test_unwrap_records_names_only(self):
        out = run(
            {"data": {"access_token": AT, "refresh_token": RT}}, {"unwrap": "data"}
        )
        assert records(out)[0]["new"] == ["access_token", "refresh_token"]
        self.assert_clean(out)

    def test_describe(self):
        out = run(
            {"token_type": "bearer", "access_token": AT},
            {"set": {"token_type": "Bearer", "access_token": RT}},
            {"remove": ["refresh_token", "token_type"]},
            {"rename": {"access_token": "token"}},
        )
        assert [c.describe() for c in out.changes] == [
            'set token_type="Bearer"',
            'set access_token="<redacted>"',
            "remove token_type",
            "rename access_token->token",
        ]

    def test_long_values_are_shortened_in_descriptions(self):
        change = Change("r", "body", "scope", "set", None, "s" * 100)
        assert change.describe() == 'set scope="' + "s" * 56 + "..."


class TestBytes:
    def test_no_rule_leaves_the_body(self):
        out = rewrite((), REFRESH, 200, {}, b'{"a":1}', now=NOW)
        assert_unchanged(out)
        assert (out.matched, out.skipped) == ([], [])

    @pytest.mark.parametrize(
        "action",
        [
            {"set": {"expires_in": 3600}},
            {"default": {"expires_in": 1}},
            {"coerce": {"expires_in": "integer"}},
            {"coerce": {"expires_in": "number"}},
            {"remove": ["nope"]},
            {"rename": {"nope": "x"}},
            {"unwrap": "nope"},
        ],
    )
    def test_actions_that_change_nothing_keep_every_byte(self, action):
        body = b'{ "expires_in": 3600,\n  "name": "Zo\\u00eb" }'
        out = run(body, action)
        assert_unchanged(out)
        assert out.matched == ["fix"]

    def test_header_and_status_changes_leave_the_body(self):
        out = run(b'{ "error" : "x" }', {"header": {"X-A": "1"}}, {"status": 400})
        assert (out.body, out.status, out.headers) == (None, 400, {"X-A": "1"})

    def test_rewritten_body_keeps_key_order_and_non_ascii(self):
        body = '{"z": "東京", "a": 1, "m": "Zoë \\u00e9", "f": 1.5}'.encode()
        out = run(body, {"set": {"b": 2}})
        assert out.body == '{"z":"東京","a":1,"m":"Zoë é","f":1.5,"b":2}'.encode()

    @pytest.mark.parametrize(
        "body, reason",
        [
            (b"", "empty body"),
            (b"<html>bad gateway</html>", "not JSON (JSONDecodeError)"),
            (b"[1]", "JSON is a top-level list, not an object"),
            (b'"token"', "JSON is a top-level str, not an object"),
            (b'{"a":1,"a":2}', "duplicate key 'a'"),
            (b'{"a":NaN}', "non-standard number NaN"),
            (b'{"a":1e999}', "number beyond float range"),
            (b'{"a":"\xff"}', "body is not UTF-8 text"),
            (b"[" * 50000 + b"]" * 50000, "JSON nested too deep"),
        ],
    )
    def test_bodies_that_are_skipped(self, body, reason):
        out = run_rules(
            [rule({"set": {"x": 1}}, name="a"), rule({"set": {"y": 1}}, name="b")], body
        )
        assert_unchanged(out)
        assert out.matched == []
        assert out.skipped == [
            ("a", f"body skipped: {reason}"),
            ("b", f"body skipped: {reason}"),
        ]


# ---------------------------------------------------------------- real-world cases

# The kinds of fault in tests/cases/ (real token endpoints' faults from public
# bug reports), each an exchange with a rule that fixes
# it, in the shape of rule examples. Bodies are given as `json` (sent compact,
# keys in the order written) or `form`. `<JWT exp=+N>` is an unsigned JWT that
# expires N seconds after NOW, `<EPOCH+N>` the number NOW + N. BASIC carries
# alexa-skill and CLIENT_SECRET.
SHARED_CASES = """\
- id: 01-auth0-refresh-json-body
  rules: &auth0
    - name: auth0-refresh-expires-in
      match: {host: "*.auth0.com", path: /oauth/token, grant_type: refresh_token}
      when: {expires_in: missing}
      actions:
        - default: {expires_in: {from_jwt_exp: access_token, fallback: 3600}}
  request:
    url: https://tenant-a.auth0.com/oauth/token
    json: {grant_type: refresh_token, client_id: alexa-skill,
           client_secret: cs-7Hq2-very-secret, refresh_token: rt-presented-77aa}
  response:
    json: {access_token: <JWT exp=+120>, id_token: <JWT exp=+36000>,
           token_type: Bearer}
  expect:
    json: {access_token: <JWT exp=+120>, id_token: <JWT exp=+36000>,
           token_type: Bearer, expires_in: 120}

- id: 01-auth0-refresh-opaque-token-gets-the-fallback
  rules: *auth0
  request:
    url: https://tenant-a.auth0.com/oauth/token
    json: {grant_type: refresh_token, refresh_token: rt-presented-77aa}
  response:
    json: {access_token: at-opaque-5d1e, token_type: Bearer}
  expect:
    json: {access_token: at-opaque-5d1e, token_type: Bearer, expires_in: 3600}

- id: 02-auth0-code-exchange-untouched
  rules: *auth0
  request:
    url: https://tenant-a.auth0.com/oauth/token
    headers: {Authorization: BASIC}
    form: {grant_type: authorization_code, code: code-6c2f,
           redirect_uri: "https://layla.amazon.com/api/skill/link/V1"}
  response:
    headers: {Content-Type: application/json, Cache-Control: no-store}
    json: {access_token: <JWT exp=+120>, refresh_token: rt-rotated-0b42,
           id_token: <JWT exp=+36000>, token_type: Bearer, expires_in: 120}
  expect: {unchanged: true}

- id: 03-alexa-form-refresh-basic
  rules:
    - name: alexa-refresh-expires-in
      match:
        host: "*.auth0.com"
        path: /oauth/token
        grant_type: refresh_token
        client_id: alexa-skill
        headers: {User-Agent: "Apache-HttpClient/*"}
      when: {expires_in: missing}
      actions:
        - default: {expires_in: {from_jwt_exp: access_token, fallback: 3600}}
  request:
    url: https://tenant-a.auth0.com/oauth/token
    headers:
      Content-Type: application/x-www-form-urlencoded;charset=UTF-8
      Authorization: BASIC
      User-Agent: Apache-HttpClient/4.5 (Java/1.8)
    form: {grant_type: refresh_token, refresh_token: rt-presented-77aa}
  response:
    json: {access_token: <JWT exp=+86400>, token_type: Bearer}
  expect:
    json: {access_token: <JWT exp=+86400>, token_type: Bearer, expires_in: 86400}

- id: 04-self-hosted-server-three-faults
  rules:
    - name: home-server-token-fixes
      match: {host: home.example.net, path: /auth/token, grant_type: refresh_token}
      actions:
        - set: {token_type: Bearer}
        - default:
            expires_in: 7776000
            refresh_token: {from_request: refresh_token}
  request:
    url: https://home.example.net/auth/token
    form: {grant_type: refresh_token, refresh_token: rt-presented-77aa,
           client_id: hub, client_secret: cs-7Hq2-very-secret}
  response:
    json: {access_token: at-opaque-5d1e, token_type: standard}
  expect:
    json: {access_token: at-opaque-5d1e, token_type: Bearer, expires_in: 7776000,
           refresh_token: rt-presented-77aa}

- id: 05-cognito-refresh-without-refresh-token
  rules: &cognito
    - name: cognito-keep-refresh-token
      match:
        host: "*.amazoncognito.com"
        path: /oauth2/token
        grant_type: refresh_token
      actions:
        - default: {refresh_token: {from_request: refresh_token}}
  request:
    url: https://pool-b.auth.eu-west-1.amazoncognito.com/oauth2/token
    headers: {Authorization: BASIC}
    form: {grant_type: refresh_token, refresh_token: rt-presented-77aa,
           client_id: alexa-skill}
  response:
    headers: {Content-Type: application/json;charset=UTF-8}
    json: {id_token: <JWT exp=+3600>, access_token: <JWT exp=+3600>,
           expires_in: 3600, token_type: Bearer}
  expect:
    json: {id_token: <JWT exp=+3600>, access_token: <JWT exp=+3600>,
           expires_in: 3600, token_type: Bearer, refresh_token: rt-presented-77aa}

- id: 05-cognito-rotated-refresh-token-kept
  rules: *cognito
  request:
    url: https://pool-b.auth.eu-west-1.amazoncognito.com/oauth2/token
    form: {grant_type: refresh_token, refresh_token: rt-presented-77aa}
  response:
    json: {access_token: at-opaque-5d1e, refresh_token: rt-rotated-0b42,
           expires_in: 3600}
  expect: {unchanged: true}

- id: 06-secure-token-string-lifetime
  rules:
    - name: expires-in-as-number
      match: {host: securetoken.googleapis.com, path: /v1/token}
      actions:
        - coerce: {expires_in: integer}
  request:
    url: https://securetoken.googleapis.com/v1/token?key=api-key-1
    form: {grant_type: refresh_token, refresh_token: rt-presented-77aa}
  response:
    headers: {Content-Type: application/json; charset=UTF-8}
    json: {access_token: at-opaque-5d1e, expires_in: "3600", token_type: Bearer,
           refresh_token: rt-rotated-0b42, id_token: <JWT exp=+3600>,
           user_id: u-1, project_id: "4711"}
  expect:
    json: {access_token: at-opaque-5d1e, expires_in: 3600, token_type: Bearer,
           refresh_token: rt-rotated-0b42, id_token: <JWT exp=+3600>,
           user_id: u-1, project_id: "4711"}

- id: 07-json-served-as-html
  rules:
    - name: json-served-as-html
      match: {host: api.example-home.io, path: /oauth/token}
      actions:
        - header: {Content-Type: application/json}
        - coerce: {expires_in: integer}
  request:
    url: https://api.example-home.io/oauth/token
    form: {grant_type: authorization_code, code: code-6c2f, client_id: hub,
           client_secret: cs-7Hq2-very-secret}
  response:
    headers: {Content-Type: text/html; charset=UTF-8}
    json: {token_type: Bearer, access_token: at-opaque-5d1e,
           refresh_token: rt-rotated-0b42, expires_in: "3600"}
  expect:
    headers: {Content-Type: application/json}
    json: {token_type: Bearer, access_token: at-opaque-5d1e,
           refresh_token: rt-rotated-0b42, expires_in: 3600}

- id: 08-null-lifetime-removed
  rules:
    - name: null-lifetime-means-none
      match: {host: api.survey.example.com, path: /oauth/token}
      when: {expires_in: null}
      actions:
        - remove: [expires_in]
  request:
    url: https://api.survey.example.com/oauth/token
    form: {grant_type: authorization_code, code: code-6c2f}
  response:
    json: {access_token: at-opaque-5d1e, token_type: bearer,
           access_url: "https://api.survey.example.com", expires_in: null}
  expect:
    json: {access_token: at-opaque-5d1e, token_type: bearer,
           access_url: "https://api.survey.example.com"}

- id: 08-null-lifetime-given-a-number
  rules:
    - name: null-lifetime-gets-a-number
      match: {host: api.survey.example.com, path: /oauth/token}
      actions:
        - default: {expires_in: 86400}
  request:
    url: https://api.survey.example.com/oauth/token
    form: {grant_type: authorization_code, code: code-6c2f}
  response:
    json: {access_token: at-opaque-5d1e, token_type: bearer, expires_in: null}
  expect:
    json: {access_token: at-opaque-5d1e, token_type: bearer, expires_in: 86400}

- id: 09-keycloak-zero-means-no-expiry
  rules:
    - name: zero-means-no-expiry
      match:
        host: sso.example.org
        path: "/realms/*/protocol/openid-connect/token"
      when: {refresh_expires_in: 0}
      actions:
        - remove: [refresh_expires_in]
  request:
    url: https://sso.example.org/realms/main/protocol/openid-connect/token
    form: {grant_type: refresh_token, refresh_token: rt-presented-77aa,
           client_id: cli, scope: openid offline_access}
  response:
    json: {access_token: <JWT exp=+300>, expires_in: 300, refresh_expires_in: 0,
           refresh_token: rt-rotated-0b42, token_type: Bearer,
           not-before-policy: 0, session_state: s-1, scope: openid offline_access}
  expect:
    json: {access_token: <JWT exp=+300>, expires_in: 300,
           refresh_token: rt-rotated-0b42, token_type: Bearer,
           not-before-policy: 0, session_state: s-1, scope: openid offline_access}

- id: 10-salesforce-session-timeout
  rules:
    - name: session-timeout-as-lifetime
      match: {host: login.salesforce.com, path: /services/oauth2/token}
      actions:
        - default: {expires_in: 7200}
  request:
    url: https://login.salesforce.com/services/oauth2/token
    form: {grant_type: refresh_token, refresh_token: rt-presented-77aa}
  response:
    headers: {Content-Type: application/json;charset=UTF-8}
    json: {access_token: at-opaque-5d1e, signature: sig-1,
           scope: refresh_token api, instance_url: "https://org.my.salesforce.com",
           token_type: Bearer, issued_at: "1699999000123"}
  expect:
    json: {access_token: at-opaque-5d1e, signature: sig-1,
           scope: refresh_token api, instance_url: "https://org.my.salesforce.com",
           token_type: Bearer, issued_at: "1699999000123", expires_in: 7200}

- id: 11-linkedin-token-type-missing
  rules:
    - name: token-type-required
      match: {host: www.linkedin.com, path: /oauth/v2/accessToken}
      actions:
        - default: {token_type: Bearer}
  request:
    url: https://www.linkedin.com/oauth/v2/accessToken
    form: {grant_type: authorization_code, code: code-6c2f}
  response:
    json: {access_token: at-opaque-5d1e, expires_in: 5184000}
  expect:
    json: {access_token: at-opaque-5d1e, expires_in: 5184000, token_type: Bearer}

- id: 12-lowercase-bearer-raised
  rules:
    - name: capital-bearer
      match: {host: idp.example.com}
      when: {token_type: {matches: "(?i)bearer"}}
      actions:
        - set: {token_type: Bearer}
  request:
    url: https://idp.example.com/oxauth/restv1/token
    headers: {Authorization: BASIC}
    form: {grant_type: authorization_code, code: code-6c2f}
  response:
    json: {access_token: at-opaque-5d1e, token_type: bearer, expires_in: 299,
           id_token: <JWT exp=+299>}
  expect:
    json: {access_token: at-opaque-5d1e, token_type: Bearer, expires_in: 299,
           id_token: <JWT exp=+299>}

- id: 12-bearer-lowered-the-other-way
  rules:
    - name: lowercase-bearer
      match: {host: idp.example.com}
      when: {token_type: Bearer}
      actions:
        - set: {token_type: bearer}
  request:
    url: https://idp.example.com/oxauth/restv1/token
    form: {grant_type: authorization_code, code: code-6c2f}
  response:
    json: {access_token: at-opaque-5d1e, token_type: Bearer, expires_in: 299}
  expect:
    json: {access_token: at-opaque-5d1e, token_type: bearer, expires_in: 299}

- id: 13-github-form-answer
  rules: &github
    - name: form-answer-to-json
      match: {host: github.com, path: /login/oauth/access_token}
      actions:
        - form_to_json: true
        - coerce: {scope: space_delimited}
    - name: error-sent-as-200
      match: {host: github.com, path: /login/oauth/access_token}
      when: {error: present}
      actions:
        - status: 400
  request: &github-request
    url: https://github.com/login/oauth/access_token
    form: {client_id: c1, client_secret: cs-7Hq2-very-secret, code: code-6c2f}
  response:
    headers: {Content-Type: application/x-www-form-urlencoded; charset=utf-8}
    form: {access_token: at-opaque-5d1e, scope: "repo,gist", token_type: bearer}
  expect:
    headers: {Content-Type: application/json}
    json: {access_token: at-opaque-5d1e, scope: repo gist, token_type: bearer}

- id: 13-github-error-with-200
  rules: *github
  request: *github-request
  response:
    headers: {Content-Type: application/json; charset=utf-8}
    json: {error: bad_verification_code,
           error_description: The code passed is incorrect or expired.,
           error_uri: "https://docs.example.com/oauth-errors"}
  expect: {status: 400, unchanged: true}

- id: 14-compliant-golden-with-shipped-rules
  rules_file: rules.yaml
  request: &golden-request
    url: https://smarthome.example.dev/token?grant_type=refresh_token
    form: {client_id: c1, client_secret: cs-7Hq2-very-secret,
           grant_type: refresh_token, refresh_token: rt-presented-77aa}
  response: &golden-response
    headers: {Content-Type: application/json; charset=utf-8}
    json: {token_type: bearer, access_token: at-opaque-5d1e, expires_in: 86400}
  expect: {unchanged: true}

- id: 14-compliant-golden-with-the-auth0-rule-on-any-host
  rules:
    - name: refresh-expires-in-anywhere
      match: {host: "*", grant_type: refresh_token}
      when: {expires_in: missing}
      actions:
        - default: {expires_in: {from_jwt_exp: access_token, fallback: 3600}}
  request: *golden-request
  response: *golden-response
  expect: {unchanged: true}

- id: 15-data-envelope
  rules:
    - name: unwrap-data
      match: {host: api.school.example.kr, path: /v1/oauth/token}
      when: {data.access_token: present}
      actions:
        - unwrap: data
        - remove: [status, message]
  request:
    url: https://api.school.example.kr/v1/oauth/token
    form: {grant_type: authorization_code, code: code-6c2f}
  response:
    json: {status: 200, message: OK,
           data: {access_token: at-opaque-5d1e, token_type: Bearer,
                  expires_in: 3600, refresh_token: rt-rotated-0b42}}
  expect:
    json: {access_token: at-opaque-5d1e, token_type: Bearer, expires_in: 3600,
           refresh_token: rt-rotated-0b42}

- id: 16-grant-type-in-the-query
  rules:
    - name: refresh-expires-in
      match: {host: auth.example.com, path: /oauth/token, grant_type: refresh_token}
      actions:
        - default: {expires_in: {from_jwt_exp: access_token, fallback: 3600}}
  request:
    url: "https://auth.example.com/oauth/token?redirect_uri=https%3A%2F%2Fwww.bing\\
      .com%2Fagents%2Foauth&grant_type=refresh_token"
    headers: {Authorization: BASIC}
    form: {refresh_token: rt-presented-77aa}
  response:
    json: {access_token: at-opaque-5d1e, token_type: Bearer,
           refresh_token: rt-rotated-0b42, scope: offline_access}
  expect:
    json: {access_token: at-opaque-5d1e, token_type: Bearer,
           refresh_token: rt-rotated-0b42, scope: offline_access, expires_in: 3600}

- id: 17-lwa-string-lifetime
  rules: &lwa
    - name: lwa-expires-in-number
      match: {host: api.amazon.com, path: /auth/o2/token}
      actions:
        - coerce: {expires_in: integer}
  request: &lwa-request
    url: https://api.amazon.com/auth/o2/token
    headers: {Content-Type: "application/x-www-form-urlencoded;charset=UTF-8"}
    form: {grant_type: authorization_code, code: code-6c2f, client_id: c1,
           code_verifier: v-1}
  response:
    json: {access_token: at-opaque-5d1e, expires_in: "3600",
           refresh_token: rt-rotated-0b42, token_type: bearer}
  expect:
    json: {access_token: at-opaque-5d1e, expires_in: 3600,
           refresh_token: rt-rotated-0b42, token_type: bearer}

- id: 17-lwa-number-already
  rules: *lwa
  request: *lwa-request
  response:
    json: {access_token: at-opaque-5d1e, expires_in: 3600,
           refresh_token: rt-rotated-0b42, token_type: bearer}
  expect: {unchanged: true}

- id: 18-dead-refresh-token-answered-with-500
  rules:
    - name: dead-refresh-token-is-400
      match: {host: api.example-iot.com, path: /oauth/access_token, status: 500}
      when: {error: invalid_grant}
      actions:
        - status: 400
  request:
    url: https://api.example-iot.com/oauth/access_token
    form: {grant_type: refresh_token, refresh_token: rt-presented-77aa}
  response:
    status: 500
    json: {error: invalid_grant, error_description: Refresh token expired}
  expect: {status: 400, unchanged: true}

- id: 19-absolute-expiry-only
  rules:
    - name: expires-in-from-expires-at
      match: {host: www.fitness.example.com, path: /oauth/token}
      when: {expires_in: missing}
      actions:
        - default: {expires_in: {from_timestamp: expires_at}}
  request:
    url: https://www.fitness.example.com/oauth/token
    form: {client_id: c1, client_secret: cs-7Hq2-very-secret,
           grant_type: refresh_token, refresh_token: rt-presented-77aa}
  response:
    json: {token_type: Bearer, access_token: at-opaque-5d1e,
           expires_at: <EPOCH+21600>, refresh_token: rt-rotated-0b42}
  expect:
    json: {token_type: Bearer, access_token: at-opaque-5d1e,
           expires_at: <EPOCH+21600>, refresh_token: rt-rotated-0b42,
           expires_in: 21600}
"""
JSON = {"Content-Type": "application/json"}
CASE_SECRETS = (AT, RT, RT_NEW, CLIENT_SECRET, CODE)


def expand(value: object) -> object:
    """Placeholders replaced, at any depth."""
    if isinstance(value, dict):
        return {k: expand(v) for k, v in value.items()}
    if isinstance(value, str):
        if m := re.fullmatch(r"<EPOCH\+(\d+)>", value):
            return NOW + int(m.group(1))
        if m := re.fullmatch(r"<JWT exp=\+(\d+)>", value):
            return jwt_expiring(NOW + int(m.group(1)))
        return BASIC if value == "BASIC" else value
    return value


def encoded(part: dict) -> tuple[dict, bytes]:
    """A request or response's headers and body bytes, as a server sends them."""
    if "form" in part:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        body = urlencode(expand(part["form"])).encode()
    else:
        headers, body = JSON, body_of(expand(part["json"]))
    return {**headers, **expand(part.get("headers", {}))}, body


def shared_cases() -> list:
    return [pytest.param(case, id=case["id"]) for case in yaml.safe_load(SHARED_CASES)]


def case_rules(case: dict):
    if "rules_file" in case:
        return load_rules(REPO / case["rules_file"])
    text = yaml.safe_dump({"rules": case["rules"]}, sort_keys=False)
    return parse_rules(text, f"{case['id']}.yaml")


def run_case(case: dict):
    """Match the request as the addon does, then rewrite the response."""
    url = urlsplit(case["request"]["url"])
    req_headers, req_body = encoded(case["request"])
    req = request_info("POST", url.hostname, url.path, url.query, req_headers, req_body)
    resp_headers, resp_body = encoded(case["response"])
    status = case["response"].get("status", 200)
    matched = case_rules(case).for_request(req)
    return rewrite(matched, req, status, resp_headers, resp_body, now=NOW)


class TestSharedCases:
    @pytest.mark.parametrize("case", shared_cases())
    def test_case(self, case):
        expect = case["expect"]
        out = run_case(case)

        if expect.get("unchanged"):
            assert out.body is None
        else:
            assert out.body == body_of(expand(expect["json"]))
        assert out.status == expect.get("status")
        assert out.headers == expect.get("headers", {})
        assert out.warnings == []
        shown = repr([change.as_dict() for change in out.changes])
        for secret in CASE_SECRETS:
            assert secret not in shown

    def test_every_shared_case_is_covered(self):
        numbers = {case.values[0]["id"][:2] for case in shared_cases()}
        assert numbers == {f"{n:02d}" for n in range(1, 20)}

    def test_the_shipped_rules_file_holds_the_auth0_rule(self):
        rules = load_rules(REPO / "rules.yaml").rules
        assert [r.name for r in rules] == ["auth0-refresh-expires-in"]
