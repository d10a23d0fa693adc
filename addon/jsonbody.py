"""Strict reading and careful writing of token response bodies.

A body is rewritten only when it is plainly a JSON object: anything a client
might read differently from us (duplicate keys, NaN, numbers beyond float
range) is refused with a reason, so that it passes through untouched.
"""

import json
import math
from urllib.parse import parse_qsl

MAX_BODY = 1024 * 1024


class BodySkip(Exception):
    """The body is not one tokenfix rewrites; the message says why."""


def _pairs(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise BodySkip(f"duplicate key {dup!r}")
    return obj


def _constant(name: str) -> float:
    raise BodySkip(f"non-standard number {name}")


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise BodySkip("number beyond float range")
    return value


def _int(text: str) -> int:
    # a JSON integer too large for a double is read differently by every
    # client; 309 digits is where doubles end.
    value = int(text)
    if len(text) > 309 and abs(value) > 1.8e308:
        raise BodySkip("number beyond float range")
    return value


def parse_object(body: bytes) -> dict:
    """The body as a JSON object, or BodySkip with the reason it is not one."""
    if not body:
        raise BodySkip("empty body")
    if len(body) > MAX_BODY:
        raise BodySkip(f"body larger than {MAX_BODY} bytes")
    try:
        doc = json.loads(
            body,
            object_pairs_hook=_pairs,
            parse_constant=_constant,
            parse_float=_float,
            parse_int=_int,
        )
    except RecursionError:
        raise BodySkip("JSON nested too deep") from None
    except UnicodeDecodeError:
        raise BodySkip("body is not UTF-8 text") from None
    except ValueError as e:
        # json.JSONDecodeError is a ValueError; so are int() digit limits
        raise BodySkip(f"not JSON ({type(e).__name__})") from None
    if not isinstance(doc, dict):
        raise BodySkip(f"JSON is a top-level {type(doc).__name__}, not an object")
    return doc


def parse_form(body: bytes) -> dict[str, str]:
    """A non-empty application/x-www-form-urlencoded body as a dict of strings."""
    if not body or len(body) > MAX_BODY:
        raise BodySkip("empty or oversized body")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BodySkip("body is not UTF-8 text") from None
    if "=" not in text or text.lstrip()[:1] in ("{", "[", "<", '"'):
        raise BodySkip("body is not a form")
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise BodySkip("body is not a form") from None
    form = dict(pairs)
    if len(form) != len(pairs):
        raise BodySkip("form has a duplicate key")
    return form


def dump(doc: dict) -> bytes:
    """Compact JSON that keeps key order and non-ASCII text as it is."""
    # TODO: keep the server's white space between tokens; a re-serialized
    # body is always compact.
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
