"""The stream decoder, table-driven: every case fed whole, byte by byte, and followed by trailing bytes."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import bson
import pytest

from imsdk_proto import errors, messages
from imsdk_proto._buffer import MAX_PREAMBLE, encode_varint
from imsdk_proto._frame import Frame, FrameDecoder, encode_frame, encode_raw
from imsdk_proto._header import Header
from imsdk_proto.codes import Biz, ChatFunc, Codec, SystemFunc, VoipFunc
from imsdk_proto.samples import chat_text_sample, voip_call_samples

MAX = 1024

CHAT = chat_text_sample()
PING = Header(Biz.SYSTEM, SystemFunc.PING, seq=1)
V2_CHAT = encode_frame(CHAT.header, CHAT.body, Codec.PROTOBUF)
V1_CHAT = encode_frame(CHAT.header, CHAT.body, Codec.BSON_JSON)
V2_PING = encode_frame(PING, messages.Ping(time_ms=5))
V1_PING = encode_frame(PING, messages.Ping(time_ms=5), Codec.BSON_JSON)
CALL = b"".join(encode_frame(s.header, s.body) for s in voip_call_samples())
V2_EMPTY_BODY = encode_frame(Header(Biz.VOIP, VoipFunc.CALL_REQ_ACK, seq=9))


def _v2(header_bytes: bytes, body: bytes = b"") -> bytes:
    return b"\x12" + encode_varint(len(header_bytes)) + encode_varint(len(body)) + header_bytes + body


def _v1(header_bytes: bytes, body: bytes = b"") -> bytes:
    return b"\x11" + encode_varint(len(header_bytes)) + encode_varint(len(body)) + header_bytes + body


# (name, stream, expected (codec, header) of each frame)
GOOD: list[tuple[str, bytes, list[tuple[Codec, Header]]]] = [
    ("v2 chat", V2_CHAT, [(Codec.PROTOBUF, CHAT.header)]),
    ("v1 chat", V1_CHAT, [(Codec.BSON_JSON, CHAT.header)]),
    ("v2 three", V2_PING + V2_CHAT + V2_PING, [(Codec.PROTOBUF, PING), (Codec.PROTOBUF, CHAT.header)] * 1
     + [(Codec.PROTOBUF, PING)]),
    ("v1 two", V1_CHAT + V1_PING, [(Codec.BSON_JSON, CHAT.header), (Codec.BSON_JSON, PING)]),
    ("bodyless", V2_EMPTY_BODY, [(Codec.PROTOBUF, Header(Biz.VOIP, VoipFunc.CALL_REQ_ACK, seq=9))]),
    ("a whole call", CALL, [(Codec.PROTOBUF, s.header) for s in voip_call_samples()]),
    ("unknown code routes", _v2(b"\x08\x63\x10\x07", b"opaque"), [(Codec.PROTOBUF, Header(99, 7))]),
    ("exactly max", _v2(b"\x08\x02\x10\x01", b"\x0a" + encode_varint(MAX - 7) + b"a" * (MAX - 7)),
     [(Codec.PROTOBUF, Header(2, 1))]),
    ("two-byte length varint", _v2(b"\x08\x02\x10\x01", b"\x0a\xc8\x01" + b"z" * 200),
     [(Codec.PROTOBUF, Header(2, 1))]),
]  # fmt: skip

# (name, stream, error class, number of good frames before the error)
BAD: list[tuple[str, bytes, type[errors.ProtocolError], int]] = [
    ("version 0", b"\x02\x04\x00\x08\x02\x10\x01", errors.UnsupportedVersion, 0),
    ("version 2", b"\x22\x04\x00", errors.UnsupportedVersion, 0),
    ("http request", b"GET / HTTP/1.1\r\n", errors.UnsupportedVersion, 0),
    ("tls hello", b"\x16\x03\x01\x02\x00", errors.UnknownCodec, 0),
    ("codec 0", b"\x10\x04\x00", errors.UnknownCodec, 0),
    ("codec 15", b"\x1f", errors.UnknownCodec, 0),
    ("zero header length", b"\x12\x00\x05", errors.BadPreamble, 0),
    ("overlong header varint", b"\x12\x80\x80\x80\x80\x01", errors.BadPreamble, 0),
    ("overlong body varint", b"\x12\x04\xff\xff\xff\xff\x0f", errors.BadPreamble, 0),
    ("header over max", b"\x12" + encode_varint(MAX + 1), errors.FrameTooLarge, 0),
    ("header + body over max", b"\x12\x04" + encode_varint(MAX - 3), errors.FrameTooLarge, 0),
    ("huge body", b"\x12\x04\xff\xff\xff\x7f", errors.FrameTooLarge, 0),
    ("after a good frame", V2_PING + b"\x12" + encode_varint(MAX * 1000), errors.FrameTooLarge, 1),
    ("protobuf header garbage", _v2(b"\xff\xff\xff"), errors.MalformedHeader, 0),
    ("protobuf header truncated varint", _v2(b"\x08"), errors.MalformedHeader, 0),
    ("protobuf header zero biz", _v2(b"\x10\x01"), errors.MalformedHeader, 0),
    ("protobuf header zero func", _v2(b"\x08\x01"), errors.MalformedHeader, 0),
    ("protobuf header bad utf-8", _v2(b"\x08\x01\x10\x01\x4a\x02\xc3\x28"), errors.MalformedHeader, 0),
    ("bson header garbage", _v1(b"\x05\x00\x00\x00\x01"), errors.MalformedHeader, 0),
    ("bson header wrong length", _v1(bson.encode({"biz": 1, "func": 1}) + b"x"), errors.MalformedHeader, 0),
    ("bson header no biz", _v1(bson.encode({"func": 1})), errors.MalformedHeader, 0),
    ("bson header string biz", _v1(bson.encode({"biz": "1", "func": 1})), errors.MalformedHeader, 0),
    ("bson header bool func", _v1(bson.encode({"biz": 1, "func": True})), errors.MalformedHeader, 0),
    ("bson header float seq", _v1(bson.encode({"biz": 1, "func": 1, "seq": 1.5})), errors.MalformedHeader, 0),
    ("bson header negative u32", _v1(bson.encode({"biz": 1, "func": 1, "error": -1})),
     errors.MalformedHeader, 0),
    ("bson header u32 overflow", _v1(bson.encode({"biz": 1, "func": 1, "access_id": 1 << 32})),
     errors.MalformedHeader, 0),
    ("bson header int uid", _v1(bson.encode({"biz": 1, "func": 1, "sender_uid": 5})),
     errors.MalformedHeader, 0),
    ("codec changes", V2_PING + V1_PING, errors.CodecChanged, 1),
    ("codec changes later", V1_PING + V1_CHAT + V2_PING, errors.CodecChanged, 2),
]  # fmt: skip


def _whole(data: bytes) -> Iterable[bytes]:
    return [data]


def _bytewise(data: bytes) -> Iterable[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def _halves(data: bytes) -> Iterable[bytes]:
    return [data[: len(data) // 2], data[len(data) // 2 :]]


FEEDS: list[Callable[[bytes], Iterable[bytes]]] = [_whole, _bytewise, _halves]


def _feed_into(decoder: FrameDecoder, chunks: Iterable[bytes], frames: list[Frame]) -> None:
    for chunk in chunks:
        decoder.feed(chunk)
        assert decoder.buffered <= MAX + MAX_PREAMBLE
        frames.extend(decoder)


def _run(decoder: FrameDecoder, chunks: Iterable[bytes]) -> list[Frame]:
    frames: list[Frame] = []
    _feed_into(decoder, chunks, frames)
    return frames


@pytest.mark.parametrize("feed", FEEDS, ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("trailing", [b"", V2_CHAT[:5], b"\x12"], ids=["none", "partial-frame", "one-byte"])
@pytest.mark.parametrize(("name", "stream", "expected"), GOOD, ids=[c[0] for c in GOOD])
def test_good_streams(
    name: str,
    stream: bytes,
    expected: list[tuple[Codec, Header]],
    feed: Callable[[bytes], Iterable[bytes]],
    trailing: bytes,
) -> None:
    decoder = FrameDecoder(MAX, lock_codec=False)
    frames = _run(decoder, feed(stream + trailing))
    assert [(f.codec, f.header) for f in frames] == expected
    assert decoder.next_frame() is None
    assert decoder.buffered == len(trailing)
    assert decoder.error is None
    # re-encoding each frame reproduces the stream exactly
    assert b"".join(f.encode(max_frame_size=MAX) for f in frames) == stream


@pytest.mark.parametrize("feed", FEEDS, ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("trailing", [b"", V2_CHAT], ids=["none", "more-frames"])
@pytest.mark.parametrize(("name", "stream", "error", "good_before"), BAD, ids=[c[0] for c in BAD])
def test_bad_streams(
    name: str,
    stream: bytes,
    error: type[errors.ProtocolError],
    good_before: int,
    feed: Callable[[bytes], Iterable[bytes]],
    trailing: bytes,
) -> None:
    decoder = FrameDecoder(MAX)
    frames: list[Frame] = []
    with pytest.raises(error) as info:
        _feed_into(decoder, feed(stream + trailing), frames)
    assert len(frames) == good_before
    assert info.value.code is error.code
    # the decoder stays failed
    assert decoder.error is info.value
    with pytest.raises(error):
        decoder.next_frame()
    with pytest.raises(error):
        decoder.feed(V2_PING)
    assert decoder.buffered == 0


def test_length_is_checked_before_the_body_is_buffered() -> None:
    decoder = FrameDecoder(MAX)
    decoder.feed(b"\x12\x04")
    decoder.feed(encode_varint(10**6))
    with pytest.raises(errors.FrameTooLarge):
        decoder.next_frame()
    assert decoder.buffered == 0


def test_incomplete_frame_waits_and_buffers_at_most_one_frame() -> None:
    big = encode_frame(Header(2, 1), messages.ChatText(text="x" * (MAX - 20)))
    assert len(big) <= MAX + MAX_PREAMBLE
    decoder = FrameDecoder(MAX)
    decoder.feed(big[:-1])
    assert decoder.next_frame() is None
    assert decoder.buffered == len(big) - 1
    decoder.feed(big[-1:] + big[:3])
    frame = decoder.next_frame()
    assert frame is not None
    assert frame.body == messages.ChatText(text="x" * (MAX - 20))
    assert decoder.buffered == 3


def test_codec_is_fixed_by_the_first_frame_or_preset() -> None:
    decoder = FrameDecoder()
    assert decoder.codec is None
    decoder.feed(V1_PING)
    assert decoder.next_frame() is not None
    assert decoder.codec is Codec.BSON_JSON
    preset = FrameDecoder(codec=Codec.PROTOBUF)
    preset.feed(V1_PING)
    with pytest.raises(errors.CodecChanged):
        preset.next_frame()
    mixed = FrameDecoder(lock_codec=False)
    mixed.feed(V1_PING + V2_PING)
    assert [f.codec for f in mixed] == [Codec.BSON_JSON, Codec.PROTOBUF]


def test_frames_before_a_bad_header_are_delivered_first() -> None:
    decoder = FrameDecoder(MAX)
    decoder.feed(V2_PING + _v2(b"\x10\x01") + V2_PING)
    assert decoder.pending == 3
    first = decoder.next_frame()
    assert first is not None
    assert first.header == PING
    with pytest.raises(errors.MalformedHeader):
        decoder.next_frame()
    assert decoder.pending == 0


def test_constructor_limits() -> None:
    with pytest.raises(ValueError, match="max_frame_size"):
        FrameDecoder(0)
    with pytest.raises(ValueError, match="max_frame_size"):
        FrameDecoder(1 << 28)


def test_feed_accepts_bytearray_and_memoryview() -> None:
    decoder = FrameDecoder()
    decoder.feed(bytearray(V2_CHAT[:4]))
    decoder.feed(memoryview(V2_CHAT)[4:])
    frame = decoder.next_frame()
    assert frame is not None
    assert frame.body == CHAT.body
    assert isinstance(frame.raw_body, bytes)


def test_chat_bodies_decode_from_the_stream() -> None:
    decoder = FrameDecoder()
    decoder.feed(V2_CHAT * 3)
    assert [f.body for f in decoder] == [CHAT.body] * 3
    assert Header(Biz.CHAT, ChatFunc.TEXT).code == (Biz.CHAT, ChatFunc.TEXT)
    assert encode_raw(PING, b"", Codec.PROTOBUF) == _v2(b"\x08\x01\x10\x03\x18\x01")
