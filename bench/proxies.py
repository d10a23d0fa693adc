"""The processes under test, and what the OS says they cost.

CPU time comes from the kernel's accounting of the process, never from a
clock on the wall: on a shared machine the wall clock counts the time other
programs held the CPU, the process's own CPU time does not.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ADDON_SCRIPT = REPO / "addon" / "tokenfix.py"
# the mitmdump beside the interpreter that runs the benchmark: the venv's
MITMDUMP = Path(sys.executable).with_name("mitmdump")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tick_seconds(pid: int) -> float:
    """utime + stime of the whole process, dead threads included (10 ms steps)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    # the command name may hold spaces: the fields start after its ')'
    fields = stat[stat.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def exact_seconds(pid: int) -> float | None:
    """The scheduler's run time of every live thread, in nanoseconds, or None."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat", "rb") as f:
                total += int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total / 1e9 if total else None


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@dataclass
class CpuMark:
    ticks: float
    exact: float | None


def cpu_mark(pid: int) -> CpuMark:
    return CpuMark(tick_seconds(pid), exact_seconds(pid))


def cpu_between(start: CpuMark, end: CpuMark) -> tuple[float, str]:
    """CPU seconds between two marks, and which accounting gave them.

    The scheduler's nanosecond count is used when it agrees with the tick
    count, which also holds threads that exited in between.
    """
    ticks = end.ticks - start.ticks
    if start.exact is not None and end.exact is not None:
        exact = end.exact - start.exact
        if abs(exact - ticks) <= 0.03 + 0.02 * ticks:
            return exact, "schedstat"
    return ticks, "stat"


@dataclass
class Process:
    """A child process started by the benchmark, always stopped by `stop()`."""

    name: str
    args: list[str]
    log_path: Path
    cwd: Path = REPO
    port: int = 0
    popen: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def spawn(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "wb") as log:
            self.popen = subprocess.Popen(
                self.args,
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def wait_port(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.popen.returncode}:\n{self.output()}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not listen within {timeout} s")

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=10)


def start_upstream(workdir: Path) -> Process:
    proc = Process(
        "upstream",
        [sys.executable, "-m", "bench.upstream", "--port", "0"],
        workdir / "upstream.log",
    )
    proc.spawn()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        words = proc.output().split()
        if len(words) >= 2 and words[0] == "listening":
            proc.port = int(words[1])
            return proc
        if proc.popen.poll() is not None:
            break
        time.sleep(0.05)
    proc.stop()
    raise RuntimeError(f"the upstream did not start:\n{proc.output()}")


def mitmdump_args(
    upstream_port: int, port: int, confdir: Path, rules: Path | None
) -> list[str]:
    """mitmdump as production runs it: reverse mode, `-q`; tokenfix when `rules`."""
    args = [
        str(MITMDUMP),
        "-q",
        "--mode",
        f"reverse:http://127.0.0.1:{upstream_port}",
        "--listen-host",
        "127.0.0.1",
        "--listen-port",
        str(port),
        "--set",
        f"confdir={confdir}",
    ]
    if rules is not None:
        args += ["-s", str(ADDON_SCRIPT), "--set", f"tokenfix_rules={rules}"]
    return args


def start_mitmdump(
    name: str,
    upstream_port: int,
    workdir: Path,
    confdir: Path,
    rules: Path | None,
    prefix: list[str] | None = None,
) -> Process:
    """A mitmdump on a free port; `prefix` runs it under another program."""
    for _attempt in range(3):
        port = free_port()
        args = mitmdump_args(upstream_port, port, confdir, rules)
        proc = Process(name, (prefix or []) + args, workdir / f"{name}.log", port=port)
        proc.spawn()
        try:
            proc.wait_port()
            return proc
        except RuntimeError:
            proc.stop()
            if "address already in use" not in proc.output().lower():
                raise
    raise RuntimeError(f"{name} found no free port")
