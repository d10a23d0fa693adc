"""Deciding and rewriting one token response: pure, no mitmproxy here.

`rewrite` takes the rules that matched the request, the response's status,
headers and decoded body, and returns an Outcome: the new body (or None when
it stays byte for byte), status and header changes, and a record of every
change with secret values redacted.
"""

import copy
import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from addon import jsonbody
from addon.conditions import strict_equal
from addon.exchange import RequestInfo
from addon.redact import REDACTED, SECRET_FIELDS, is_secret_path, redact_value
from addon.rules import Action, Rule, Source
from addon.values import (
    MISSING,
    epoch_of,
    get_path,
    is_number,
    jwt_seconds_left,
    parent_of,
    seconds_until,
)

NUMBER_TEXT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
SPLIT_SCOPE = re.compile(r"[,\s]+")


@dataclass(slots=True)
class Change:
    """One change to a response; values of secret fields are redacted."""

    rule: str
    target: str  # "body", "header" or "status"
    field: str
    op: str
    old: object
    new: object

    def as_dict(self) -> dict:
        old = None if self.old is MISSING else self.old
        return {
            "rule": self.rule,
            "target": self.target,
            "field": self.field,
            "op": self.op,
            "old": old,
            "new": self.new,
        }

    def describe(self) -> str:
        if self.op == "rename":
            return f"rename {self.field}->{self.new}"
        if self.op in ("remove", "unwrap", "form_to_json"):
            return f"{self.op} {self.field}"
        return f"{self.op} {self.field}={_show(self.new)}"


@dataclass(slots=True)
class Outcome:
    body: bytes | None = None
    status: int | None = None
    headers: dict[str, str | None] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    matched: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list["RuleWarning"] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def _show(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False) if value is not MISSING else "-"
    return text if len(text) <= 60 else text[:57] + "..."


class _State:
    """The response as the rules so far have left it."""

    __slots__ = (
        "doc",
        "status",
        "headers",
        "body_changed",
        "secrets",
        "copied",
        "now",
        "out",
    )

    def __init__(self, status, headers, secrets, now, out) -> None:
        self.doc: dict | None = None
        self.status = status
        self.headers = headers
        self.body_changed = False
        self.secrets = secrets
        # values copied from secret fields into fields of other names
        self.copied: list[object] = []
        self.now = now
        self.out = out

    def secret(self, path: str) -> bool:
        return is_secret_path(path, self.secrets)

    def copied_secret(self, value: object) -> bool:
        return any(_same(value, secret) for secret in self.copied)

    def hide(self, name: str, value: object, secret: bool = False) -> object:
        """The value as a record or a log line may show it."""
        if value is MISSING or value is None:
            return value
        if secret or self.secret(name) or self.copied_secret(value):
            return REDACTED
        return redact_value(value, self.secrets)

    def record(self, rule, target, name, op, old, new, secret=False) -> None:
        if secret or target == "body":
            old, new = self.hide(name, old, secret), self.hide(name, new, secret)
        self.out.changes.append(Change(rule.name, target, name, op, old, new))


def rewrite(
    rules: Sequence[Rule],
    req: RequestInfo,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    secrets: frozenset[str] = SECRET_FIELDS,
) -> Outcome:
    """Apply the rules, in order, to one response."""
    out = Outcome()
    if isinstance(headers, dict):
        headers = {k.lower(): v for k, v in headers.items()}
    state = _State(status, headers, secrets, time.time() if now is None else now, out)
    body_error: str | None = None
    parsed = False
    for rule in rules:
        if state.status not in rule.match.statuses:
            out.skipped.append((rule.name, f"status {state.status} not matched"))
            continue
        if state.doc is None and not parsed:
            parsed = True
            try:
                state.doc = jsonbody.parse_object(body)
            except jsonbody.BodySkip as e:
                body_error = str(e)
        _apply_rule(rule, req, state, body, body_error)
    if state.body_changed and state.doc is not None:
        out.body = jsonbody.dump(state.doc)
    if state.status != status:
        out.status = state.status
    return out


def _apply_rule(rule, req, state: _State, body: bytes, body_error) -> None:
    out = state.out
    doc = state.doc
    from_form = False
    if doc is None and rule.form_to_json:
        try:
            doc = jsonbody.parse_form(body)
            from_form = True
        except jsonbody.BodySkip as e:
            body_error = f"{body_error}; {e}"
    if doc is None:
        out.skipped.append((rule.name, f"body skipped: {body_error}"))
        return
    for condition in rule.when:
        if not condition.test(get_path(doc, condition.path)):
            out.skipped.append((rule.name, f"when {condition.field} not met"))
            return

    out.matched.append(rule.name)
    if from_form:
        state.doc = doc
        state.body_changed = True
        state.record(rule, "body", "body", "form_to_json", None, None)
        _set_header(rule, state, "Content-Type", "application/json")
    for action in rule.actions:
        _ACTIONS[action.op](rule, action, req, state)


# ---------------------------------------------------------------- values


def _resolve(source: Source, req: RequestInfo, state: _State) -> tuple[object, bool]:
    """A source's value (MISSING when it yields nothing) and whether it is secret."""
    doc = state.doc
    if source.kind == "from_request":
        value = req.param(source.arg)
        secret = source.arg in state.secrets
    elif source.kind == "from_field":
        value = get_path(doc, source.path)
        secret = state.secret(source.arg)
    elif source.kind == "from_jwt_exp":
        value = jwt_seconds_left(get_path(doc, source.path), state.now)
        secret = False
    else:
        epoch = epoch_of(get_path(doc, source.path))
        value = None if epoch is None else seconds_until(epoch, state.now)
        secret = False
    if value is None or value is MISSING:
        if source.has_fallback:
            return source.fallback, False
        return MISSING, False
    return value, secret


def _write(rule: Rule, action: Action, req: RequestInfo, state: _State) -> None:
    for name, path, spec in action.items:
        parent = parent_of(state.doc, path, create=False)
        current = MISSING if parent is None else parent.get(path[-1], MISSING)
        if action.op == "default" and current not in (MISSING, None):
            continue
        value, secret = spec, False
        if isinstance(spec, Source):
            value, secret = _resolve(spec, req, state)
            if value is MISSING:
                state.out.notes.append(
                    f"rule {rule.name!r}: {action.op} {name}: {spec.kind} "
                    f"{spec.arg} gave no value and there is no fallback"
                )
                continue
        if current is not MISSING and _same(current, value):
            continue
        parent = parent_of(state.doc, path, create=True)
        if parent is None:
            _warn(state, rule, name, "a parent of the field is not an object")
            continue
        # a copy: the rule's literal or the source field must not change with it
        if isinstance(value, dict | list):
            value = copy.deepcopy(value)
        parent[path[-1]] = value
        if secret:
            state.copied.append(value)
        state.body_changed = True
        state.record(rule, "body", name, action.op, current, value, secret)


def _same(a: object, b: object) -> bool:
    return type(a) is type(b) and strict_equal(a, b)


def _remove(rule: Rule, action: Action, req: RequestInfo, state: _State) -> None:
    for name, path, _ in action.items:
        parent = parent_of(state.doc, path, create=False)
        if parent is None or path[-1] not in parent:
            continue
        old = parent.pop(path[-1])
        state.body_changed = True
        state.record(rule, "body", name, "remove", old, None)


def _rename(rule: Rule, action: Action, req: RequestInfo, state: _State) -> None:
    for name, path, target in action.items:
        parent = parent_of(state.doc, path, create=False)
        if parent is None or path[-1] not in parent or target[: len(path)] == path:
            # nothing to move, or a move onto itself or into itself
            continue
        dest = parent_of(state.doc, target, create=False)
        if dest is None:
            continue
        if dest is parent:
            value = parent[path[-1]]
            items = [
                (target[-1] if k == path[-1] else k, v)
                for k, v in parent.items()
                if k != target[-1]
            ]
            parent.clear()
            parent.update(items)
        else:
            value = parent.pop(path[-1])
            dest[target[-1]] = value
        state.body_changed = True
        # a rename records field names, never values
        state.out.changes.append(
            Change(rule.name, "body", name, "rename", None, ".".join(target))
        )


def _coerce(rule: Rule, action: Action, req: RequestInfo, state: _State) -> None:
    for name, path, kind in action.items:
        parent = parent_of(state.doc, path, create=False)
        if parent is None or path[-1] not in parent:
            continue
        old = parent[path[-1]]
        new = _COERCE[kind](old)
        if new is MISSING:
            hidden = state.hide(name, old)
            shown = REDACTED if hidden == REDACTED else _show(hidden)
            message = f"cannot coerce {shown} to {kind}"
            _warn(state, rule, name, message, f"cannot coerce to {kind}")
            continue
        if _same(old, new):
            continue
        parent[path[-1]] = new
        secret = state.copied_secret(old)
        if secret:
            state.copied.append(new)
        state.body_changed = True
        state.record(rule, "body", name, f"coerce {kind}", old, new, secret)


def _number(value: object) -> object:
    """A JSON number from a number or a numeric string; MISSING otherwise."""
    if isinstance(value, str):
        text = value.strip()
        if not NUMBER_TEXT.fullmatch(text):
            return MISSING
        try:
            value = float(text) if any(c in text for c in ".eE") else int(text)
        except ValueError:  # more digits than int() converts
            return MISSING
    if not is_number(value) or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _to_integer(value: object) -> object:
    number = _number(value)
    return number if isinstance(number, int) else MISSING


def _to_string(value: object) -> object:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or (
        is_number(value) and (not isinstance(value, float) or math.isfinite(value))
    ):
        return json.dumps(value)
    return MISSING


def _to_space_delimited(value: object) -> object:
    if isinstance(value, str):
        items = SPLIT_SCOPE.split(value)
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = [part for v in value for part in SPLIT_SCOPE.split(v)]
    else:
        return MISSING
    return " ".join(item for item in items if item)


_COERCE = {
    "integer": _to_integer,
    "number": _number,
    "string": _to_string,
    "space_delimited": _to_space_delimited,
}


def _unwrap(rule: Rule, action: Action, req: RequestInfo, state: _State) -> None:
    ((name, path, _),) = action.items
    inner = get_path(state.doc, path)
    if not isinstance(inner, dict):
        return
    doc = state.doc
    parent = parent_of(doc, path, create=False)
    if parent is doc:
        # the lifted members take the wrapper's place in the key order
        items = []
        for key, value in doc.items():
            if key == path[-1]:
                items.extend(inner.items())
            elif key not in inner:
                items.append((key, value))
    else:
        del parent[path[-1]]
        items = [(k, v) for k, v in doc.items() if k not in inner]
        items.extend(inner.items())
    doc.clear()
    doc.update(items)
    state.body_changed = True
    state.record(rule, "body", name, "unwrap", None, sorted(inner)[:20])


def _header(rule: Rule, action: Action, req: RequestInfo, state: _State) -> None:
    for name, _, value in action.items:
        _set_header(rule, state, name, value)


def _set_header(rule: Rule, state: _State, name: str, value: str | None) -> None:
    key = name.lower()
    pending = {k.lower(): v for k, v in state.out.headers.items()}
    old = pending[key] if key in pending else state.headers.get(key)
    if old == value:
        return
    state.out.headers = {
        k: v for k, v in state.out.headers.items() if k.lower() != key
    } | {name: value}
    secret = key in ("authorization", "set-cookie", "cookie")
    state.record(rule, "header", name, "header", old, value, secret)


def _status(rule: Rule, action: Action, req: RequestInfo, state: _State) -> None:
    ((_, _, code),) = action.items
    if state.status == code:
        return
    state.record(rule, "status", "status", "status", state.status, code)
    state.status = code


def _nothing(rule: Rule, action: Action, req: RequestInfo, state: _State) -> None:
    """request_header works on the request; form_to_json before the actions."""


_ACTIONS = {
    "set": _write,
    "default": _write,
    "remove": _remove,
    "rename": _rename,
    "coerce": _coerce,
    "unwrap": _unwrap,
    "header": _header,
    "status": _status,
    "request_header": _nothing,
    "form_to_json": _nothing,
}


class RuleWarning(str):
    """A warning's text, with `kind`: the rule, the field and what went wrong
    without the response's own values, so that a log can count warnings that
    differ only in those values as one."""

    kind: str


def _warn(
    state: _State, rule: Rule, field: str, message: str, kind: str | None = None
) -> None:
    warning = RuleWarning(f"rule {rule.name!r}: {field}: {message}")
    warning.kind = f"{rule.name}\0{field}\0{kind or message}"
    state.out.warnings.append(warning)


def request_headers(rules: Sequence[Rule]) -> dict[str, str | None]:
    """Headers the matching rules set on the request before it goes upstream."""
    headers: dict[str, str | None] = {}
    for rule in rules:
        for name, value in rule.request_headers:
            headers[name] = value
    return headers
