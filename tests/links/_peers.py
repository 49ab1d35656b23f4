"""A hand-driven link peer over a real socket: speaks the frames itself, so tests can make it misbehave."""

from __future__ import annotations

from typing import Any

import anyio
from anyio.abc import SocketStream

from imsdk_proto import Frame, FrameDecoder, Header, encode_frame
from imsdk_proto.codes import Biz, ChatFunc, Codec, ErrorCode, Flags, LinkFunc
from imsdk_proto.messages import ChatText, LinkHello, LinkProbeAck, LinkReady
from imsdk_server.links import LinkConfig, LinkIdentity

ACCESS = 1  # ServerRole.SERVER_ROLE_ACCESS
ROUTER = 5  # ServerRole.SERVER_ROLE_INSTANT_ROUTER

#: Short timings so that failure detection runs in well under a second of real time.
FAST = LinkConfig(
    heartbeat_interval=0.2, grace=0.1, probe_timeout=0.15, probes=3, hello_timeout=1.0, close_grace=0.5
)


def chat(seq: int, text: str = "hi") -> Frame:
    return Frame.build(Header(Biz.CHAT, ChatFunc.TEXT, seq=seq), ChatText(text=text))


def hello_frame(identity: LinkIdentity) -> bytes:
    body = LinkHello(
        role=identity.role,  # type: ignore[arg-type]
        server_id=identity.server_id,
        name=identity.name,
        domain=identity.domain,
        bizs=list(identity.bizs),
    )
    return encode_frame(Header(Biz.LINK, LinkFunc.HELLO), body)


def control(func: LinkFunc, body: Any = None) -> bytes:
    return encode_frame(Header(Biz.LINK, func), body)


class RawPeer:
    """One end of a link driven by hand."""

    def __init__(self, stream: SocketStream) -> None:
        self.stream = stream
        self.decoder = FrameDecoder(1 << 20, codec=Codec.PROTOBUF)
        self.seen: list[Frame] = []

    @classmethod
    async def connect(cls, address: tuple[str, int]) -> RawPeer:
        return cls(await anyio.connect_tcp(*address))

    async def send(self, data: bytes) -> None:
        await self.stream.send(data)

    async def recv(self) -> Frame | None:
        """The next frame, or ``None`` at EOF."""
        while True:
            frame = self.decoder.next_frame()
            if frame is not None:
                self.seen.append(frame)
                return frame
            try:
                data = await self.stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return None
            self.decoder.feed(data)

    async def recv_until_eof(self) -> list[Frame]:
        out = []
        while (frame := await self.recv()) is not None:
            out.append(frame)
        return out

    async def link_up(self, identity: LinkIdentity) -> None:
        """Say hello and ready, and read the other side's hello and ready."""
        await self.send(
            hello_frame(identity) + control(LinkFunc.READY, LinkReady(server_id=identity.server_id))
        )
        funcs: list[int] = []
        while len(funcs) < 2:
            frame = await self.recv()
            assert frame is not None
            funcs.append(frame.header.func)
        assert funcs == [LinkFunc.HELLO, LinkFunc.READY]

    async def answer_probe(self, probe_id: int) -> None:
        await self.send(control(LinkFunc.PROBE_ACK, LinkProbeAck(probe_id=probe_id)))

    async def aclose(self) -> None:
        await self.stream.aclose()


def close_code(frames: list[Frame]) -> ErrorCode | None:
    """The code of the error frame a link sends before it closes, if any."""
    for frame in frames:
        if frame.header.biz == Biz.LINK and frame.header.flags & Flags.ERROR:
            return ErrorCode(frame.header.error)
    return None
