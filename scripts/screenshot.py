"""Take docs/mitmweb.png: mitmweb with tokenfix in front of the demo server,
showing one refresh tokenfix fixed and one it flagged for Alexa.

Prerequisite: Debian's `chromium` package (`apt-get install chromium`), which
provides /usr/bin/chromium; the screenshot is taken with it headless. Without
an emoji font (Debian's `fonts-noto-color-emoji`) mitmweb's marks are drawn as
empty boxes. Run it from a checkout after `make venv`:

    .venv/bin/python scripts/screenshot.py [--out docs/mitmweb.png]

What it does, all on 127.0.0.1: starts the demo authorization server (whose
refresh responses leave out expires_in), starts mitmweb with tokenfix and the
alexa profile in front of it with no rule yet, links an account the way Alexa
does (the refresh is flagged), adds the rule, refreshes again (the refresh is
fixed), and photographs mitmweb with the flagged flow selected. mitmweb 12 wants
its password in the URL; the script makes one up for the run.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mitmproxy import version  # noqa: E402

from demo import alexa  # noqa: E402
from demo.authserver import LocalAuthServer  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
MITMWEB = Path(sys.executable).with_name("mitmweb")
ADDON_SCRIPT = REPO / "addon" / "tokenfix.py"
RULE = """\
rules:
  - name: demo-refresh-expires-in
    description: the demo server, as Auth0 once did, leaves expires_in out
    match:
      host: 127.0.0.1
      path: /oauth/token
      grant_type: refresh_token
    when:
      expires_in: missing
    actions:
      - default: {expires_in: {from_jwt_exp: access_token, fallback: 3600}}
"""
COLUMNS = ("icon", "path", "method", "status", "comment")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "mitmweb.png")
    parser.add_argument(
        "--select",
        choices=("flagged", "fixed"),
        default="flagged",
        help="the refresh shown in the detail pane (default: flagged)",
    )
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(
            f"{CHROMIUM} not found: install Debian's chromium package "
            "(apt-get install chromium)",
            file=sys.stderr,
        )
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="tokenfix-screenshot-"))
    try:
        with LocalAuthServer() as server:
            web = Mitmweb(server.url, workdir)
            try:
                flows = link_and_fix(web, workdir / "rules.yaml")
                shoot(web.page_url(flows[args.select]), args.out, workdir)
            finally:
                web.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    return 0


def link_and_fix(web: Mitmweb, rules: Path) -> dict[str, str]:
    """Link with no rule (flagged), add the rule, refresh (fixed); the two
    refreshes' flow ids."""
    rules.write_text("rules: []\n", encoding="utf-8")
    web.start(rules)
    proxy = f"http://127.0.0.1:{web.port}"
    token_url = f"{proxy}/oauth/token"

    linking = alexa.link_account(proxy, token_url)
    print(f"refresh without the rule: expires_in {_expires_in(linking.refresh)}")

    tmp = rules.with_suffix(".new")
    tmp.write_text(RULE, encoding="utf-8")
    tmp.replace(rules)
    web.wait_for("reloaded 1 rule")
    refresh_token = (
        linking.refresh.body.get("refresh_token")
        or (linking.code_exchange.body["refresh_token"])
    )
    reply = alexa.refresh(token_url, refresh_token)
    print(f"refresh with the rule:    expires_in {_expires_in(reply)}")

    flows = [f for f in web.api("/flows") if f["request"]["path"] == "/oauth/token"]
    return {"flagged": flows[-2]["id"], "fixed": flows[-1]["id"]}


def _expires_in(reply: alexa.Reply) -> object:
    if reply.status != 200:
        raise SystemExit(f"the token endpoint answered {reply.status}")
    return reply.body.get("expires_in")


def shoot(url: str, out: Path, workdir: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    profile = Path(tempfile.mkdtemp(dir=workdir))
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--window-size=1400,900",
            # mitmweb is a single-page app: let it fetch and draw the flows
            "--virtual-time-budget=8000",
            f"--screenshot={out.resolve()}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


class Mitmweb:
    def __init__(self, upstream: str, workdir: Path) -> None:
        self.upstream = upstream
        self.workdir = workdir
        self.log = workdir / "mitmweb.log"
        self.port = free_port()
        self.web_port = free_port()
        self.password = secrets.token_hex(16)
        self.needs_password = mitmproxy_major() >= 12
        self.process: subprocess.Popen | None = None

    def start(self, rules: Path) -> None:
        sets = [
            "web_open_browser=false",
            f"confdir={self.workdir / 'confdir'}",
            f"tokenfix_rules={rules}",
            "tokenfix_profile=alexa",
            *(f"web_columns={column}" for column in COLUMNS),
        ]
        if self.needs_password:
            sets.append(f"web_password={self.password}")
        command = [
            str(MITMWEB),
            *("--mode", f"reverse:{self.upstream}"),
            *("--listen-host", "127.0.0.1", "--listen-port", str(self.port)),
            *("--web-host", "127.0.0.1", "--web-port", str(self.web_port)),
            *("-s", str(ADDON_SCRIPT)),
            *(arg for option in sets for arg in ("--set", option)),
        ]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"mitmweb exited:\n{self.log.read_text()}")
            try:
                self.api("/flows")
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("mitmweb's web interface did not answer within 30 s")

    def api(self, path: str):
        headers = {"Authorization": f"Bearer {self.password}"}
        url = f"http://127.0.0.1:{self.web_port}{path}"
        request = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def page_url(self, flow_id: str) -> str:
        token = f"?token={self.password}" if self.needs_password else ""
        return f"http://127.0.0.1:{self.web_port}/{token}#/flows/{flow_id}/response"

    def wait_for(self, text: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log.read_text(encoding="utf-8", errors="replace"):
            if time.monotonic() > deadline:
                raise SystemExit(f"mitmweb never logged {text!r}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mitmproxy_major() -> int:
    return int(version.VERSION.split(".")[0])


if __name__ == "__main__":
    raise SystemExit(main())
