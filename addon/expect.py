"""The `expect` part of example exchanges: what the client must receive."""

from addon import jsonbody
from addon.conditions import strict_equal
from addon.offline import Result, expand
from addon.redact import REDACTED, is_secret_path
from addon.rules import EXAMPLE_PART_KEYS, compile_condition
from addon.values import MISSING, get_path
from addon.yamlsrc import LineDict

EXPECT_KEYS = EXAMPLE_PART_KEYS["expect"]


def _line(expect: object, key: str, default: int) -> int:
    if isinstance(expect, LineDict):
        return expect.lines.get(key, default)
    return default


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    return "a number" if isinstance(value, int | float) else type(value).__name__


def _show(path: str, value: object) -> str:
    if value is MISSING:
        return "missing"
    if is_secret_path(path):
        return REDACTED
    return repr(value)


def check(
    result: Result, expect: object, file: str, line: int, rule: str, now: float
) -> list:
    """Every way the result differs from the expectation, in words.

    Placeholders in expected values are expanded at the same moment as the
    exchange's, so `<JWT exp=+120>` stands for the same token on both sides.
    """
    if expect is None:
        return []
    if not isinstance(expect, dict):
        return [f"{file}:{line}: expect: expected a mapping, got {_kind(expect)}"]
    failures = []
    for key in expect:
        if key not in EXPECT_KEYS:
            allowed = ", ".join(EXPECT_KEYS)
            failures.append(
                f"{file}:{_line(expect, key, line)}: expect: unknown key {key!r} "
                f"(expected one of: {allowed})"
            )
    for key in ("headers", "fields"):
        if expect.get(key) is not None and not isinstance(expect[key], dict):
            failures.append(
                f"{file}:{_line(expect, key, line)}: expect.{key}: expected a "
                f"mapping, got {_kind(expect[key])}"
            )
    if failures:
        return failures

    if "status" in expect and result.status != expect["status"]:
        failures.append(f"status: expected {expect['status']}, got {result.status}")
    failures += _headers(result, expect.get("headers") or {})
    if expect.get("unchanged") and result.body != result.original_body:
        failures.append("body: expected byte for byte as received, but it changed")
    if "body" in expect or "fields" in expect:
        failures += _body(result, expect, file, line, rule, now)
    return failures


def _headers(result: Result, wanted: dict) -> list[str]:
    failures = []
    final = {k.lower(): v for k, v in result.headers.items()}
    for name, value in wanted.items():
        got = final.get(name.lower())
        if got != value:
            failures.append(f"header {name}: expected {value!r}, got {got!r}")
    return failures


def _body(result: Result, expect: dict, file, line, rule, now: float) -> list:
    try:
        doc = jsonbody.parse_object(result.body)
    except jsonbody.BodySkip as e:
        return [f"body: expected a JSON object, got one that is not ({e})"]
    failures = []
    if "body" in expect:
        wanted = _expand(expect["body"], now)
        if not _same_in_order(doc, wanted):
            failures.append(f"body: expected {_redacted(wanted)}, got {_redacted(doc)}")
    fields = expect.get("fields") or {}
    for name, raw in fields.items():
        fline = _line(fields, name, _line(expect, "fields", line))
        test = compile_condition(
            name, _expand(raw, now), file, fline, rule, "expect.fields"
        )
        value = get_path(doc, tuple(name.split(".")))
        if not test(value):
            # the condition as written: placeholders stay placeholders
            failures.append(f"{name}: expected {raw!r}, got {_show(name, value)}")
    return failures


def _same_in_order(got: object, wanted: object) -> bool:
    """Type-strict JSON equality that also compares the key order of objects."""
    if isinstance(got, dict) and isinstance(wanted, dict):
        return list(got) == list(wanted) and all(
            _same_in_order(got[k], wanted[k]) for k in got
        )
    if isinstance(got, list) and isinstance(wanted, list):
        return len(got) == len(wanted) and all(map(_same_in_order, got, wanted))
    return strict_equal(got, wanted)


def _expand(value: object, now: float) -> object:
    if isinstance(value, str):
        return expand(value, now)
    if isinstance(value, list):
        return [_expand(v, now) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, now) for k, v in value.items()}
    return value


def _redacted(doc: object) -> object:
    if isinstance(doc, list):
        return [_redacted(v) for v in doc]
    if not isinstance(doc, dict):
        return doc
    return {k: REDACTED if is_secret_path(k) else _redacted(v) for k, v in doc.items()}
