"""A minimal client for the tests: HTTP login and a v2 connection to an access server, over real sockets."""

from __future__ import annotations

import socket

import anyio
import anyio.abc
import httpx

from imsdk_proto import Biz, Codec, Frame, FrameDecoder, Header, SystemFunc, encode_frame
from imsdk_proto.messages import Handshake, NetworkType, Platform

PASSWORD = "correct horse battery"
#: How long a test waits for one frame before failing.
FRAME_TIMEOUT = 10.0


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def handshake_frame(token: str, device: str) -> bytes:
    body = Handshake(
        token=token,
        device_id=device,
        platform=Platform.PLATFORM_ANDROID,
        client_version="1.0.0",
        network=NetworkType.NETWORK_TYPE_WIFI,
        codec=int(Codec.PROTOBUF),
    )
    return encode_frame(Header(Biz.SYSTEM, SystemFunc.HANDSHAKE, seq=1), body, Codec.PROTOBUF)


async def register_and_login(client: httpx.AsyncClient, uid: str, device: str = "phone") -> str:
    """Register ``uid`` (unless it exists) and return a token for ``device``."""
    r = await client.post("/v1/users", json={"uid": uid, "password": PASSWORD, "nickname": uid})
    assert r.status_code in (201, 409), r.text
    r = await client.post("/v1/login", json={"uid": uid, "password": PASSWORD, "device": device})
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


class Connection:
    """One client connection: send encoded frames, read decoded ones."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.decoder = FrameDecoder(1 << 20, lock_codec=False)

    @classmethod
    async def open(cls, address: tuple[str, int]) -> Connection:
        return cls(await anyio.connect_tcp(*address))

    async def send(self, data: bytes) -> None:
        await self.stream.send(data)

    async def receive(self) -> Frame:
        with anyio.fail_after(FRAME_TIMEOUT):
            while True:
                frame = self.decoder.next_frame()
                if frame is not None:
                    return frame
                self.decoder.feed(await self.stream.receive())

    async def receive_kind(self, biz: int, func: int) -> Frame:
        """The next frame of ``(biz, func)``, skipping others (e.g. the catch-up's ``SYNC/DONE`` at login)."""
        with anyio.fail_after(FRAME_TIMEOUT):
            while True:
                frame = await self.receive()
                if (frame.header.biz, frame.header.func) == (biz, func):
                    return frame

    async def aclose(self) -> None:
        await self.stream.aclose()
