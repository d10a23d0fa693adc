"""Where the addon's time goes on one rewritten token exchange.

Two views of `TokenFix.request` + `TokenFix.response` on fresh flows, in this
process, logging as `mitmdump -q` does:

- `variants`: the CPU time per exchange as the addon runs it under mitmdump,
  as it runs under a flow view (mitmweb, where each rewrite backs the flow up
  first), and without the client profile check
- `profile`: a sampling profile (pyinstrument when it is installed, else
  cProfile), summed per function
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from addon import addon as addon_module
from bench.work import TOKEN, hooks, make_flow, profile_default, running_addon

REPO = Path(__file__).resolve().parent.parent


def _per_exchange(addon, count: int, repeats: int = 5) -> float:
    """Median CPU microseconds per exchange over `repeats` batches."""
    results = []
    for _ in range(repeats):
        flows = [make_flow(TOKEN) for _ in range(count)]
        start = time.process_time()
        for flow in flows:
            hooks(addon, flow)
        results.append((time.process_time() - start) / count * 1e6)
    return statistics.median(results)


def profile_option(rules_path: Path) -> str | None:
    """The addon's client profile at its default, or None when it has none."""
    with running_addon(rules_path) as addon:
        return profile_default(addon)


def variants(rules_path: Path, count: int = 1000) -> list[tuple[str, float]]:
    """CPU µs per rewritten token exchange, as is and with single steps changed."""
    rows = []
    with running_addon(rules_path) as addon:
        _per_exchange(addon, 200, repeats=1)  # warm-up
        profile = profile_default(addon)
        rows.append(
            ("as shipped, as in mitmdump (no flow view)", _per_exchange(addon, count))
        )
        has_view = addon_module._has_flow_view
        addon_module._has_flow_view = lambda: True
        try:
            label = "with a flow view, as in mitmweb (flow.backup() per rewrite)"
            rows.append((label, _per_exchange(addon, count)))
        finally:
            addon_module._has_flow_view = has_view
        if profile is not None:
            addon.tctx.configure(addon, tokenfix_profile="none")
            rows.append(("tokenfix_profile=none", _per_exchange(addon, count)))
    return rows


@dataclass
class Entry:
    name: str
    inclusive: float  # share of the hooks' time, 0..1
    own: float


def _short(path: str, line: int, function: str) -> str:
    try:
        path = str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        parts = Path(path).parts
        if "site-packages" in parts:
            path = "/".join(parts[parts.index("site-packages") + 1 :])
        else:
            path = "/".join(parts[-2:])
    return f"{function} ({path}:{line})"


def _walk(frame, stack: list, inclusive: dict, own: dict, roots: list) -> None:
    if frame.function == "hooks" and frame.file_path.endswith("work.py"):
        roots.append(frame.time)
    key = _short(frame.file_path or "", frame.line_no or 0, frame.function or "")
    if not frame.is_synthetic:
        if key not in stack:
            inclusive[key] += frame.time
        own[key] += frame.total_self_time
    stack.append(key)
    for child in frame.children:
        _walk(child, stack, inclusive, own, roots)
    stack.pop()


def profile(rules_path: Path, count: int = 3000) -> tuple[str, list[Entry]]:
    """The profiler's name and its entries, sorted by time including callees."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        return _cprofile(rules_path, count)
    with running_addon(rules_path) as addon:
        _per_exchange(addon, 200, repeats=1)
        flows = [make_flow(TOKEN) for _ in range(count)]
        profiler = Profiler(interval=0.0001, async_mode="disabled")
        profiler.start()
        for flow in flows:
            hooks(addon, flow)
        profiler.stop()
    inclusive: dict[str, float] = defaultdict(float)
    own: dict[str, float] = defaultdict(float)
    roots: list[float] = []
    root = profiler.last_session.root_frame()
    _walk(root, [], inclusive, own, roots)
    total = sum(roots) or root.time
    entries = [
        Entry(name, inclusive[name] / total, own[name] / total)
        for name in inclusive
        if inclusive[name] <= total * 1.001
    ]
    entries.sort(key=lambda e: e.inclusive, reverse=True)
    return "pyinstrument (sampling every 0.1 ms)", entries


def _cprofile(rules_path: Path, count: int) -> tuple[str, list[Entry]]:
    import cProfile
    import pstats

    with running_addon(rules_path) as addon:
        flows = [make_flow(TOKEN) for _ in range(count)]
        prof = cProfile.Profile()
        prof.enable()
        for flow in flows:
            hooks(addon, flow)
        prof.disable()
    stats = pstats.Stats(prof).stats
    total = next(
        (v[3] for (f, _, name), v in stats.items() if name == "hooks"), None
    ) or max(v[3] for v in stats.values())
    entries = [
        Entry(_short(f, line, name), v[3] / total, v[2] / total)
        for (f, line, name), v in stats.items()
        if name != "hooks" and v[3] <= total
    ]
    entries.sort(key=lambda e: e.inclusive, reverse=True)
    return "cProfile (deterministic; inflates small functions)", entries
