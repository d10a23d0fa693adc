"""bench/RESULTS.md: the figures of one `python -m bench` run, and how to read them."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

MICRO_LABELS = {
    "test_token_exchange[1]": "token response decided and rewritten, 1 rule",
    "test_token_exchange[20]": "token response decided and rewritten, 20 rules",
    "test_token_exchange[1000]": "token response decided and rewritten, 1000 rules",
    "test_other_exchange": "exchange no rule matches (GET /userinfo), 1000 rules",
    "test_token_exchange_unchanged": (
        "token request with chosen rules, response unchanged, 1000 rules"
    ),
    "test_load_rules": "load and validate a 1000-rule file",
    "test_addon_hooks[token]": "addon hooks, whole, refresh rewritten, 20 rules",
    "test_addon_hooks[other]": "addon hooks, whole, GET /userinfo, 20 rules",
}

NOISE = """\
- The machine has 2 cores and is shared: other jobs may run during a run
  (see the load averages above). Wall-clock figures (throughput, latency)
  move with that load, by tens of percent between rounds.
- CPU seconds per request come from the kernel's accounting of each proxy
  process (`/proc/PID/task/*/schedstat` in nanoseconds, cross-checked against
  the 10 ms ticks of `/proc/PID/stat`), so time that other programs of this
  machine held the core is not counted. It still moves: this is a virtual
  machine whose hypervisor reports no steal time, so a core taken away by the
  host is counted as the proxy's, and caches shared with other jobs slow the
  same work down. Hence three processes measured in turn within each round,
  an order that rotates, ratios taken per round, their median, and the A/A
  ratio of the two identical bare processes: a tokenfix ratio within the A/A
  range is no evidence of a cost, and 1 % (the goal for other traffic) is
  below what one run here can resolve.
- The upstream, the load generator and the proxy under load share the 2
  cores; the proxy gets at most one (mitmproxy runs its hooks on one thread).
- The micro-benchmarks time with `time.process_time` (CPU time of the
  pytest process) and repeat the same exchange in a tight loop, with warm
  caches: inside a busy mitmdump, where mitmproxy's own code runs between two
  hooks, the same addon code costs more (cold caches, and mitmproxy's own
  handling of each log record, which the loop's quiet handler skips), which
  is why the load figures, not the micro ones, decide the CPU goals.
"""


@dataclass
class Goal:
    label: str
    value: float | None
    limit: float
    unit: str

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "NOT RUN"
        return "PASS" if self.value <= self.limit else "FAIL"

    @property
    def shown(self) -> str:
        if self.value is None:
            return "not measured"
        digits = 3 if self.unit == "x" else 1
        return f"{self.value:.{digits}f}{self.unit} (goal <= {self.limit}{self.unit})"


def round_ratios(proxies, kind: str, key) -> list[float]:
    """Per round: tokenfix's figure over the mean of the two bare processes'."""
    bare, bare2, tokenfix = (p.samples[kind] for p in proxies)
    return [
        key(t) / ((key(a) + key(b)) / 2)
        for a, b, t in zip(bare, bare2, tokenfix, strict=True)
    ]


def noise_ratios(proxies, kind: str, key) -> list[float]:
    """Per round: the second bare process's figure over the first's (A/A)."""
    bare, bare2, _ = (p.samples[kind] for p in proxies)
    return [key(b) / key(a) for a, b in zip(bare, bare2, strict=True)]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def _machine(info: dict, load: dict | None) -> list[str]:
    before, after = info["before"], info["after"]
    rows = [[key, value] for key, value in before.items() if key != "load average"]
    if load is not None:
        rows.append(["load generator", load["generator"].version()])
    rows.append(
        [
            "load average (1, 5, 15 min)",
            f"{before['load average']} at the start, "
            f"{after['load average']} at the end",
        ]
    )
    return ["## Machine and versions", "", *_table(["", ""], rows)]


def _setup(args, info: dict, load: dict | None) -> list[str]:
    option = info["profile option"]
    profile = (
        f"`tokenfix_profile` at its default, `{option}`"
        if option is not None
        else "no `tokenfix_profile` option in this version of the addon"
    )
    lines = ["## Method", ""]
    if load is not None:
        gen = load["generator"].name
        lines += [
            "- Three proxies: two bare ones (`bare`, `bare-2`) and tokenfix, each "
            "`mitmdump -q --mode reverse:http://127.0.0.1:UPSTREAM` with its own "
            "confdir and no other option; tokenfix adds `-s addon/tokenfix.py "
            "--set tokenfix_rules=...` with 20 rules (`bench/exchanges.py`; the "
            f"one that applies comes last) and {profile}.",
            "- Upstream: `bench/upstream.py`, asyncio, HTTP/1.1 keep-alive, canned "
            "bytes: `POST /oauth/token` gets an Auth0 refresh response with a JWT "
            "access token and no `expires_in` (1.5 kB), which tokenfix rewrites; "
            "`GET /userinfo` gets a small JSON profile, which no rule matches.",
            f"- Load: {gen}, one thread, {args.connections} keep-alive connections, "
            "closed loop, one proxy at a time. Token traffic is Alexa's refresh: "
            "a form body with HTTP Basic client authentication.",
            f"- Per kind of traffic: {args.warmup:g} s warm-up for each proxy, then "
            f"{args.rounds} rounds of {args.seconds:g} s per proxy, back to back, "
            "in an order that rotates every round.",
            "- CPU per request = the proxy process's CPU seconds during its turn / "
            "requests completed. Per round, tokenfix's figure is divided by the "
            "mean of the two bare ones; the tables give the median of those "
            "ratios and their range. bare-2 / bare is an A/A ratio: two identical "
            "processes, so its distance from 1 is what noise alone does.",
        ]
    lines += [
        "- Micro-benchmarks: pytest-benchmark (`tests/test_bench_engine.py`), the "
        "work of addon/addon.py's hooks as `bench/work.py` reproduces it; median "
        "of process CPU time per call.",
        "",
    ]
    return lines


def _goals(goals: list[Goal]) -> list[str]:
    rows = [[g.label, g.shown, g.verdict] for g in goals]
    return ["## Goals", "", *_table(["goal", "measured", "verdict"], rows)]


def _median(samples, key) -> float:
    return statistics.median(key(s) for s in samples)


METRICS = (
    ("CPU per request (µs)", lambda s: s.cpu_us, "{:.0f}"),
    ("throughput (requests/s)", lambda s: s.load.rps, "{:.0f}"),
    ("latency p50 (ms)", lambda s: s.load.p50_us / 1000, "{:.2f}"),
    ("latency p99 (ms)", lambda s: s.load.p99_us / 1000, "{:.2f}"),
)


def _spread(ratios: list[float]) -> str:
    ratios = sorted(ratios)
    return f"{statistics.median(ratios):.3f} ({ratios[0]:.3f} to {ratios[-1]:.3f})"


def _kind_table(proxies, kind: str) -> list[str]:
    bare, bare2, tokenfix = proxies
    rows = []
    for name, key, form in METRICS:
        rows.append(
            [
                name,
                form.format(_median(bare.samples[kind], key)),
                form.format(_median(bare2.samples[kind], key)),
                form.format(_median(tokenfix.samples[kind], key)),
                _spread(round_ratios(proxies, kind, key)),
                _spread(noise_ratios(proxies, kind, key)),
            ]
        )
    header = ["median of rounds", "bare", "bare-2", "tokenfix"]
    header += ["tokenfix / bare (range)", "A/A: bare-2 / bare (range)"]
    return _table(header, rows)


def _load(load: dict) -> list[str]:
    proxies = load["proxies"]
    lines = ["## Load: tokenfix against bare mitmdump", ""]
    for kind, title in (
        ("token", "Refreshes, every response rewritten"),
        ("other", "GET /userinfo, no rule matches"),
    ):
        samples = [s for p in proxies for s in p.samples[kind]]
        bare_cpu = statistics.median(
            s.cpu_us for p in proxies[:2] for s in p.samples[kind]
        )
        extra = _median(proxies[2].samples[kind], lambda s: s.cpu_us) - bare_cpu
        lines += [f"### {title}", "", *_kind_table(proxies, kind)]
        lines += [
            f"tokenfix's extra CPU per request: {extra:.0f} µs over the bare "
            f"median of {bare_cpu:.0f} µs (1 % of it is {bare_cpu / 100:.0f} µs). "
            f"Failed requests: {sum(s.load.errors for s in samples)}. "
            f"Accounting: {', '.join(sorted({s.accounting for s in samples}))}.",
            "",
        ]
    return lines + _rounds(proxies)


def _rounds(proxies) -> list[str]:
    rows = []
    for kind in ("token", "other"):
        bare, bare2, tokenfix = (p.samples[kind] for p in proxies)
        ratios = round_ratios(proxies, kind, lambda s: s.cpu_us)
        for number, (a, b, t) in enumerate(zip(bare, bare2, tokenfix, strict=True)):
            rows.append(
                [
                    kind,
                    str(number + 1),
                    f"{a.cpu_us:.0f}",
                    f"{b.cpu_us:.0f}",
                    f"{t.cpu_us:.0f}",
                    f"{ratios[number]:.3f}",
                    f"{b.cpu_us / a.cpu_us:.3f}",
                    f"{a.load.rps:.0f} / {b.load.rps:.0f} / {t.load.rps:.0f}",
                ]
            )
    header = ["traffic", "round", "bare µs/req", "bare-2 µs/req", "tokenfix µs/req"]
    header += ["tokenfix / bare", "A/A", "req/s (bare / bare-2 / tokenfix)"]
    return ["### Every round (CPU per request)", "", *_table(header, rows)]


def _memory(load: dict) -> list[str]:
    mem = load["memory"]
    growth = (mem.last_rss - mem.first_rss) / 1e6
    rows = [
        [
            "mitmdump + tokenfix",
            f"{mem.first_requests:,}",
            f"{mem.first_rss / 1e6:.1f}",
        ],
        ["mitmdump + tokenfix", f"{mem.last_requests:,}", f"{mem.last_rss / 1e6:.1f}"],
        [
            "bare mitmdump (reference)",
            f"{mem.bare_requests:,}",
            f"{mem.bare_rss / 1e6:.1f}",
        ],
    ]
    lines = ["## Memory", "", *_table(["process", "after requests", "RSS (MB)"], rows)]
    lines.append(f"Growth of the tokenfix process: {growth:+.1f} MB.")
    if not mem.complete:
        lines.append(
            f"The run's time budget ended the top-up at {mem.last_requests:,} "
            "requests, short of the target."
        )
    return lines + [""]


def _micro(micro: dict) -> list[str]:
    rows = []
    for bench in micro["benchmarks"]:
        stats = bench["stats"]
        scale, unit = (1e3, "ms") if stats["median"] > 1e-3 else (1e6, "µs")
        rows.append(
            [
                MICRO_LABELS.get(bench["name"], bench["name"]),
                f"`{bench['name']}`",
                f"{stats['median'] * scale:.1f} {unit}",
                f"{stats['min'] * scale:.1f} {unit}",
                str(stats["rounds"]),
            ]
        )
    header = ["what", "benchmark", "median", "min", "rounds"]
    return ["## Micro-benchmarks", "", *_table(header, rows)]


def _profile(variants, profiler: str, entries) -> list[str]:
    lines = [
        "## Where the addon's time goes",
        "",
        "CPU time of `TokenFix.request` + `TokenFix.response` per rewritten refresh "
        "(20 rules, fresh `tflow` flows, logging as `-q`), as mitmdump runs it, "
        "as a flow view (mitmweb) makes it run, and without the profile check:",
        "",
    ]
    lines += _table(
        ["variant", "µs per exchange"], [[v, f"{us:.0f}"] for v, us in variants]
    )
    top = [e for e in entries if not e.name.startswith(("profile (", "hooks ("))]
    rows = [[f"`{e.name}`", f"{e.inclusive:.1%}", f"{e.own:.1%}"] for e in top[:18]]
    lines += [f"Profile: {profiler}; shares of the hooks' time.", ""]
    lines += ["Top entries, time including callees:", ""]
    lines += _table(["function", "incl.", "own"], rows)
    own = sorted(top, key=lambda e: e.own, reverse=True)[:10]
    rows = [[f"`{e.name}`", f"{e.own:.1%}", f"{e.inclusive:.1%}"] for e in own]
    lines += ["Top entries, own time:", ""]
    return lines + _table(["function", "own", "incl."], rows)


def render(args, info, load, micro, goals, profile) -> str:
    lines = [
        "# tokenfix benchmarks",
        "",
        "Written by `make bench` (`python -m bench`); rerun it rather than edit.",
        "Several workers behind HAProxy: [RESULTS-scaleout.md](RESULTS-scaleout.md).",
        "",
    ]
    lines += _machine(info, load)
    lines += _setup(args, info, load)
    lines += _goals(goals)
    if load is not None:
        lines += _load(load)
        lines += _memory(load)
    if micro is not None:
        lines += _micro(micro)
    lines += _profile(*profile)
    lines += ["## Noise", "", NOISE]
    return "\n".join(lines)
