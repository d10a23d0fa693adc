"""A fast loopback upstream for the load benchmarks: HTTP/1.1 with keep-alive.

It answers from bytes built once at start-up, so that its own cost is small
and the same for every proxy in front of it:

- `POST /oauth/token`: Auth0's refresh response without `expires_in`
- `GET /userinfo` (and any other path): a small JSON profile

Run it as `python -m bench.upstream [--port N]`; it prints `listening PORT`
once it accepts connections and serves until it is terminated.
"""

import argparse
import asyncio
import signal
import sys

from bench.exchanges import TOKEN_PATH, token_response, userinfo_response

HEAD_END = b"\r\n\r\n"
MAX_HEAD = 64 * 1024


def _response(body: bytes) -> bytes:
    head = (
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: application/json\r\n"
        "Cache-Control: no-store\r\n"
        "Pragma: no-cache\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode("ascii") + body


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


class Server(asyncio.Protocol):
    """One connection: requests are answered in order, pipelined or not."""

    def __init__(self, token: bytes, other: bytes) -> None:
        self.token = token
        self.other = other
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(HEAD_END)
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self.transport.close()
                return
            head = self.buffer[:end]
            size = end + 4 + _content_length(head)
            if len(self.buffer) < size:
                return
            self.buffer = self.buffer[size:]
            target = head.split(b" ", 2)[1]
            is_token = target.split(b"?", 1)[0] == TOKEN_PATH.encode()
            self.transport.write(self.token if is_token else self.other)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    token = _response(token_response())
    other = _response(userinfo_response())
    server = await loop.create_server(
        lambda: Server(token, other), "127.0.0.1", port, backlog=1024
    )
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
