"""End to end: hostile token responses through a real mitmdump with tokenfix.

A rule matches every exchange here, so each body is a candidate: each one must
reach the client (byte for byte when tokenfix leaves it alone), with one debug
line giving the reason and no addon error or traceback. A storm of such
exchanges must not flood the log.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest
from mitmproxy import http, io
from mitmproxy.net import encoding

from addon import contentview
from tests.helpers import request

pytestmark = pytest.mark.e2e

RULES = """\
rules:
  - name: hostile-default-lifetime
    match: {host: 127.0.0.1, path: "/hostile/*", grant_type: refresh_token}
    actions:
      - default: {expires_in: 3600}
"""
STREAM_ABOVE = 4 * 1024 * 1024
FORM = "grant_type=refresh_token&refresh_token=rt-hostile"
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}
TOKEN = b'{"access_token":"at-hostile","token_type":"Bearer"}'
MIB = 1024 * 1024
# lines no run should ever log
ALARMS = re.compile(r"Traceback|Addon error|Error in|Exception", re.IGNORECASE)


def deep(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


SKIPPED = [
    # (id, Content-Encoding, body, the reason tokenfix gives)
    ("invalid-json", None, b'{"access_token": "at", ', "not JSON (JSONDecodeError)"),
    ("top-level-array", None, b'[{"access_token":"at"}]', "JSON is a top-level list"),
    ("top-level-string", None, b'"at-hostile"', "JSON is a top-level str"),
    ("empty", None, b"", "empty body"),
    ("not-utf-8", None, b'{"access_token":"\xff\xfe\xc0"}', "body is not UTF-8 text"),
    ("deep-objects", None, deep(5000), "JSON nested too deep"),
    ("deep-arrays", None, b"[" * 100_000 + b"]" * 100_000, "JSON nested too deep"),
    (
        "several-mib",
        None,
        b'{"pad":"' + b"x" * (3 * MIB) + b'"}',
        "body larger than 1048576 bytes",
    ),
    ("nan", None, b'{"access_token":"at","expires_in":NaN}', "non-standard number NaN"),
    ("1e400", None, b'{"expires_in":1e400}', "number beyond float range"),
    ("huge-integer", None, b'{"n":' + b"9" * 400 + b"}", "number beyond float range"),
    ("endless-digits", None, b'{"n":' + b"9" * 5000 + b"}", "not JSON (ValueError)"),
    (
        "duplicate-keys",
        None,
        b'{"access_token":"a","expires_in":1,"access_token":"b"}',
        "duplicate key 'access_token'",
    ),
    ("gzip-garbage", "gzip", b"this is no gzip stream", "cannot decode gzip body"),
    (
        "gzip-truncated",
        "gzip",
        gzip.compress(TOKEN)[:-12],
        "cannot decode gzip body",
    ),
    ("deflate-garbage", "deflate", b"\xff" * 40, "cannot decode deflate body"),
    ("br-garbage", "br", b"\xff" * 40, "cannot decode br body"),
    ("zstd-garbage", "zstd", b"\x28\xb5\x2f\xfd" + b"\xff" * 40, "cannot decode zstd"),
    (
        "gzip-bomb",
        "gzip",
        gzip.compress(b"{" + b" " * (64 * MIB) + b"}"),
        "decoded body larger than 1048576 bytes",
    ),
    ("unknown-encoding", "compress", b"\x1f\x9d\x90", "unsupported Content-Encoding"),
    (
        "streamed",
        None,
        b'{"pad":"' + b"y" * (STREAM_ABOVE + MIB) + b'"}',
        "streamed body",
    ),
]


@pytest.fixture(scope="module")
def hostile(shared_mitmdump, buffered_upstream, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("hostile")
    rules = workdir / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    flows = workdir / "hostile.flows"
    proxy = shared_mitmdump(
        buffered_upstream.url,
        rules,
        f"stream_large_bodies={STREAM_ABOVE}",
        f"save_stream_file={flows}",
        verbosity="debug",
    )
    proxy.flows = flows
    return proxy


def post(proxy, path: str):
    return request(
        "POST", f"{proxy.url}{path}", body=FORM, headers=FORM_HEADERS, timeout=20
    )


def tokenfix_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "tokenfix" in line]


class TestHostileResponses:
    @pytest.mark.parametrize(
        ("name", "content_encoding", "body", "reason"),
        SKIPPED,
        ids=[case[0] for case in SKIPPED],
    )
    def test_passes_byte_for_byte_with_one_debug_line(
        self, hostile, buffered_upstream, name, content_encoding, body, reason
    ):
        headers = [("Content-Type", "application/json")]
        if content_encoding:
            headers.append(("Content-Encoding", content_encoding))
        buffered_upstream.respond(f"/hostile/{name}", headers=headers, body=body)
        since = hostile.mark()

        resp = post(hostile, f"/hostile/{name}")

        assert resp.status == 200
        assert resp.body == body
        assert resp.header("Content-Encoding") == content_encoding
        line = hostile.wait_for_output(
            rf"tokenfix: POST /hostile/{name}: response left as is: (.*)",
            since=since,
        )
        assert line.group(1).startswith(reason), line.group(0)
        output = hostile.output()[since:]
        assert not ALARMS.search(output), output
        # besides that line, only the client profile's verdict on the body
        others = [
            x
            for x in tokenfix_lines(output)
            if "response left" not in x and "tokenfix: loaded" not in x
        ]
        assert [x for x in others if ": rfc6749: " not in x] == []

    @pytest.mark.parametrize("name", ["gzip", "deflate", "br", "zstd"])
    def test_encoded_json_is_rewritten_and_encoded_again(
        self, hostile, buffered_upstream, name
    ):
        headers = {"Content-Type": "application/json", "Content-Encoding": name}
        sent = encoding.encode(TOKEN, name)
        buffered_upstream.respond(f"/hostile/{name}", headers=headers, body=sent)
        since = hostile.mark()

        resp = post(hostile, f"/hostile/{name}")

        assert resp.status == 200
        assert resp.header("Content-Encoding") == name
        assert resp.header("Content-Length") == str(len(resp.body))
        assert json.loads(encoding.decode(resp.body, name)) == {
            **json.loads(TOKEN),
            "expires_in": 3600,
        }
        hostile.wait_for_output(
            rf"tokenfix: POST /hostile/{name}: rule 'hostile-default-lifetime': "
            r"default expires_in=3600",
            since=since,
        )
        assert not ALARMS.search(hostile.output()[since:])

    def test_raw_deflate_is_read_and_answered_zlib_wrapped(
        self, hostile, buffered_upstream
    ):
        # many servers send raw deflate under "deflate"; mitmproxy encodes back
        # the way RFC 9110 section 8.4.1.2 says, zlib-wrapped
        squeezer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        sent = squeezer.compress(TOKEN) + squeezer.flush()
        headers = {"Content-Type": "application/json", "Content-Encoding": "deflate"}
        buffered_upstream.respond("/hostile/raw-deflate", headers=headers, body=sent)

        resp = post(hostile, "/hostile/raw-deflate")

        assert resp.status == 200
        assert json.loads(zlib.decompress(resp.body))["expires_in"] == 3600

    def test_the_token_view_renders_every_hostile_flow(self, hostile):
        # after the tests above: the flows saved so far, as mitmweb would show them
        with open(hostile.flows, "rb") as f:
            flows = [
                flow
                for flow in io.FlowReader(f).stream()
                if isinstance(flow, http.HTTPFlow)
            ]
        names = {flow.request.path.rsplit("/", 1)[1] for flow in flows}
        assert {case[0] for case in SKIPPED} - {"streamed"} <= names
        for flow in flows:
            lines = contentview.lines(flow)
            assert lines[0] == f"OAuth token request: POST {flow.request.path}"
            assert any(line.startswith("response") for line in lines), lines


# -- log volume -----------------------------------------------------------------

STORM_RULES = """\
rules:
  - name: storm-integer-lifetime
    match: {host: 127.0.0.1, path: "/storm/*"}
    actions:
      - coerce: {expires_in: integer}
"""
STORM = 300


@pytest.fixture
def storm_proxy(start_mitmdump, buffered_upstream, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(STORM_RULES, encoding="utf-8")
    return start_mitmdump(buffered_upstream.url, rules, verbosity="debug")


def storm(proxy, paths: list[str]) -> list[int]:
    """POST to every path over four connections; the statuses, in order."""

    def one(path: str) -> int:
        return post(proxy, path).status

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, paths))


def stop_for_stats(proxy) -> str:
    """Stop mitmdump; its output, which ends with tokenfix's counters."""
    proxy.stop()
    return proxy.output()


class TestLogVolume:
    def test_repeated_reasons_are_rate_limited_and_counted(
        self, storm_proxy, buffered_upstream
    ):
        buffered_upstream.respond("/storm/not-json", body=b"<html>busy</html>")
        buffered_upstream.respond("/storm/float", body=b'{"expires_in":3599.5}')
        paths = ["/storm/not-json", "/storm/float"] * STORM

        assert storm(storm_proxy, paths) == [200] * len(paths)
        output = stop_for_stats(storm_proxy)

        skips = [x for x in output.splitlines() if "left as is: not JSON" in x]
        warnings = [x for x in output.splitlines() if "cannot coerce 3599.5" in x]
        # the Throttle's burst: five lines a minute for each reason
        assert len(skips) == 5
        assert len(warnings) == 5
        assert (
            "tokenfix stats: rule 'storm-integer-lifetime': matched 300, changed 0, "
            "skipped 300 (body skipped: not JSON: 300)"
        ) in output
        assert not ALARMS.search(output)

    def test_reasons_that_differ_only_in_the_response_values_are_rate_limited(
        self, storm_proxy, buffered_upstream
    ):
        paths = []
        for i in range(STORM):
            lifetime = f'{{"expires_in":{3000 + i}.5}}'
            buffered_upstream.respond(f"/storm/float-{i}", body=lifetime)
            duplicate = f'{{"k{i}":1,"k{i}":2}}'
            buffered_upstream.respond(f"/storm/duplicate-{i}", body=duplicate)
            paths += [f"/storm/float-{i}", f"/storm/duplicate-{i}"]

        assert storm(storm_proxy, paths) == [200] * len(paths)
        output = stop_for_stats(storm_proxy)

        warnings = [x for x in output.splitlines() if "cannot coerce" in x]
        skips = [x for x in output.splitlines() if "left as is: duplicate key" in x]
        assert len(warnings) <= 5, f"{len(warnings)} warning lines"
        assert len(skips) <= 5, f"{len(skips)} debug lines"
