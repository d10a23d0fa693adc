"""Content-Encoding decoding that never inflates past a limit.

mitmproxy's own decoders inflate a body whole, so a small gzip bomb would
cost gigabytes before tokenfix could look at its size. Token responses are
small: these decoders stop as soon as the output passes the limit. Encoding
back is left to mitmproxy (setting `response.content` re-encodes).
"""

import zlib

import brotli

from addon.jsonbody import MAX_BODY, BodySkip

try:  # mitmproxy 12 uses the standard library's zstd or its backport
    from compression import zstd as _zstd  # type: ignore[import-not-found]
except ImportError:
    try:
        from backports import zstd as _zstd  # type: ignore[import-not-found]
    except ImportError:
        _zstd = None
try:  # mitmproxy 11 uses the zstandard package
    import zstandard as _zstandard
except ImportError:
    _zstandard = None

# brotli 1.2 can stop its output at a limit; older versions (mitmproxy 11
# pins brotli 1.1) cannot, and one input byte can still inflate to 16 MiB
BROTLI_LIMITED = hasattr(brotli.Decompressor(), "can_accept_more_data")
ZSTD_STEP = 16


def _too_large(limit: int) -> BodySkip:
    return BodySkip(f"decoded body larger than {limit} bytes")


def _zlib(raw: bytes, wbits: int, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(raw, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        raise _too_large(limit)
    out += inflater.flush()
    if len(out) > limit:
        raise _too_large(limit)
    if not inflater.eof:
        raise zlib.error("truncated stream")
    return out


def _gzip(raw: bytes, limit: int) -> bytes:
    return _zlib(raw, 16 + zlib.MAX_WBITS, limit)


def _deflate(raw: bytes, limit: int) -> bytes:
    # "deflate" is zlib-wrapped by the RFC and raw deflate by many servers
    try:
        return _zlib(raw, zlib.MAX_WBITS, limit)
    except zlib.error:
        return _zlib(raw, -zlib.MAX_WBITS, limit)


def _brotli(raw: bytes, limit: int) -> bytes:
    inflater = brotli.Decompressor()
    if BROTLI_LIMITED:
        out = inflater.process(raw, output_buffer_limit=limit + 1)
        if len(out) > limit:
            raise _too_large(limit)
    else:
        # without an output limit only single input bytes bound what one step
        # inflates to (256 bytes of zeros inflate to 160 MiB in one step)
        out = bytearray()
        for start in range(len(raw)):
            out += inflater.process(raw[start : start + 1])
            if len(out) > limit:
                raise _too_large(limit)
    if not inflater.is_finished():
        raise brotli.error("truncated stream")
    return bytes(out)


def _zstd_decode(raw: bytes, limit: int) -> bytes:
    if _zstd is not None:
        inflater = _zstd.ZstdDecompressor()
        out = inflater.decompress(raw, max_length=limit + 1)
        if len(out) > limit:
            raise _too_large(limit)
        if not inflater.eof:
            raise _zstd.ZstdError("truncated stream")
        return out
    if _zstandard is not None:
        # small input steps bound each step's output: a zstd block of 4 bytes
        # inflates to 128 KiB at most. (A stream reader would bound the output
        # too, but takes a truncated stream for a short one.)
        inflater = _zstandard.ZstdDecompressor().decompressobj()
        out = bytearray()
        for start in range(0, len(raw), ZSTD_STEP):
            out += inflater.decompress(raw[start : start + ZSTD_STEP])
            if len(out) > limit:
                raise _too_large(limit)
            if inflater.eof:
                return bytes(out)
        raise _zstandard.ZstdError("truncated stream")
    raise BodySkip("zstd is not available")


_DECODERS = {
    "gzip": _gzip,
    "x-gzip": _gzip,
    "deflate": _deflate,
    "br": _brotli,
    "zstd": _zstd_decode,
}


def decode_bounded(raw: bytes, encoding: str | None, limit: int = MAX_BODY) -> bytes:
    """The decoded body, or BodySkip when it is too large or cannot be decoded."""
    if len(raw) > limit:
        raise BodySkip(f"body larger than {limit} bytes")
    name = (encoding or "").strip().lower()
    if name in ("", "identity"):
        return raw
    decoder = _DECODERS.get(name)
    if decoder is None:
        raise BodySkip(f"unsupported Content-Encoding {name!r}")
    try:
        return decoder(raw, limit)
    except BodySkip:
        raise
    except Exception:  # each codec has its own error types
        # codecs name their errors poorly (zlib.error): say what it means
        raise BodySkip(f"cannot decode {name} body: corrupt or truncated") from None
