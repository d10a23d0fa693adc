"""`python -m bench.haproxy_bench`: scale-out behind HAProxy, into
bench/RESULTS-scaleout.md.

HAProxy (Debian's package: `apt-get install haproxy`; without it the benchmark
says so and is skipped) runs deploy/haproxy.cfg on loopback, with its own
bind, no TLS, and its
`server` lines pointing at tokenfix workers: mitmdump with tokenfix (the
benchmark's 20 rules) in reverse mode in front of the fast local upstream.
Two HAProxy processes run side by side, one with worker 1 behind it and one
with workers 1 and 2, and rounds of refresh traffic alternate between them,
so that both configurations see the same machine over the same minutes.

Per round and configuration: requests per second through HAProxy, and each
worker's CPU seconds per request from the kernel's accounting of the process
(/proc/PID/stat) over the requests that worker served (its own /metrics).
Ratios are taken round by round and their median is reported.

The goal, on a 2-core machine where the load generator, the upstream and
HAProxy share the cores with the workers: at least 1.3x the throughput with
2 workers, and a worker's CPU per request within 5% of a lone worker's. The
second is what predicts linear scaling on a machine with a core per worker.

Every run writes bench/RESULTS-scaleout.md whole. It is a file of its own
because `python -m bench` writes bench/RESULTS.md whole: neither program
can then undo the other's figures, whichever runs first.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import mitmproxy.version

from bench.exchanges import (
    REFRESH_FORM,
    REFRESH_HEADERS,
    TARGET_RULE,
    TOKEN_PATH,
    rules_yaml,
)
from bench.load import load_generator
from bench.proxies import (
    REPO,
    Process,
    cpu_between,
    cpu_mark,
    free_port,
    mitmdump_args,
    start_upstream,
)

CONFIG = REPO / "deploy" / "haproxy.cfg"
RESULTS = REPO / "bench" / "RESULTS-scaleout.md"
RULE_COUNT = 20
THROUGHPUT_GOAL = 1.3
CPU_TOLERANCE = 0.05
# global lines of the shipped config that need root, a syslog socket, or more
# open files than a shell's limit allows (maxconn: HAProxy then sizes itself)
DROPPED = ("user ", "group ", "daemon", "log /dev/log", "chroot ", "maxconn ")


class Skip(Exception):
    """The benchmark cannot run here; the message says why."""


# -- HAProxy -----------------------------------------------------------------------


def find_haproxy() -> str:
    """HAProxy's path. A benchmark installs nothing itself: a missing HAProxy
    is a skip that says how to get it."""
    found = shutil.which("haproxy")
    if not found:
        raise Skip(
            "HAProxy is not installed (on Debian: apt-get install haproxy); "
            f"{RESULTS.name} is left as it is"
        )
    return found


def render_config(
    text: str, bind_port: int, workers: list[tuple[int, int]], socket_path: Path
) -> str:
    """deploy/haproxy.cfg for loopback: plain HTTP on `bind_port`, one `server`
    line per (proxy port, admin port), a stats socket, nothing that needs root.

    Everything else (balancing, timeouts, retries, health checks) is the
    shipped configuration's own.
    """
    out = []
    section = ""
    for line in text.splitlines():
        stripped = line.strip()
        if line and not line[0].isspace():
            section = stripped.split()[0] if stripped else ""
            out.append(line)
            if section == "global":
                out.append(f"    stats socket {socket_path} mode 600 level user")
            continue
        if section == "global" and stripped.startswith(DROPPED):
            continue
        if stripped.startswith("bind "):
            out.append(f"    bind 127.0.0.1:{bind_port}")
            continue
        if stripped.startswith("server "):
            continue
        out.append(line)
        if stripped.startswith("default-server "):
            for n, (port, admin) in enumerate(workers, 1):
                out.append(f"    server worker{n} 127.0.0.1:{port} port {admin}")
    return "\n".join(out) + "\n"


def check_config(haproxy: str, path: Path) -> None:
    done = subprocess.run(
        [haproxy, "-c", "-q", "-f", str(path)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"haproxy -c {path}:\n{done.stdout}{done.stderr}")


def server_states(socket_path: Path) -> dict[str, str]:
    """Each backend server's status ("UP", "DOWN", ...) from the stats socket."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(2)
        s.connect(str(socket_path))
        s.sendall(b"show stat\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    lines = data.decode().splitlines()
    header = lines[0].lstrip("# ").split(",")
    states = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("svname", "").startswith("worker"):
            states[row["svname"]] = row["status"]
    return states


@dataclass
class Balancer:
    name: str
    process: Process
    workers: list[Worker]
    socket_path: Path
    rps: list[float] = field(default_factory=list)
    # per round, per worker: CPU microseconds per request, and requests served
    cpu_us: list[list[float]] = field(default_factory=list)
    served: list[list[int]] = field(default_factory=list)
    haproxy_us: list[float] = field(default_factory=list)
    p99_us: list[float] = field(default_factory=list)
    errors: int = 0


def start_haproxy(
    haproxy: str, name: str, workers: list[Worker], workdir: Path
) -> Balancer:
    socket_path = workdir / f"{name}.sock"
    path = workdir / f"{name}.cfg"
    for _attempt in range(3):
        port = free_port()
        pairs = [(w.process.port, w.admin_port) for w in workers]
        path.write_text(
            render_config(CONFIG.read_text(), port, pairs, socket_path),
            encoding="utf-8",
        )
        check_config(haproxy, path)
        proc = Process(
            name, [haproxy, "-db", "-f", str(path)], workdir / f"{name}.log", port=port
        )
        proc.spawn()
        try:
            proc.wait_port()
            break
        except RuntimeError:
            proc.stop()
            if "address already in use" not in proc.output().lower():
                raise
    else:
        raise RuntimeError(f"{name} found no free port")
    balancer = Balancer(name, proc, workers, socket_path)
    wait_all_up(balancer)
    return balancer


def wait_all_up(balancer: Balancer, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        try:
            states = server_states(balancer.socket_path)
        except OSError:
            states = {}
        if len(states) == len(balancer.workers) and set(states.values()) == {"UP"}:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{balancer.name}: workers not all UP: {states}")


# -- workers -----------------------------------------------------------------------


@dataclass
class Worker:
    process: Process
    admin_port: int

    def served(self) -> int:
        """Refreshes this worker has answered, from its own /metrics."""
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=5)
        try:
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
        finally:
            conn.close()
        sample = f'tokenfix_rule_matched_total{{rule="{TARGET_RULE}"}}'
        for line in text.splitlines():
            if line.startswith(sample + " "):
                return int(float(line.rsplit(" ", 1)[1]))
        return 0


def start_worker(
    n: int, upstream_port: int, workdir: Path, confdir: Path, rules: Path
) -> Worker:
    for _attempt in range(3):
        port, admin = free_port(), free_port()
        if port == admin:
            continue
        args = mitmdump_args(upstream_port, port, confdir, rules)
        args += ["--set", f"tokenfix_admin_listen=127.0.0.1:{admin}"]
        proc = Process(f"worker{n}", args, workdir / f"worker{n}.log", port=port)
        proc.spawn()
        try:
            proc.wait_port()
            return Worker(proc, admin)
        except RuntimeError:
            proc.stop()
            if "address already in use" not in proc.output().lower():
                raise
    raise RuntimeError(f"worker{n} found no free port")


def check_rewrite(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", TOKEN_PATH, REFRESH_FORM, REFRESH_HEADERS)
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    if resp.status != 200 or "expires_in" not in json.loads(body):
        raise RuntimeError(f"port {port}: the refresh was not rewritten: {body[:200]}")


# -- rounds ------------------------------------------------------------------------


def drive(gen, balancer: Balancer, seconds: float, record: bool = True) -> None:
    marks = [cpu_mark(w.process.pid) for w in balancer.workers]
    before = [w.served() for w in balancer.workers]
    ha_mark = cpu_mark(balancer.process.pid)
    load = gen.run(balancer.process.port, "token", seconds)
    ha_cpu, _ = cpu_between(ha_mark, cpu_mark(balancer.process.pid))
    served = [w.served() - b for w, b in zip(balancer.workers, before, strict=True)]
    cpus = [
        cpu_between(m, cpu_mark(w.process.pid))[0]
        for w, m in zip(balancer.workers, marks, strict=True)
    ]
    if not record:
        return
    if load.requests == 0 or 0 in served:
        raise RuntimeError(f"{balancer.name}: a worker served nothing: {served}")
    balancer.errors += load.errors
    balancer.rps.append(load.rps)
    balancer.p99_us.append(load.p99_us)
    balancer.served.append(served)
    balancer.cpu_us.append([c / s * 1e6 for c, s in zip(cpus, served, strict=True)])
    balancer.haproxy_us.append(ha_cpu / load.requests * 1e6)


def run_rounds(gen, one: Balancer, two: Balancer, args) -> None:
    for balancer in (one, two):
        drive(gen, balancer, args.warmup, record=False)
    for number in range(args.rounds):
        order = (one, two) if number % 2 == 0 else (two, one)
        for balancer in order:
            drive(gen, balancer, args.seconds)
        ratio = two.rps[-1] / one.rps[-1]
        cpu = statistics.mean(two.cpu_us[-1]) / one.cpu_us[-1][0]
        print(
            f"haproxy bench: round {number + 1}/{args.rounds}: "
            f"{one.rps[-1]:.0f} -> {two.rps[-1]:.0f} requests/s ({ratio:.2f}x), "
            f"worker CPU per request {one.cpu_us[-1][0]:.0f} -> "
            f"{' / '.join(f'{c:.0f}' for c in two.cpu_us[-1])} µs ({cpu:.3f}x)",
            flush=True,
        )


# -- the report --------------------------------------------------------------------


@dataclass
class Figures:
    rps_one: float
    rps_two: float
    throughput_ratio: float
    cpu_one: float
    cpu_two: list[float]
    cpu_ratio: float
    share: list[float]
    haproxy_one: float
    haproxy_two: float
    p99_one: float
    p99_two: float
    errors: int
    # the lowest and highest per-round ratio: how noisy the machine was
    throughput_span: tuple[float, float] = (0.0, 0.0)
    cpu_span: tuple[float, float] = (0.0, 0.0)

    @property
    def throughput_ok(self) -> bool:
        return self.throughput_ratio >= THROUGHPUT_GOAL

    @property
    def cpu_ok(self) -> bool:
        return abs(self.cpu_ratio - 1) <= CPU_TOLERANCE


def figures(one: Balancer, two: Balancer) -> Figures:
    med = statistics.median
    ratios = [b / a for a, b in zip(one.rps, two.rps, strict=True)]
    cpu_ratios = [
        statistics.mean(b) / a[0] for a, b in zip(one.cpu_us, two.cpu_us, strict=True)
    ]
    totals = [sum(column) for column in zip(*two.served, strict=True)]
    return Figures(
        rps_one=med(one.rps),
        rps_two=med(two.rps),
        throughput_ratio=med(ratios),
        cpu_one=med(r[0] for r in one.cpu_us),
        cpu_two=[med(r[i] for r in two.cpu_us) for i in range(len(two.workers))],
        cpu_ratio=med(cpu_ratios),
        share=[t / sum(totals) for t in totals],
        haproxy_one=med(one.haproxy_us),
        haproxy_two=med(two.haproxy_us),
        p99_one=med(one.p99_us),
        p99_two=med(two.p99_us),
        errors=one.errors + two.errors,
        throughput_span=(min(ratios), max(ratios)),
        cpu_span=(min(cpu_ratios), max(cpu_ratios)),
    )


def _span(span: tuple[float, float], digits: int) -> str:
    return f"{span[0]:.{digits}f}x to {span[1]:.{digits}f}x"


def machine(haproxy: str, gen) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    version = subprocess.run([haproxy, "-v"], capture_output=True, text=True)
    ha = version.stdout.splitlines()[0].split(" - ")[0] if version.stdout else "?"
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, "
        f"Python {platform.python_version()}, mitmproxy {mitmproxy.version.VERSION}, "
        f"{ha}, load from {gen.version()}"
    )


def render(f: Figures, args, where: str) -> str:
    def mark(ok: bool) -> str:
        return "met" if ok else "NOT met"

    today = datetime.date.today().isoformat()
    cpus = " and ".join(f"{c:.0f}" for c in f.cpu_two)
    shares = " / ".join(f"{s:.0%}" for s in f.share)
    rps = f"{f.rps_two:.0f} ({f.throughput_ratio:.2f}x; {_span(f.throughput_span, 2)})"
    cpu = f"{cpus} ({f.cpu_ratio:.3f}x; {_span(f.cpu_span, 3)})"
    rps_goal = f">= {THROUGHPUT_GOAL}x: {mark(f.throughput_ok)}"
    cpu_goal = f"within {CPU_TOLERANCE:.0%}: {mark(f.cpu_ok)}"
    if f.cpu_ok:
        verdict = (
            "the per-request CPU staying flat is what predicts linear scaling "
            "where each worker has a core."
        )
    else:
        verdict = (
            "here the per-request CPU did not stay flat, so this run alone does "
            "not show linear scaling: with the load generator, the upstream and "
            "HAProxy on the same two cores, a worker's CPU time also counts "
            "cache and scheduler contention; see the range of the rounds."
        )
    return f"""\
# tokenfix scale-out behind HAProxy

Written by `make bench` (`python -m bench.haproxy_bench`, {today}); rerun it
rather than edit. The single-proxy figures are in [RESULTS.md](RESULTS.md).

Machine: {where}.

deploy/haproxy.cfg on loopback (plain HTTP; its own balancing, timeouts and
`/health/ready` checks) in front of 1 and then 2 tokenfix workers (mitmdump
`-q`, reverse mode, {RULE_COUNT} rules, refreshes that a rule rewrites), a fast
local upstream, {args.connections} keep-alive connections. {args.rounds} rounds of
{args.seconds:g} s alternate the two set-ups; the figures are medians of the
per-round ones, with the range of the per-round ratios. A worker's CPU per
request is its process's CPU time over the refreshes its own /metrics says it
answered.

| | 1 worker | 2 workers | goal |
| --- | --- | --- | --- |
| requests/s through HAProxy | {f.rps_one:.0f} | {rps} | {rps_goal} |
| worker CPU per request (µs) | {f.cpu_one:.0f} | {cpu} | {cpu_goal} |
| requests per worker | 100% | {shares} | |
| HAProxy CPU per request (µs) | {f.haproxy_one:.0f} | {f.haproxy_two:.0f} | |
| latency p99 (ms) | {f.p99_one / 1000:.1f} | {f.p99_two / 1000:.1f} | |

Failed requests: {f.errors}. A worker's CPU per request is what one core
buys: a worker saturates one core at about {1e6 / f.cpu_one:.0f} requests/s.
Throughput on this machine stops short of 2x because the load generator,
the upstream and HAProxy need the same two cores; {verdict}
"""


# -- main --------------------------------------------------------------------------


def run(args, haproxy: str, workdir: Path) -> tuple[Figures, str]:
    rules = workdir / "rules.yaml"
    rules.write_text(rules_yaml(RULE_COUNT), encoding="utf-8")
    confdir = workdir / "confdir"
    confdir.mkdir()
    gen = load_generator(args.loadgen, workdir, args.connections)
    started: list[Process] = []
    try:
        upstream = start_upstream(workdir)
        started.append(upstream)
        workers = []
        for n in (1, 2):
            workers.append(start_worker(n, upstream.port, workdir, confdir, rules))
            started.append(workers[-1].process)
        for worker in workers:
            check_rewrite(worker.process.port)
        one = start_haproxy(haproxy, "haproxy-1", workers[:1], workdir)
        started.append(one.process)
        two = start_haproxy(haproxy, "haproxy-2", workers, workdir)
        started.append(two.process)
        check_rewrite(two.process.port)
        run_rounds(gen, one, two, args)
        return figures(one, two), machine(haproxy, gen)
    finally:
        for proc in reversed(started):
            proc.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.haproxy_bench")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    try:
        haproxy = find_haproxy()
    except Skip as e:
        print(f"haproxy bench: skipped: {e}", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory(prefix="tokenfix-haproxy-") as tmp:
        f, where = run(args, haproxy, Path(tmp))
    args.out.write_text(render(f, args, where), encoding="utf-8")
    print(
        f"haproxy bench: {f.rps_one:.0f} -> {f.rps_two:.0f} requests/s "
        f"({f.throughput_ratio:.2f}x, goal {THROUGHPUT_GOAL}x); worker CPU per "
        f"request {f.cpu_ratio:.3f}x (goal within {CPU_TOLERANCE:.0%}); "
        f"written to {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
