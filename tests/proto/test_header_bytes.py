"""Frames that remember their header bytes, and the stamp appended to them: the bytes a frame is sent as
must always decode to the header it carries, exactly as a fresh encode of that header would."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imsdk_proto._frame import Frame, FrameDecoder, encode_frame, encode_raw
from imsdk_proto._header import UINT32_MAX, UINT64_MAX, Header
from imsdk_proto.codecs import protobuf
from imsdk_proto.codes import Biz, ChatFunc, Codec
from imsdk_proto.errors import FrameTooLarge
from imsdk_proto.messages import ChatText
from tests.proto.test_properties import headers


def _decode_one(data: bytes) -> Frame:
    decoder = FrameDecoder(1 << 20, lock_codec=False)
    decoder.feed(data)
    (frame,) = list(decoder)
    assert decoder.buffered == 0
    return frame


@settings(max_examples=150, deadline=None)
@given(header=headers, text=st.text(max_size=200), codec=st.sampled_from(list(Codec)))
def test_a_decoded_frame_encodes_to_the_bytes_it_arrived_as(header: Header, text: str, codec: Codec) -> None:
    data = encode_frame(header, ChatText(text=text), codec)
    frame = _decode_one(data)
    assert frame.header_bytes is not None
    assert frame.encode() == data
    assert frame.encode() == encode_raw(frame.header, frame.raw_body, codec)


@pytest.mark.parametrize("codec", list(Codec))
def test_a_new_header_or_codec_drops_the_remembered_bytes(codec: Codec) -> None:
    frame = _decode_one(encode_frame(Header(Biz.CHAT, ChatFunc.TEXT, seq=9, receiver_uid="bob"), None, codec))
    other = Header(Biz.CHAT, ChatFunc.TEXT, seq=10, receiver_uid="carol")
    moved = frame.with_header(other)
    assert moved.header_bytes is None
    assert moved.encode() == encode_raw(other, frame.raw_body, codec)
    assert frame.to_codec(codec) is frame
    target = Codec.BSON_JSON if codec is Codec.PROTOBUF else Codec.PROTOBUF
    converted = frame.to_codec(target)
    assert converted.header_bytes is None
    assert _decode_one(converted.encode()).header == frame.header


def test_remembered_bytes_are_still_checked_against_the_frame_limit() -> None:
    frame = _decode_one(encode_frame(Header(Biz.CHAT, ChatFunc.TEXT), ChatText(text="x" * 300)))
    with pytest.raises(FrameTooLarge):
        frame.encode(max_frame_size=100)


def test_a_long_frame_keeps_its_multi_byte_preamble() -> None:
    data = encode_frame(Header(Biz.CHAT, ChatFunc.TEXT, receiver_uid="u" * 200), ChatText(text="y" * 5000))
    assert _decode_one(data).encode() == data


stamps = st.tuples(
    st.integers(0, UINT32_MAX), st.text(max_size=30), st.text(max_size=12), st.integers(0, UINT64_MAX)
)


@settings(max_examples=300, deadline=None)
@given(header=headers, stamp=stamps)
def test_a_stamped_header_decodes_equal_to_a_re_encoded_one(
    header: Header, stamp: tuple[int, str, str, int]
) -> None:
    access_id, uid, device, session = stamp
    patched = protobuf.encode_header(header) + protobuf.encode_stamp(access_id, uid, device, session)
    stamped = dataclasses.replace(
        header, access_id=access_id, sender_uid=uid, sender_device=device, session=session
    )
    assert protobuf.decode_header(patched) == stamped
    assert protobuf.decode_header(protobuf.encode_header(stamped)) == stamped


@pytest.mark.parametrize(
    ("header", "stamp"),
    [
        (Header(Biz.CHAT, ChatFunc.TEXT, seq=1, receiver_uid="bob"), (7, "alice", "phone", 42)),
        # the client named a sender: every stamped field overrides it, even with a default value
        (
            Header(Biz.CHAT, ChatFunc.TEXT, access_id=9, sender_uid="mallory", sender_device="x", session=5),
            (0, "", "", 0),
        ),
        (Header(Biz.CHAT, ChatFunc.TEXT, sender_uid="mallory"), (3, "é" * 100, "d", UINT64_MAX)),
    ],
    ids=["plain", "defaults override the client's", "long and non-ASCII"],
)
def test_stamp_table(header: Header, stamp: tuple[int, str, str, int]) -> None:
    patched = protobuf.encode_header(header) + protobuf.encode_stamp(*stamp)
    got = protobuf.decode_header(patched)
    assert (got.access_id, got.sender_uid, got.sender_device, got.session) == stamp
    assert dataclasses.replace(got, access_id=0, sender_uid="", sender_device="", session=0) == (
        dataclasses.replace(header, access_id=0, sender_uid="", sender_device="", session=0)
    )


@pytest.mark.parametrize(
    ("access_id", "session"), [(-1, 0), (UINT32_MAX + 1, 0), (0, -1), (0, UINT64_MAX + 1)]
)
def test_stamp_values_out_of_range_are_refused(access_id: int, session: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        protobuf.encode_stamp(access_id, "u", "d", session)
