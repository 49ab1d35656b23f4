"""The access-point race over real loopback sockets, on asyncio and trio.

Each test starts small TCP servers that speak a one-line handshake (``HELLO`` → ``OK <name>`` or ``NO``) and
behave as told: answer at once, never answer, reject, or refuse the connection. Server-side, every accepted
connection records when the client closed it, which is how the tests prove that no losing socket is left open.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import anyio.abc
import pytest

from imsdk_client._core.race import Endpoint
from imsdk_client._drivers.race import AllAccessPointsFailed, race_connect, race_with_refresh

pytestmark = pytest.mark.anyio

GUARD = 10.0  # seconds; only stops a broken test from hanging, never asserted on


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class HandshakeRejected(Exception):
    pass


async def line_handshake(stream: anyio.abc.ByteStream, endpoint: Endpoint) -> str:
    """The client side: say hello, expect ``OK <name>``."""
    await stream.send(b"HELLO\n")
    reply = b""
    while not reply.endswith(b"\n"):
        reply += await stream.receive()
    if not reply.startswith(b"OK "):
        raise HandshakeRejected(reply.decode().strip())
    return reply[3:].decode().strip()


class Changes:
    """Wakes waiters whenever a server accepts or loses a connection."""

    def __init__(self) -> None:
        self._event: anyio.Event | None = None

    def notify(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        with anyio.fail_after(GUARD):
            while not condition():
                if self._event is None:
                    self._event = anyio.Event()
                await self._event.wait()


@dataclass
class Server:
    """One loopback server; ``mode`` is "ok", "silent", "reject" or "gated" (says OK once ``gate`` is set)."""

    name: str
    mode: str
    port: int = 0
    gate: anyio.Event = field(default_factory=anyio.Event)
    rejected: anyio.Event = field(default_factory=anyio.Event)
    changes: Changes = field(default_factory=Changes)
    accepted: int = 0
    closed: int = 0

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint("127.0.0.1", self.port)

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        self.accepted += 1
        self.changes.notify()
        try:
            async with stream, anyio.create_task_group() as tg:
                if self.mode == "gated":
                    tg.start_soon(self._answer_when_gate_opens, stream)
                await self._converse(stream)
                tg.cancel_scope.cancel()
        finally:
            self.closed += 1
            self.changes.notify()

    async def _answer_when_gate_opens(self, stream: anyio.abc.SocketStream) -> None:
        await self.gate.wait()
        try:
            await stream.send(f"OK {self.name}\n".encode())
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    async def _converse(self, stream: anyio.abc.SocketStream) -> None:
        try:
            await stream.receive()  # HELLO
            if self.mode == "ok":
                await stream.send(f"OK {self.name}\n".encode())
            elif self.mode == "reject":
                await stream.send(b"NO\n")
                self.rejected.set()
            while True:  # echo until the client closes
                await stream.send(await stream.receive())
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    async def wait_all_closed(self) -> None:
        await self.changes.wait_until(lambda: self.closed >= self.accepted)


def refusing_endpoint() -> Endpoint:
    """A loopback port nobody listens on: bind it, then close it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return Endpoint("127.0.0.1", port)


@asynccontextmanager
async def serving(*servers: Server) -> AsyncIterator[None]:
    async with anyio.create_task_group() as tg:
        for server in servers:
            listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
            server.port = listener.extra(anyio.abc.SocketAttribute.local_port)
            tg.start_soon(listener.serve, server.handle)
        yield
        tg.cancel_scope.cancel()


async def test_fast_beats_slow_and_refusing_and_the_loser_is_closed() -> None:
    fast, slow = Server("fast", "ok"), Server("slow", "silent")
    async with serving(fast, slow):
        with anyio.fail_after(GUARD):
            result = await race_connect([slow.endpoint, refusing_endpoint(), fast.endpoint], line_handshake)
        assert result.handshake == "fast"
        assert result.endpoint == fast.endpoint
        # The slow server had accepted our attempt; the race closed it.
        assert slow.accepted == 1
        await slow.wait_all_closed()
        # The winner's stream is open and ours.
        await result.stream.send(b"ping")
        assert await result.stream.receive() == b"ping"
        assert fast.closed == 0
        await result.stream.aclose()
        await fast.wait_all_closed()


async def test_all_refusing_raises_with_every_failure() -> None:
    endpoints = [refusing_endpoint() for _ in range(3)]
    with anyio.fail_after(GUARD), pytest.raises(AllAccessPointsFailed) as caught:
        await race_connect(endpoints, line_handshake)
    assert sorted(f.endpoint.port for f in caught.value.failures) == sorted(e.port for e in endpoints)
    assert all(f.reason != "timeout" for f in caught.value.failures)


async def test_a_winner_failing_its_handshake_leaves_the_slower_one_to_win() -> None:
    rejecting = Server("rejecting", "reject")
    slower = Server("slower", "gated")
    async with serving(rejecting, slower), anyio.create_task_group() as tg:

        async def open_gate_after_rejection() -> None:
            await rejecting.rejected.wait()
            slower.gate.set()

        tg.start_soon(open_gate_after_rejection)
        with anyio.fail_after(GUARD):
            result = await race_connect([rejecting.endpoint, slower.endpoint], line_handshake)
        assert result.handshake == "slower"
        assert [(f.endpoint, f.reason) for f in result.failures] == [
            (rejecting.endpoint, "HandshakeRejected: NO")
        ]
        await rejecting.wait_all_closed()
        await result.stream.aclose()


async def test_attempts_that_run_out_of_time_fail_and_are_closed() -> None:
    silent = [Server(f"silent{i}", "silent") for i in range(3)]
    async with serving(*silent):
        with anyio.fail_after(GUARD), pytest.raises(AllAccessPointsFailed) as caught:
            await race_connect([s.endpoint for s in silent], line_handshake, attempt_timeout=0.2)
        assert [f.reason for f in caught.value.failures] == ["timeout"] * 3
        for server in silent:
            await server.wait_all_closed()
            assert server.accepted == 1


async def test_two_handshakes_finishing_together_give_one_winner() -> None:
    changes = Changes()
    gated = [Server("g1", "gated", changes=changes), Server("g2", "gated", changes=changes)]
    gate = anyio.Event()
    for server in gated:
        server.gate = gate  # one gate: both servers answer in the same instant
    async with serving(*gated), anyio.create_task_group() as tg:

        async def open_gate_when_both_connected() -> None:
            await changes.wait_until(lambda: sum(s.accepted for s in gated) >= 2)
            gate.set()

        tg.start_soon(open_gate_when_both_connected)
        with anyio.fail_after(GUARD):
            result = await race_connect([s.endpoint for s in gated], line_handshake)
        winner = next(s for s in gated if s.name == result.handshake)
        loser = next(s for s in gated if s is not winner)
        await loser.wait_all_closed()
        assert winner.closed == 0
        await result.stream.aclose()


async def test_cancelling_the_race_closes_every_attempt() -> None:
    changes = Changes()
    silent = [Server(f"silent{i}", "silent", changes=changes) for i in range(3)]
    async with serving(*silent):
        with anyio.move_on_after(GUARD) as outer:

            async def cancel_once_all_connected() -> None:
                await changes.wait_until(lambda: sum(s.accepted for s in silent) >= 3)
                outer.cancel()

            async with anyio.create_task_group() as tg:
                tg.start_soon(cancel_once_all_connected)
                await race_connect([s.endpoint for s in silent], line_handshake, attempt_timeout=GUARD * 2)
        assert outer.cancelled_caught
        for server in silent:
            await server.wait_all_closed()


async def test_refresh_fetches_a_fresh_list_when_all_fail() -> None:
    good = Server("good", "ok")
    async with serving(good):
        lists = [[refusing_endpoint(), refusing_endpoint()], [refusing_endpoint(), good.endpoint]]
        fetched = 0

        async def fetch() -> list[Endpoint]:
            nonlocal fetched
            fetched += 1
            return lists[fetched - 1]

        with anyio.fail_after(GUARD):
            result = await race_with_refresh(fetch, line_handshake, max_rounds=3)
        assert result.handshake == "good"
        assert fetched == 2
        await result.stream.aclose()


async def test_refresh_gives_up_after_max_rounds() -> None:
    calls = 0

    async def fetch() -> list[Endpoint]:
        nonlocal calls
        calls += 1
        return [refusing_endpoint()]

    first = [refusing_endpoint(), refusing_endpoint()]
    with anyio.fail_after(GUARD), pytest.raises(AllAccessPointsFailed) as caught:
        await race_with_refresh(fetch, line_handshake, endpoints=first, max_rounds=3)
    assert calls == 2  # the first round used the given list
    assert len(caught.value.failures) == 4
    assert caught.value.rounds == 3
    assert "after 3 rounds" in str(caught.value)


async def test_an_empty_list_is_a_typed_failure() -> None:
    with pytest.raises(AllAccessPointsFailed, match="no access points"):
        await race_connect([], line_handshake)
