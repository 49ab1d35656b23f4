"""Fixtures of the access-server driver tests: real v2 tokens, the embedded queue, a server, clients."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest

from imsdk_proto._frame import Frame, FrameDecoder
from imsdk_proto.codes import Biz, Codec, SystemFunc
from imsdk_proto.messages import HandshakeAck
from imsdk_server.access import AccessConfig, AccessServer, LocalTokenVerifier
from imsdk_server.auth import KeyRing, TokenCodec, TokenVerifier
from imsdk_server.backends.queue import MemoryQueue
from imsdk_server.metrics import Metrics
from tests.access._helpers import handshake


class Tokens:
    """Issues real v2 tokens and verifies them as an access server does."""

    def __init__(self) -> None:
        ring = KeyRing.generate(time.time())
        self.codec = TokenCodec(ring)
        self.verifier = LocalTokenVerifier(TokenVerifier(ring))

    def issue(self, uid: str, device: str, lifetime: int = 3600) -> str:
        token, _ = self.codec.issue(uid, device, now=time.time(), lifetime=lifetime)
        return token


@pytest.fixture
def tokens() -> Tokens:
    return Tokens()


class Client:
    """A test client over a real socket: sends bytes, reads whole frames, sees the server close."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.decoder = FrameDecoder(1 << 20, lock_codec=False)

    @classmethod
    async def connect(
        cls,
        address: tuple[str, int],
        *,
        ssl_context: ssl.SSLContext | None = None,
        rcvbuf: int | None = None,
    ) -> Client:
        if rcvbuf is not None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.connect(address)
            return cls(await anyio.abc.SocketStream.from_socket(sock))
        if ssl_context is not None:
            stream = await anyio.connect_tcp(
                *address, ssl_context=ssl_context, tls_standard_compatible=False, tls_hostname="localhost"
            )
            return cls(stream)
        return cls(await anyio.connect_tcp(*address))

    async def send(self, data: bytes) -> None:
        await self.stream.send(data)

    async def frame(self, within: float = 5.0) -> Frame:
        """The next frame; fails the test if the line closes or nothing comes in time."""
        with anyio.fail_after(within):
            while True:
                frame = self.decoder.next_frame()
                if frame is not None:
                    return frame
                self.decoder.feed(await self.stream.receive())

    async def login(self, token: str, device: str = "phone", codec: Codec = Codec.PROTOBUF) -> HandshakeAck:
        await self.send(handshake(token, device, codec))
        frame = await self.frame()
        assert frame.header.code == (Biz.SYSTEM, SystemFunc.HANDSHAKE_ACK), frame
        return frame.body_as(HandshakeAck)

    async def until_closed(self, within: float = 5.0) -> list[Frame]:
        """Every frame until the server closes the line."""
        frames: list[Frame] = []
        with anyio.fail_after(within):
            while True:
                frame = self.decoder.next_frame()
                if frame is not None:
                    frames.append(frame)
                    continue
                try:
                    self.decoder.feed(await self.stream.receive())
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return frames

    async def aclose(self) -> None:
        await self.stream.aclose()


@asynccontextmanager
async def running(
    tokens: Tokens, *, queue: Any = None, metrics: Metrics | None = None, **config: Any
) -> AsyncIterator[AccessServer]:
    """An access server listening on 127.0.0.1, stopped when the block ends."""
    cfg = AccessConfig(server_id=config.pop("server_id", 7), **config)
    server = AccessServer(cfg, tokens.verifier, queue=queue, metrics=metrics)
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()


@pytest.fixture
def queue() -> MemoryQueue:
    return MemoryQueue()


async def wait_for(predicate: Callable[[], bool], within: float = 5.0) -> None:
    with anyio.fail_after(within):
        while not predicate():  # noqa: ASYNC110 - polls server state that has no event to wait on
            await anyio.sleep(0.01)
