"""Driving load at a proxy: wrk when it is there, else bench.loadgen.

Both run one closed loop per connection on one thread and report the same
numbers: requests completed, seconds, errors, and latency p50 and p99.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.exchanges import (
    OTHER_PATH,
    REFRESH_FORM,
    REFRESH_HEADERS,
    TOKEN_PATH,
    USERINFO_HEADERS,
)
from bench.proxies import REPO

# wrk's own "done" hook reports exact numbers; its text summary rounds them
WRK_SCRIPT = """\
wrk.method = {method}
wrk.path = {path}
{body}
{headers}
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nBENCH {{"requests": %d, "seconds": %.6f, "errors": %d, "status_errors": %d, '
    .. '"p50_us": %.1f, "p99_us": %.1f}}\\n',
    summary.requests, summary.duration / 1e6,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass
class LoadResult:
    requests: int
    seconds: float
    errors: int
    p50_us: float
    p99_us: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _lua(text: str) -> str:
    # a JSON string of ASCII text is a valid Lua string literal
    return json.dumps(text, ensure_ascii=True)


def wrk_script(kind: str) -> str:
    if kind == "token":
        method, path, headers = "POST", TOKEN_PATH, REFRESH_HEADERS
        body = f"wrk.body = {_lua(REFRESH_FORM)}"
    else:
        method, path, headers, body = "GET", OTHER_PATH, USERINFO_HEADERS, ""
    lines = "\n".join(f"wrk.headers[{_lua(k)}] = {_lua(v)}" for k, v in headers.items())
    return WRK_SCRIPT.format(
        method=_lua(method), path=_lua(path), body=body, headers=lines
    )


def find_wrk() -> str | None:
    """wrk's path (`make bench-tools` installs Debian's package), or None."""
    found = shutil.which("wrk")
    if found is None:
        print("bench: wrk is not installed; the load comes from bench.loadgen")
    return found


class Wrk:
    name = "wrk"

    def __init__(self, path: str, workdir: Path, connections: int) -> None:
        self.path = path
        self.workdir = workdir
        self.connections = connections

    def version(self) -> str:
        done = subprocess.run([self.path, "-v"], capture_output=True, text=True)
        return (done.stdout + done.stderr).splitlines()[0].strip()

    def run(self, port: int, kind: str, seconds: float) -> LoadResult:
        script = self.workdir / f"wrk-{kind}.lua"
        script.write_text(wrk_script(kind), encoding="ascii")
        args = [
            self.path,
            "-t1",
            f"-c{self.connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ]
        done = subprocess.run(
            args, capture_output=True, text=True, timeout=seconds + 120
        )
        for line in done.stdout.splitlines():
            if line.startswith("BENCH "):
                data = json.loads(line[6:])
                errors = data["errors"] + data["status_errors"]
                return LoadResult(
                    data["requests"],
                    data["seconds"],
                    errors,
                    data["p50_us"],
                    data["p99_us"],
                )
        raise RuntimeError(f"wrk gave no result:\n{done.stdout}\n{done.stderr}")


class PythonLoad:
    name = "bench.loadgen"

    def __init__(self, connections: int) -> None:
        self.connections = connections

    def version(self) -> str:
        return f"bench.loadgen (Python {sys.version.split()[0]}, asyncio)"

    def run(self, port: int, kind: str, seconds: float) -> LoadResult:
        args = [
            sys.executable,
            "-m",
            "bench.loadgen",
            "--port",
            str(port),
            "--kind",
            kind,
            "--seconds",
            str(seconds),
            "--connections",
            str(self.connections),
        ]
        done = subprocess.run(
            args, cwd=REPO, capture_output=True, text=True, timeout=seconds + 120
        )
        if done.returncode != 0:
            raise RuntimeError(f"bench.loadgen failed:\n{done.stderr}")
        data = json.loads(done.stdout.strip().splitlines()[-1])
        return LoadResult(
            data["requests"],
            data["seconds"],
            data["errors"],
            data["p50_us"],
            data["p99_us"],
        )


def load_generator(choice: str, workdir: Path, connections: int):
    """ "wrk", "python", or "auto": wrk when it is installed."""
    if choice == "python":
        return PythonLoad(connections)
    path = find_wrk()
    if path is None:
        if choice == "wrk":
            raise RuntimeError("wrk is not installed (make bench-tools installs it)")
        return PythonLoad(connections)
    return Wrk(path, workdir, connections)
