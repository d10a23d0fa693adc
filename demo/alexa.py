"""An Alexa-style account-linking client for the local demo server.

Alexa links an account in two steps: the user approves at the server's
authorization endpoint, then Alexa exchanges the code at its "Access Token
URI" and later refreshes there, with form bodies and the client secret in
HTTP Basic. `make demo` and scripts/screenshot.py drive it from Python; run
on its own it plays Alexa for the README's mitmweb walkthrough:

    .venv/bin/python -m demo.alexa --server http://127.0.0.1:9000 \\
        --token-url http://127.0.0.1:8080/oauth/token

Token values are printed shortened, and the client secret never.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import sys
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit

from demo.authserver import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URI

SECRET_FIELDS = ("access_token", "refresh_token", "id_token")
LABEL, COLUMN = 30, 27


@dataclass
class Reply:
    status: int
    body: dict
    raw: bytes
    received_at: float


@dataclass
class Linking:
    """What Alexa received while linking one account."""

    code_exchange: Reply
    refresh: Reply


def _request(method: str, url: str, body: str = "", headers=None):
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        target = f"{parts.path}?{parts.query}" if parts.query else parts.path
        conn.request(method, target, body=body or None, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.getheader("Location"), resp.read()
    finally:
        conn.close()


def token_request(token_url: str, params: dict) -> Reply:
    """One token request as Alexa sends it: a form body, HTTP Basic."""
    credentials = f"{quote_plus(DEMO_CLIENT_ID)}:{quote_plus(DEMO_CLIENT_SECRET)}"
    headers = {
        "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8",
        "Authorization": "Basic " + base64.b64encode(credentials.encode()).decode(),
    }
    status, _, body = _request("POST", token_url, urlencode(params), headers)
    try:
        document = json.loads(body)
    except ValueError:
        document = {}
    document = document if isinstance(document, dict) else {}
    return Reply(status, document, body, time.time())


def authorize(server_url: str) -> str:
    """The user's approval at the server (the demo server approves at once):
    the authorization code from the redirect."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": DEMO_CLIENT_ID,
            "redirect_uri": DEMO_REDIRECT_URI,
            "scope": "openid offline_access",
            "state": "alexa-demo",
        }
    )
    status, location, _ = _request("GET", f"{server_url}/authorize?{query}")
    if status != 302 or not location:
        raise RuntimeError(f"/authorize answered {status}, not a redirect")
    return dict(parse_qsl(urlsplit(location).query))["code"]


def refresh(token_url: str, refresh_token: str) -> Reply:
    params = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return token_request(token_url, params)


def link_account(server_url: str, token_url: str) -> Linking:
    """Authorize at the server (the user's browser), then exchange the code and
    refresh at `token_url` (Alexa's "Access Token URI")."""
    code = authorize(server_url)
    params = {"code": code, "redirect_uri": DEMO_REDIRECT_URI}
    exchange = token_request(token_url, {"grant_type": "authorization_code", **params})
    return Linking(exchange, refresh(token_url, exchange.body.get("refresh_token", "")))


def shorten(name: str, value) -> str:
    if value is None:
        return "(missing)"
    if name in SECRET_FIELDS and isinstance(value, str):
        kind = "JWT, " if value.count(".") == 2 else ""
        return f"{value[:6]}… ({kind}{len(value)} chars)"
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) < COLUMN else text[: COLUMN - 2] + "…"


def refresh_plan(reply: Reply) -> str:
    """What Alexa can do with this reply: it schedules the next refresh from
    expires_in (RFC 6749 section 5.1)."""
    expires_in = reply.body.get("expires_in")
    if reply.status != 200:
        return "no: the request failed"
    if type(expires_in) is not int or expires_in <= 0:
        return "NO: no expires_in"
    return f"yes, in {expires_in} s"


def _show(title: str, reply: Reply) -> None:
    print(f"{title}: HTTP {reply.status}")
    for name, value in reply.body.items():
        print(f"  {name:<{LABEL - 2}}{shorten(name, value)}")
    print(f"  {'Alexa schedules a refresh?':<{LABEL - 2}}{refresh_plan(reply)}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demo.alexa",
        description="Link an account at the demo server as Alexa does, then "
        "refresh; prints what Alexa received.",
    )
    parser.add_argument(
        "--server", required=True, help="the demo server's URL, for /authorize"
    )
    parser.add_argument(
        "--token-url",
        required=True,
        help="Alexa's Access Token URI: the proxy's /oauth/token",
    )
    parser.add_argument(
        "--refreshes", type=int, default=1, help="refreshes after the code exchange"
    )
    args = parser.parse_args(argv)

    try:
        code = authorize(args.server)
        reply = token_request(
            args.token_url,
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": DEMO_REDIRECT_URI,
            },
        )
        _show("code exchange", reply)
        refresh_token = reply.body.get("refresh_token")
        for number in range(1, args.refreshes + 1):
            if not refresh_token:
                raise RuntimeError("no refresh token to refresh with")
            reply = refresh(args.token_url, refresh_token)
            _show(f"refresh {number}", reply)
            # a server that does not rotate refresh tokens leaves it out
            refresh_token = reply.body.get("refresh_token") or refresh_token
    except (OSError, RuntimeError, KeyError) as e:
        print(f"demo.alexa: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
