"""The work tokenfix does for one exchange, as addon/addon.py's hooks do it.

Shared by the micro-benchmarks (tests/test_bench_engine.py) and the hook
profile of `python -m bench`: the request hook's index lookup, RequestInfo and
rule choice, then the response hook's bounded decoding and rewrite, on
mitmproxy's own Headers; and the hooks themselves on a real flow.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from mitmproxy import http
from mitmproxy.test import taddons, tflow

from addon import engine
from addon.addon import TokenFix
from addon.decoding import decode_bounded
from addon.exchange import RequestInfo
from addon.redact import secret_names
from bench.exchanges import (
    HOST,
    OTHER_PATH,
    REFRESH_FORM,
    REFRESH_HEADERS,
    TOKEN_PATH,
    USERINFO_HEADERS,
    token_response,
    userinfo_response,
)

SECRETS = secret_names()
JSON_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store"}
CLIENT_CREDENTIALS = "grant_type=client_credentials&audience=https%3A%2F%2Fapi"


def headers(mapping: dict[str, str]) -> http.Headers:
    return http.Headers([(k.encode(), v.encode()) for k, v in mapping.items()])


class Exchange:
    """One request and its response, as the hooks see them."""

    def __init__(self, method, path, req_headers, req_body, resp_body) -> None:
        self.method = method
        self.path = path
        self.req_headers = headers(req_headers)
        self.req_body = req_body.encode() if req_body else None
        self.resp_headers = headers(JSON_HEADERS)
        self.resp_body = resp_body


TOKEN = Exchange("POST", TOKEN_PATH, REFRESH_HEADERS, REFRESH_FORM, token_response())
OTHER = Exchange("GET", OTHER_PATH, USERINFO_HEADERS, "", userinfo_response())
# a token request that rules are chosen for, but that none of them changes
UNCHANGED = Exchange(
    "POST",
    TOKEN_PATH,
    {"Content-Type": "application/x-www-form-urlencoded"},
    CLIENT_CREDENTIALS,
    token_response(),
)


def decide(rules, x: Exchange):
    """The request hook: the rules for this exchange, or None when there are none."""
    path, _, query = x.path.partition("?")
    if not rules.by_host_path(HOST, path):
        return None
    info = RequestInfo(x.method, HOST, path, query, x.req_headers, x.req_body)
    matched = rules.for_request(info)
    if not matched:
        return None
    engine.request_headers(matched)
    return matched, info


def rewrite(matched, info, x: Exchange) -> engine.Outcome:
    """The response hook's engine work."""
    body = decode_bounded(x.resp_body, x.resp_headers.get("content-encoding"))
    return engine.rewrite(matched, info, 200, x.resp_headers, body, secrets=SECRETS)


def exchange(rules, x: Exchange) -> engine.Outcome | None:
    decided = decide(rules, x)
    if decided is None:
        return None
    return rewrite(*decided, x)


# -- the addon's hooks, whole ---------------------------------------------------


@contextlib.contextmanager
def quiet_logging() -> Iterator[None]:
    """Log as `mitmdump -q` does: every record is made, and dropped below ERROR."""
    logger = logging.getLogger("addon")
    saved = logger.level, logger.propagate, list(logger.handlers)
    handler = logging.NullHandler()
    handler.setLevel(logging.ERROR)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.handlers[:] = [handler]
    try:
        yield
    finally:
        logger.level, logger.propagate, logger.handlers[:] = saved


def make_flow(x: Exchange) -> http.HTTPFlow:
    flow = tflow.tflow()
    flow.request = http.Request.make(
        x.method, f"http://{HOST}{x.path}", x.req_body or b"", x.req_headers.copy()
    )
    flow.response = http.Response.make(200, x.resp_body, x.resp_headers.copy())
    return flow


@contextlib.contextmanager
def running_addon(rules_path: Path, **options) -> Iterator[TokenFix]:
    """A TokenFix with its rules loaded, in a test context, logging as `-q`."""
    addon = TokenFix()
    with quiet_logging(), taddons.context(addon) as tctx:
        tctx.configure(addon, tokenfix_rules=str(rules_path), **options)
        addon.tctx = tctx
        yield addon


def hooks(addon: TokenFix, flow: http.HTTPFlow) -> http.HTTPFlow:
    """What mitmproxy calls on the addon for one exchange."""
    addon.request(flow)
    addon.response(flow)
    return flow


def profile_default(addon: TokenFix) -> str | None:
    """The client profile option's value, when the addon has one."""
    return getattr(addon.tctx.options, "tokenfix_profile", None)
