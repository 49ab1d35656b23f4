"""Every registered message through both codecs: v1 and v2 decode to equal objects."""

from __future__ import annotations

import pytest
from google.protobuf.message import Message

from imsdk_proto import errors, messages
from imsdk_proto._frame import Frame, FrameDecoder, body_class, encode_frame, encode_raw
from imsdk_proto._header import Header
from imsdk_proto.codecs import bson_json, get_codec, protobuf
from imsdk_proto.codes import Biz, ChatFunc, Codec, ErrorCode, Flags, NotifyFunc, SystemFunc, VoipFunc
from tests.proto._examples import FULL_HEADER, fill, registered_bodies

CODES = registered_bodies()


def _decode_one(data: bytes) -> Frame:
    decoder = FrameDecoder(lock_codec=False)
    decoder.feed(data)
    frame = decoder.next_frame()
    assert frame is not None
    assert decoder.next_frame() is None
    assert decoder.buffered == 0
    return frame


def _bodies(cls: type[Message] | None) -> list[Message | None]:
    if cls is None:
        return [None]
    return [cls(), fill(cls()), fill(cls(), oneof_choice=1), fill(cls(), oneof_choice=4)]


@pytest.mark.parametrize(("biz", "func", "cls"), CODES, ids=[f"{b}-{f}" for b, f, _ in CODES])
def test_every_message_round_trips_through_both_codecs(
    biz: int, func: int, cls: type[Message] | None
) -> None:
    for body in _bodies(cls):
        header = Header(biz, func, seq=7, msg_id=0xFEED_FACE_CAFE_BEEF, sender_uid="u1")
        decoded = {}
        for codec in Codec:
            frame = _decode_one(encode_frame(header, body, codec))
            assert frame.header == header
            assert frame.codec is codec
            expected = body if body is not None or cls is None else cls()
            assert frame.body == expected
            decoded[codec] = frame.body
            # transcoding gives what encoding in the other codec gives
            other = Codec.PROTOBUF if codec is Codec.BSON_JSON else Codec.BSON_JSON
            moved = frame.to_codec(other)
            assert moved.codec is other
            assert moved.body == expected
            assert _decode_one(moved.encode()).body == expected
        assert decoded[Codec.BSON_JSON] == decoded[Codec.PROTOBUF]


@pytest.mark.parametrize("codec", list(Codec))
@pytest.mark.parametrize(
    "header",
    [
        FULL_HEADER,
        Header(1, 1),
        Header(Biz.CHAT, ChatFunc.TEXT, msg_id=1 << 63, seq=(1 << 63) - 1, session=1),
        Header(Biz.SYSTEM, SystemFunc.PING, flags=Flags(0x8000_0000)),
    ],
)
def test_headers_round_trip(codec: Codec, header: Header) -> None:
    wire = get_codec(codec)
    assert wire.decode_header(wire.encode_header(header)) == header
    frame = _decode_one(encode_raw(header, b"", codec))
    assert frame.header == header
    assert isinstance(frame.header.flags, Flags)


def test_v2_header_omits_defaults() -> None:
    assert protobuf.encode_header(Header(8, 1)) == b"\x08\x08\x10\x01"
    assert len(bson_json.encode_header(Header(8, 1))) < len(bson_json.encode_header(Header(8, 1, seq=1)))


def test_v1_body_uses_proto_field_names_and_compact_json() -> None:
    body = messages.CallAck(call_id=5, time_ms=6)
    assert bson_json.encode_body(body) == b'{"call_id":"5","time_ms":"6"}'
    assert bson_json.encode_body(messages.CallAck()) == b""
    # the JSON mapping's other spellings are accepted too
    same = bson_json.decode_body(messages.CallAck, b'{"callId": 5, "timeMs": "6", "future_field": 1}')
    assert same == body


def test_error_flag_frames_carry_an_error_report() -> None:
    flags = Flags.RESPONSE | Flags.ERROR
    header = Header(Biz.VOIP, VoipFunc.CALL_REQ, flags=flags, error=ErrorCode.CALL_BUSY)
    assert body_class(header) is messages.ErrorReport
    report = messages.ErrorReport(code=ErrorCode.CALL_BUSY, message="busy", retry_after_ms=3000)
    for codec in Codec:
        frame = _decode_one(encode_frame(header, report, codec))
        assert frame.body == report
        assert frame.header.is_error
        assert frame.header.is_response
        assert frame.body_as(messages.ErrorReport).retry_after_ms == 3000


def test_encode_frame_refuses_a_body_of_the_wrong_class() -> None:
    with pytest.raises(TypeError, match="carries ChatText"):
        encode_frame(Header(Biz.CHAT, ChatFunc.TEXT), messages.ChatImage())
    with pytest.raises(TypeError, match="carries no body"):
        encode_frame(Header(Biz.VOIP, VoipFunc.CALL_REQ_ACK), messages.CallAck())
    with pytest.raises(errors.UnknownMessageCode):
        encode_frame(Header(200, 1), messages.ChatText())
    with pytest.raises(errors.FrameTooLarge):
        encode_frame(Header(Biz.CHAT, ChatFunc.TEXT), messages.ChatText(text="x" * 100), max_frame_size=50)


def test_frame_build_keeps_the_message_and_encodes_like_encode_frame() -> None:
    header = Header(Biz.CHAT, ChatFunc.TEXT, seq=3)
    body = messages.ChatText(text="hi")
    for codec in Codec:
        frame = Frame.build(header, body, codec)
        assert frame.body is body
        assert frame.encode() == encode_frame(header, body, codec)
    assert Frame.build(Header(Biz.VOIP, VoipFunc.CALL_REQ_ACK)).body is None
    assert Frame.build(header).body == messages.ChatText()


def test_stamping_a_header_forwards_the_raw_body_untouched() -> None:
    header = Header(Biz.CHAT, ChatFunc.TEXT, seq=3, receiver_uid="b")
    frame = _decode_one(encode_frame(header, messages.ChatText(text="hi"), Codec.BSON_JSON))
    stamped = frame.with_header(frame.header.replace(access_id=12, sender_uid="a"))
    again = _decode_one(stamped.encode())
    assert again.raw_body == frame.raw_body
    expected = Header(Biz.CHAT, ChatFunc.TEXT, seq=3, receiver_uid="b", access_id=12, sender_uid="a")
    assert again.header == expected
    assert again.body == messages.ChatText(text="hi")
    assert header.copy() == header
    assert header.copy() is not header


@pytest.mark.parametrize(
    ("header", "codec", "raw_body", "error"),
    [
        (Header(Biz.CHAT, ChatFunc.TEXT), Codec.PROTOBUF, b"\xff\xff\xff", errors.MalformedBody),
        (Header(Biz.CHAT, ChatFunc.TEXT), Codec.PROTOBUF, b"\x0a\x05ab", errors.MalformedBody),
        (Header(Biz.CHAT, ChatFunc.TEXT), Codec.PROTOBUF, b"\x0a\x02\xc3\x28", errors.MalformedBody),
        (Header(Biz.CHAT, ChatFunc.TEXT), Codec.BSON_JSON, b"{", errors.MalformedBody),
        (Header(Biz.CHAT, ChatFunc.TEXT), Codec.BSON_JSON, b"[1]", errors.MalformedBody),
        (Header(Biz.CHAT, ChatFunc.TEXT), Codec.BSON_JSON, b'{"text": 5}', errors.MalformedBody),
        (Header(Biz.CHAT, ChatFunc.TEXT), Codec.BSON_JSON, b"\xff\xfe", errors.MalformedBody),
        (Header(Biz.CHAT, ChatFunc.TEXT), Codec.BSON_JSON, b"[" * 60_000, errors.MalformedBody),
        (Header(Biz.VOIP, VoipFunc.CALL_ACK), Codec.BSON_JSON, b'{"call_id": "-1"}', errors.MalformedBody),
        (Header(Biz.VOIP, VoipFunc.CALL_REQ_ACK), Codec.PROTOBUF, b"\x08\x01", errors.MalformedBody),
        (Header(200, 7), Codec.PROTOBUF, b"", errors.UnknownMessageCode),
    ],
)
def test_bad_bodies_raise_typed_errors_on_access_only(
    header: Header, codec: Codec, raw_body: bytes, error: type[errors.ProtocolError]
) -> None:
    frame = _decode_one(encode_raw(header, raw_body, codec))  # routing on the header works
    assert frame.header == header
    with pytest.raises(error) as info:
        _ = frame.body
    assert info.value.code is error.code


def test_body_as_checks_the_class() -> None:
    frame = Frame.build(Header(Biz.CHAT, ChatFunc.TEXT), messages.ChatText(text="x"))
    with pytest.raises(errors.ProtocolError) as info:
        frame.body_as(messages.ChatImage)
    assert info.value.code is ErrorCode.UNEXPECTED_MESSAGE


@pytest.mark.parametrize("codec", list(Codec))
def test_notify_ack_says_what_became_of_the_notifications(codec: Codec) -> None:
    ack = messages.NotifyAck(notify_ids=[11, 12], status=messages.SendStatus.SEND_STATUS_STORED)
    frame = _decode_one(encode_frame(Header(Biz.NOTIFY, NotifyFunc.ACK, flags=Flags.RESPONSE), ack, codec))
    assert frame.body == ack
    assert frame.body_as(messages.NotifyAck).status == messages.SendStatus.SEND_STATUS_STORED
