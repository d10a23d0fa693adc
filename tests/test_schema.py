"""rules.schema.json and the rule loader must agree.

Every rules file the project ships or documents (rules.yaml, recipes/*.yaml and
the README's `rules:` blocks) is accepted by both, and every broken file in
BROKEN is refused by both. Two kinds of fault are the exceptions, each with its
own table. LOADER_ONLY: duplicate YAML keys and rule names, and YAML's .inf and
.nan, which a JSON Schema never sees (PyYAML keeps the last of two keys, a
schema cannot compare one array item with another, and its numbers include the
non-finite ones); the schema lets them through and the loader refuses them.
CHECK_TIME: the inside of example exchanges, which the loader keeps raw and
`tokenfix check` reads; the schema refuses them and so does check.
"""

import io
import json
import re
import textwrap
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from addon import cli
from addon.rules import RuleError, load_rules, parse_rules

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = ROOT / "rules.schema.json"
README = ROOT / "README.md"
SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA)
SCHEMA_COMMENT = re.compile(r"# yaml-language-server: \$schema=(\S+)\n")


def shipped_files() -> list[Path]:
    return [ROOT / "rules.yaml", *sorted((ROOT / "recipes").glob("*.yaml"))]


def readme_blocks() -> list[tuple[str, str]]:
    """(README.md:LINE, text) of each ```yaml block whose document starts `rules:`."""
    if not README.exists():
        return []
    text = README.read_text(encoding="utf-8")
    fences = re.finditer(r"^```ya?ml[^\n]*\n(.*?)^```", text, re.M | re.S)

    blocks = []
    for fence in fences:
        lines = [ln for ln in fence.group(1).splitlines() if ln.strip()]
        content = [ln for ln in lines if not ln.lstrip().startswith("#")]
        if content and content[0].startswith("rules:"):
            line = text.count("\n", 0, fence.start(1)) + 1
            blocks.append((f"README.md:{line}", fence.group(1)))
    return blocks


def schema_errors(text: str) -> list[str]:
    """What the schema says about a rules file; unreadable YAML is one error."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        return [f"not YAML: {e}"]

    errors = sorted(VALIDATOR.iter_errors(data), key=lambda e: list(e.absolute_path))
    return [f"{e.json_path}: {e.message}" for e in errors]


def loader_error(text: str) -> RuleError:
    with pytest.raises(RuleError) as info:
        parse_rules(text, "broken.yaml")
    return info.value


def rules_file(body: str) -> str:
    return textwrap.dedent(body).lstrip("\n")


# one small file per key and form of the rule language; both must accept each
VALID = {
    "rules: with nothing under it": """
        rules:
        """,
    "no match: every POST answered 2xx": """
        rules:
          - name: r
            actions:
              - remove: [debug]
        """,
    "every match key": """
        rules:
          - name: r
            match:
              host: ["*.auth0.com", login.example.com]
              path: [/oauth/token, "/realms/*/protocol/openid-connect/token"]
              method: [POST, PUT]
              grant_type: [refresh_token, authorization_code]
              status: [200, 201, 3xx]
              client_id: [alexa-skill, "amzn1.application-oa2-client.x"]
              headers:
                User-Agent: "Apache-HttpClient/*"
                X-Tenant: [acme, "acme-*"]
            actions:
              - default: {expires_in: 3600}
        """,
    "single values and a status class": """
        rules:
          - name: r
            description: why this rule exists
            match:
              host: auth.example.com
              path: /token
              method: POST
              grant_type: refresh_token
              status: 2xx
              client_id: alexa-skill
            actions:
              - default: {expires_in: 3600}
          - name: s
            match: {status: 500}
            actions:
              - status: 400
        """,
    "every condition form": """
        rules:
          - name: r
            when:
              expires_in: missing
              access_token: present
              refresh_token: null
              token_type: bearer
              ok: true
              version: 2
              error: {equals: invalid_grant}
              data: {equals: {a: [1, 2]}}
              scope: {in: [openid, "openid profile", 3, null]}
              refresh_expires_in: {gte: 0, lt: 60}
              expires_at: {gt: 1.5}
              authed_user.token_type: {matches: "[Uu]ser"}
              scopes: [openid, profile]
              id: {matches: "[0-9]+", in: ["1", "2"]}
            actions:
              - remove: [debug]
        """,
    "every action": """
        rules:
          - name: r
            actions:
              - form_to_json: true
              - set: {token_type: Bearer, meta: {source: tokenfix}, flags: [1, "a"]}
              - default: {expires_in: 3600, ext.note: null}
              - remove: [status, message]
              - remove: debug
              - rename: {expires: expires_in}
              - coerce:
                  expires_in: integer
                  ratio: number
                  id: string
                  scope: space_delimited
              - unwrap: data
              - header: {Content-Type: application/json, X-Powered-By: null}
              - request_header: {Accept: application/json, X-Debug: null}
              - status: 400
        """,
    "every value source, with and without fallback": """
        rules:
          - name: r
            actions:
              - default:
                  expires_in: {from_jwt_exp: access_token, fallback: 3600}
                  refresh_token: {from_request: refresh_token}
                  client: {from_request: client_id, fallback: unknown}
                  scope: {from_field: authed_user.scope}
                  valid_for: {from_timestamp: expires_at, fallback: 0}
        """,
    "examples with every key": """
        rules:
          - name: r
            match: {host: auth.example.com}
            actions:
              - default: {expires_in: 3600}
            examples:
              - name: all keys
                request:
                  method: POST
                  url: https://auth.example.com/oauth/token?x=1
                  headers: {Content-Type: application/x-www-form-urlencoded}
                  body: grant_type=refresh_token&refresh_token=<RT>
                response:
                  status: 200
                  headers: {Content-Type: application/json}
                  body: '{"access_token":"<JWT exp=+120>","expires_at":<EPOCH+60>}'
                expect:
                  status: 200
                  headers: {Content-Type: application/json, X-Gone: null}
                  unchanged: false
                  body: {access_token: x, expires_in: 3600}
                  fields:
                    expires_in: {gte: 119, lte: 121}
                    token_type: missing
              - request: {url: "https://auth.example.com/oauth/token"}
                response: {status: 200}
                expect: {unchanged: true}
              - name: without expect it only has to run; status defaults to 200
                request: {url: "https://auth.example.com/oauth/token"}
                response: {body: "{}"}
        """,
    "empty match, when and examples": """
        rules:
          - name: r
            match:
            when:
            actions: [{remove: [a]}]
            examples:
        """,
}

# files both must refuse
BROKEN = {
    "unknown top-level key": """
        version: 1
        rules:
          - name: r
            actions: [{remove: [a]}]
        """,
    "rules is not a list": """
        rules:
          name: r
          actions: [{remove: [a]}]
        """,
    "rule without a name": """
        rules:
          - actions: [{remove: [a]}]
        """,
    "rule with an empty name": """
        rules:
          - name: ""
            actions: [{remove: [a]}]
        """,
    "rule named with blanks only": """
        rules:
          - name: "  "
            actions: [{remove: [a]}]
        """,
    "rule without actions": """
        rules:
          - name: r
            match: {host: auth.example.com}
        """,
    "rule with an empty action list": """
        rules:
          - name: r
            actions: []
        """,
    "unknown rule key": """
        rules:
          - name: r
            notes: why
            actions: [{remove: [a]}]
        """,
    "unknown match key": """
        rules:
          - name: r
            match: {hostname: auth.example.com}
            actions: [{remove: [a]}]
        """,
    "host is a number": """
        rules:
          - name: r
            match: {host: 42}
            actions: [{remove: [a]}]
        """,
    "status out of range": """
        rules:
          - name: r
            match: {status: 600}
            actions: [{remove: [a]}]
        """,
    "status class out of range": """
        rules:
          - name: r
            match: {status: 6xx}
            actions: [{remove: [a]}]
        """,
    "status is a word": """
        rules:
          - name: r
            match: {status: ok}
            actions: [{remove: [a]}]
        """,
    "match headers as a list": """
        rules:
          - name: r
            match: {headers: [User-Agent]}
            actions: [{remove: [a]}]
        """,
    "when is a list": """
        rules:
          - name: r
            when: [expires_in]
            actions: [{remove: [a]}]
        """,
    "unknown condition operator": """
        rules:
          - name: r
            when: {expires_in: {equal: 3600}}
            actions: [{remove: [a]}]
        """,
    "comparison against a string": """
        rules:
          - name: r
            when: {expires_in: {gte: "119"}}
            actions: [{remove: [a]}]
        """,
    "comparison against a boolean": """
        rules:
          - name: r
            when: {expires_in: {lt: true}}
            actions: [{remove: [a]}]
        """,
    "in without a list": """
        rules:
          - name: r
            when: {expires_in: {in: 3600}}
            actions: [{remove: [a]}]
        """,
    "matches without a string": """
        rules:
          - name: r
            when: {token_type: {matches: 5}}
            actions: [{remove: [a]}]
        """,
    "unknown action": """
        rules:
          - name: r
            actions:
              - sett: {expires_in: 3600}
        """,
    "action with two keys": """
        rules:
          - name: r
            actions:
              - set: {expires_in: 3600}
                remove: [expires]
        """,
    "action that is a bare word": """
        rules:
          - name: r
            actions:
              - form_to_json
        """,
    "set without a mapping": """
        rules:
          - name: r
            actions:
              - set: expires_in
        """,
    "default with an empty mapping": """
        rules:
          - name: r
            actions:
              - default: {}
        """,
    "rename to a number": """
        rules:
          - name: r
            actions:
              - rename: {expires: 5}
        """,
    "unknown coerce type": """
        rules:
          - name: r
            actions:
              - coerce: {expires_in: boolean}
        """,
    "unwrap with a list": """
        rules:
          - name: r
            actions:
              - unwrap: [data]
        """,
    "header Content-Length": """
        rules:
          - name: r
            actions:
              - header: {Content-Length: "10"}
        """,
    "header content-encoding in lower case": """
        rules:
          - name: r
            actions:
              - header: {content-encoding: gzip}
        """,
    "header TRANSFER-ENCODING in upper case": """
        rules:
          - name: r
            actions:
              - header: {TRANSFER-ENCODING: chunked}
        """,
    "header with a number value": """
        rules:
          - name: r
            actions:
              - header: {X-Count: 5}
        """,
    "request_header Content-Length": """
        rules:
          - name: r
            actions:
              - request_header: {Content-Length: "10"}
        """,
    "request_header Host": """
        rules:
          - name: r
            actions:
              - request_header: {host: upstream.example.com}
        """,
    "an empty condition mapping": """
        rules:
          - name: r
            when: {expires_in: {}}
            actions: [{remove: [a]}]
        """,
    "field path with an empty segment": """
        rules:
          - name: r
            when: {data..token: present}
            actions: [{remove: [a]}]
        """,
    "status out of range in an action": """
        rules:
          - name: r
            match: {status: 500}
            actions:
              - status: 600
        """,
    "status as a string in an action": """
        rules:
          - name: r
            match: {status: 500}
            actions:
              - status: "400"
        """,
    "form_to_json not first": """
        rules:
          - name: r
            actions:
              - coerce: {scope: space_delimited}
              - form_to_json: true
        """,
    "form_to_json false": """
        rules:
          - name: r
            actions:
              - form_to_json: false
        """,
    "a YAML date as value": """
        rules:
          - name: r
            actions:
              - set: {issued: 2024-01-01}
        """,
    "a YAML set as value": """
        rules:
          - name: r
            actions:
              - set: {scope: !!set {openid: null}}
        """,
    "an object tag": """
        rules:
          - name: r
            actions:
              - set: {x: !!python/object/apply:os.getcwd []}
        """,
    "two sources in one value": """
        rules:
          - name: r
            actions:
              - default: {expires_in: {from_jwt_exp: access_token, from_field: ttl}}
        """,
    "misspelt fallback": """
        rules:
          - name: r
            actions:
              - default: {expires_in: {from_jwt_exp: access_token, fallbak: 3600}}
        """,
    "unknown value source": """
        rules:
          - name: r
            actions:
              - default: {expires_in: {from_jwt: access_token}}
        """,
    "source naming no field": """
        rules:
          - name: r
            actions:
              - default: {expires_in: {from_field: 5}}
        """,
    "examples is a mapping": """
        rules:
          - name: r
            actions: [{remove: [a]}]
            examples: {name: x}
        """,
    "example that is a string": """
        rules:
          - name: r
            actions: [{remove: [a]}]
            examples: [just a sentence]
        """,
    "example with a misspelt key": """
        rules:
          - name: r
            actions: [{remove: [a]}]
            examples:
              - request: {url: "https://auth.example.com/token"}
                respone: {status: 200, body: "{}"}
                expect: {unchanged: true}
        """,
    "example without a response": """
        rules:
          - name: r
            actions: [{remove: [a]}]
            examples:
              - request: {url: "https://auth.example.com/token"}
                expect: {unchanged: true}
        """,
}

# refused by the loader alone: the schema cannot see these
LOADER_ONLY = {
    "duplicate top-level key": """
        rules:
          - name: r
            actions: [{remove: [a]}]
        rules:
          - name: s
            actions: [{remove: [a]}]
        """,
    "duplicate key in a rule": """
        rules:
          - name: r
            name: s
            actions: [{remove: [a]}]
        """,
    "duplicate key in match": """
        rules:
          - name: r
            match:
              host: a.example.com
              host: b.example.com
            actions: [{remove: [a]}]
        """,
    "duplicate field in an action": """
        rules:
          - name: r
            actions:
              - default:
                  expires_in: 3600
                  expires_in: 60
        """,
    "duplicate rule names": """
        rules:
          - name: r
            actions: [{remove: [a]}]
          - name: r
            actions: [{remove: [b]}]
        """,
    # JSON Schema numbers include the infinities and NaN that YAML can write
    "an infinite literal": """
        rules:
          - name: r
            actions:
              - default: {expires_in: .inf}
        """,
    "a NaN bound": """
        rules:
          - name: r
            when: {expires_in: {lt: .nan}}
            actions: [{remove: [a]}]
        """,
}

# example exchanges whose inside only `tokenfix check` reads: the schema
# refuses them in the editor, and check reports them, load or run
CHECK_TIME = {
    "example request without url": """
        rules:
          - name: r
            actions: [{remove: [a]}]
            examples:
              - request: {method: POST}
                response: {status: 200, body: "{}"}
                expect: {unchanged: true}
        """,
    "example response body as a mapping": """
        rules:
          - name: r
            actions: [{remove: [a]}]
            examples:
              - request: {url: "https://auth.example.com/token"}
                response: {status: 200, body: {access_token: x}}
                expect: {unchanged: true}
        """,
    "example expect with an unknown key": """
        rules:
          - name: r
            actions: [{remove: [a]}]
            examples:
              - request: {url: "https://auth.example.com/token"}
                response: {status: 200, body: "{}"}
                expect: {same: true}
        """,
    "example expect field with a broken condition": """
        rules:
          - name: r
            actions: [{remove: [a]}]
            examples:
              - request: {url: "https://auth.example.com/token"}
                response: {status: 200, body: "{}"}
                expect:
                  fields: {expires_in: {between: [1, 2]}}
        """,
}


def _schema_words(node: dict) -> set[str]:
    return set(node["properties"])


def _titled(alternatives: list, title: str) -> dict:
    return next(alt for alt in alternatives if alt.get("title") == title)


DEFS = SCHEMA["$defs"]
# words the loader lists in "(expected one of: ...)", against the schema's own
WORD_LISTS = {
    "actions": (
        """
        rules:
          - name: r
            actions:
              - sett: {expires_in: 3600}
        """,
        _schema_words(DEFS["rule"]["properties"]["actions"]["prefixItems"][0]),
    ),
    "match keys": (
        """
        rules:
          - name: r
            match: {hostname: auth.example.com}
            actions: [{remove: [a]}]
        """,
        _schema_words(DEFS["match"]),
    ),
    "rule keys": (
        """
        rules:
          - name: r
            notes: why
            actions: [{remove: [a]}]
        """,
        _schema_words(DEFS["rule"]),
    ),
    "condition operators": (
        """
        rules:
          - name: r
            when: {expires_in: {equal: 3600}}
            actions: [{remove: [a]}]
        """,
        _schema_words(_titled(DEFS["condition"]["anyOf"], "operators")),
    ),
    "coerce types": (
        """
        rules:
          - name: r
            actions:
              - coerce: {expires_in: boolean}
        """,
        set(DEFS["coerce_type"]["enum"]),
    ),
    "value sources": (
        """
        rules:
          - name: r
            actions:
              - default: {expires_in: {from_jwt: access_token}}
        """,
        {alt["required"][0] for alt in DEFS["value"]["anyOf"] if "required" in alt},
    ),
    "example keys": (
        """
        rules:
          - name: r
            actions: [{remove: [a]}]
            examples:
              - request: {url: "https://auth.example.com/token"}
                respone: {status: 200}
        """,
        _schema_words(DEFS["example"]),
    ),
}


class TestSchemaDocument:
    def test_is_a_valid_draft_2020_12_schema(self):
        assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(SCHEMA)

    def test_every_object_closes_its_keys(self):
        def walk(node, where):
            if isinstance(node, dict):
                if "properties" in node:
                    assert node.get("additionalProperties") is False, where
                for key, value in node.items():
                    walk(value, f"{where}/{key}")
            elif isinstance(node, list):
                for i, value in enumerate(node):
                    walk(value, f"{where}/{i}")

        walk(SCHEMA, "#")


@pytest.mark.parametrize(
    "path", shipped_files(), ids=lambda p: str(p.relative_to(ROOT))
)
class TestShippedFiles:
    def test_schema_accepts(self, path):
        assert schema_errors(path.read_text(encoding="utf-8")) == []

    def test_loader_accepts_every_rule(self, path):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))

        ruleset = load_rules(path)

        assert [rule.name for rule in ruleset.rules] == [
            r["name"] for r in data["rules"]
        ]
        assert [len(rule.examples) for rule in ruleset.rules] == [
            len(r.get("examples") or []) for r in data["rules"]
        ]

    def test_first_line_points_editors_at_the_schema(self, path):
        first = SCHEMA_COMMENT.match(path.read_text(encoding="utf-8"))

        assert first, "first line must be '# yaml-language-server: $schema=...'"
        assert (path.parent / first.group(1)).resolve() == SCHEMA_PATH


def shows_a_change(example: dict) -> bool:
    """Whether an example's expectation differs from the response as sent."""
    expect, response = example.get("expect") or {}, example["response"]
    status = response.get("status", 200)
    sent = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    received = {k.lower(): v for k, v in (expect.get("headers") or {}).items()}

    return (
        not expect.get("unchanged")
        or expect.get("status", status) != status
        or any(sent.get(name) != value for name, value in received.items())
    )


@pytest.mark.parametrize(
    "path", sorted((ROOT / "recipes").glob("*.yaml")), ids=lambda p: p.name
)
def test_recipe_says_what_it_fixes_and_shows_it(path):
    text = path.read_text(encoding="utf-8")
    header = text.split("\nrules:", 1)[0]
    rules = yaml.safe_load(text)["rules"]
    examples = [ex for rule in rules for ex in rule.get("examples") or []]

    for heading in ("Fault:", "Breaks:", "Seen at:", "Adapt:"):
        assert f"# {heading}" in header, f"no '{heading}' in the header"
    for rule in rules:
        changes = [ex for ex in rule.get("examples") or [] if shows_a_change(ex)]
        assert changes, f"{rule['name']}: no example of what the rule changes"
    assert not all(shows_a_change(ex) for ex in examples), "no example of what stays"


@pytest.mark.parametrize(
    ("where", "text"), readme_blocks(), ids=[where for where, _ in readme_blocks()]
)
def test_readme_block_accepted_by_both(where, text):
    assert schema_errors(text) == [], where
    parse_rules(text, where)


@pytest.mark.parametrize("text", VALID.values(), ids=VALID.keys())
def test_valid_file_accepted_by_both(text):
    text = rules_file(text)

    assert schema_errors(text) == []
    parse_rules(text, "valid.yaml")


@pytest.mark.parametrize("text", BROKEN.values(), ids=BROKEN.keys())
def test_broken_file_refused_by_both(text):
    text = rules_file(text)

    assert schema_errors(text) != []
    error = loader_error(text)
    assert re.match(r"broken\.yaml:\d+: ", str(error)), str(error)


@pytest.mark.parametrize("text", LOADER_ONLY.values(), ids=LOADER_ONLY.keys())
def test_refused_by_the_loader_alone(text):
    text = rules_file(text)

    assert schema_errors(text) == [], "the schema cannot see this fault"
    error = loader_error(text)
    assert re.match(r"broken\.yaml:\d+: ", str(error)), str(error)


@pytest.mark.parametrize("text", CHECK_TIME.values(), ids=CHECK_TIME.keys())
def test_example_fault_refused_by_schema_and_check(text, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(rules_file(text), encoding="utf-8")
    out = io.StringIO()

    assert schema_errors(path.read_text(encoding="utf-8")) != []
    assert cli.check(str(path), out=out) == 1, out.getvalue()


@pytest.mark.parametrize(("text", "words"), WORD_LISTS.values(), ids=WORD_LISTS.keys())
def test_loader_offers_the_schemas_words(text, words):
    message = str(loader_error(rules_file(text)))

    offered = re.search(r"\(expected one of: ([^);]*)", message)
    assert offered, message
    assert {word.strip() for word in offered.group(1).split(",")} == words
