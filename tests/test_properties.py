"""Properties of the whole rewrite path, checked on generated inputs (hypothesis).

- The addon's hooks never raise, whatever the rules, request and response.
- A response that no rule changes keeps its status, headers and bytes.
- The shipped rules and recipes are idempotent: applying them twice gives what
  applying them once gave.
- A mutated rules file gives a RuleError naming the file, or a valid rule set.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from urllib.parse import urlencode

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from mitmproxy.net import encoding
from mitmproxy.test import taddons, tflow, tutils

from addon import engine
from addon.addon import TokenFix
from addon.exchange import RequestInfo
from addon.offline import expand
from addon.rules import RuleError, parse_rules
from tests.helpers import REPO, basic_auth

NOW = 1_767_225_600.0
SHIPPED = [REPO / "rules.yaml", *sorted((REPO / "recipes").glob("*.yaml"))]
FIELDS = [
    "access_token",
    "refresh_token",
    "id_token",
    "expires_in",
    "expires",
    "expires_at",
    "token_type",
    "scope",
    "error",
    "data",
    "data.access_token",
    "authed_user.access_token",
    "refresh_expires_in",
]
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# -- generated JSON ---------------------------------------------------------------

names = st.sampled_from([f.split(".")[0] for f in FIELDS]) | st.text(max_size=6)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["Bearer", "bearer", "3600", " 42 ", "a,b c", "", "x.y.z"])
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=5)
    ),
    max_leaves=20,
)
documents = st.dictionaries(names, json_values, max_size=8)


@st.composite
def json_texts(draw) -> bytes:
    """A JSON object as some server might write it: spacing and escapes vary."""
    doc = draw(documents)
    indent = draw(st.sampled_from([None, 0, 2]))
    ascii_only = draw(st.booleans())
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,", " : ")]))
    text = json.dumps(
        doc, indent=indent, ensure_ascii=ascii_only, separators=separators
    )
    return text.encode("utf-8")


bodies = (
    json_texts()
    | st.binary(max_size=64)
    | st.sampled_from(
        [b"", b"[]", b'"x"', b"null", b'{"a":NaN}', b'{"a":1e400}', b'{"a":1,"a":2}']
    )
    | st.dictionaries(st.sampled_from(FIELDS), st.text(max_size=8), min_size=1).map(
        lambda d: urlencode(d).encode()
    )
)
response_encodings = st.sampled_from([None, "gzip", "deflate", "br", "zstd", "x-gzip"])

# -- generated requests ------------------------------------------------------------

params = st.fixed_dictionaries(
    {"grant_type": st.sampled_from(["refresh_token", "authorization_code", "x"])},
    optional={
        "refresh_token": st.text(max_size=10),
        "client_id": st.sampled_from(["alexa-skill", "google-home"]),
        "client_secret": st.text(max_size=10),
        "code": st.text(max_size=10),
    },
)


@st.composite
def requests(draw) -> tuple[str, dict[str, str], bytes]:
    """(path with query, headers, body): form, JSON or query, maybe compressed."""
    fields = draw(params)
    style = draw(st.sampled_from(["form", "json", "query", "broken"]))
    headers: dict[str, str] = {}
    query = ""
    if style == "form":
        body = urlencode(fields).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif style == "json":
        body = json.dumps(fields).encode()
        headers["Content-Type"] = "application/json"
    elif style == "query":
        body, query = b"", "?" + urlencode(fields)
    else:
        body = draw(st.binary(max_size=40))
    if draw(st.booleans()):
        headers["Authorization"] = basic_auth("alexa-skill", "s3cret")
    if body and draw(st.booleans()):
        name = draw(st.sampled_from(["gzip", "deflate", "br", "zstd", "bogus"]))
        body = encoding.encode(body, name) if name != "bogus" else body
        headers["Content-Encoding"] = name
    return f"/oauth/token{query}", headers, body


# -- generated rule files ----------------------------------------------------------

paths = st.sampled_from(FIELDS)
literals = (
    st.none()
    | st.booleans()
    | st.integers(-5, 5000)
    | st.sampled_from(["Bearer", "3600", "openid email"])
)
sources = st.builds(
    lambda kind, arg, fallback: {kind: arg, **fallback},
    st.sampled_from(["from_jwt_exp", "from_field", "from_timestamp"]),
    paths,
    st.just({}) | st.builds(lambda v: {"fallback": v}, st.integers(0, 9999)),
) | st.builds(
    lambda name: {"from_request": name},
    st.sampled_from(["refresh_token", "client_id", "grant_type"]),
)
conditions = (
    st.sampled_from(["missing", "present"])
    | st.none()
    | literals
    | st.builds(lambda op, n: {op: n}, st.sampled_from(["lt", "gte"]), st.integers())
    | st.builds(lambda v: {"in": v}, st.lists(literals, min_size=1, max_size=3))
    | st.builds(lambda r: {"matches": r}, st.sampled_from([".+", "[Bb]earer", "\\d+"]))
)


@st.composite
def actions(draw) -> dict:
    op = draw(
        st.sampled_from(
            ["set", "default", "remove", "rename", "coerce", "unwrap", "header"]
            + ["status", "request_header"]
        )
    )
    if op in ("set", "default"):
        return {op: draw(st.dictionaries(paths, literals | sources, min_size=1))}
    if op == "remove":
        return {op: draw(st.lists(paths, min_size=1, max_size=3, unique=True))}
    if op == "rename":
        old, new = draw(st.lists(paths, min_size=2, max_size=2, unique=True))
        return {op: {old: new}}
    if op == "coerce":
        kinds = st.sampled_from(["integer", "number", "string", "space_delimited"])
        return {op: draw(st.dictionaries(paths, kinds, min_size=1))}
    if op == "unwrap":
        return {op: draw(st.sampled_from(["data", "authed_user"]))}
    if op in ("header", "request_header"):
        value = st.none() | st.sampled_from(["application/json", "no-store"])
        names = st.sampled_from(["Content-Type", "Cache-Control", "X-Fixed"])
        return {op: draw(st.dictionaries(names, value, min_size=1, max_size=2))}
    return {op: draw(st.sampled_from([200, 400, 401, 503]))}


@st.composite
def rule_files(draw) -> str:
    rules = []
    for i in range(draw(st.integers(1, 4))):
        match = {"host": "127.0.0.1", "path": "/oauth/*"}
        if draw(st.booleans()):
            match["grant_type"] = draw(st.sampled_from(["refresh_token", "x"]))
        match["status"] = draw(
            st.sampled_from(["2xx", "4xx", [200, "5xx"], 400, "1xx"])
        )
        rule = {"name": f"rule-{i}", "match": match}
        if draw(st.booleans()):
            rule["when"] = draw(st.dictionaries(paths, conditions, max_size=2))
        acts = draw(st.lists(actions(), min_size=1, max_size=4))
        if draw(st.integers(0, 4)) == 0:
            acts.insert(0, {"form_to_json": True})
        rule["actions"] = acts
        rules.append(rule)
    return yaml.safe_dump({"rules": rules}, sort_keys=False)


# -- the addon, through mitmproxy's own test tools ------------------------------


@pytest.fixture(scope="module")
def addon_context():
    tf = TokenFix()
    with taddons.context(tf) as tctx:
        yield tctx, tf


def exchange(tf: TokenFix, target: str, req_headers, req_body, status, headers, raw):
    req = tutils.treq(
        host="127.0.0.1",
        port=80,
        method=b"POST",
        path=target.encode(),
        headers=tutils.http.Headers(
            [(k.encode(), v.encode()) for k, v in req_headers.items()]
        ),
        content=b"",
    )
    req.raw_content = req_body
    flow = tflow.tflow(req=req)
    tf.request(flow)
    flow.response = tutils.tresp(
        status_code=status,
        headers=tutils.http.Headers(
            [(k.encode(), v.encode()) for k, v in headers.items()]
        ),
        content=b"",
    )
    flow.response.raw_content = raw
    tf.response(flow)
    return flow


def response_headers(content_encoding: str | None, raw: bytes) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Content-Length": str(len(raw))}
    if content_encoding:
        headers["Content-Encoding"] = content_encoding
    return headers


def encoded(body: bytes, name: str | None) -> bytes:
    if name is None:
        return body
    return encoding.encode(body, "gzip" if name == "x-gzip" else name)


class TestTheAddonNeverRaises:
    @PROPERTY
    @given(
        rules=rule_files(),
        request=requests(),
        status=st.sampled_from([200, 201, 400, 401, 500, 503]),
        body=bodies,
        content_encoding=response_encodings,
        profile=st.sampled_from(["rfc6749", "alexa", "google", "none"]),
        dry_run=st.booleans(),
    )
    def test_and_an_unchanged_response_keeps_its_bytes(
        self,
        addon_context,
        rules,
        request,
        status,
        body,
        content_encoding,
        profile,
        dry_run,
    ):
        tctx, tf = addon_context
        tctx.options.update(tokenfix_profile=profile, tokenfix_dry_run=dry_run)
        tf.rules = parse_rules(rules, "generated.yaml")
        target, req_headers, req_body = request
        raw = encoded(body, content_encoding)
        headers = response_headers(content_encoding, raw)

        flow = exchange(tf, target, req_headers, req_body, status, headers, raw)

        resp = flow.response
        if "tokenfix" not in flow.metadata or dry_run:
            assert resp.raw_content == raw
            assert resp.status_code == status
            assert dict(resp.headers) == headers
        else:
            assert resp.headers["Content-Length"] == str(len(resp.raw_content))
            assert flow.marked in (":wrench:", ":x:")


class TestUnchangedBytes:
    @PROPERTY
    @given(body=json_texts(), content_encoding=response_encodings)
    def test_writing_what_is_already_there_keeps_every_byte(
        self, addon_context, body, content_encoding
    ):
        doc = json.loads(body)
        assume(doc)
        field, value = next(iter(doc.items()))
        rules = yaml.safe_dump(
            {
                "rules": [
                    {
                        "name": "same-value",
                        "match": {"host": "127.0.0.1", "path": "/oauth/token"},
                        # default writes over null: only a value stops it
                        "actions": [{"set": {field: value}}]
                        + ([{"default": {field: 0}}] if value is not None else []),
                    }
                ]
            }
        )
        tctx, tf = addon_context
        tctx.options.update(tokenfix_profile="none", tokenfix_dry_run=False)
        assume("." not in field)
        try:
            tf.rules = parse_rules(rules, "same.yaml")
        except RuleError:
            # a generated value YAML cannot carry as JSON (a float beyond
            # what YAML writes back exactly); not what this test is about
            assume(False)
        raw = encoded(body, content_encoding)
        headers = response_headers(content_encoding, raw)
        req = ("/oauth/token", {"Content-Type": "application/json"}, b"{}")

        flow = exchange(tf, *req, 200, headers, raw)

        assert "tokenfix" not in flow.metadata
        assert flow.response.raw_content == raw
        assert dict(flow.response.headers) == headers


# -- the shipped rules are idempotent ---------------------------------------------


def example_requests() -> list[tuple[Path, RequestInfo]]:
    """Every example request of every shipped file, each with its file."""
    found = []
    for path in SHIPPED:
        ruleset = parse_rules(path.read_text(encoding="utf-8"), str(path))
        for rule in ruleset.rules:
            for example in rule.examples:
                req = example.get("request") or {}
                found.append((path, ruleset, example_request(req)))
    return found


def example_request(req: dict) -> RequestInfo:
    from urllib.parse import urlsplit

    url = urlsplit(req.get("url", "https://example.com/"))
    headers = {k: expand(str(v), NOW) for k, v in (req.get("headers") or {}).items()}
    body = expand(str(req.get("body") or ""), NOW).encode()
    return RequestInfo(
        req.get("method", "POST"), url.hostname, url.path, url.query, headers, body
    )


EXAMPLES = example_requests()
token_documents = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=7)


class TestShippedRulesAreIdempotent:
    def test_every_shipped_file_has_example_requests(self):
        files = {path.name for path, _, _ in EXAMPLES}
        assert files == {path.name for path in SHIPPED}

    @PROPERTY
    @given(
        example=st.sampled_from(EXAMPLES),
        doc=token_documents,
        form=st.booleans(),
        status=st.sampled_from([200, 400, 403, 500]),
        content_type=st.sampled_from(["application/json", "text/html"]),
    )
    def test_applying_them_twice_gives_what_once_gave(
        self, example, doc, form, status, content_type
    ):
        _, ruleset, req = example
        matched = ruleset.for_request(req)
        if form:
            body = urlencode({k: json.dumps(v) for k, v in doc.items()}).encode()
        else:
            body = json.dumps(doc).encode()
        headers = {"content-type": content_type}

        once = apply(matched, req, status, headers, body)
        twice = apply(matched, req, *once)

        assert twice == once

    def test_the_auth0_rule_applied_twice(self):
        # a known exchange, so the property above is seen to apply the rule
        path, ruleset, req = EXAMPLES[0]
        assert path.name == "rules.yaml"
        once = apply(ruleset.for_request(req), req, 200, {}, b'{"access_token":"x"}')
        assert once[2] == b'{"access_token":"x","expires_in":3600}'
        assert apply(ruleset.for_request(req), req, *once) == once


def apply(rules, req, status, headers, body) -> tuple[int, dict, bytes]:
    outcome = engine.rewrite(rules, req, status, headers, body, now=NOW)
    headers = dict(headers)
    for name, value in outcome.headers.items():
        if value is None:
            headers.pop(name.lower(), None)
        else:
            headers[name.lower()] = value
    new_status = outcome.status if outcome.status is not None else status
    return new_status, headers, outcome.body if outcome.body is not None else body


# -- mutated rule files -----------------------------------------------------------

SHIPPED_TEXTS = [(p.name, p.read_text(encoding="utf-8")) for p in SHIPPED]
NOISE = st.sampled_from(
    [":", "- ", "{", "}", "[", "]", "'", '"', "#", "&a", "*a", "!!python/none", "\t"]
    + ["~", "null", "0x1F", "1e400", ".inf", "2024-01-01", "?", "|", ">", "%", "@"]
    + ["from_jwt_exp", "sett", "status", "  ", "\n", "\n  - ", "rules:", "<<: *a"]
) | st.text(max_size=4)


@st.composite
def mutated(draw) -> tuple[str, str]:
    name, text = draw(st.sampled_from(SHIPPED_TEXTS))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "duplicate", "truncate"]))
        if kind == "insert":
            text = text[:at] + draw(NOISE) + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)) :]
        elif kind == "duplicate":
            lines = text.splitlines(keepends=True)
            i = draw(st.integers(0, max(len(lines) - 1, 0)))
            text = "".join(lines[: i + 1] + lines[i:])
        else:
            text = text[:at]
    return name, text


class TestMutatedRuleFiles:
    @settings(max_examples=400, deadline=None)
    @given(case=mutated())
    def test_give_a_rule_error_or_a_valid_rule_set(self, case):
        name, text = case
        try:
            ruleset = parse_rules(text, name)
        except RuleError as e:
            message = str(e)
            assert message.startswith(f"{name}:"), message
            assert e.line >= 0
            assert "Traceback" not in message
            return
        assert all(rule.name and rule.actions for rule in ruleset.rules)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            (
                "rules:\n  - name: a\n    actions: [{sett: {}}]\n",
                "unknown action 'sett'",
            ),
            ("rules: [", "rules.yaml:1: "),
            ("rules:\n  - name: a\n    name: b\n", "duplicate key 'name'"),
        ],
    )
    def test_known_mutations(self, text, message):
        with pytest.raises(RuleError) as e:
            parse_rules(text, "rules.yaml")
        assert message in str(e.value)

    def test_a_control_character_is_located_on_its_line(self):
        text = 'rules:\n  - name: a\n    actions:\n      - set: {a: "x\x1fy"}\n'
        with pytest.raises(RuleError) as e:
            parse_rules(text, "rules.yaml")
        assert str(e.value) == (
            "rules.yaml:4: invalid YAML: unacceptable character #x001f: "
            "special characters are not allowed"
        )


def test_a_gzip_request_body_is_read_for_its_grant_type(addon_context):
    # a property above sends compressed requests; this one shows they are read
    tctx, tf = addon_context
    tctx.options.update(tokenfix_profile="none", tokenfix_dry_run=False)
    tf.rules = parse_rules(
        "rules:\n  - name: r\n    match: {host: 127.0.0.1, path: /oauth/token, "
        "grant_type: refresh_token}\n    actions: [{set: {expires_in: 1}}]\n"
    )
    body = gzip.compress(b"grant_type=refresh_token")
    headers = {
        "Content-Encoding": "gzip",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    raw = b'{"access_token":"x"}'
    flow = exchange(
        tf, "/oauth/token", headers, body, 200, response_headers(None, raw), raw
    )
    assert flow.response.content == b'{"access_token":"x","expires_in":1}'
