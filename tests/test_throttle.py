from addon.throttle import Throttle, shape


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttle(burst: int = 2, window: float = 60.0) -> tuple[Throttle, Clock]:
    clock = Clock()
    return Throttle(burst=burst, window=window, clock=clock), clock


class TestThrottle:
    def test_burst_then_held_back(self):
        t, _ = throttle(burst=3)
        assert [t.allow("k") for _ in range(5)] == [
            (True, 0),
            (True, 0),
            (True, 0),
            (False, 0),
            (False, 0),
        ]

    def test_next_window_reports_what_was_held(self):
        t, clock = throttle(burst=1)
        t.allow("k")
        t.allow("k")
        t.allow("k")
        clock.now += 60
        assert t.allow("k") == (True, 2)
        assert t.allow("k") == (False, 0)

    def test_nothing_held_nothing_reported(self):
        t, clock = throttle(burst=2)
        t.allow("k")
        clock.now += 61
        assert t.allow("k") == (True, 0)

    def test_within_the_window(self):
        t, clock = throttle(burst=1, window=10)
        t.allow("k")
        clock.now += 9.9
        assert t.allow("k") == (False, 0)

    def test_keys_are_independent(self):
        t, _ = throttle(burst=1)
        assert t.allow("a") == (True, 0)
        assert t.allow("a") == (False, 0)
        assert t.allow("b") == (True, 0)

    def test_many_keys_do_not_grow_without_bound(self):
        t, _ = throttle(burst=1)
        for i in range(5000):
            t.allow(f"key-{i}")
        assert len(t._seen) <= 1001

    def test_defaults(self):
        t = Throttle()
        assert (t.burst, t.window) == (5, 60.0)
        assert [t.allow("k")[0] for _ in range(6)] == [True] * 5 + [False]


class TestShape:
    def test_names_and_numbers_from_the_exchange_are_masked(self):
        assert shape("duplicate key 'k1'") == shape("duplicate key 'k2'")
        assert shape("cannot coerce 3000.5 to integer") == "cannot coerce … to integer"
        assert shape('cannot coerce "soon" to number') == "cannot coerce … to number"

    def test_numbers_can_be_kept(self):
        reason = "unsupported Content-Encoding 'xz2' over 1048576 bytes"
        assert shape(reason, numbers=False) == (
            "unsupported Content-Encoding … over 1048576 bytes"
        )
