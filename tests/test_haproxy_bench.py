"""bench/haproxy_bench.py without running it: the loopback form of
deploy/haproxy.cfg, the figures from per-round measurements, the report, and
the skip when HAProxy is missing."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from bench import haproxy_bench as hb
from tests.helpers import REPO

SHIPPED = (REPO / "deploy" / "haproxy.cfg").read_text(encoding="utf-8")


class TestRenderConfig:
    @pytest.fixture
    def lines(self, tmp_path) -> list[str]:
        text = hb.render_config(
            SHIPPED, 18000, [(18001, 19001), (18002, 19002)], tmp_path / "s.sock"
        )
        return [line.strip() for line in text.splitlines()]

    def test_plain_http_on_loopback_and_one_server_per_worker(self, lines, tmp_path):
        assert [line for line in lines if line.startswith("bind ")] == [
            "bind 127.0.0.1:18000"
        ]
        assert [line for line in lines if line.startswith("server ")] == [
            "server worker1 127.0.0.1:18001 port 19001",
            "server worker2 127.0.0.1:18002 port 19002",
        ]
        assert f"stats socket {tmp_path / 's.sock'} mode 600 level user" in lines

    def test_what_needs_root_is_dropped_and_the_rest_kept(self, lines):
        for dropped in ("user haproxy", "group haproxy", "daemon", "maxconn 20000"):
            assert dropped not in lines
        for kept in (
            "balance leastconn",
            "retry-on conn-failure",
            "http-check send meth GET uri /health/ready",
            "default-server check inter 2s fall 3 rise 2 maxconn 200",
            "timeout server 4s",
        ):
            assert kept in lines


def balancer(name: str, rps, cpu_us, served) -> hb.Balancer:
    workers = [None] * len(cpu_us[0])
    b = hb.Balancer(name, None, workers, Path("unused"))
    b.rps, b.cpu_us, b.served = list(rps), list(cpu_us), list(served)
    b.haproxy_us = [100.0] * len(rps)
    b.p99_us = [50_000.0] * len(rps)
    return b


@pytest.fixture
def measured() -> hb.Figures:
    one = balancer("one", [400, 500, 450], [[2000], [2100], [1900]], [[1], [1], [1]])
    two = balancer(
        "two",
        [800, 850, 600],
        [[2000, 2100], [2100, 2100], [2000, 2000]],
        [[300, 100], [300, 100], [300, 100]],
    )
    return hb.figures(one, two)


class TestFigures:
    def test_medians_of_the_per_round_ratios(self, measured):
        assert (measured.rps_one, measured.rps_two) == (450, 800)
        # rounds: 2.0, 1.7 and 1.333...: the median ratio, not a ratio of medians
        assert measured.throughput_ratio == 1.7
        assert measured.cpu_one == 2000
        assert measured.cpu_two == [2000, 2100]
        # rounds: 1.025, 1.0 and 1.0526...
        assert measured.cpu_ratio == pytest.approx(1.025)
        assert measured.share == [0.75, 0.25]
        assert (measured.throughput_ok, measured.cpu_ok) == (True, True)
        assert measured.throughput_span == (pytest.approx(4 / 3), 2.0)
        assert measured.cpu_span == (1.0, pytest.approx(2000 / 1900))

    def test_the_report_names_its_verdicts(self, measured):
        args = SimpleNamespace(connections=32, rounds=3, seconds=6.0)
        text = hb.render(measured, args, "2 CPUs (test)")

        assert text.startswith("# tokenfix scale-out behind HAProxy\n")
        assert "Machine: 2 CPUs (test)." in text
        assert (
            "| requests/s through HAProxy | 450 | 800 (1.70x; 1.33x to 2.00x) "
            "| >= 1.3x: met |" in text
        )
        assert (
            "| worker CPU per request (µs) | 2000 | 2000 and 2100 (1.025x; 1.000x "
            "to 1.053x) "
            "| within 5%: met |" in text
        )
        assert "| requests per worker | 100% | 75% / 25% | |" in text
        assert "saturates one core at about 500 requests/s" in text


class TestWithoutHAProxy:
    def test_it_says_so_and_leaves_the_results(self, monkeypatch, tmp_path, capsys):
        monkeypatch.setattr(hb.shutil, "which", lambda name: None)
        out = tmp_path / "RESULTS-scaleout.md"
        out.write_text("earlier figures\n", encoding="utf-8")

        assert hb.main(["--out", str(out)]) == 0

        assert capsys.readouterr().err == (
            "haproxy bench: skipped: HAProxy is not installed (on Debian: "
            "apt-get install haproxy); RESULTS-scaleout.md is left as it is\n"
        )
        assert out.read_text(encoding="utf-8") == "earlier figures\n"
