"""Keeps a storm of identical log lines from flooding the log."""

import re
import time

# what a reason takes from the exchange: quoted names and values, numbers
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_DETAIL = re.compile(rf"{_QUOTED.pattern}|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")


def shape(reason: str, *, numbers: bool = True) -> str:
    """A reason with the exchange's own details masked, so that reasons that
    differ only in them ("duplicate key 'a'", "duplicate key 'b'") are one."""
    return (_DETAIL if numbers else _QUOTED).sub("…", reason)


class Throttle:
    """Allows each key `burst` times per `window` seconds and counts the rest."""

    def __init__(self, burst: int = 5, window: float = 60.0, clock=time.monotonic):
        self.burst = burst
        self.window = window
        self.clock = clock
        self._seen: dict[str, list] = {}

    def allow(self, key: str) -> tuple[bool, int]:
        """Whether to log now, and how many were held back since the last line."""
        now = self.clock()
        entry = self._seen.get(key)
        if entry is None or now - entry[0] >= self.window:
            held = entry[2] if entry else 0
            if len(self._seen) > 1000:
                self._seen.clear()
            self._seen[key] = [now, 1, 0]
            return True, held
        if entry[1] < self.burst:
            entry[1] += 1
            return True, 0
        entry[2] += 1
        return False, 0
