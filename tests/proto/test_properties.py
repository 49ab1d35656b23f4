"""Property tests: any chunking of a valid stream gives the same frames; garbage only ever raises the typed
errors and never makes the decoder hold more than one maximum frame."""

from __future__ import annotations

import itertools
import json

import bson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imsdk_proto import errors, messages
from imsdk_proto._buffer import MAX_PREAMBLE, encode_varint
from imsdk_proto._frame import Frame, FrameDecoder, encode_frame, encode_raw
from imsdk_proto._header import HEADER_FIELDS, UINT32_MAX, UINT64_MAX, Header
from imsdk_proto.codes import Biz, ChatFunc, Codec, Flags, SystemFunc
from imsdk_proto.samples import voip_call_samples

MAX = 512

headers = st.builds(
    Header,
    biz=st.just(int(Biz.CHAT)),
    func=st.just(int(ChatFunc.TEXT)),
    seq=st.integers(0, UINT64_MAX),
    msg_id=st.integers(0, UINT64_MAX),
    access_id=st.integers(0, UINT32_MAX),
    msg_server_id=st.integers(0, UINT32_MAX),
    flags=st.sampled_from([Flags(0), Flags.ACK_WANTED, Flags.NO_STORE | Flags.RETRY]),
    error=st.integers(0, UINT32_MAX),
    sender_uid=st.text(max_size=20),
    sender_device=st.text(max_size=8),
    receiver_uid=st.text(max_size=20),
    receiver_device=st.text(max_size=8),
    session=st.integers(0, UINT64_MAX),
)
frames_st = st.lists(
    st.tuples(headers, st.text(max_size=60)).map(lambda hb: (hb[0], messages.ChatText(text=hb[1]))),
    min_size=1,
    max_size=6,
)


def _chunk(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=150, deadline=None)
@given(
    frames=frames_st, codec=st.sampled_from(list(Codec)), cuts=st.lists(st.integers(0, 10_000), max_size=30)
)
def test_any_chunking_gives_the_same_frames(
    frames: list[tuple[Header, messages.ChatText]], codec: Codec, cuts: list[int]
) -> None:
    stream = b"".join(encode_frame(h, b, codec) for h, b in frames)
    decoder = FrameDecoder(4096)
    got: list[Frame] = []
    for chunk in _chunk(stream, cuts):
        decoder.feed(chunk)
        got.extend(decoder)
    assert [(f.header, f.body) for f in got] == frames
    assert decoder.buffered == 0


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(0, 10_000), max_size=40))
def test_a_whole_call_survives_any_chunking(cuts: list[int]) -> None:
    samples = voip_call_samples()
    stream = b"".join(encode_frame(s.header, s.body) for s in samples)
    decoder = FrameDecoder(MAX)
    got: list[Frame] = []
    for chunk in _chunk(stream, cuts):
        decoder.feed(chunk)
        got.extend(decoder)
    assert [(f.header, f.body) for f in got] == [(s.header, s.body) for s in samples]


def _body_error(frame: Frame) -> errors.ProtocolError | None:
    """Bodies fail on access only, and only with a typed error."""
    try:
        _ = frame.body
    except errors.ProtocolError as exc:
        return exc
    return None


def _consume(decoder: FrameDecoder, chunks: list[bytes]) -> errors.ProtocolError | None:
    """Feed everything; the stream's typed error, if any (anything else propagates and fails the test)."""
    try:
        for chunk in chunks:
            decoder.feed(chunk)
            assert decoder.buffered <= MAX + MAX_PREAMBLE
            for frame in decoder:
                exc = _body_error(frame)
                if exc is not None:
                    assert exc.code is type(exc).code
    except errors.ProtocolError as exc:
        return exc
    return None


garbage = st.one_of(
    st.binary(max_size=2000),
    # garbage behind a plausible preamble, to reach the header and body decoders
    st.tuples(
        st.sampled_from([b"\x11", b"\x12"]),
        st.integers(1, 600),
        st.integers(0, 600),
        st.binary(max_size=1200),
    ).map(lambda t: t[0] + bytes([t[1] & 0x7F | 0x80, t[1] >> 7, t[2] & 0x7F | 0x80, t[2] >> 7]) + t[3]),
    st.tuples(st.sampled_from([b"\x12", b"\x11"]), st.binary(min_size=1, max_size=120)).map(
        lambda t: t[0] + bytes([len(t[1])]) + b"\x00" + t[1]
    ),
)


@settings(max_examples=400, deadline=None)
@given(data=garbage, cuts=st.lists(st.integers(0, 10_000), max_size=10))
def test_garbage_raises_only_typed_errors_and_buffers_little(data: bytes, cuts: list[int]) -> None:
    decoder = FrameDecoder(MAX, lock_codec=False)
    exc = _consume(decoder, _chunk(data, cuts))
    if exc is not None:
        assert exc.code is type(exc).code
        assert decoder.error is exc
        assert decoder.buffered == 0


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=300), biz_func=st.sampled_from([(Biz.CHAT, ChatFunc.TEXT), (Biz.SYSTEM, 1)]))
def test_random_bodies_behind_valid_headers(body: bytes, biz_func: tuple[int, int]) -> None:
    for codec in Codec:
        decoder = FrameDecoder(4096)
        decoder.feed(encode_raw(Header(*biz_func), body, codec))
        frame = decoder.next_frame()
        assert frame is not None
        exc = _body_error(frame)
        assert exc is None or isinstance(exc, errors.MalformedBody)


bson_values = st.one_of(
    st.integers(-(1 << 63), (1 << 63) - 1),
    st.text(max_size=10),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True),
    st.binary(max_size=10),
    st.lists(st.integers(0, 5), max_size=3),
    st.dictionaries(st.sampled_from(["a", "b"]), st.integers(-5, 5), max_size=2),
)
bson_headers = st.dictionaries(
    st.sampled_from([*HEADER_FIELDS, "x", "$ref", "$id"]), bson_values, max_size=8
).map(lambda d: {"biz": 1, "func": 1, **d} if len(d) % 2 else d)


@settings(max_examples=300, deadline=None)
@given(doc=bson_headers)
def test_arbitrary_bson_headers_decode_or_raise_malformed_header(doc: dict[str, object]) -> None:
    raw = bson.encode(doc)
    decoder = FrameDecoder(4096)
    decoder.feed(b"\x11" + encode_varint(len(raw)) + b"\x00" + raw)
    try:
        frame = decoder.next_frame()
    except errors.MalformedHeader:
        return
    assert frame is not None
    for key in HEADER_FIELDS:
        value = getattr(frame.header, key)
        assert isinstance(value, str if key.endswith(("uid", "device")) else int)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["call_id", "media", "codecs", "candidates", "ipv4", "type", "text", "x"]),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    doc=st.dictionaries(
        st.sampled_from(["call_id", "media", "caller", "text", "image", "conv_seq"]), json_values
    ),
    code=st.sampled_from([(Biz.VOIP, 1), (Biz.SYNC, 2), (Biz.CHAT, 2)]),
)
def test_json_shaped_garbage_bodies_raise_only_malformed_body(
    doc: dict[str, object], code: tuple[int, int]
) -> None:
    frame = Frame(Header(*code), Codec.BSON_JSON, json.dumps(doc).encode())
    exc = _body_error(frame)
    assert exc is None or isinstance(exc, errors.MalformedBody)


def test_ping_is_tiny() -> None:
    assert len(encode_frame(Header(Biz.SYSTEM, SystemFunc.PING))) == 7


@pytest.mark.parametrize(
    "body",
    [
        b'{"\\ud800": 1}',  # a lone surrogate as an (unknown) field name
        b'{"media_type": "\\udfff"}',  # ... as an enum name
        b'{"call_id": "\\ud800"}',  # ... as a 64-bit integer
        b'{"caller": "\\ud800x"}',  # ... in a string
        b'{"media": {"\\udc00": 1}}',  # ... as a nested field name
    ],
)
def test_lone_surrogates_in_json_bodies_raise_malformed_body(body: bytes) -> None:
    frame = Frame(Header(Biz.VOIP, 1), Codec.BSON_JSON, body)
    assert isinstance(_body_error(frame), errors.MalformedBody)
