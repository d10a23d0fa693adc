"""Keeps a storm of identical log lines from flooding the log."""

import time


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
