"""The fallback load generator, used when wrk is not installed.

Like `wrk -t1 -cN`: N keep-alive HTTP/1.1 connections, each sending the next
request as soon as the last response has been read whole (a closed loop),
for a number of seconds. It prints one JSON
line: requests, seconds, errors, and latency percentiles in microseconds.

It is plain asyncio and so costs far more CPU per request than wrk, on the
same cores as the proxy: throughput and latency are then lower than wrk
would show, while the proxy's own CPU seconds per request stay comparable.

    python -m bench.loadgen --port 8080 --kind token --seconds 5 --connections 8
"""

import argparse
import asyncio
import json
import sys
import time

from bench.exchanges import (
    HOST,
    OTHER_PATH,
    REFRESH_FORM,
    REFRESH_HEADERS,
    TOKEN_PATH,
    USERINFO_HEADERS,
)


def request_bytes(kind: str, port: int) -> bytes:
    """The request wrk would send for this kind of traffic."""
    if kind == "token":
        lines = [f"POST {TOKEN_PATH} HTTP/1.1", f"Host: {HOST}:{port}"]
        lines += [f"{k}: {v}" for k, v in REFRESH_HEADERS.items()]
        lines.append(f"Content-Length: {len(REFRESH_FORM)}")
        return ("\r\n".join(lines) + "\r\n\r\n" + REFRESH_FORM).encode()
    lines = [f"GET {OTHER_PATH} HTTP/1.1", f"Host: {HOST}:{port}"]
    lines += [f"{k}: {v}" for k, v in USERINFO_HEADERS.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise ValueError("the benchmark expects a Content-Length on every response")
    await reader.readexactly(length)
    return status


class Run:
    def __init__(self, port: int, payload: bytes, deadline: float):
        self.port = port
        self.payload = payload
        self.deadline = deadline
        self.latencies: list[int] = []
        self.errors = 0

    def more(self) -> bool:
        return time.monotonic() < self.deadline

    async def connection(self) -> None:
        while self.more():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                self.errors += 1
                await asyncio.sleep(0.01)
                continue
            try:
                while self.more():
                    start = time.perf_counter_ns()
                    writer.write(self.payload)
                    status = await _read_response(reader)
                    self.latencies.append((time.perf_counter_ns() - start) // 1000)
                    if not 200 <= status < 400:
                        self.errors += 1
            except (OSError, asyncio.IncompleteReadError, ValueError):
                self.errors += 1
            finally:
                writer.close()


def percentile(sorted_values: list[int], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(len(sorted_values) * pct / 100))
    return float(sorted_values[index])


async def run(port: int, kind: str, seconds: float, connections: int) -> dict:
    started = time.monotonic()
    state = Run(port, request_bytes(kind, port), started + seconds)
    await asyncio.gather(*(state.connection() for _ in range(connections)))
    elapsed = time.monotonic() - started
    latencies = sorted(state.latencies)
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "errors": state.errors,
        "p50_us": percentile(latencies, 50),
        "p99_us": percentile(latencies, 99),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--kind", choices=("token", "other"), default="token")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.port, args.kind, args.seconds, args.connections))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
