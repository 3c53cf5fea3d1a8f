"""A lean HTTP/1.1 load client: prepared requests pipelined over a few keep-alive connections.

The load test's driver shares two cores with the broker, the worker and the gateway. aiohttp's
client cost it about 150 % of a core (a task, a session request and a response object per
request) to offer 4,250 requests/s, so the driver, not the gateway, set the pace and the
latency. This client writes prepared request bytes and reads each answer's status line and
``Content-Length`` only: enough for a load generator, nothing more. Answers come back in order
on each connection (HTTP/1.1 pipelining), which aiohttp's server honours.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable

__all__ = ("PipelinedClient", "prepare")

Done = Callable[[int], None]


def prepare(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """The bytes of one POST request (keep-alive)."""
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[Done] = deque()
        self.buffer = bytearray()
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        while self.waiting:
            self.waiting.popleft()(0)  # 0: no answer

    def send(self, request: bytes, done: Done) -> None:
        assert self.transport is not None  # noqa: S101
        self.waiting.append(done)
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).lower()
            start = head.find(b"content-length:")
            length = int(head[start + 15 : head.find(b"\r\n", start)]) if start >= 0 else 0
            if len(buffer) < end + 4 + length:
                return
            status = int(head[9:12])
            del buffer[: end + 4 + length]
            self.waiting.popleft()(status)


class PipelinedClient:
    """``connections`` keep-alive connections to ``host:port``, used in turn."""

    def __init__(self, host: str, port: int, connections: int) -> None:
        self.host, self.port, self.count = host, port, connections
        self._connections: list[_Connection] = []
        self._next: itertools.cycle[_Connection] | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(self.count):
            _, connection = await loop.create_connection(_Connection, self.host, self.port)
            self._connections.append(connection)
        self._next = itertools.cycle(self._connections)

    def send(self, request: bytes, done: Done) -> None:
        """Write the request now; ``done(status)`` runs when its answer is read."""
        assert self._next is not None  # noqa: S101
        next(self._next).send(request, done)

    async def drain(self, limit: float = 120.0) -> None:
        """Until every request sent has its answer (at most ``limit`` seconds)."""
        deadline = asyncio.get_running_loop().time() + limit
        while any(c.waiting for c in self._connections):
            if asyncio.get_running_loop().time() > deadline:
                msg = f"requests still unanswered after {limit:g}s"
                raise TimeoutError(msg)
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        for connection in self._connections:
            if connection.transport is not None:
                connection.transport.close()
        await asyncio.gather(*(c.closed for c in self._connections))
