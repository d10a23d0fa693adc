"""Interoperability: a certified OpenID Provider behind tokenfix, a real client.

The provider is panva's oidc-provider (tests/interop/server.mjs, run by Node.js
from the pinned tests/interop/package-lock.json); the client is authlib's
OAuth2Session. Login and consent are driven over HTTP as a browser would; the
code exchange and refreshes go through a real mitmdump with tokenfix.

- With rules that fire only on faults, the provider's compliant responses must
  reach the client byte for byte, and tokenfix must record no change.
- With a rule that removes expires_in and one after it that restores it from
  the access token's exp, the client must schedule its refresh as it does
  talking to the provider directly.

Without Node.js (or without `npm ci --prefix tests/interop`) these tests skip
with the reason, except under CI (CI set), where they fail: CI must run them.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from mitmproxy import io as flowio

from tests.helpers import REPO, CannedUpstream, Mitmdump, jwt_claims, wait_until

pytestmark = pytest.mark.e2e

INTEROP = REPO / "tests" / "interop"
SERVER = INTEROP / "server.mjs"
READY = re.compile(r"^tokenfix-interop ready (\{.*\})$", re.MULTILINE)
USER = "interop-user"

# rules that match every token response of the provider but fire only on a
# fault: the provider makes none, so nothing may change
FAULT_ONLY_RULES = """\
rules:
  - name: interop-expires-in-from-jwt
    match: {host: 127.0.0.1, path: /token}
    when: {expires_in: missing}
    actions:
      - default: {expires_in: {from_jwt_exp: access_token, fallback: 300}}
  - name: interop-expires-in-integer
    match: {host: 127.0.0.1, path: /token}
    actions:
      - coerce: {expires_in: integer}
  - name: interop-token-type
    match: {host: 127.0.0.1, path: /token}
    when: {token_type: missing}
    actions:
      - default: {token_type: Bearer}
"""
FAULT_ONLY_RULE_NAMES = re.findall(r"name: (\S+)", FAULT_ONLY_RULES)

# the first rule plays a provider with Auth0's fault for every client; the
# second repairs it for one client only, so the other shows the fault's harm
STRIP_AND_RESTORE_RULES = """\
rules:
  - name: interop-strip-expires-in
    match: {host: 127.0.0.1, path: /token}
    actions:
      - remove: expires_in
  - name: interop-restore-expires-in
    match: {host: 127.0.0.1, path: /token, client_id: tokenfix-interop}
    when: {expires_in: missing}
    actions:
      - default: {expires_in: {from_jwt_exp: access_token}}
"""


def require_node() -> str:
    """The node executable; a loud skip without it, a failure under CI."""
    node = shutil.which("node")
    if node is None:
        problem = "Node.js is not installed"
    elif not (INTEROP / "node_modules" / "oidc-provider").is_dir():
        problem = (
            "tests/interop/node_modules is missing (npm ci --prefix tests/interop)"
        )
    else:
        return node
    message = f"{problem}: the oidc-provider interoperability tests did NOT run"
    if os.environ.get("CI"):
        pytest.fail(f"{message}, and CI must run them", pytrace=False)
    pytest.skip(message)


# -- the provider ----------------------------------------------------------------


@dataclass
class Provider:
    """A running oidc-provider: what its ready line and discovery document say."""

    process: subprocess.Popen
    log_path: Path
    client_secret: str
    issuer: str = ""
    client_id: str = ""
    stripped_client_id: str = ""
    redirect_uri: str = ""
    scope: str = ""
    resource: str = ""
    access_token_ttl: int = 0
    authorization_endpoint: str = ""
    token_endpoint: str = ""

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def ready(self) -> re.Match | None:
        if self.process.poll() is not None:
            raise AssertionError(
                f"oidc-provider exited with {self.process.returncode}:\n{self.output()}"
            )
        return READY.search(self.output())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_provider(node: str, workdir: Path) -> Provider:
    log_path = workdir / "oidc-provider.log"
    secret = secrets.token_urlsafe(24)
    env = {**os.environ, "INTEROP_CLIENT_SECRET": secret}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [node, str(SERVER), "0"],
            cwd=INTEROP,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    provider = Provider(process, log_path, secret)
    try:
        ready = wait_until(
            provider.ready, timeout=20, what="oidc-provider's ready line"
        )
        for name, value in json.loads(ready[1]).items():
            setattr(provider, name, value)
        discovery = f"{provider.issuer}/.well-known/openid-configuration"
        metadata = requests.get(discovery, timeout=5).json()
    except BaseException:
        provider.stop()
        raise
    provider.authorization_endpoint = metadata["authorization_endpoint"]
    provider.token_endpoint = metadata["token_endpoint"]
    return provider


@pytest.fixture(scope="session")
def provider(tmp_path_factory) -> Provider:
    node = require_node()
    running = start_provider(node, tmp_path_factory.mktemp("oidc-provider"))
    yield running
    running.stop()


# -- a browser at the login and consent screens ----------------------------------


class _Forms(HTMLParser):
    """The forms of a page: action and the inputs' names and values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"action": attrs.get("action"), "fields": {}})
        elif tag == "input" and self.forms and attrs.get("name"):
            self.forms[-1]["fields"][attrs["name"]] = attrs.get("value") or ""


def authorize(provider: Provider, client_id: str) -> str:
    """Sign in and consent as a user would, and return the authorization code.

    The redirects are followed by hand up to the client's redirect URI, which
    is never visited: the code is read from the Location header.
    """
    client = OAuth2Session(client_id, scope=provider.scope)
    client.redirect_uri = provider.redirect_uri
    # prompt=consent: oidc-provider grants offline_access (refresh tokens) only then
    url, state = client.create_authorization_url(
        provider.authorization_endpoint, prompt="consent"
    )
    browser = requests.Session()
    resp = browser.get(url, allow_redirects=False, timeout=5)
    for _step in range(12):
        if resp.is_redirect:
            location = urljoin(resp.url, resp.headers["Location"])
            if location.startswith(provider.redirect_uri):
                return _code_from(location, state, provider.issuer)
            resp = browser.get(location, allow_redirects=False, timeout=5)
            continue
        assert resp.status_code == 200, resp.text
        resp = _submit(browser, resp)
    raise AssertionError("no redirect to the client after 12 steps")


def _submit(browser: requests.Session, page: requests.Response) -> requests.Response:
    parser = _Forms()
    parser.feed(page.text)
    assert parser.forms, f"no form on {page.url}:\n{page.text[:500]}"
    form = parser.forms[0]
    fields = form["fields"]
    if fields.get("prompt") == "login":
        fields.update(login=USER, password="any password will do")
    action = urljoin(page.url, form["action"])
    return browser.post(action, data=fields, allow_redirects=False, timeout=5)


def _code_from(location: str, state: str, issuer: str) -> str:
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert "error" not in query, query
    assert query["state"] == state
    assert query["iss"] == issuer  # RFC 9207
    return query["code"]


# -- a client library's session, recording what it receives ----------------------


@dataclass
class Linking:
    """One client's code exchange and refreshes, as its library saw them.

    bodies: every token response's body as the library received it.
    tokens: the library's token after the code exchange and each refresh.
    auto_refreshes: refreshes the library made by itself before an API call.
    api_authorization: the Authorization header of that API call.
    """

    client_id: str
    bodies: list[bytes] = field(default_factory=list)
    tokens: list[dict] = field(default_factory=list)
    auto_refreshes: int = 0
    api_authorization: str | None = None


def link(
    provider: Provider,
    client_id: str,
    token_endpoint: str,
    refreshes: int,
    api: CannedUpstream | None = None,
) -> Linking:
    """Link a client with authlib: code exchange and refreshes at `token_endpoint`.

    With `api`, the client then calls it with a leeway longer than the access
    token lives: a library that knows the expiry refreshes first, by itself; one
    that does not never refreshes.
    """
    linking = Linking(client_id)
    session = client_session(provider, client_id, token_endpoint)

    def keep(resp: requests.Response, *args, **kwargs) -> None:
        if urlsplit(resp.url).path == urlsplit(token_endpoint).path:
            linking.bodies.append(resp.content)

    session.hooks["response"].append(keep)
    code = authorize(provider, client_id)
    with session:
        linking.tokens.append(dict(session.fetch_token(token_endpoint, code=code)))
        for _ in range(refreshes):
            linking.tokens.append(dict(session.refresh_token(token_endpoint)))
        if api is not None:
            _call_api(session, api, linking, provider.access_token_ttl)
    return linking


def _call_api(session, api: CannedUpstream, linking: Linking, ttl: int) -> None:
    path = f"/api/{linking.client_id}/{secrets.token_hex(4)}"
    api.respond(path, body=b"{}")
    before = len(linking.bodies)
    session.leeway = 10 * ttl
    session.get(api.url + path, timeout=5)
    linking.auto_refreshes = len(linking.bodies) - before
    (request,) = [r for r in api.received if r.path == path]
    linking.api_authorization = dict(request.headers).get("Authorization")


def client_session(provider: Provider, client_id: str, token_endpoint: str):
    return OAuth2Session(
        client_id,
        provider.client_secret,
        token_endpoint_auth_method="client_secret_basic",
        scope=provider.scope,
        redirect_uri=provider.redirect_uri,
        token_endpoint=token_endpoint,
    )


def read_flows(path: Path) -> list:
    with open(path, "rb") as f:
        return list(flowio.FlowReader(f).stream())


def token_path(provider: Provider) -> str:
    return urlsplit(provider.token_endpoint).path


@dataclass
class ProxiedRun:
    """What went through one mitmdump, read after it stopped."""

    linkings: list[Linking]
    flows: list
    output: str


def proxied_run(provider, rules_text, tmp_path_factory, confdir, clients, api=None):
    workdir = tmp_path_factory.mktemp("interop-mitmdump")
    rules = workdir / "rules.yaml"
    rules.write_text(rules_text, encoding="utf-8")
    flows = workdir / "token.flows"
    proxy = Mitmdump(
        provider.issuer,
        rules,
        workdir=workdir,
        confdir=confdir,
        options=(f"save_stream_file={flows}",),
    )
    try:
        proxy.start()
        endpoint = proxy.url + token_path(provider)
        linkings = [link(provider, c, endpoint, 1, api) for c in clients]
    finally:
        # the flow file is complete, and the rule counters logged, on exit
        proxy.stop()
    return ProxiedRun(linkings, read_flows(flows), proxy.output())


# -- fixtures ------------------------------------------------------------------


@pytest.fixture(scope="module")
def direct(provider, canned_upstream) -> Linking:
    """The linking without the proxy: what the client gets from the provider."""
    endpoint = provider.token_endpoint
    return link(provider, provider.client_id, endpoint, 1, canned_upstream)


@pytest.fixture(scope="module")
def fault_only(provider, tmp_path_factory, mitmproxy_confdir) -> ProxiedRun:
    return proxied_run(
        provider,
        FAULT_ONLY_RULES,
        tmp_path_factory,
        mitmproxy_confdir,
        [provider.client_id],
    )


@pytest.fixture(scope="module")
def strip_and_restore(
    provider, tmp_path_factory, mitmproxy_confdir, canned_upstream
) -> ProxiedRun:
    return proxied_run(
        provider,
        STRIP_AND_RESTORE_RULES,
        tmp_path_factory,
        mitmproxy_confdir,
        [provider.client_id, provider.stripped_client_id],
        canned_upstream,
    )


def _keys(body: bytes) -> list[str]:
    return list(json.loads(body))


def _expiry_offset(token: dict) -> float:
    """How far the library's expiry is from the access token's own exp."""
    return token["expires_at"] - jwt_claims(token["access_token"])["exp"]


# -- the provider as configured ----------------------------------------------------


class TestProvider:
    def test_access_tokens_are_short_lived_jwts_for_the_api(self, provider, direct):
        for token in direct.tokens:
            claims = jwt_claims(token["access_token"])
            assert claims["aud"] == provider.resource
            assert claims["exp"] - claims["iat"] == provider.access_token_ttl
            assert token["expires_in"] == provider.access_token_ttl
            assert token["token_type"] == "Bearer"

    def test_offline_access_gives_a_refresh_token(self, direct):
        code_exchange, refresh = direct.tokens
        assert code_exchange["refresh_token"]
        assert refresh["refresh_token"]
        assert "id_token" in code_exchange


# -- compliant responses through rules that fire only on faults ------------------------


class TestFaultOnlyRules:
    def test_every_token_response_went_through_the_proxy(self, provider, fault_only):
        (linking,) = fault_only.linkings
        paths = [f.request.path for f in fault_only.flows]
        assert paths == [token_path(provider)] * 2
        ttl = provider.access_token_ttl
        assert [t.get("expires_in") for t in linking.tokens] == [ttl, ttl]

    def test_responses_arrive_byte_for_byte(self, fault_only):
        (linking,) = fault_only.linkings
        for flow, received in zip(fault_only.flows, linking.bodies, strict=True):
            assert flow.response.status_code == 200
            assert "content-encoding" not in flow.response.headers
            assert flow.response.raw_content == received
            assert flow.response.headers["content-length"] == str(len(received))

    def test_tokenfix_recorded_no_change(self, fault_only):
        for flow in fault_only.flows:
            assert "tokenfix" not in flow.metadata
            assert not flow.marked
            assert "tokenfix" not in (flow.comment or "")
        assert "tokenfix: POST /token: rule" not in fault_only.output
        # every rule saw both responses: one acted without a change, the
        # others' `when` did not hold
        for name in FAULT_ONLY_RULE_NAMES:
            stats = re.search(
                rf"rule '{name}': matched (\d+), changed (\d+), skipped (\d+)",
                fault_only.output,
            )
            matched, changed, skipped = map(int, stats.groups())
            assert (matched + skipped, changed) == (2, 0)

    def test_responses_have_the_direct_shape(self, direct, fault_only):
        (linking,) = fault_only.linkings
        direct_code, direct_refresh, _auto_refresh = (_keys(b) for b in direct.bodies)
        code, refresh = (_keys(b) for b in linking.bodies)
        assert code == direct_code
        assert refresh == direct_refresh


# -- a removed expires_in restored from the access token's exp ---------------------


class TestRestoredExpiry:
    def test_tokenfix_removed_and_restored_expires_in(self, strip_and_restore):
        changes = [
            [(c["rule"], c["op"], c["field"]) for c in flow.metadata["tokenfix"]]
            for flow in strip_and_restore.flows
        ]
        strip = ("interop-strip-expires-in", "remove", "expires_in")
        restore = ("interop-restore-expires-in", "default", "expires_in")
        # the code exchange, one refresh and (restored only) the automatic one
        assert changes == [[strip, restore]] * 3 + [[strip]] * 2

    def test_restored_responses_keep_the_providers_key_order(
        self, direct, strip_and_restore
    ):
        restored, _ = strip_and_restore.linkings
        want = [_keys(b) for b in direct.bodies]
        got = [_keys(b) for b in restored.bodies]
        # the restored field is written where a missing field goes: at the end
        assert got == [
            [k for k in w if k != "expires_in"] + ["expires_in"] for w in want
        ]

    def test_client_schedules_the_refresh_as_without_the_rules(
        self, direct, strip_and_restore
    ):
        restored, _ = strip_and_restore.linkings
        pairs = zip(direct.tokens, restored.tokens, strict=True)
        for want, got in pairs:
            # the library's expiry is the token's exp, give or take a second,
            # whether the provider said expires_in or tokenfix did
            assert abs(_expiry_offset(want)) <= 1
            assert abs(_expiry_offset(got)) <= 1
            assert want["expires_in"] - 2 <= got["expires_in"] <= want["expires_in"]

    def test_client_refreshes_by_itself_as_without_the_rules(
        self, direct, strip_and_restore
    ):
        restored, _ = strip_and_restore.linkings
        for linking in (direct, restored):
            assert linking.auto_refreshes == 1
            # the API got the access token of that refresh, not the old one
            old = linking.tokens[-1]["access_token"]
            assert linking.api_authorization.startswith("Bearer ey")
            assert linking.api_authorization != f"Bearer {old}"

    def test_without_the_repair_the_client_never_refreshes(self, strip_and_restore):
        _, stripped = strip_and_restore.linkings
        for token in stripped.tokens:
            assert "expires_in" not in token
            assert "expires_at" not in token
        assert stripped.auto_refreshes == 0
        last = stripped.tokens[-1]["access_token"]
        assert stripped.api_authorization == f"Bearer {last}"
