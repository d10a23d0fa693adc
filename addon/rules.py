"""The rules file: loading, validation and the compiled rule types.

Every error is a RuleError whose text names file:line, the rule and the
field, says what was expected and what was found, and lists the allowed
words where there is a choice.
"""

import datetime
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from addon import conditions as cond
from addon.ruleset import RuleSet
from addon.yamlsrc import LineDict, LineList, YamlError, load

ACTIONS = (
    "set",
    "default",
    "remove",
    "rename",
    "coerce",
    "unwrap",
    "header",
    "request_header",
    "status",
    "form_to_json",
)
SOURCES = ("from_jwt_exp", "from_request", "from_field", "from_timestamp")
COERCIONS = ("integer", "number", "string", "space_delimited")
MATCH_KEYS = ("host", "path", "method", "grant_type", "status", "client_id", "headers")
RULE_KEYS = ("name", "description", "match", "when", "actions", "examples")
CONDITION_OPS = ("equals", "in", "lt", "lte", "gt", "gte", "matches")
EXAMPLE_KEYS = ("name", "request", "response", "expect")
EXAMPLE_PART_KEYS = {
    "request": ("method", "url", "headers", "body"),
    "response": ("status", "headers", "body"),
    "expect": ("status", "headers", "unchanged", "body", "fields"),
}
# tokenfix keeps these right itself whenever it touches a message
MANAGED_HEADERS = frozenset({"content-length", "content-encoding", "transfer-encoding"})
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
STATUS_CLASS = re.compile(r"[1-5]xx", re.IGNORECASE)


class RuleError(ValueError):
    """A fault in a rules file, located as file:line, rule and field."""

    def __init__(
        self, file: str, line: int, rule: str | None, field: str | None, message: str
    ) -> None:
        self.file = file
        self.line = line
        self.rule = rule
        self.field = field
        self.message = message
        where = f"{file}:{line}: " if line else f"{file}: "
        if rule is not None:
            where += f"rule {rule!r}: "
        if field:
            where += f"{field}: "
        super().__init__(where + message)


@dataclass(frozen=True, slots=True)
class Source:
    """A value read at rewrite time: `{from_jwt_exp: access_token, fallback: 60}`."""

    kind: str
    arg: str
    path: tuple[str, ...]
    fallback: object
    has_fallback: bool


@dataclass(frozen=True, slots=True)
class Action:
    op: str
    # (field, dotted path, argument) triples for the mapping actions, a single
    # triple for the others; argument is a literal, a Source, a name or a code
    items: tuple[tuple[str, tuple[str, ...], object], ...]
    line: int


@dataclass(frozen=True, slots=True)
class Condition:
    field: str
    path: tuple[str, ...]
    test: cond.Test


@dataclass(frozen=True, slots=True)
class Match:
    hosts: tuple[str, ...] | None = None
    host_re: re.Pattern | None = None
    paths: tuple[str, ...] | None = None
    path_re: re.Pattern | None = None
    methods: frozenset[str] = frozenset({"POST"})
    grant_types: frozenset[str] | None = None
    client_ids: frozenset[str] | None = None
    headers: tuple[tuple[str, re.Pattern], ...] = ()
    statuses: frozenset[int] = frozenset(range(200, 300))


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    line: int
    match: Match
    when: tuple[Condition, ...]
    actions: tuple[Action, ...]
    examples: tuple[dict, ...] = ()
    form_to_json: bool = False
    request_headers: tuple[tuple[str, str | None], ...] = ()
    needs_body_params: bool = field(default=False)


# ---------------------------------------------------------------- helpers


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if isinstance(value, dict):
        return "a mapping" if value else "an empty mapping"
    return f"a YAML {type(value).__name__}"


class _Ctx:
    """Where a check stands: file, rule, and the line to blame."""

    def __init__(self, file: str, rule: str | None, line: int) -> None:
        self.file = file
        self.rule = rule
        self.line = line

    def error(self, field: str | None, message: str, line: int | None = None):
        return RuleError(self.file, line or self.line, self.rule, field, message)

    def expected(self, field: str, what: str, got: object, line: int | None = None):
        return self.error(field, f"expected {what}, got {_kind(got)}", line)


def _line_of(container: object, key: object, default: int) -> int:
    if isinstance(container, LineDict):
        return container.lines.get(key, container.line) or default
    if isinstance(container, LineList) and isinstance(key, int):
        return container.lines[key] if key < len(container.lines) else container.line
    return default


def _words(words: tuple[str, ...]) -> str:
    return ", ".join(words)


def _json_literal(ctx: _Ctx, field: str, value: object, line: int) -> object:
    """The value itself when it has a JSON form; a RuleError otherwise."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            msg = f"number {value} has no JSON form (JSON numbers are finite)"
            raise ctx.error(field, msg, line)
        return value
    if isinstance(value, list):
        return [
            _json_literal(ctx, field, v, _line_of(value, i, line))
            for i, v in enumerate(value)
        ]
    if isinstance(value, dict):
        return {
            k: _json_literal(ctx, f"{field}.{k}", v, _line_of(value, k, line))
            for k, v in value.items()
        }
    if isinstance(value, datetime.date | datetime.datetime):
        msg = "a YAML date has no JSON form (quote it to make it a string)"
    elif isinstance(value, set):
        msg = "a YAML set has no JSON form (write a list)"
    elif isinstance(value, bytes):
        msg = "YAML binary data has no JSON form (write a string)"
    else:
        msg = f"{_kind(value)} has no JSON form"
    raise ctx.error(field, msg, line)


def _path(ctx: _Ctx, field: str, value: object, line: int) -> tuple[str, ...]:
    if not isinstance(value, str) or not value:
        raise ctx.expected(field, "a field name or dotted path", value, line)
    # TODO: offer an escape for member names that contain a dot; every dot
    # splits the path today.
    parts = tuple(value.split("."))
    if "" in parts:
        raise ctx.error(field, f"{value!r} has an empty segment", line)
    return parts


def _strings(ctx: _Ctx, field: str, value: object, line: int) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str) and v for v in items):
        raise ctx.expected(field, "a string or a list of strings", value, line)
    return tuple(items)


# ---------------------------------------------------------------- match


def _statuses(ctx: _Ctx, value: object, line: int) -> frozenset[int]:
    codes: set[int] = set()
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, int) and not isinstance(item, bool) and 100 <= item <= 599:
            codes.add(item)
        elif isinstance(item, str) and STATUS_CLASS.fullmatch(item):
            base = int(item[0]) * 100
            codes.update(range(base, base + 100))
        else:
            what = "a status code from 100 to 599, a class such as '2xx', or a list"
            raise ctx.expected("match.status", what, item, line)
    if not codes:
        raise ctx.expected("match.status", "at least one status", value, line)
    return frozenset(codes)


def _match(ctx: _Ctx, raw: object, line: int) -> Match:
    if raw is None:
        return Match()
    if not isinstance(raw, dict):
        raise ctx.expected("match", "a mapping", raw, line)
    values: dict = {}
    for key, value in raw.items():
        kline = _line_of(raw, key, line)
        if key not in MATCH_KEYS:
            msg = f"unknown key {key!r} (expected one of: {_words(MATCH_KEYS)})"
            raise ctx.error("match", msg, kline)
        if key == "status":
            values["statuses"] = _statuses(ctx, value, kline)
        elif key == "headers":
            values["headers"] = _header_globs(ctx, value, kline)
        elif key == "host":
            values["hosts"] = _strings(ctx, "match.host", value, kline)
            values["host_re"] = cond.compile_globs(values["hosts"])
        elif key == "path":
            values["paths"] = _strings(ctx, "match.path", value, kline)
            values["path_re"] = cond.compile_globs(values["paths"])
        elif key == "method":
            methods = _strings(ctx, "match.method", value, kline)
            values["methods"] = frozenset(m.upper() for m in methods)
        elif key == "grant_type":
            values["grant_types"] = frozenset(
                _strings(ctx, "match.grant_type", value, kline)
            )
        elif key == "client_id":
            values["client_ids"] = frozenset(
                _strings(ctx, "match.client_id", value, kline)
            )
    return Match(**values)


def _header_globs(ctx: _Ctx, raw: object, line: int):
    if not isinstance(raw, dict) or not raw:
        raise ctx.expected(
            "match.headers", "a mapping of header name to glob", raw, line
        )
    result = []
    for name, globs in raw.items():
        kline = _line_of(raw, name, line)
        if not HEADER_NAME.fullmatch(name):
            raise ctx.error("match.headers", f"{name!r} is not a header name", kline)
        patterns = _strings(ctx, f"match.headers.{name}", globs, kline)
        result.append((name.lower(), cond.compile_globs(patterns)))
    return tuple(result)


# ---------------------------------------------------------------- when


def _condition(
    ctx: _Ctx, name: str, raw: object, line: int, prefix: str = "when"
) -> cond.Test:
    field = f"{prefix}.{name}"
    if raw == "missing":
        return cond.missing
    if raw == "present":
        return cond.present
    if raw is None:
        return cond.is_null
    if not isinstance(raw, dict):
        return cond.equals(_json_literal(ctx, field, raw, line))
    if not raw:
        raise ctx.error(field, "an empty mapping tests nothing", line)
    tests: list[cond.Test] = []
    bounds: dict[str, float] = {}
    for op, arg in raw.items():
        oline = _line_of(raw, op, line)
        if op not in CONDITION_OPS:
            msg = f"unknown condition {op!r} (expected one of: {_words(CONDITION_OPS)}"
            msg += "; to compare with a mapping, write {equals: {...}})"
            raise ctx.error(field, msg, oline)
        if op == "equals":
            tests.append(cond.equals(_json_literal(ctx, field, arg, oline)))
        elif op == "in":
            if not isinstance(arg, list) or not arg:
                raise ctx.expected(f"{field}.in", "a non-empty list", arg, oline)
            tests.append(cond.one_of(_json_literal(ctx, field, arg, oline)))
        elif op == "matches":
            tests.append(cond.matches(_regex(ctx, f"{field}.matches", arg, oline)))
        else:
            if not cond.is_number(arg) or not math.isfinite(arg):
                raise ctx.expected(f"{field}.{op}", "a finite number", arg, oline)
            bounds[op] = arg
    if bounds:
        tests.append(cond.ordered(bounds))
    return cond.all_of(tests)


def _regex(ctx: _Ctx, field: str, raw: object, line: int) -> re.Pattern:
    if not isinstance(raw, str):
        raise ctx.expected(field, "a regular expression string", raw, line)
    try:
        return re.compile(raw)
    except re.error as e:
        raise ctx.error(
            field, f"invalid regular expression {raw!r}: {e}", line
        ) from None


def compile_condition(
    name: str, raw: object, file: str, line: int, rule: str | None, prefix: str
) -> cond.Test:
    """A `when` condition outside a rule's `when`, as example expectations use."""
    return _condition(_Ctx(file, rule, line), name, raw, line, prefix)


def _when(ctx: _Ctx, raw: object, line: int) -> tuple[Condition, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise ctx.expected("when", "a mapping of field to condition", raw, line)
    result = []
    for name, value in raw.items():
        kline = _line_of(raw, name, line)
        path = _path(ctx, "when", name, kline)
        result.append(Condition(name, path, _condition(ctx, name, value, kline)))
    return tuple(result)


# ---------------------------------------------------------------- actions


def _value(ctx: _Ctx, field: str, raw: object, line: int) -> object:
    """A JSON literal, or a Source when the mapping names one."""
    if not isinstance(raw, dict):
        return _json_literal(ctx, field, raw, line)
    kinds = [k for k in raw if k in SOURCES]
    strays = [k for k in raw if k.startswith("from_") and k not in SOURCES]
    if strays:
        msg = f"unknown value source {strays[0]!r} (expected one of: {_words(SOURCES)})"
        raise ctx.error(field, msg, _line_of(raw, strays[0], line))
    if not kinds:
        if "fallback" in raw:
            msg = f"'fallback' goes with a value source ({_words(SOURCES)})"
            raise ctx.error(field, msg, _line_of(raw, "fallback", line))
        return _json_literal(ctx, field, raw, line)
    if len(kinds) > 1:
        raise ctx.error(field, f"one value source at a time, got {_words(kinds)}", line)
    kind = kinds[0]
    for key in raw:
        if key not in (kind, "fallback"):
            msg = f"unknown key {key!r} next to {kind} (expected: fallback)"
            raise ctx.error(field, msg, _line_of(raw, key, line))
    arg = raw[kind]
    aline = _line_of(raw, kind, line)
    if kind == "from_request":
        if not isinstance(arg, str) or not arg:
            raise ctx.expected(f"{field}.{kind}", "a parameter name", arg, aline)
        path: tuple[str, ...] = (arg,)
    else:
        path = _path(ctx, f"{field}.{kind}", arg, aline)
    has_fallback = "fallback" in raw
    fallback = None
    if has_fallback:
        fline = _line_of(raw, "fallback", line)
        fallback = _json_literal(ctx, f"{field}.fallback", raw["fallback"], fline)
    return Source(kind, arg, path, fallback, has_fallback)


def _pairs(ctx: _Ctx, op: str, raw: object, line: int) -> list[tuple[str, int, object]]:
    if not isinstance(raw, dict) or not raw:
        pair = "name: value" if op in ("header", "request_header") else "field: value"
        raise ctx.expected(op, f"a mapping of one or more {pair} pairs", raw, line)
    return [(k, _line_of(raw, k, line), v) for k, v in raw.items()]


def _action(ctx: _Ctx, index: int, raw: object, line: int) -> Action:
    if not isinstance(raw, dict) or len(raw) != 1:
        what = f"a mapping with exactly one key, one of: {_words(ACTIONS)}"
        got = _kind(raw)
        if isinstance(raw, dict) and raw:
            got = f"{len(raw)} keys ({_words(tuple(raw))})"
            got += ": each action is its own '- ' item, its fields indented under it"
        raise ctx.error(f"actions[{index}]", f"expected {what}, got {got}", line)
    ((op, arg),) = raw.items()
    line = _line_of(raw, op, line)
    if op not in ACTIONS:
        msg = f"unknown action {op!r} (expected one of: {_words(ACTIONS)})"
        raise ctx.error(None, msg, line)
    builder = _BUILDERS[op]
    return Action(op, tuple(builder(ctx, op, arg, line)), line)


def _build_write(ctx: _Ctx, op: str, raw: object, line: int):
    for name, kline, value in _pairs(ctx, op, raw, line):
        path = _path(ctx, op, name, kline)
        yield name, path, _value(ctx, f"{op}.{name}", value, kline)


def _build_remove(ctx: _Ctx, op: str, raw: object, line: int):
    names = raw if isinstance(raw, list) else [raw]
    if not names:
        raise ctx.expected(op, "a list of field names", raw, line)
    for i, name in enumerate(names):
        yield name, _path(ctx, op, name, _line_of(raw, i, line)), None


def _build_rename(ctx: _Ctx, op: str, raw: object, line: int):
    for name, kline, target in _pairs(ctx, op, raw, line):
        path = _path(ctx, op, name, kline)
        yield name, path, _path(ctx, f"{op}.{name}", target, kline)


def _build_coerce(ctx: _Ctx, op: str, raw: object, line: int):
    for name, kline, kind in _pairs(ctx, op, raw, line):
        if not isinstance(kind, str):
            what = f"a type, one of: {_words(COERCIONS)}"
            raise ctx.expected(f"{op}.{name}", what, kind, kline)
        if kind not in COERCIONS:
            msg = f"unknown type {kind!r} (expected one of: {_words(COERCIONS)})"
            raise ctx.error(f"{op}.{name}", msg, kline)
        yield name, _path(ctx, op, name, kline), kind


def _build_unwrap(ctx: _Ctx, op: str, raw: object, line: int):
    yield raw, _path(ctx, op, raw, line), None


def _build_header(ctx: _Ctx, op: str, raw: object, line: int):
    for name, kline, value in _pairs(ctx, op, raw, line):
        if not HEADER_NAME.fullmatch(name):
            raise ctx.error(op, f"{name!r} is not a header name", kline)
        if name.lower() in MANAGED_HEADERS:
            msg = f"{name} cannot be set by a rule: tokenfix keeps it right itself"
            raise ctx.error(op, msg, kline)
        if op == "request_header" and name.lower() == "host":
            msg = f"{name} cannot be set by a rule: it names the upstream server"
            raise ctx.error(op, msg, kline)
        if value is not None and not isinstance(value, str):
            raise ctx.expected(
                f"{op}.{name}", "a string, or null to remove", value, kline
            )
        yield name, (name.lower(),), value


def _build_status(ctx: _Ctx, op: str, raw: object, line: int):
    if not isinstance(raw, int) or isinstance(raw, bool) or not 100 <= raw <= 599:
        raise ctx.expected(op, "a status code from 100 to 599", raw, line)
    yield "status", (), raw


def _build_form_to_json(ctx: _Ctx, op: str, raw: object, line: int):
    if raw is not True:
        raise ctx.expected(op, "true", raw, line)
    yield "body", (), True


_BUILDERS = {
    "set": _build_write,
    "default": _build_write,
    "remove": _build_remove,
    "rename": _build_rename,
    "coerce": _build_coerce,
    "unwrap": _build_unwrap,
    "header": _build_header,
    "request_header": _build_header,
    "status": _build_status,
    "form_to_json": _build_form_to_json,
}


def _actions(ctx: _Ctx, raw: object, line: int) -> tuple[Action, ...]:
    if not isinstance(raw, list) or not raw:
        raise ctx.expected("actions", "a non-empty list of actions", raw, line)
    actions = tuple(
        _action(ctx, i, item, _line_of(raw, i, line)) for i, item in enumerate(raw)
    )
    for i, action in enumerate(actions):
        if action.op == "form_to_json" and i:
            msg = "form_to_json must be the rule's first action"
            raise ctx.error(f"actions[{i}]", msg, action.line)
    return actions


# ---------------------------------------------------------------- rules


def _examples(ctx: _Ctx, raw: object, line: int) -> tuple[dict, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ctx.expected("examples", "a list of example exchanges", raw, line)
    for i, example in enumerate(raw):
        eline = _line_of(raw, i, line)
        if not isinstance(example, dict):
            raise ctx.expected(f"examples[{i}]", "a mapping", example, eline)
        for key in example:
            if key not in EXAMPLE_KEYS:
                msg = f"unknown key {key!r} (expected one of: {_words(EXAMPLE_KEYS)})"
                raise ctx.error(f"examples[{i}]", msg, _line_of(example, key, eline))
        for key in ("request", "response"):
            if key not in example:
                what = "missing (expected a mapping)"
                raise ctx.error(f"examples[{i}].{key}", what, eline)
        for key, allowed in EXAMPLE_PART_KEYS.items():
            if key in example:
                field = f"examples[{i}].{key}"
                _example_part(
                    ctx, field, example[key], allowed, _line_of(example, key, eline)
                )
    return tuple(raw)


def _example_part(
    ctx: _Ctx, field: str, part: object, allowed: tuple[str, ...], line: int
) -> None:
    """An example's request, response or expect: a mapping of known keys,
    with bodies as the text sent (expect's body is the JSON the client gets)."""
    if not isinstance(part, dict):
        what = f"a mapping under {field.rsplit('.', 1)[1]!r}"
        raise ctx.expected(field, what, part, line)
    for key, value in part.items():
        kline = _line_of(part, key, line)
        if key not in allowed:
            msg = f"unknown key {key!r} (expected one of: {_words(allowed)})"
            raise ctx.error(field, msg, kline)
        if key == "body" and not field.endswith("expect") and value is not None:
            if not isinstance(value, str):
                what = "the body as text (quote JSON: body: '{...}')"
                raise ctx.expected(f"{field}.body", what, value, kline)


def _rule(file: str, raw: object, line: int, index: int, dups: list) -> Rule:
    ctx = _Ctx(file, None, line)
    if not isinstance(raw, dict):
        raise RuleError(
            file, line, None, f"rules[{index}]", f"expected a mapping, got {_kind(raw)}"
        )
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        msg = "missing (expected a non-empty string)"
        if "name" in raw:
            msg = f"expected a non-empty string, got {_kind(name)}"
        nline = _line_of(raw, "name", line)
        raise RuleError(file, nline, f"#{index + 1}", "name", msg)
    ctx.rule = name
    if dups:
        dline, key, first, where = min(dups)
        msg = f"duplicate key {key!r} (first given on line {first})"
        raise ctx.error(where or None, msg, dline)
    for key in raw:
        if key not in RULE_KEYS:
            msg = f"unknown key {key!r} (expected one of: {_words(RULE_KEYS)})"
            raise ctx.error(None, msg, _line_of(raw, key, line))
    if "actions" not in raw:
        raise ctx.error(
            "actions", "missing (expected a non-empty list of actions)", line
        )
    if "description" in raw and not isinstance(raw["description"], str):
        raise ctx.expected(
            "description",
            "a string",
            raw["description"],
            _line_of(raw, "description", line),
        )
    match = _match(ctx, raw.get("match"), _line_of(raw, "match", line))
    when = _when(ctx, raw.get("when"), _line_of(raw, "when", line))
    actions = _actions(ctx, raw["actions"], _line_of(raw, "actions", line))
    examples = _examples(ctx, raw.get("examples"), _line_of(raw, "examples", line))
    request_headers = tuple(
        (name_, value)
        for a in actions
        if a.op == "request_header"
        for name_, _, value in a.items
    )
    return Rule(
        name=name,
        line=line,
        match=match,
        when=when,
        actions=actions,
        examples=examples,
        form_to_json=actions[0].op == "form_to_json",
        request_headers=request_headers,
        needs_body_params=match.grant_types is not None or match.client_ids is not None,
    )


def _duplicates(node: object, found: list, where: str = "") -> list:
    """Every duplicate key below node, as (line, key, first line, field)."""
    if isinstance(node, LineDict):
        found.extend((*dup, where) for dup in node.duplicates)
        for key, value in node.items():
            _duplicates(value, found, f"{where}.{key}" if where else key)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _duplicates(value, found, f"{where}[{i}]")
    return found


def parse_rules(text: str, filename: str = "<rules>") -> RuleSet:
    """Validate and compile a rules document; RuleError names what is wrong."""
    try:
        doc = load(text)
    except YamlError as e:
        raise RuleError(filename, e.line, None, None, e.message) from None
    if not isinstance(doc, dict):
        got = "an empty file" if doc is None else _kind(doc)
        msg = f"expected a mapping with a 'rules' list, got {got}"
        line = doc.line if isinstance(doc, LineList) else 1
        raise RuleError(filename, line, None, None, msg)
    if doc.duplicates:
        dline, key, first = doc.duplicates[0]
        msg = f"duplicate key {key!r} (first given on line {first})"
        raise RuleError(filename, dline, None, None, msg)
    for key in doc:
        if key != "rules":
            msg = f"unknown top-level key {key!r} (expected: rules)"
            raise RuleError(filename, doc.lines[key], None, None, msg)
    if "rules" not in doc:
        msg = "expected a mapping with a 'rules' list, got an empty mapping"
        raise RuleError(filename, doc.line, None, None, msg)
    raw_rules = doc["rules"]
    rules_line = doc.lines["rules"]
    if raw_rules is None:
        raw_rules = []
    if not isinstance(raw_rules, list):
        msg = f"expected a list of rules, got {_kind(raw_rules)}"
        raise RuleError(filename, rules_line, None, "rules", msg)
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_rules):
        line = _line_of(raw_rules, i, rules_line)
        rule = _rule(filename, raw, line, i, _duplicates(raw, []))
        if rule.name in seen:
            msg = f"duplicate rule name (first used on line {seen[rule.name]})"
            raise RuleError(filename, line, rule.name, "name", msg)
        seen[rule.name] = line
        rules.append(rule)
    return RuleSet(tuple(rules), filename)


def load_rules(path: str | Path) -> RuleSet:
    """Read and compile a rules file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        msg = "no such rules file"
        if not path.is_absolute():
            # tokenfix_rules is read from the directory mitmdump runs in
            msg += f" in {Path.cwd()} (--set tokenfix_rules=PATH names another)"
        raise RuleError(str(path), 0, None, None, msg) from None
    except OSError as e:
        msg = f"cannot read: {e.strerror or e}"
        raise RuleError(str(path), 0, None, None, msg) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        msg = f"not UTF-8 text: byte 0x{data[e.start]:02x} cannot be decoded"
        raise RuleError(str(path), line, None, None, msg) from None
    return parse_rules(text, str(path))
