"""Frames a test client sends and reads, shared by the core and driver tests."""

from __future__ import annotations

from google.protobuf.message import Message

from imsdk_proto._frame import Frame, FrameDecoder, encode_frame
from imsdk_proto._header import Header
from imsdk_proto.codes import Biz, ChatFunc, Codec, SystemFunc
from imsdk_proto.messages import ChatText, Handshake, NetworkType, Ping, Platform


def handshake(token: str, device: str = "phone", codec: Codec = Codec.PROTOBUF, **fields: object) -> bytes:
    body = Handshake(
        token=token,
        device_id=device,
        platform=Platform.PLATFORM_ANDROID,
        client_version="1.2.3",
        network=NetworkType.NETWORK_TYPE_4G,
        codec=int(codec),
        **fields,  # type: ignore[arg-type]
    )
    return encode_frame(Header(Biz.SYSTEM, SystemFunc.HANDSHAKE, seq=1), body, codec)


def ping(time_ms: int = 1234, codec: Codec = Codec.PROTOBUF, seq: int = 0) -> bytes:
    return encode_frame(Header(Biz.SYSTEM, SystemFunc.PING, seq=seq), Ping(time_ms=time_ms), codec)


def chat(text: str = "hi", codec: Codec = Codec.PROTOBUF, **header: object) -> bytes:
    h = Header(Biz.CHAT, ChatFunc.TEXT, **header)  # type: ignore[arg-type]
    return encode_frame(h, ChatText(text=text), codec)


def raw_frame(
    biz: int, func: int, body: Message | None = None, codec: Codec = Codec.PROTOBUF, **hdr: object
) -> bytes:
    return encode_frame(Header(biz, func, **hdr), body, codec)  # type: ignore[arg-type]


def decode_all(data: bytes, max_frame_size: int = 1 << 20) -> list[Frame]:
    decoder = FrameDecoder(max_frame_size, lock_codec=False)
    decoder.feed(data)
    return list(decoder)
