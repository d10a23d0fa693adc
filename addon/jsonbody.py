"""Strict reading and careful writing of token response bodies.

A body is rewritten only when it is plainly a JSON object: anything a client
might read differently from us (duplicate keys, NaN, numbers beyond float
range) is refused with a reason, so that it passes through untouched.
"""

import json
import math
import re
import sys
from urllib.parse import parse_qsl

MAX_BODY = 1024 * 1024
# a \uD800-\uDFFF escape, which may leave a lone surrogate that UTF-8 cannot hold
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


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
    # client; doubles end within 309 digits.
    value = int(text)
    if len(text) > 308 and abs(value) > sys.float_info.max:
        raise BodySkip("number beyond float range")
    return value


# made once: json.loads and json.dumps with options build a new one per call,
# which costs more than reading or writing a token response
_DECODER = json.JSONDecoder(
    object_pairs_hook=_pairs,
    parse_constant=_constant,
    parse_float=_float,
    parse_int=_int,
)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def parse_object(body: bytes) -> dict:
    """The body as a JSON object, or BodySkip with the reason it is not one."""
    if not body:
        raise BodySkip("empty body")
    if len(body) > MAX_BODY:
        raise BodySkip(f"body larger than {MAX_BODY} bytes")
    try:
        # strictly UTF-8 (RFC 8259 section 8.1): json.loads would also take
        # UTF-16 and UTF-32 bytes, and encoded surrogates
        text = body.decode("utf-8")
        doc = _DECODER.decode(text)
    except RecursionError:
        raise BodySkip("JSON nested too deep") from None
    except UnicodeDecodeError:
        raise BodySkip("body is not UTF-8 text") from None
    except ValueError as e:
        # json.JSONDecodeError is a ValueError; so are int() digit limits
        raise BodySkip(f"not JSON ({type(e).__name__})") from None
    if not isinstance(doc, dict):
        raise BodySkip(f"JSON is a top-level {type(doc).__name__}, not an object")
    if SURROGATE_ESCAPE.search(body) and _has_lone_surrogate(doc):
        raise BodySkip("string with a lone surrogate escape")
    return doc


def _has_lone_surrogate(doc: dict) -> bool:
    try:
        dump(doc)
    except UnicodeEncodeError:
        return True
    return False


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
    return _ENCODER.encode(doc).encode("utf-8")
