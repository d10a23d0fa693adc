"""Unsigned JWTs for tests: tokenfix reads claims without verifying them."""

import base64
import json


def _segment(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_jwt(claims: dict | bytes, header: dict | None = None) -> str:
    """A compact JWS with `alg: none` and an empty signature.

    `claims` may be raw bytes, to make payloads that are not JSON objects.
    """
    head = json.dumps(header or {"alg": "none", "typ": "JWT"}).encode()
    body = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    return f"{_segment(head)}.{_segment(body)}."


def jwt_expiring(exp: float, **claims) -> str:
    """A token whose `exp` claim is `exp`, with a subject and any other claims."""
    return make_jwt({"sub": "user-1", "exp": exp, **claims})
