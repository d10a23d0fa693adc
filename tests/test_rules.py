"""The rules file: every broken file gets its exact message; valid files compile."""

import pytest

from addon.rules import (
    ACTIONS,
    Action,
    Condition,
    Match,
    Rule,
    RuleError,
    Source,
    load_rules,
    parse_rules,
)
from addon.ruleset import RuleSet
from addon.values import MISSING

ACT = "actions: [{set: {a: 1}}]"
ALL_ACTIONS = (
    "set, default, remove, rename, coerce, unwrap, header, request_header, status,"
    " form_to_json"
)
SOURCES = "from_jwt_exp, from_request, from_field, from_timestamp"
CONDITIONS = "equals, in, lt, lte, gt, gte, matches"
MATCH_KEYS = "host, path, method, grant_type, status, client_id, headers"
STATUS = "expected a status code from 100 to 599, a class such as '2xx', or a list"
TWO_XX = frozenset(range(200, 300))


def rule(*lines: str, name: str = "fix") -> str:
    """A file with one rule: `rules:` on line 1, `- name:` on 2, `lines` from 3."""
    body = "".join(f"    {line}\n" for line in lines)
    return f"rules:\n  - name: {name}\n{body}"


def error(text: str) -> str:
    with pytest.raises(RuleError) as info:
        parse_rules(text, "rules.yaml")
    return str(info.value)


def compiled(*lines: str) -> Rule:
    (only,) = parse_rules(rule(*lines), "rules.yaml").rules
    return only


def table(*rows):
    """pytest params from (id, text, message) rows."""
    return [pytest.param(text, message, id=id_) for id_, text, message in rows]


class TestRuleErrorText:
    def test_spec_form(self):
        # the form the issue gives, word for word (with today's list of actions)
        text = (
            "rules:\n"
            "  # the lifetime Auth0 gives access tokens\n"
            "  - name: fixed-lifetime\n"
            "    match:\n"
            "      host: '*.auth0.com'\n"
            "      grant_type: refresh_token\n"
            "    actions:\n"
            "      - sett: {expires_in: 86400}\n"
        )
        assert error(text) == (
            "rules.yaml:8: rule 'fixed-lifetime': unknown action 'sett'"
            f" (expected one of: {ALL_ACTIONS})"
        )

    def test_attributes(self):
        with pytest.raises(RuleError) as info:
            parse_rules(rule("match: {status: 99}", ACT), "x/rules.yaml")
        e = info.value
        assert (e.file, e.line, e.rule, e.field) == (
            "x/rules.yaml",
            3,
            "fix",
            "match.status",
        )
        assert e.message == f"{STATUS}, got number 99"
        assert isinstance(e, ValueError)

    @pytest.mark.parametrize(
        ("args", "text"),
        [
            (("f", 3, "r", "when.a", "m"), "f:3: rule 'r': when.a: m"),
            (("f", 3, "r", None, "m"), "f:3: rule 'r': m"),
            (("f", 3, None, None, "m"), "f:3: m"),
            (("f", 0, None, None, "m"), "f: m"),
            (("f", 0, None, "rules", "m"), "f: rules: m"),
        ],
    )
    def test_parts_left_out_when_unknown(self, args, text):
        assert str(RuleError(*args)) == text

    def test_default_file_name(self):
        with pytest.raises(RuleError, match=r"^<rules>:1: "):
            parse_rules("rules: 1\n")

    def test_all_actions_listed(self):
        assert ", ".join(ACTIONS) == ALL_ACTIONS


class TestTopLevel:
    @pytest.mark.parametrize(
        ("text", "message"),
        table(
            (
                "list",
                "- name: x\n  actions: []\n",
                "rules.yaml:1: expected a mapping with a 'rules' list, got a list",
            ),
            (
                "list after comments",
                "# rules\n\n- name: x\n",
                "rules.yaml:3: expected a mapping with a 'rules' list, got a list",
            ),
            (
                "scalar",
                "rules\n",
                "rules.yaml:1: expected a mapping with a 'rules' list,"
                " got string 'rules'",
            ),
            (
                "empty",
                "",
                "rules.yaml:1: expected a mapping with a 'rules' list,"
                " got an empty file",
            ),
            (
                "comments only",
                "# nothing yet\n",
                "rules.yaml:1: expected a mapping with a 'rules' list,"
                " got an empty file",
            ),
            (
                "empty mapping",
                "{}\n",
                "rules.yaml:1: expected a mapping with a 'rules' list,"
                " got an empty mapping",
            ),
            (
                "extra key",
                "rules: []\nversion: 2\n",
                "rules.yaml:2: unknown top-level key 'version' (expected: rules)",
            ),
            (
                "typo",
                "rule:\n  - name: x\n",
                "rules.yaml:1: unknown top-level key 'rule' (expected: rules)",
            ),
            (
                "rules a mapping",
                "rules:\n  name: x\n",
                "rules.yaml:1: rules: expected a list of rules, got a mapping",
            ),
            (
                "rules a string",
                "rules: none\n",
                "rules.yaml:1: rules: expected a list of rules, got string 'none'",
            ),
            (
                "rule a string",
                "rules:\n  - fix\n",
                "rules.yaml:2: rules[0]: expected a mapping, got string 'fix'",
            ),
            (
                "second rule a list",
                f"rules:\n  - name: a\n    {ACT}\n  - [b]\n",
                "rules.yaml:4: rules[1]: expected a mapping, got a list",
            ),
        ),
    )
    def test_broken(self, text, message):
        assert error(text) == message

    @pytest.mark.parametrize("text", ["rules: []\n", "rules:\n", "rules: ~\n"])
    def test_no_rules_is_valid(self, text):
        rules = parse_rules(text, "rules.yaml")
        assert isinstance(rules, RuleSet)
        assert rules.rules == ()
        assert rules.path == "rules.yaml"


class TestRuleKeys:
    @pytest.mark.parametrize(
        ("text", "message"),
        table(
            (
                "unknown key",
                rule("action: [{set: {a: 1}}]"),
                "rules.yaml:3: rule 'fix': unknown key 'action'"
                " (expected one of: name, description, match, when, actions,"
                " examples)",
            ),
            (
                "missing name",
                f"rules:\n  - name: ok\n    {ACT}\n  - match: {{host: a.com}}\n"
                f"    {ACT}\n",
                "rules.yaml:4: rule '#2': name: missing (expected a non-empty string)",
            ),
            (
                "empty name",
                rule(ACT, name="''"),
                "rules.yaml:2: rule '#1': name: expected a non-empty string,"
                " got string ''",
            ),
            (
                "blank name",
                rule(ACT, name="'  '"),
                "rules.yaml:2: rule '#1': name: expected a non-empty string,"
                " got string '  '",
            ),
            (
                "number name",
                rule(ACT, name="42"),
                "rules.yaml:2: rule '#1': name: expected a non-empty string,"
                " got number 42",
            ),
            (
                "null name",
                rule(ACT, name="~"),
                "rules.yaml:2: rule '#1': name: expected a non-empty string, got null",
            ),
            (
                "duplicate rule names",
                f"rules:\n  - name: fix\n    {ACT}\n  - name: other\n    {ACT}\n"
                f"  - name: fix\n    {ACT}\n",
                "rules.yaml:6: rule 'fix': name: duplicate rule name"
                " (first used on line 2)",
            ),
            (
                "missing actions",
                rule("match: {host: a.com}"),
                "rules.yaml:2: rule 'fix': actions: missing"
                " (expected a non-empty list of actions)",
            ),
            (
                "empty actions",
                rule("actions: []"),
                "rules.yaml:3: rule 'fix': actions: expected a non-empty list of"
                " actions, got an empty list",
            ),
            (
                "null actions",
                rule("actions:"),
                "rules.yaml:3: rule 'fix': actions: expected a non-empty list of"
                " actions, got null",
            ),
            (
                "actions a mapping",
                rule("actions:", "  set: {a: 1}"),
                "rules.yaml:3: rule 'fix': actions: expected a non-empty list of"
                " actions, got a mapping",
            ),
            (
                "description a list",
                rule("description: [a]", ACT),
                "rules.yaml:3: rule 'fix': description: expected a string, got a list",
            ),
            (
                "match a list",
                rule("match: ['*.auth0.com']", ACT),
                "rules.yaml:3: rule 'fix': match: expected a mapping, got a list",
            ),
            (
                "when a list",
                rule("when: [a]", ACT),
                "rules.yaml:3: rule 'fix': when: expected a mapping of field to"
                " condition, got a list",
            ),
        ),
    )
    def test_broken(self, text, message):
        assert error(text) == message


class TestDuplicateKeys:
    @pytest.mark.parametrize(
        ("text", "message"),
        table(
            (
                "top level",
                f"rules: []\nrules:\n  - name: x\n    {ACT}\n",
                "rules.yaml:2: duplicate key 'rules' (first given on line 1)",
            ),
            (
                "rule",
                rule("match: {host: a.com}", "match: {host: b.com}", ACT),
                "rules.yaml:4: rule 'fix': duplicate key 'match'"
                " (first given on line 3)",
            ),
            (
                "rule name",
                f"rules:\n  - name: a\n    name: b\n    {ACT}\n",
                "rules.yaml:3: rule 'a': duplicate key 'name' (first given on line 2)",
            ),
            (
                "match",
                rule("match:", "  host: a.com", "  path: /t", "  host: b.com", ACT),
                "rules.yaml:6: rule 'fix': match: duplicate key 'host'"
                " (first given on line 4)",
            ),
            (
                "match headers",
                rule("match:", "  headers: {User-Agent: a, User-Agent: b}", ACT),
                "rules.yaml:4: rule 'fix': match.headers: duplicate key"
                " 'User-Agent' (first given on line 4)",
            ),
            (
                "when",
                rule("when: {a: missing, a: present}", ACT),
                "rules.yaml:3: rule 'fix': when: duplicate key 'a'"
                " (first given on line 3)",
            ),
            (
                "condition",
                rule("when:", "  a:", "    gt: 1", "    gt: 2", ACT),
                "rules.yaml:6: rule 'fix': when.a: duplicate key 'gt'"
                " (first given on line 5)",
            ),
            (
                "action item",
                rule("actions:", "  - {set: {a: 1}, set: {b: 2}}"),
                "rules.yaml:4: rule 'fix': actions[0]: duplicate key 'set'"
                " (first given on line 4)",
            ),
            (
                "action mapping",
                rule(
                    "actions:",
                    "  - set:",
                    "      expires_in: 60",
                    "      expires_in: 1",
                ),
                "rules.yaml:6: rule 'fix': actions[0].set: duplicate key"
                " 'expires_in' (first given on line 5)",
            ),
            (
                "second action",
                rule("actions:", "  - remove: [a]", "  - rename: {a: b, a: c}"),
                "rules.yaml:5: rule 'fix': actions[1].rename: duplicate key 'a'"
                " (first given on line 5)",
            ),
            (
                "literal value",
                rule("actions:", "  - set: {user: {id: 1, id: 2}}"),
                "rules.yaml:4: rule 'fix': actions[0].set.user: duplicate key 'id'"
                " (first given on line 4)",
            ),
            (
                "literal in a list",
                rule("actions:", "  - set: {users: [{id: 1}, {id: 2, id: 3}]}"),
                "rules.yaml:4: rule 'fix': actions[0].set.users[1]: duplicate key"
                " 'id' (first given on line 4)",
            ),
            (
                "value source",
                rule(
                    "actions:",
                    "  - default: {a: {from_field: b, fallback: 1,",
                    "      fallback: 2}}",
                ),
                "rules.yaml:5: rule 'fix': actions[0].default.a: duplicate key"
                " 'fallback' (first given on line 4)",
            ),
            (
                "equals literal",
                rule("when: {u: {equals: {id: 1, id: 1}}}", ACT),
                "rules.yaml:3: rule 'fix': when.u.equals: duplicate key 'id'"
                " (first given on line 3)",
            ),
            (
                "example",
                rule(
                    ACT,
                    "examples:",
                    "  - request: {method: POST, method: GET}",
                    "    response: {}",
                ),
                "rules.yaml:5: rule 'fix': examples[0].request: duplicate key"
                " 'method' (first given on line 5)",
            ),
            (
                "earliest line first",
                rule("when:", "  a: {gt: 1, gt: 2}", "when: present", ACT),
                "rules.yaml:4: rule 'fix': when.a: duplicate key 'gt'"
                " (first given on line 4)",
            ),
        ),
    )
    def test_refused(self, text, message):
        assert error(text) == message

    def test_merge_keys_override_without_a_duplicate(self):
        text = (
            "rules:\n"
            "  - name: a\n"
            "    match: &auth0 {host: '*.auth0.com', path: /oauth/token}\n"
            f"    {ACT}\n"
            "  - name: b\n"
            "    match:\n"
            "      <<: *auth0\n"
            "      path: /token\n"
            f"    {ACT}\n"
        )
        a, b = parse_rules(text, "rules.yaml").rules
        assert (a.match.hosts, a.match.paths) == (("*.auth0.com",), ("/oauth/token",))
        assert (b.match.hosts, b.match.paths) == (("*.auth0.com",), ("/token",))


class TestMatch:
    @pytest.mark.parametrize(
        ("text", "message"),
        table(
            (
                "unknown key",
                rule("match:", "  hosts: '*.auth0.com'", ACT),
                "rules.yaml:4: rule 'fix': match: unknown key 'hosts'"
                f" (expected one of: {MATCH_KEYS})",
            ),
            (
                "status 500x",
                rule("match: {status: 500x}", ACT),
                f"rules.yaml:3: rule 'fix': match.status: {STATUS}, got string '500x'",
            ),
            (
                "status 99",
                rule("match: {status: 99}", ACT),
                f"rules.yaml:3: rule 'fix': match.status: {STATUS}, got number 99",
            ),
            (
                "status 600",
                rule("match: {status: 600}", ACT),
                f"rules.yaml:3: rule 'fix': match.status: {STATUS}, got number 600",
            ),
            (
                "status true",
                rule("match: {status: true}", ACT),
                f"rules.yaml:3: rule 'fix': match.status: {STATUS}, got boolean true",
            ),
            (
                "status 6xx",
                rule("match: {status: 6xx}", ACT),
                f"rules.yaml:3: rule 'fix': match.status: {STATUS}, got string '6xx'",
            ),
            (
                "status 200.0",
                rule("match: {status: 200.0}", ACT),
                f"rules.yaml:3: rule 'fix': match.status: {STATUS}, got number 200.0",
            ),
            (
                "status list item",
                rule("match:", "  status: [200, '40x']", ACT),
                f"rules.yaml:4: rule 'fix': match.status: {STATUS}, got string '40x'",
            ),
            (
                "status empty list",
                rule("match: {status: []}", ACT),
                "rules.yaml:3: rule 'fix': match.status: expected at least one"
                " status, got an empty list",
            ),
            (
                "host empty",
                rule("match: {host: ''}", ACT),
                "rules.yaml:3: rule 'fix': match.host: expected a string or a list"
                " of strings, got string ''",
            ),
            (
                "host list with a number",
                rule("match: {host: [a.com, 1]}", ACT),
                "rules.yaml:3: rule 'fix': match.host: expected a string or a list"
                " of strings, got a list",
            ),
            (
                "path number",
                rule("match:", "  path: 1", ACT),
                "rules.yaml:4: rule 'fix': match.path: expected a string or a list"
                " of strings, got number 1",
            ),
            (
                "method number",
                rule("match: {method: 1}", ACT),
                "rules.yaml:3: rule 'fix': match.method: expected a string or a list"
                " of strings, got number 1",
            ),
            (
                "method empty list",
                rule("match: {method: []}", ACT),
                "rules.yaml:3: rule 'fix': match.method: expected a string or a list"
                " of strings, got an empty list",
            ),
            (
                "grant_type mapping",
                rule("match: {grant_type: {in: [a]}}", ACT),
                "rules.yaml:3: rule 'fix': match.grant_type: expected a string or a"
                " list of strings, got a mapping",
            ),
            (
                "client_id number",
                rule("match: {client_id: 12345}", ACT),
                "rules.yaml:3: rule 'fix': match.client_id: expected a string or a"
                " list of strings, got number 12345",
            ),
            (
                "headers list",
                rule("match: {headers: [User-Agent]}", ACT),
                "rules.yaml:3: rule 'fix': match.headers: expected a mapping of"
                " header name to glob, got a list",
            ),
            (
                "headers empty",
                rule("match: {headers: {}}", ACT),
                "rules.yaml:3: rule 'fix': match.headers: expected a mapping of"
                " header name to glob, got an empty mapping",
            ),
            (
                "header name with a space",
                rule("match:", "  headers: {'User Agent': x}", ACT),
                "rules.yaml:4: rule 'fix': match.headers: 'User Agent' is not a"
                " header name",
            ),
            (
                "header glob number",
                rule("match:", "  headers: {X-N: 1}", ACT),
                "rules.yaml:4: rule 'fix': match.headers.X-N: expected a string or a"
                " list of strings, got number 1",
            ),
        ),
    )
    def test_broken(self, text, message):
        assert error(text) == message


class TestWhen:
    @pytest.mark.parametrize(
        ("text", "message"),
        table(
            (
                "bad regex",
                rule("when: {token_type: {matches: '[Bb'}}", ACT),
                "rules.yaml:3: rule 'fix': when.token_type.matches: invalid regular"
                " expression '[Bb': unterminated character set at position 0",
            ),
            (
                "regex not a string",
                rule("when: {token_type: {matches: 1}}", ACT),
                "rules.yaml:3: rule 'fix': when.token_type.matches: expected a"
                " regular expression string, got number 1",
            ),
            (
                "lt with a string",
                rule("when: {expires_in: {lt: '60'}}", ACT),
                "rules.yaml:3: rule 'fix': when.expires_in.lt: expected a finite"
                " number, got string '60'",
            ),
            (
                "gte with a boolean",
                rule("when: {expires_in: {gte: true}}", ACT),
                "rules.yaml:3: rule 'fix': when.expires_in.gte: expected a finite"
                " number, got boolean true",
            ),
            (
                "gt with null",
                rule("when:", "  expires_in:", "    gt: ~", ACT),
                "rules.yaml:5: rule 'fix': when.expires_in.gt: expected a finite"
                " number, got null",
            ),
            (
                "lt with .nan",
                rule("when: {expires_in: {lt: .nan}}", ACT),
                "rules.yaml:3: rule 'fix': when.expires_in.lt: expected a finite"
                " number, got number nan",
            ),
            (
                "unknown op",
                rule("when: {expires_in: {eq: 0}}", ACT),
                "rules.yaml:3: rule 'fix': when.expires_in: unknown condition 'eq'"
                f" (expected one of: {CONDITIONS}; to compare with a mapping, write"
                " {equals: {...}})",
            ),
            (
                "bare mapping",
                rule("when:", "  user:", "    id: 1", ACT),
                "rules.yaml:5: rule 'fix': when.user: unknown condition 'id'"
                f" (expected one of: {CONDITIONS}; to compare with a mapping, write"
                " {equals: {...}})",
            ),
            (
                "empty condition",
                rule("when: {expires_in: {}}", ACT),
                "rules.yaml:3: rule 'fix': when.expires_in: an empty mapping tests"
                " nothing",
            ),
            (
                "in not a list",
                rule("when: {expires_in: {in: 0}}", ACT),
                "rules.yaml:3: rule 'fix': when.expires_in.in: expected a non-empty"
                " list, got number 0",
            ),
            (
                "in empty",
                rule("when: {expires_in: {in: []}}", ACT),
                "rules.yaml:3: rule 'fix': when.expires_in.in: expected a non-empty"
                " list, got an empty list",
            ),
            (
                "empty path segment",
                rule("when:", "  authed_user..access_token: present", ACT),
                "rules.yaml:4: rule 'fix': when: 'authed_user..access_token' has an"
                " empty segment",
            ),
            (
                "leading dot",
                rule("when: {'.a': present}", ACT),
                "rules.yaml:3: rule 'fix': when: '.a' has an empty segment",
            ),
            (
                "trailing dot",
                rule("when: {'a.': present}", ACT),
                "rules.yaml:3: rule 'fix': when: 'a.' has an empty segment",
            ),
            (
                "empty field name",
                rule("when: {'': present}", ACT),
                "rules.yaml:3: rule 'fix': when: expected a field name or dotted"
                " path, got string ''",
            ),
            (
                "date literal",
                rule("when: {expires_at: 2024-01-01}", ACT),
                "rules.yaml:3: rule 'fix': when.expires_at: a YAML date has no JSON"
                " form (quote it to make it a string)",
            ),
            (
                ".nan in a list",
                rule("when: {a: {in: [1, .nan]}}", ACT),
                "rules.yaml:3: rule 'fix': when.a: number nan has no JSON form"
                " (JSON numbers are finite)",
            ),
        ),
    )
    def test_broken(self, text, message):
        assert error(text) == message

    def test_conditions_compile_in_order_with_paths(self):
        when = compiled(
            "when:",
            "  expires_in: missing",
            "  authed_user.access_token: present",
            "  token_type: {in: [bearer, mac]}",
            ACT,
        ).when
        assert [(c.field, c.path) for c in when] == [
            ("expires_in", ("expires_in",)),
            ("authed_user.access_token", ("authed_user", "access_token")),
            ("token_type", ("token_type",)),
        ]
        assert all(isinstance(c, Condition) for c in when)
        assert when[0].test(MISSING) and not when[0].test(1)
        assert when[1].test(None) and not when[1].test(MISSING)
        assert when[2].test("mac") and not when[2].test("Bearer")

    def test_every_form_is_accepted(self):
        when = compiled(
            "when:",
            "  a: missing",
            "  b: present",
            "  c: null",
            "  d: Bearer",
            "  e: {equals: {x: [1]}}",
            "  f: {in: [1, '1']}",
            "  g: {lt: 1, lte: 2, gt: -1.5, gte: -2}",
            "  h: {matches: '[0-9]+'}",
            "  i: {gt: 0, equals: 5}",
            "  j: [1, 2]",
            "  k: 0",
            "  l: false",
            ACT,
        ).when
        values = [MISSING, 0, None, "Bearer", {"x": [1]}, "1", 0.5, "42", 5, [1, 2]]
        values += [0, False]
        assert [c.test(v) for c, v in zip(when, values, strict=True)] == [True] * 12

    def test_no_when(self):
        assert compiled(ACT).when == ()
        assert compiled("when:", ACT).when == ()


class TestActions:
    @pytest.mark.parametrize(
        ("text", "message"),
        table(
            (
                "unknown action",
                rule("actions:", "  - set: {a: 1}", "  - sett: {a: 1}"),
                "rules.yaml:5: rule 'fix': unknown action 'sett'"
                f" (expected one of: {ALL_ACTIONS})",
            ),
            (
                "two keys in one item",
                rule("actions:", "  - set:", "    expires_in: 60"),
                "rules.yaml:4: rule 'fix': actions[0]: expected a mapping with"
                f" exactly one key, one of: {ALL_ACTIONS}, got 2 keys"
                " (set, expires_in): each action is its own '- ' item, its fields"
                " indented under it",
            ),
            (
                "a bare word",
                rule("actions:", "  - set"),
                "rules.yaml:4: rule 'fix': actions[0]: expected a mapping with"
                f" exactly one key, one of: {ALL_ACTIONS}, got string 'set'",
            ),
            (
                "an empty mapping",
                rule("actions:", "  - {}"),
                "rules.yaml:4: rule 'fix': actions[0]: expected a mapping with"
                f" exactly one key, one of: {ALL_ACTIONS}, got an empty mapping",
            ),
            (
                "set empty",
                rule("actions:", "  - set: {}"),
                "rules.yaml:4: rule 'fix': set: expected a mapping of one or more"
                " field: value pairs, got an empty mapping",
            ),
            (
                "set a list",
                rule("actions:", "  - set: [a, 1]"),
                "rules.yaml:4: rule 'fix': set: expected a mapping of one or more"
                " field: value pairs, got a list",
            ),
            (
                "default a word",
                rule("actions:", "  - default: expires_in"),
                "rules.yaml:4: rule 'fix': default: expected a mapping of one or"
                " more field: value pairs, got string 'expires_in'",
            ),
            (
                "set empty segment",
                rule("actions:", "  - set: {'a..b': 1}"),
                "rules.yaml:4: rule 'fix': set: 'a..b' has an empty segment",
            ),
            (
                "remove empty",
                rule("actions:", "  - remove: []"),
                "rules.yaml:4: rule 'fix': remove: expected a list of field names,"
                " got an empty list",
            ),
            (
                "remove empty segment",
                rule("actions:", "  - remove:", "      - ok", "      - 'a.'"),
                "rules.yaml:6: rule 'fix': remove: 'a.' has an empty segment",
            ),
            (
                "remove a number",
                rule("actions:", "  - remove: [1]"),
                "rules.yaml:4: rule 'fix': remove: expected a field name or dotted"
                " path, got number 1",
            ),
            (
                "rename to a mapping",
                rule("actions:", "  - rename: {expires: {to: expires_in}}"),
                "rules.yaml:4: rule 'fix': rename.expires: expected a field name or"
                " dotted path, got a mapping",
            ),
            (
                "rename to an empty segment",
                rule("actions:", "  - rename: {expires: 'a..b'}"),
                "rules.yaml:4: rule 'fix': rename.expires: 'a..b' has an empty segment",
            ),
            (
                "coerce int",
                rule("actions:", "  - coerce: {expires_in: int}"),
                "rules.yaml:4: rule 'fix': coerce.expires_in: unknown type 'int'"
                " (expected one of: integer, number, string, space_delimited)",
            ),
            (
                "coerce Integer",
                rule(
                    "actions:", "  - coerce:", "      scope: list", "      n: Integer"
                ),
                "rules.yaml:5: rule 'fix': coerce.scope: unknown type 'list'"
                " (expected one of: integer, number, string, space_delimited)",
            ),
            (
                "coerce null",
                rule("actions:", "  - coerce: {expires_in: null}"),
                "rules.yaml:4: rule 'fix': coerce.expires_in: expected a type, one"
                " of: integer, number, string, space_delimited, got null",
            ),
            (
                "unwrap a list",
                rule("actions:", "  - unwrap: [data]"),
                "rules.yaml:4: rule 'fix': unwrap: expected a field name or dotted"
                " path, got a list",
            ),
            (
                "unwrap empty segment",
                rule("actions:", "  - unwrap: 'data.'"),
                "rules.yaml:4: rule 'fix': unwrap: 'data.' has an empty segment",
            ),
            (
                "status 600",
                rule("actions:", "  - status: 600"),
                "rules.yaml:4: rule 'fix': status: expected a status code from 100"
                " to 599, got number 600",
            ),
            (
                "status 99",
                rule("actions:", "  - status: 99"),
                "rules.yaml:4: rule 'fix': status: expected a status code from 100"
                " to 599, got number 99",
            ),
            (
                "status a string",
                rule("actions:", "  - status: '400'"),
                "rules.yaml:4: rule 'fix': status: expected a status code from 100"
                " to 599, got string '400'",
            ),
            (
                "status a boolean",
                rule("actions:", "  - status: true"),
                "rules.yaml:4: rule 'fix': status: expected a status code from 100"
                " to 599, got boolean true",
            ),
            (
                "form_to_json not first",
                rule("actions:", "  - set: {a: 1}", "  - form_to_json: true"),
                "rules.yaml:5: rule 'fix': actions[1]: form_to_json must be the"
                " rule's first action",
            ),
            (
                "form_to_json twice",
                rule("actions:", "  - form_to_json: true", "  - form_to_json: true"),
                "rules.yaml:5: rule 'fix': actions[1]: form_to_json must be the"
                " rule's first action",
            ),
            (
                "form_to_json false",
                rule("actions:", "  - form_to_json: false"),
                "rules.yaml:4: rule 'fix': form_to_json: expected true,"
                " got boolean false",
            ),
            (
                "form_to_json a string",
                rule("actions:", "  - form_to_json: 'true'"),
                "rules.yaml:4: rule 'fix': form_to_json: expected true,"
                " got string 'true'",
            ),
        ),
    )
    def test_broken(self, text, message):
        assert error(text) == message


class TestHeaderActions:
    @pytest.mark.parametrize(
        ("text", "message"),
        table(
            *[
                (
                    f"{op} {name}",
                    rule("actions:", f"  - {op}: {{{name}: x}}"),
                    f"rules.yaml:4: rule 'fix': {op}: {name} cannot be set by a rule:"
                    " tokenfix keeps it right itself",
                )
                for op in ("header", "request_header")
                for name in (
                    "Content-Length",
                    "content-length",
                    "Content-Encoding",
                    "CONTENT-ENCODING",
                    "Transfer-Encoding",
                    "transfer-encoding",
                )
            ],
            *[
                (
                    f"request_header {name}",
                    rule("actions:", f"  - request_header: {{{name}: evil.example}}"),
                    f"rules.yaml:4: rule 'fix': request_header: {name} cannot be set"
                    " by a rule: it names the upstream server",
                )
                for name in ("Host", "host", "HOST")
            ],
            (
                "removing a managed header",
                rule("actions:", "  - header: {Content-Encoding: null}"),
                "rules.yaml:4: rule 'fix': header: Content-Encoding cannot be set by"
                " a rule: tokenfix keeps it right itself",
            ),
            (
                "name with a space",
                rule("actions:", "  - header: {'Cache Control': no-store}"),
                "rules.yaml:4: rule 'fix': header: 'Cache Control' is not a header"
                " name",
            ),
            (
                "name with a colon",
                rule("actions:", "  - request_header: {'Accept:': x}"),
                "rules.yaml:4: rule 'fix': request_header: 'Accept:' is not a header"
                " name",
            ),
            (
                "number value",
                rule("actions:", "  - header: {Retry-After: 5}"),
                "rules.yaml:4: rule 'fix': header.Retry-After: expected a string, or"
                " null to remove, got number 5",
            ),
            (
                "list value",
                rule("actions:", "  - request_header: {Accept: [a, b]}"),
                "rules.yaml:4: rule 'fix': request_header.Accept: expected a string,"
                " or null to remove, got a list",
            ),
            (
                "not a mapping",
                rule("actions:", "  - header: [X-A]"),
                "rules.yaml:4: rule 'fix': header: expected a mapping of one or more"
                " name: value pairs, got a list",
            ),
        ),
    )
    def test_broken(self, text, message):
        assert error(text) == message

    def test_host_may_be_set_on_a_response(self):
        (action,) = compiled("actions:", "  - header: {Host: x}").actions
        assert action.items == (("Host", ("host",), "x"),)


class TestValues:
    @pytest.mark.parametrize(
        ("text", "message"),
        table(
            (
                "date",
                rule("actions:", "  - set: {expires_at: 2024-01-01}"),
                "rules.yaml:4: rule 'fix': set.expires_at: a YAML date has no JSON"
                " form (quote it to make it a string)",
            ),
            (
                "timestamp",
                rule("actions:", "  - set: {expires_at: 2024-01-01T00:00:00Z}"),
                "rules.yaml:4: rule 'fix': set.expires_at: a YAML date has no JSON"
                " form (quote it to make it a string)",
            ),
            (
                "date in a nested literal",
                rule("actions:", "  - set:", "      meta:", "        at: 2024-01-01"),
                "rules.yaml:6: rule 'fix': set.meta.at: a YAML date has no JSON form"
                " (quote it to make it a string)",
            ),
            (
                "date as fallback",
                rule(
                    "actions:",
                    "  - default: {e: {from_field: x, fallback: 2024-01-01}}",
                ),
                "rules.yaml:4: rule 'fix': default.e.fallback: a YAML date has no"
                " JSON form (quote it to make it a string)",
            ),
            (
                "set",
                rule("actions:", "  - set: {scope: !!set {a, b}}"),
                "rules.yaml:4: rule 'fix': set.scope: a YAML set has no JSON form"
                " (write a list)",
            ),
            (
                "binary",
                rule("actions:", "  - set: {blob: !!binary aGVsbG8=}"),
                "rules.yaml:4: rule 'fix': set.blob: YAML binary data has no JSON"
                " form (write a string)",
            ),
            (
                "omap",
                rule("actions:", "  - set: {o: !!omap [a: 1]}"),
                "rules.yaml:4: rule 'fix': set.o: a YAML tuple has no JSON form",
            ),
            (
                ".inf",
                rule("actions:", "  - set: {expires_in: .inf}"),
                "rules.yaml:4: rule 'fix': set.expires_in: number inf has no JSON"
                " form (JSON numbers are finite)",
            ),
            (
                "-.inf",
                rule("actions:", "  - default: {expires_in: -.Inf}"),
                "rules.yaml:4: rule 'fix': default.expires_in: number -inf has no"
                " JSON form (JSON numbers are finite)",
            ),
            (
                ".nan",
                rule("actions:", "  - set: {expires_in: .NaN}"),
                "rules.yaml:4: rule 'fix': set.expires_in: number nan has no JSON"
                " form (JSON numbers are finite)",
            ),
            (
                ".inf in a list",
                rule(
                    "actions:",
                    "  - set:",
                    "      limits:",
                    "        - 1",
                    "        - .inf",
                ),
                "rules.yaml:7: rule 'fix': set.limits: number inf has no JSON form"
                " (JSON numbers are finite)",
            ),
            (
                ".inf as fallback",
                rule(
                    "actions:",
                    "  - default:",
                    "      e: {from_jwt_exp: t, fallback: .inf}",
                ),
                "rules.yaml:5: rule 'fix': default.e.fallback: number inf has no"
                " JSON form (JSON numbers are finite)",
            ),
            (
                "unknown source",
                rule(
                    "actions:",
                    "  - default: {expires_in: {from_jwt_epx: access_token}}",
                ),
                "rules.yaml:4: rule 'fix': default.expires_in: unknown value source"
                f" 'from_jwt_epx' (expected one of: {SOURCES})",
            ),
            (
                "unknown source beside a fallback",
                rule(
                    "actions:",
                    "  - default:",
                    "      expires_in:",
                    "        fallback: 60",
                    "        from_jwt: access_token",
                ),
                "rules.yaml:7: rule 'fix': default.expires_in: unknown value source"
                f" 'from_jwt' (expected one of: {SOURCES})",
            ),
            (
                "fallback without a source",
                rule("actions:", "  - default: {expires_in: {fallback: 3600}}"),
                "rules.yaml:4: rule 'fix': default.expires_in: 'fallback' goes with a"
                f" value source ({SOURCES})",
            ),
            (
                "two sources",
                rule(
                    "actions:",
                    "  - default:",
                    "      expires_in: {from_jwt_exp: access_token, from_field: exp}",
                ),
                "rules.yaml:5: rule 'fix': default.expires_in: one value source at a"
                " time, got from_jwt_exp, from_field",
            ),
            (
                "stray key beside a source",
                rule("actions:", "  - set: {e: {from_jwt_exp: t, default: 1}}"),
                "rules.yaml:4: rule 'fix': set.e: unknown key 'default' next to"
                " from_jwt_exp (expected: fallback)",
            ),
            (
                "from_request a number",
                rule("actions:", "  - set: {client: {from_request: 1}}"),
                "rules.yaml:4: rule 'fix': set.client.from_request: expected a"
                " parameter name, got number 1",
            ),
            (
                "from_field empty segment",
                rule("actions:", "  - set: {a: {from_field: 'b..c'}}"),
                "rules.yaml:4: rule 'fix': set.a.from_field: 'b..c' has an empty"
                " segment",
            ),
            (
                "from_timestamp null",
                rule("actions:", "  - set: {a: {from_timestamp: null}}"),
                "rules.yaml:4: rule 'fix': set.a.from_timestamp: expected a field"
                " name or dotted path, got null",
            ),
        ),
    )
    def test_broken(self, text, message):
        assert error(text) == message


class TestYamlFaults:
    @pytest.mark.parametrize(
        ("text", "message"),
        table(
            (
                "python object tag",
                rule("actions:", "  - set: {a: !!python/object/apply:os.system [id]}"),
                "rules.yaml:4: invalid YAML: could not determine a constructor for"
                " the tag 'tag:yaml.org,2002:python/object/apply:os.system'"
                " (rules files are loaded safely: no tags)",
            ),
            (
                "python name tag",
                rule("actions:", "  - set:", "      a: !!python/name:os.system"),
                "rules.yaml:5: invalid YAML: could not determine a constructor for"
                " the tag 'tag:yaml.org,2002:python/name:os.system'"
                " (rules files are loaded safely: no tags)",
            ),
            (
                "unclosed flow mapping",
                rule("actions:", "  - set: {a: 1", "  - remove: [b]"),
                "rules.yaml:5: invalid YAML: expected ',' or '}', but got ':'"
                " (while parsing a flow mapping from line 4)",
            ),
            (
                "unclosed quote",
                rule("actions:", '  - set: {a: "open}', "  - remove: [b]"),
                "rules.yaml:4: invalid YAML: found unexpected end of stream"
                " (while scanning a quoted scalar)",
            ),
            (
                "indentation",
                "rules:\n  - name: fix\n   actions: []\n",
                "rules.yaml:3: invalid YAML: expected <block end>, but found"
                " '<block mapping start>' (while parsing a block collection from"
                " line 2)",
            ),
            (
                "tab",
                "rules:\n  - name: fix\n\tactions: []\n",
                "rules.yaml:3: invalid YAML: found character '\\t' that cannot start"
                " any token",
            ),
            (
                "colon in a plain value",
                rule("when:", "  token_type:", "    matches: ^a: b$", ACT),
                "rules.yaml:5: invalid YAML: mapping values are not allowed here"
                " (quote a value that holds ': ')",
            ),
            (
                "number key",
                rule("actions:", "  - set: {1: a}"),
                "rules.yaml:4: key '1' is read as number 1, not a string: quote it",
            ),
            (
                "yes key",
                rule("when:", "  yes: present", ACT),
                "rules.yaml:4: key 'yes' is read as boolean true, not a string:"
                " quote it",
            ),
            (
                "null key",
                rule("actions:", "  - set: {~: 1}"),
                "rules.yaml:4: key '~' is read as null, not a string: quote it",
            ),
        ),
    )
    def test_broken(self, text, message):
        assert error(text) == message


class TestExamples:
    @pytest.mark.parametrize(
        ("text", "message"),
        table(
            (
                "not a list",
                rule(ACT, "examples: {request: {}}"),
                "rules.yaml:4: rule 'fix': examples: expected a list of example"
                " exchanges, got a mapping",
            ),
            (
                "item a string",
                rule(ACT, "examples:", "  - just a string"),
                "rules.yaml:5: rule 'fix': examples[0]: expected a mapping, got"
                " string 'just a string'",
            ),
            (
                "no request",
                rule(ACT, "examples:", "  - name: e", "    response: {status: 200}"),
                "rules.yaml:5: rule 'fix': examples[0].request: missing (expected a"
                " mapping)",
            ),
            (
                "no response",
                rule(ACT, "examples:", "  - name: e", "    request: {method: POST}"),
                "rules.yaml:5: rule 'fix': examples[0].response: missing (expected a"
                " mapping)",
            ),
            (
                "request a string",
                rule(ACT, "examples:", "  - request: POST /token", "    response: {}"),
                "rules.yaml:5: rule 'fix': examples[0].request: expected a mapping"
                " under 'request', got string 'POST /token'",
            ),
            (
                "unknown key",
                rule(
                    ACT,
                    "examples:",
                    "  - request: {}",
                    "    response: {}",
                    "    expected: {}",
                ),
                "rules.yaml:7: rule 'fix': examples[0]: unknown key 'expected'"
                " (expected one of: name, request, response, expect)",
            ),
            (
                "second example",
                rule(
                    ACT,
                    "examples:",
                    "  - {request: {}, response: {}}",
                    "  - {request: {}}",
                ),
                "rules.yaml:6: rule 'fix': examples[1].response: missing (expected a"
                " mapping)",
            ),
            (
                "unknown key in expect",
                rule(
                    ACT,
                    "examples:",
                    "  - request: {}",
                    "    response: {}",
                    "    expect:",
                    "      feilds: {}",
                ),
                "rules.yaml:8: rule 'fix': examples[0].expect: unknown key 'feilds'"
                " (expected one of: status, headers, unchanged, body, fields)",
            ),
            (
                "unknown key in response",
                rule(
                    ACT,
                    "examples:",
                    "  - request: {}",
                    "    response: {status: 200, bogus: 1}",
                ),
                "rules.yaml:6: rule 'fix': examples[0].response: unknown key 'bogus'"
                " (expected one of: status, headers, body)",
            ),
            (
                "response body as a mapping",
                rule(
                    ACT,
                    "examples:",
                    "  - request: {}",
                    "    response:",
                    "      body: {access_token: x}",
                ),
                "rules.yaml:7: rule 'fix': examples[0].response.body: expected the"
                " body as text (quote JSON: body: '{...}'), got a mapping",
            ),
            (
                "expect a list",
                rule(
                    ACT,
                    "examples:",
                    "  - request: {}",
                    "    response: {}",
                    "    expect: [200]",
                ),
                "rules.yaml:7: rule 'fix': examples[0].expect: expected a mapping"
                " under 'expect', got a list",
            ),
        ),
    )
    def test_broken(self, text, message):
        assert error(text) == message

    def test_kept_as_raw_mappings(self):
        examples = compiled(
            ACT,
            "examples:",
            "  - name: refresh",
            "    request: {method: POST, body: 'grant_type=refresh_token'}",
            "    response: {status: 200, body: '{}'}",
            "    expect: {fields: {a: 1}}",
        ).examples
        assert examples == (
            {
                "name": "refresh",
                "request": {"method": "POST", "body": "grant_type=refresh_token"},
                "response": {"status": 200, "body": "{}"},
                "expect": {"fields": {"a": 1}},
            },
        )


class TestLoadRules:
    def test_missing_file_has_no_line(self, tmp_path):
        path = tmp_path / "rules.yaml"
        with pytest.raises(RuleError) as info:
            load_rules(path)
        assert str(info.value) == f"{path}: no such rules file"
        assert (info.value.line, info.value.rule, info.value.field) == (0, None, None)

    def test_directory(self, tmp_path):
        with pytest.raises(RuleError) as info:
            load_rules(tmp_path)
        assert str(info.value) == f"{tmp_path}: cannot read: Is a directory"

    def test_not_utf8_names_the_line(self, tmp_path):
        path = tmp_path / "rules.yaml"
        path.write_bytes(b"rules:\n  - name: caf\xe9\n")
        with pytest.raises(RuleError) as info:
            load_rules(path)
        assert str(info.value) == (
            f"{path}:2: not UTF-8 text: byte 0xe9 cannot be decoded"
        )

    def test_errors_name_the_path_as_given(self, tmp_path):
        path = tmp_path / "rules.yaml"
        path.write_text(rule("actions:", "  - sett: {a: 1}"), encoding="utf-8")
        with pytest.raises(RuleError) as info:
            load_rules(str(path))
        assert str(info.value).startswith(f"{path}:4: rule 'fix': unknown action")

    def test_loads(self, tmp_path):
        path = tmp_path / "rules.yaml"
        path.write_text(rule(ACT), encoding="utf-8")
        rules = load_rules(path)
        assert rules.path == str(path)
        assert [r.name for r in rules.rules] == ["fix"]


class TestValidMatch:
    def test_defaults(self):
        match = compiled(ACT).match
        assert match == Match()
        assert match.hosts is None and match.host_re is None
        assert match.paths is None and match.path_re is None
        assert match.methods == frozenset({"POST"})
        assert match.statuses == TWO_XX
        assert (match.grant_types, match.client_ids, match.headers) == (None, None, ())

    def test_empty_match_is_the_defaults(self):
        assert compiled("match:", ACT).match == Match()
        assert compiled("match: {}", ACT).match == Match()

    def test_every_key(self):
        match = compiled(
            "match:",
            "  host: ['*.auth0.com', login.example.com]",
            "  path: /oauth/token",
            "  method: [post, Get]",
            "  grant_type: refresh_token",
            "  status: [200, 4xx]",
            "  client_id: [alexa, 'my client']",
            "  headers: {User-Agent: 'Apache-HttpClient/*', X-Tenant: [a, b]}",
            ACT,
        ).match
        assert match.hosts == ("*.auth0.com", "login.example.com")
        assert match.host_re.match("t.auth0.com")
        assert match.host_re.match("LOGIN.example.com")
        assert match.paths == ("/oauth/token",)
        assert match.path_re.match("/oauth/token")
        assert match.methods == frozenset({"POST", "GET"})
        assert match.grant_types == frozenset({"refresh_token"})
        assert match.statuses == frozenset({200, *range(400, 500)})
        assert match.client_ids == frozenset({"alexa", "my client"})
        assert [name for name, _ in match.headers] == ["user-agent", "x-tenant"]
        assert match.headers[0][1].match("apache-httpclient/4.5")
        assert match.headers[1][1].match("B")
        assert not match.headers[1][1].match("c")

    @pytest.mark.parametrize(
        ("status", "codes"),
        [
            ("200", {200}),
            ("2xx", set(range(200, 300))),
            ("2XX", set(range(200, 300))),
            ("'5xx'", set(range(500, 600))),
            ("[1xx, 3xx]", set(range(100, 200)) | set(range(300, 400))),
            ("[401, 403, 401]", {401, 403}),
            ("[100, 599]", {100, 599}),
        ],
    )
    def test_statuses(self, status, codes):
        assert compiled(f"match: {{status: {status}}}", ACT).match.statuses == codes

    @pytest.mark.parametrize(
        ("method", "methods"),
        [("post", {"POST"}), ("Get", {"GET"}), ("[put, PATCH]", {"PUT", "PATCH"})],
    )
    def test_methods_uppercased(self, method, methods):
        assert compiled(f"match: {{method: {method}}}", ACT).match.methods == methods

    def test_single_strings_become_tuples_and_sets(self):
        match = compiled(
            "match: {host: a.com, path: /t, grant_type: password, client_id: c}", ACT
        ).match
        assert (match.hosts, match.paths) == (("a.com",), ("/t",))
        assert match.grant_types == frozenset({"password"})
        assert match.client_ids == frozenset({"c"})


class TestValidActions:
    def test_set_and_default_with_literals_and_sources(self):
        rule_ = compiled(
            "actions:",
            "  - set:",
            "      token_type: Bearer",
            "      scope: [a, b]",
            "      meta: {n: 1.5, ok: true, none: null}",
            "  - default:",
            "      expires_in: {from_jwt_exp: access_token, fallback: 3600}",
            "      authed_user.id: {from_request: client_id}",
            "      refresh_token: {from_field: data.rt, fallback: null}",
            "      expires: {from_timestamp: expires_at}",
        )
        set_, default = rule_.actions
        assert set_ == Action(
            "set",
            (
                ("token_type", ("token_type",), "Bearer"),
                ("scope", ("scope",), ["a", "b"]),
                ("meta", ("meta",), {"n": 1.5, "ok": True, "none": None}),
            ),
            4,
        )
        assert default == Action(
            "default",
            (
                (
                    "expires_in",
                    ("expires_in",),
                    Source(
                        "from_jwt_exp", "access_token", ("access_token",), 3600, True
                    ),
                ),
                (
                    "authed_user.id",
                    ("authed_user", "id"),
                    Source("from_request", "client_id", ("client_id",), None, False),
                ),
                (
                    "refresh_token",
                    ("refresh_token",),
                    Source("from_field", "data.rt", ("data", "rt"), None, True),
                ),
                (
                    "expires",
                    ("expires",),
                    Source(
                        "from_timestamp", "expires_at", ("expires_at",), None, False
                    ),
                ),
            ),
            8,
        )

    def test_literals_are_plain_json_values(self):
        (action,) = compiled("actions:", "  - set: {m: {a: [1, {b: 2}]}}").actions
        value = action.items[0][2]
        assert value == {"a": [1, {"b": 2}]}
        assert type(value) is dict and type(value["a"]) is list

    def test_from_request_names_a_parameter_not_a_path(self):
        (action,) = compiled("actions:", "  - set: {a: {from_request: x.y}}").actions
        assert action.items[0][2] == Source(
            "from_request", "x.y", ("x.y",), None, False
        )

    def test_remove_rename_coerce_unwrap(self):
        rule_ = compiled(
            "actions:",
            "  - remove: [id_token, authed_user.scope]",
            "  - remove: debug",
            "  - rename: {expires: expires_in, data.tok: access_token}",
            "  - coerce: {expires_in: integer, n: number, s: string,"
            " scope: space_delimited}",
            "  - unwrap: data.token",
        )
        assert rule_.actions == (
            Action(
                "remove",
                (
                    ("id_token", ("id_token",), None),
                    ("authed_user.scope", ("authed_user", "scope"), None),
                ),
                4,
            ),
            Action("remove", (("debug", ("debug",), None),), 5),
            Action(
                "rename",
                (
                    ("expires", ("expires",), ("expires_in",)),
                    ("data.tok", ("data", "tok"), ("access_token",)),
                ),
                6,
            ),
            Action(
                "coerce",
                (
                    ("expires_in", ("expires_in",), "integer"),
                    ("n", ("n",), "number"),
                    ("s", ("s",), "string"),
                    ("scope", ("scope",), "space_delimited"),
                ),
                7,
            ),
            Action("unwrap", (("data.token", ("data", "token"), None),), 8),
        )

    def test_headers_status_form_to_json(self):
        rule_ = compiled(
            "actions:",
            "  - form_to_json: true",
            "  - header: {Content-Type: application/json, X-Debug: null}",
            "  - request_header: {Accept: application/json, Cookie: null}",
            "  - status: 401",
        )
        assert rule_.actions == (
            Action("form_to_json", (("body", (), True),), 4),
            Action(
                "header",
                (
                    ("Content-Type", ("content-type",), "application/json"),
                    ("X-Debug", ("x-debug",), None),
                ),
                5,
            ),
            Action(
                "request_header",
                (
                    ("Accept", ("accept",), "application/json"),
                    ("Cookie", ("cookie",), None),
                ),
                6,
            ),
            Action("status", (("status", (), 401),), 7),
        )
        assert rule_.form_to_json is True
        assert rule_.request_headers == (
            ("Accept", "application/json"),
            ("Cookie", None),
        )

    def test_form_to_json_only_when_first(self):
        assert compiled(ACT).form_to_json is False
        assert compiled(ACT).request_headers == ()

    @pytest.mark.parametrize(
        ("match", "needed"),
        [
            ("{}", False),
            ("{host: a.com, path: /t, headers: {A: b}}", False),
            ("{grant_type: refresh_token}", True),
            ("{client_id: alexa}", True),
        ],
    )
    def test_needs_body_params(self, match, needed):
        assert compiled(f"match: {match}", ACT).needs_body_params is needed


class TestValidFile:
    def test_rules_in_file_order_with_their_lines(self):
        text = (
            "rules:\n"
            "  - name: first\n"
            "    description: adds expires_in\n"
            f"    {ACT}\n"
            "\n"
            "  # a comment\n"
            "  - name: second\n"
            f"    {ACT}\n"
        )
        rules = parse_rules(text, "rules.yaml")
        assert [(r.name, r.line) for r in rules.rules] == [("first", 2), ("second", 7)]

    def test_auth0_rule_of_the_issue(self):
        text = (
            "rules:\n"
            "  - name: auth0-refresh-lifetime\n"
            "    match:\n"
            '      host: "*.auth0.com"\n'
            "      path: /oauth/token\n"
            "      method: POST\n"
            "      grant_type: refresh_token\n"
            "      status: 200\n"
            "    when:\n"
            "      expires_in: missing\n"
            "    actions:\n"
            "      - default: {expires_in: {from_jwt_exp: access_token,"
            " fallback: 120}}\n"
        )
        (auth0,) = parse_rules(text, "rules.yaml").rules
        assert auth0.name == "auth0-refresh-lifetime"
        assert auth0.match.hosts == ("*.auth0.com",)
        assert auth0.match.statuses == frozenset({200})
        assert auth0.match.methods == frozenset({"POST"})
        assert [c.field for c in auth0.when] == ["expires_in"]
        assert auth0.actions == (
            Action(
                "default",
                (
                    (
                        "expires_in",
                        ("expires_in",),
                        Source(
                            "from_jwt_exp", "access_token", ("access_token",), 120, True
                        ),
                    ),
                ),
                12,
            ),
        )
        assert auth0.examples == ()
