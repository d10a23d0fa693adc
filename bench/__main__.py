"""`python -m bench`: tokenfix against bare mitmdump, and bench/RESULTS.md.

Four processes run side by side for the whole load run: the fast upstream,
two bare mitmdumps and a mitmdump with tokenfix (20 rules), all `-q` in
reverse mode in front of the same upstream. For each kind of traffic
(refreshes that a rule rewrites; `GET /userinfo`, which no rule matches) each
proxy gets a warm-up, then rounds of load, one proxy after the other in an
order that rotates from round to round. Each proxy's CPU seconds per request
come from the kernel's accounting of its process. Per round, tokenfix is
compared with the mean of the two bare processes, and the second bare one
with the first: that A/A ratio shows how far noise alone moves a ratio.

The tokenfix process is also the memory subject: its RSS after its first
1,000 requests, and after 100,000 (the rounds count towards them; refresh
traffic tops up the rest).

`--micro FILE` adds pytest-benchmark's JSON (see the Makefile's `bench`).
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import mitmproxy.version

from bench import profiling
from bench.exchanges import (
    OTHER_PATH,
    REFRESH_FORM,
    REFRESH_HEADERS,
    TOKEN_PATH,
    USERINFO_HEADERS,
    rules_yaml,
)
from bench.load import LoadResult, load_generator
from bench.proxies import (
    REPO,
    Process,
    cpu_between,
    cpu_mark,
    rss_bytes,
    start_mitmdump,
    start_upstream,
)
from bench.report import Goal, render, round_ratios

KINDS = ("token", "other")
RULE_COUNT = 20


@dataclass
class Sample:
    """One proxy's share of one round."""

    cpu_us: float  # CPU microseconds per request
    accounting: str
    load: LoadResult


@dataclass
class Proxy:
    name: str
    process: Process
    requests: int = 0
    busy: float = 0.0  # wall seconds spent in top_up, for its rate estimate
    samples: dict[str, list[Sample]] = field(default_factory=dict)


@dataclass
class Memory:
    first_requests: int = 0
    first_rss: int = 0
    last_requests: int = 0
    last_rss: int = 0
    bare_requests: int = 0
    bare_rss: int = 0
    complete: bool = False


# -- load -------------------------------------------------------------------------


def drive(gen, proxy: Proxy, kind: str, seconds: float) -> Sample:
    start = cpu_mark(proxy.process.pid)
    load = gen.run(proxy.process.port, kind, seconds)
    end = cpu_mark(proxy.process.pid)
    proxy.requests += load.requests
    if load.requests == 0:
        raise RuntimeError(f"{proxy.name}: no request completed ({kind})")
    if load.errors:
        print(f"bench: {proxy.name}: {load.errors} failed requests ({kind})")
    cpu, accounting = cpu_between(start, end)
    return Sample(cpu / load.requests * 1e6, accounting, load)


def order_of(proxies: list, number: int) -> list:
    """Round `number`'s order: rotated every round, reversed every other cycle."""
    shift = number % len(proxies)
    order = proxies[shift:] + proxies[:shift]
    return order[::-1] if (number // len(proxies)) % 2 else order


def rounds(gen, proxies: list[Proxy], kind: str, args) -> None:
    for proxy in proxies:
        drive(gen, proxy, kind, args.warmup)
        proxy.samples[kind] = []
    for number in range(args.rounds):
        for proxy in order_of(proxies, number):
            sample = drive(gen, proxy, kind, args.seconds)
            proxy.samples[kind].append(sample)
        bare, bare2, tokenfix = (p.samples[kind][-1].cpu_us for p in proxies)
        print(
            f"bench: {kind} round {number + 1}/{args.rounds}: CPU per request "
            f"bare {bare:.0f} and {bare2:.0f} µs, tokenfix {tokenfix:.0f} µs "
            f"({tokenfix / ((bare + bare2) / 2):.3f}x)",
            flush=True,
        )


def top_up(gen, proxy: Proxy, target: int, deadline: float) -> bool:
    """Refresh traffic until the proxy has served `target` requests."""
    while proxy.requests < target:
        left = deadline - time.monotonic()
        if left < 2:
            return False
        rate = max(50.0, proxy.requests / proxy.busy) if proxy.busy > 1 else 500.0
        seconds = min(30.0, left, max(1.0, (target - proxy.requests) / rate * 1.05))
        start = time.monotonic()
        drive(gen, proxy, "token", seconds)
        proxy.busy += time.monotonic() - start
    return True


# -- checks -----------------------------------------------------------------------


def fetch(port: int, kind: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        if kind == "token":
            conn.request("POST", TOKEN_PATH, REFRESH_FORM, REFRESH_HEADERS)
        else:
            conn.request("GET", OTHER_PATH, headers=USERINFO_HEADERS)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"port {port}: {kind} answered {response.status}")
        return body
    finally:
        conn.close()


def check_setup(upstream: Process, proxies: list[Proxy]) -> None:
    """Refreshes are rewritten by tokenfix only; other traffic passes as it is."""
    *bares, tokenfix = proxies
    for kind in KINDS:
        direct = fetch(upstream.port, kind)
        for bare in bares:
            if fetch(bare.process.port, kind) != direct:
                raise RuntimeError(f"bare mitmdump changed the {kind} response")
            bare.requests += 1
        via = fetch(tokenfix.process.port, kind)
        rewritten = via != direct and "expires_in" in json.loads(via)
        if rewritten != (kind == "token"):
            raise RuntimeError(
                f"tokenfix did not do what the benchmark expects ({kind}):\n"
                f"{tokenfix.process.output()[-2000:]}"
            )
        tokenfix.requests += 1


# -- the run ----------------------------------------------------------------------


def run_load(args, workdir: Path) -> dict:
    rules = workdir / "rules.yaml"
    rules.write_text(rules_yaml(RULE_COUNT), encoding="utf-8")
    confdir = workdir / "confdir"
    confdir.mkdir()
    gen = load_generator(args.loadgen, workdir, args.connections)
    upstream = start_upstream(workdir)
    started: list[Process] = [upstream]
    try:
        proxies = []
        for name, rules_path in (("bare", None), ("bare-2", None), ("tokenfix", rules)):
            process = start_mitmdump(name, upstream.port, workdir, confdir, rules_path)
            started.append(process)
            proxies.append(Proxy(name, process))
        bare, _, tokenfix = proxies
        check_setup(upstream, proxies)

        memory = Memory()
        for proxy in proxies:
            top_up(gen, proxy, args.memory_first, time.monotonic() + 120)
        memory.first_requests = tokenfix.requests
        memory.first_rss = rss_bytes(tokenfix.process.pid)

        for kind in KINDS:
            rounds(gen, proxies, kind, args)

        print(f"bench: memory: refreshes up to {args.memory_requests} requests")
        memory.complete = top_up(gen, tokenfix, args.memory_requests, args.deadline)
        time.sleep(0.5)
        memory.last_requests = tokenfix.requests
        memory.last_rss = rss_bytes(tokenfix.process.pid)
        memory.bare_requests = bare.requests
        memory.bare_rss = rss_bytes(bare.process.pid)
        for proxy in proxies:
            if proxy.process.popen.poll() is not None:
                raise RuntimeError(f"{proxy.name} died:\n{proxy.process.output()}")
        return {
            "generator": gen,
            "proxies": proxies,
            "memory": memory,
            "stderr": tokenfix.process.output()[-2000:],
        }
    finally:
        for process in reversed(started):
            process.stop()


# -- machine ----------------------------------------------------------------------


def _first(path: str, prefix: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def git_state() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head} (with uncommitted changes)" if dirty else head


def machine() -> dict[str, str]:
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_state(),
        "cpus": f"{os.cpu_count()} ({_first('/proc/cpuinfo', 'model name')})",
        "memory": _first("/proc/meminfo", "MemTotal"),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "mitmproxy": mitmproxy.version.VERSION,
        "load average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


# -- goals ------------------------------------------------------------------------


def _micro(micro: dict | None, name: str) -> float | None:
    if not micro:
        return None
    for bench in micro["benchmarks"]:
        if bench["name"] == name:
            return bench["stats"]["median"]
    return None


def goals(load: dict | None, micro: dict | None) -> list[Goal]:
    found = []
    if load is not None:
        proxies = load["proxies"]
        for kind, limit in (("token", 1.03), ("other", 1.01)):
            value = statistics.median(round_ratios(proxies, kind, lambda s: s.cpu_us))
            what = (
                "refreshes rewritten" if kind == "token" else "traffic no rule matches"
            )
            found.append(Goal(f"CPU per request, {what}", value, limit, "x"))
        mem = load["memory"]
        growth = (mem.last_rss - mem.first_rss) / 1e6
        found.append(Goal("RSS growth, 1k to 100k requests", growth, 5.0, " MB"))
    for label, name, limit, scale, unit in (
        ("one non-matching exchange, 1000 rules", "test_other_exchange", 5, 1e6, " µs"),
        (
            "one token response decided and rewritten, 20 rules",
            "test_token_exchange[20]",
            25,
            1e6,
            " µs",
        ),
        ("load and validate 1000 rules", "test_load_rules", 200, 1e3, " ms"),
    ):
        value = _micro(micro, name)
        found.append(Goal(label, None if value is None else value * scale, limit, unit))
    return found


# -- main -------------------------------------------------------------------------


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--micro", type=Path, help="pytest-benchmark's JSON output")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "RESULTS.md")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=4.0, help="per proxy, round")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--memory-first", type=int, default=1000)
    parser.add_argument("--memory-requests", type=int, default=100_000)
    parser.add_argument(
        "--budget",
        type=float,
        default=450.0,
        help="seconds for the whole run; the memory top-up stops at it",
    )
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--no-load", action="store_true", help="micro and profile only")
    parser.add_argument("--strict", action="store_true", help="exit 1 on a missed goal")
    args = parser.parse_args(argv)
    # the profile runs after the load and needs about half a minute
    args.deadline = time.monotonic() + args.budget - 40
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    micro = json.loads(args.micro.read_text()) if args.micro else None
    workdir = Path(tempfile.mkdtemp(prefix="tokenfix-bench-"))
    try:
        before = machine()
        load = None if args.no_load else run_load(args, workdir)
        rules = workdir / "rules-profile.yaml"
        rules.write_text(rules_yaml(RULE_COUNT), encoding="utf-8")
        print("bench: profiling the addon's hooks", flush=True)
        option = profiling.profile_option(rules)
        variants = profiling.variants(rules)
        profiler, entries = profiling.profile(rules)
        after = machine()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    found = goals(load, micro)
    args.out.write_text(
        render(
            args,
            {"before": before, "after": after, "profile option": option},
            load,
            micro,
            found,
            (variants, profiler, entries),
        ),
        encoding="utf-8",
    )
    for goal in found:
        print(f"bench: {goal.verdict}: {goal.label}: {goal.shown}")
    print(f"bench: wrote {args.out}")
    missed = any(goal.verdict == "FAIL" for goal in found)
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
