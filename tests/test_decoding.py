import time
import tracemalloc
import zlib

import pytest
from mitmproxy.net import encoding

from addon import decoding
from addon.decoding import decode_bounded
from addon.jsonbody import MAX_BODY, BodySkip

BODY = b'{"access_token":"at-1","token_type":"Bearer","name":"Zo\xc3\xab"}'
ENCODINGS = ["gzip", "deflate", "br", "zstd"]
MiB = 1024 * 1024


def raw_deflate(data: bytes) -> bytes:
    """Deflate without the zlib wrapper, as many servers send "deflate"."""
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


def skip_reason(raw: bytes, name: str | None, limit: int = MAX_BODY) -> str:
    with pytest.raises(BodySkip) as e:
        decode_bounded(raw, name, limit)
    return str(e.value)


class TestIdentity:
    @pytest.mark.parametrize("name", [None, "", "identity", " Identity "])
    def test_body_returned_as_is(self, name):
        assert decode_bounded(BODY, name) is BODY

    def test_raw_body_over_the_limit(self):
        reason = skip_reason(b"x" * (MAX_BODY + 1), None)
        assert reason == f"body larger than {MAX_BODY} bytes"

    def test_raw_body_at_the_limit(self):
        assert len(decode_bounded(b"x" * MAX_BODY, None)) == MAX_BODY


class TestRoundTrips:
    @pytest.mark.parametrize("name", ENCODINGS)
    def test_mitmproxy_encoded(self, name):
        assert decode_bounded(encoding.encode(BODY, name), name) == BODY

    @pytest.mark.parametrize("name", ["GZIP", " gzip ", "Br", "ZSTD"])
    def test_names_ignore_case_and_spaces(self, name):
        raw = encoding.encode(BODY, name.strip().lower())
        assert decode_bounded(raw, name) == BODY

    def test_x_gzip_is_gzip(self):
        assert decode_bounded(encoding.encode(BODY, "gzip"), "x-gzip") == BODY

    def test_deflate_with_zlib_wrapper(self):
        assert decode_bounded(zlib.compress(BODY), "deflate") == BODY

    def test_raw_deflate(self):
        assert decode_bounded(raw_deflate(BODY), "deflate") == BODY

    @pytest.mark.parametrize("name", ENCODINGS)
    def test_exactly_the_limit(self, name):
        body = b"a" * MAX_BODY
        assert decode_bounded(encoding.encode(body, name), name) == body

    @pytest.mark.parametrize("name", ENCODINGS)
    def test_one_byte_over_the_limit(self, name):
        raw = encoding.encode(b"a" * (MAX_BODY + 1), name)
        assert skip_reason(raw, name) == f"decoded body larger than {MAX_BODY} bytes"

    def test_raw_deflate_over_the_limit(self):
        raw = raw_deflate(b"a" * (MAX_BODY + 1))
        reason = skip_reason(raw, "deflate")
        assert reason == f"decoded body larger than {MAX_BODY} bytes"

    @pytest.mark.parametrize("name", ENCODINGS)
    def test_a_smaller_limit(self, name):
        raw = encoding.encode(b"a" * 101, name)
        assert skip_reason(raw, name, limit=100) == "decoded body larger than 100 bytes"
        assert decode_bounded(raw, name, limit=101) == b"a" * 101


@pytest.fixture(scope="module")
def zeros():
    return b"\0" * (50 * MiB)


class TestBombs:
    """50 MiB of zeros, compressed, must be refused without being inflated."""

    @pytest.mark.parametrize("name", ENCODINGS)
    def test_refused_fast_and_bounded(self, zeros, name):
        raw = encoding.encode(zeros, name)
        assert len(raw) < MAX_BODY  # the bomb itself is small

        tracemalloc.start()
        started = time.perf_counter()
        try:
            reason = skip_reason(raw, name)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        elapsed = time.perf_counter() - started

        assert reason == f"decoded body larger than {MAX_BODY} bytes"
        assert elapsed < 2.0
        # brotli before 1.2 has no output limit: one input byte of a bomb can
        # inflate to several MiB before the size check sees it
        bound = 24 * MiB if name == "br" and not decoding.BROTLI_LIMITED else 4 * MiB
        assert peak < bound, f"{name}: {peak / MiB:.1f} MiB allocated"

    def test_raw_deflate_bomb(self, zeros):
        reason = skip_reason(raw_deflate(zeros), "deflate")
        assert reason == f"decoded body larger than {MAX_BODY} bytes"


class TestUndecodable:
    @pytest.mark.parametrize("name", ENCODINGS)
    def test_truncated(self, name):
        raw = encoding.encode(BODY * 20, name)
        reason = skip_reason(raw[: len(raw) // 2], name)
        assert reason.startswith(f"cannot decode {name} body: ")

    @pytest.mark.parametrize("name", ENCODINGS)
    def test_last_bytes_missing(self, name):
        raw = encoding.encode(BODY, name)
        assert skip_reason(raw[:-4], name).startswith(f"cannot decode {name} body: ")

    @pytest.mark.parametrize("name", ENCODINGS)
    def test_corrupt(self, name):
        raw = b"\x00not compressed at all\xff" * 4
        assert skip_reason(raw, name).startswith(f"cannot decode {name} body: ")

    @pytest.mark.parametrize("name", ENCODINGS)
    def test_not_encoded_although_the_header_says_so(self, name):
        assert skip_reason(BODY, name).startswith(f"cannot decode {name} body: ")

    def test_error_names_no_content(self):
        reason = skip_reason(b"secret-token-value", "gzip")
        assert reason == "cannot decode gzip body: corrupt or truncated"

    @pytest.mark.parametrize(
        "name, shown",
        [
            ("compress", "compress"),
            ("snappy", "snappy"),
            ("gzip, br", "gzip, br"),  # several codings in a row
            ("deflateraw", "deflateraw"),
            ("UTF-8", "utf-8"),
        ],
    )
    def test_unknown_encoding(self, name, shown):
        reason = skip_reason(encoding.encode(BODY, "gzip"), name)
        assert reason == f"unsupported Content-Encoding {shown!r}"
