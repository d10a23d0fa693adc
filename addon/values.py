"""Dotted paths into JSON objects, JWT claims, and absolute times.

Everything here is pure: the current time is passed in by the caller.
"""

import binascii
import json
import math
from datetime import UTC, datetime

MISSING = object()

# an epoch number above this is in milliseconds (10^11 s is the year 5138)
EPOCH_MS_THRESHOLD = 10**11
# the last second of the year 9999, the latest time ISO 8601 and most clients'
# date types hold: an expiry beyond it is no time a client can use, and the
# lifetime it gives (a JWT exp of 1e300, an exp sent in milliseconds) would
# overflow clients that keep expires_in in 64 bits or as a date
LATEST_EPOCH = 253402300799
# base64url's two letters of its own, as the standard alphabet has them
_URLSAFE = bytes.maketrans(b"-_", b"+/")
# made once: json.loads builds nothing new per call, but checks encodings
_JSON = json.JSONDecoder()


def get_path(doc: dict, path: tuple[str, ...]) -> object:
    """The value at a path, or MISSING; paths never enter arrays."""
    node: object = doc
    for key in path:
        if not isinstance(node, dict):
            return MISSING
        node = node.get(key, MISSING)
        if node is MISSING:
            return MISSING
    return node


def parent_of(doc: dict, path: tuple[str, ...], create: bool) -> dict | None:
    """The object holding the path's last key; None when it cannot be reached."""
    node = doc
    for key in path[:-1]:
        child = node.get(key, MISSING)
        if child is MISSING and create:
            child = node[key] = {}
        if not isinstance(child, dict):
            return None
        node = child
    return node


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def finite(value: object) -> float | None:
    """A number as a finite float; None for non-numbers, NaN, infinities and
    integers too large for a float (which would raise OverflowError later)."""
    if not is_number(value):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def jwt_claims(token: object) -> dict | None:
    """The claims of a JWS compact token, read without verifying it."""
    if not isinstance(token, str) or token.count(".") != 2:
        return None
    claims = _b64url_json(token.split(".", 2)[1])
    return claims if isinstance(claims, dict) else None


def _b64url_json(part: str) -> object:
    """A base64url-encoded JSON value (RFC 7515 section 2), or None."""
    try:
        data = part.encode("ascii").translate(_URLSAFE)
        raw = binascii.a2b_base64(data + b"=" * (-len(data) % 4))
        return _JSON.decode(raw.decode("utf-8"))
    except (UnicodeError, binascii.Error, ValueError, RecursionError):
        return None


def jwt_header(token: object) -> dict | None:
    """The JOSE header of a JWS compact token."""
    if not isinstance(token, str) or token.count(".") != 2:
        return None
    header = _b64url_json(token.split(".", 1)[0])
    return header if isinstance(header, dict) else None


def seconds_until(epoch: float, now: float) -> int:
    """Whole seconds from now until epoch; 0 once it has passed."""
    return max(0, int(epoch - now))


def plausible_epoch(value: object) -> float | None:
    """A number as epoch seconds no later than LATEST_EPOCH, or None."""
    epoch = finite(value)
    return epoch if epoch is not None and epoch <= LATEST_EPOCH else None


def jwt_seconds_left(token: object, now: float) -> int | None:
    """Seconds until the JWT's exp; None when it has no usable exp."""
    claims = jwt_claims(token)
    if claims is None:
        return None
    exp = plausible_epoch(claims.get("exp"))
    if exp is None:
        return None
    return seconds_until(exp, now)


def epoch_of(value: object) -> float | None:
    """An absolute time as epoch seconds.

    Accepts epoch seconds or milliseconds (numbers above 10^11 are
    milliseconds), numeric strings of either, and ISO 8601 text; an ISO time
    without an offset is taken as UTC. A time after the year 9999 is None.
    """
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            return _iso_epoch(text)
    value = finite(value)
    if value is None:
        return None
    return plausible_epoch(value / 1000 if abs(value) > EPOCH_MS_THRESHOLD else value)


def _iso_epoch(text: str) -> float | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
