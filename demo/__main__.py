"""`make demo`: Alexa account linking against an Auth0-like server, with and without
tokenfix in between.

Starts the local authorization server of demo/authserver.py, whose refresh
responses leave out `expires_in` as Auth0's once did; puts mitmdump with tokenfix
in front of it, using the shipped rules.yaml with the local host added; links an
account the way Alexa does, once straight to the server and once with the token
requests sent through the proxy; prints what Alexa receives side by side. Exits 0
when the proxy repaired the refresh response, 1 when it did not.

Token values are shown shortened and the client secret never: the output is safe
to paste into a bug report.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from addon.values import finite, jwt_claims
from demo.alexa import (
    COLUMN,
    SECRET_FIELDS,
    Linking,
    Reply,
    link_account,
    refresh_plan,
    shorten,
)
from demo.authserver import LocalAuthServer

REPO = Path(__file__).resolve().parent.parent
SHIPPED_RULES = REPO / "rules.yaml"
ADDON_SCRIPT = REPO / "addon" / "tokenfix.py"
MITMDUMP = Path(sys.executable).with_name("mitmdump")
LOCAL_HOST = "127.0.0.1"

LABEL = 30


# -- mitmdump with tokenfix ---------------------------------------------------------


def localized_rules(text: str) -> str:
    """The shipped rules with the local server's host added to every host list.

    In reverse mode a rule sees the upstream's host, here 127.0.0.1 rather than
    TENANT.auth0.com.
    """
    document = yaml.safe_load(text)
    for rule in document.get("rules") or []:
        match = rule.get("match") or {}
        hosts = match.get("host")
        if hosts is not None:
            match["host"] = (
                [hosts, LOCAL_HOST]
                if isinstance(hosts, str)
                else [
                    *hosts,
                    LOCAL_HOST,
                ]
            )
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOCAL_HOST, 0))
        return s.getsockname()[1]


@dataclass
class Proxy:
    upstream: str
    rules: Path
    workdir: Path
    port: int = 0
    log_path: Path = field(init=False)
    process: subprocess.Popen | None = None

    def __post_init__(self):
        self.log_path = self.workdir / "mitmdump.log"

    @property
    def url(self) -> str:
        return f"http://{LOCAL_HOST}:{self.port}"

    def start(self, timeout: float = 30.0) -> bool:
        self.port = _free_port()
        command = [
            str(MITMDUMP),
            *("--mode", f"reverse:{self.upstream}"),
            *("--listen-host", LOCAL_HOST, "--listen-port", str(self.port)),
            *("-s", str(ADDON_SCRIPT)),
            *("--set", f"tokenfix_rules={self.rules}"),
            # not -q: that would hide tokenfix's INFO lines, which the demo shows
            *("--set", "flow_detail=0"),
            # a fresh configuration directory: no ~/.mitmproxy/config.yaml applies
            *("--set", f"confdir={self.workdir / 'mitmproxy'}"),
        ]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        return self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                socket.create_connection((LOCAL_HOST, self.port), timeout=0.2).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# -- the report ---------------------------------------------------------------------


def row(label: str, left: str, right: str) -> str:
    return f"{label:<{LABEL}}{left:<{COLUMN}}{right}".rstrip()


def print_table(title: str, direct: Reply, proxied: Reply) -> None:
    print(row(title, f"HTTP {direct.status}", f"HTTP {proxied.status}"))
    names = list(dict.fromkeys([*direct.body, *proxied.body]))
    for name in names:
        left = shorten(name, direct.body.get(name))
        right = shorten(name, proxied.body.get(name))
        print(row(f"  {name}", left, right))
    print(
        row("  Alexa schedules a refresh?", refresh_plan(direct), refresh_plan(proxied))
    )
    print()


def lifetime_left(reply: Reply) -> float | None:
    """Seconds the access token had left when the reply arrived, from its exp."""
    claims = jwt_claims(reply.body.get("access_token")) or {}
    exp = finite(claims.get("exp"))
    return None if exp is None else exp - reply.received_at


def repaired(reply: Reply) -> bool:
    expires_in = reply.body.get("expires_in")
    left = lifetime_left(reply)
    if reply.status != 200 or type(expires_in) is not int or left is None:
        return False
    return abs(expires_in - left) <= 2


def tokenfix_lines(output: str, linkings: list[Linking]) -> list[str]:
    values = [
        value
        for linking in linkings
        for reply in (linking.code_exchange, linking.refresh)
        for name, value in reply.body.items()
        if name in SECRET_FIELDS and isinstance(value, str)
    ]
    lines = []
    for line in output.splitlines():
        if "tokenfix" not in line or "Loading script" in line:
            continue
        if any(value in line for value in values):
            # tokenfix promises never to log a token; say so rather than show it
            line = "(a line holding a token value was withheld: a tokenfix bug)"
        lines.append(line)
    return lines


def report(server: LocalAuthServer, proxy: Proxy, direct: Linking, via: Linking):
    print(row("What Alexa receives", "straight from the server", "through tokenfix"))
    print("-" * (LABEL + 2 * COLUMN))
    print_table("code exchange", direct.code_exchange, via.code_exchange)
    print_table("refresh", direct.refresh, via.refresh)

    print("tokenfix logged:")
    for line in tokenfix_lines(proxy.output(), [direct, via]) or ["(nothing)"]:
        print(f"  {line}")
    print()

    if not repaired(via.refresh):
        print(
            "FAILED: the refresh response through tokenfix has no correct expires_in."
        )
        print(f"mitmdump's output is in {proxy.log_path}:")
        print(proxy.output())
        return 1
    expires_in = via.refresh.body["expires_in"]
    sent = [answer.body for answer in server.answers]
    untouched = via.code_exchange.raw in sent and via.refresh.raw not in sent
    summary = (
        "Without tokenfix the refresh response has no expires_in: Alexa cannot "
        "schedule the next refresh, and the user is unlinked once the access token "
        f"expires. Through tokenfix it says {expires_in} s, read from the access "
        f"token's exp claim (this server's tokens live {server.lifetime} s), and "
        "the refresh cycle goes on. "
    )
    if untouched:
        summary += "The code exchange, already compliant, passed byte for byte."
    else:
        summary += "NOTE: the code exchange did not pass byte for byte."
    print(textwrap.fill(summary, width=80))
    return 0


# -- main ---------------------------------------------------------------------------


INTRO = """\
tokenfix demo: Alexa account linking with a server that behaves as Auth0 once
did (its refresh responses leave out expires_in)
"""

SETUP = """\
  authorization server  {server}  (local, in this process)
  tokenfix              {proxy}  (mitmdump, reverse mode)
  rules                 {rules}, with host {host} added

Alexa links an account: the user approves at /authorize, then Alexa exchanges
the code at /oauth/token and later refreshes, with form bodies and the client
secret in HTTP Basic. Once straight to the server, once with Alexa's "Access
Token URI" pointing at tokenfix.
"""


def run(server: LocalAuthServer, proxy: Proxy) -> int:
    print(INTRO)
    if not proxy.start():
        print("FAILED: mitmdump with tokenfix did not start. Its output:\n")
        print(proxy.output())
        return 1
    print(
        SETUP.format(
            server=server.url,
            proxy=proxy.url,
            rules=SHIPPED_RULES.name,
            host=LOCAL_HOST,
        )
    )

    try:
        direct = link_account(server.url, f"{server.url}/oauth/token")
        via = link_account(server.url, f"{proxy.url}/oauth/token")
    except (OSError, RuntimeError) as e:
        proxy.stop()
        print(f"FAILED: {e}. mitmdump's output:\n")
        print(proxy.output())
        return 1
    # stopped first, so that its log is complete
    proxy.stop()
    return report(server, proxy, direct, via)


def main() -> int:
    if not MITMDUMP.exists():
        print(f"mitmdump not found next to {sys.executable}: run `make demo`.")
        return 1
    if not SHIPPED_RULES.exists():
        print(f"{SHIPPED_RULES} is missing.")
        return 1

    with tempfile.TemporaryDirectory(prefix="tokenfix-demo-") as tmp:
        rules = Path(tmp) / "rules.yaml"
        rules.write_text(localized_rules(SHIPPED_RULES.read_text("utf-8")), "utf-8")
        with LocalAuthServer() as server:
            proxy = Proxy(server.url, rules, Path(tmp))
            try:
                return run(server, proxy)
            finally:
                proxy.stop()


if __name__ == "__main__":
    raise SystemExit(main())
