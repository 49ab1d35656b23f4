"""Sniffing by magic bytes, image dimensions from headers, and the chat layer's validation helpers: tables."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imsdk_proto import messages as pb
from imsdk_proto.codes import ErrorCode
from imsdk_server.media import (
    InvalidImage,
    InvalidLocation,
    InvalidMediaRef,
    InvalidVoice,
    Kind,
    MediaLimits,
    MediaValidationError,
    image_dimensions,
    sniff,
    validate_image_meta,
    validate_location,
    validate_media_ref,
    validate_voice_duration,
)
from tests.media import _samples as s

SAMPLES = [
    ("png", s.png(3, 2), "image/png", (3, 2)),
    ("gif", s.gif(640, 480), "image/gif", (640, 480)),
    ("jpeg", s.jpeg(1024, 768), "image/jpeg", (1024, 768)),
    ("jpeg-after-big-exif", s.jpeg(4000, 3000, exif=60_000), "image/jpeg", (4000, 3000)),
    ("webp-vp8", s.webp_vp8(320, 240), "image/webp", (320, 240)),
    ("webp-vp8l", s.webp_vp8l(16383, 1), "image/webp", (16383, 1)),
    ("webp-vp8x", s.webp_vp8x(10000, 7000), "image/webp", (10000, 7000)),
    ("wav", s.wav(), "audio/wav", None),
    ("amr", s.amr(), "audio/amr", None),
    ("amr-wb", s.amr_wb(), "audio/amr-wb", None),
    ("opus", s.opus(), "audio/ogg", None),
    ("aac", s.aac(), "audio/aac", None),
    ("m4a", s.m4a(), "audio/mp4", None),
    ("m4a-compatible-brand", s.m4a(b"mp42", (b"isom", b"M4A ")), "audio/mp4", None),
]


@pytest.mark.parametrize(("name", "data", "mime", "dims"), SAMPLES, ids=[x[0] for x in SAMPLES])
def test_sniff_and_dimensions(name: str, data: bytes, mime: str, dims: tuple[int, int] | None) -> None:
    kind = sniff(data[:64])
    assert kind is not None
    assert kind.mime == mime
    assert kind.kind is (Kind.IMAGE if dims else Kind.VOICE)
    if dims:
        assert image_dimensions(kind, data) == dims


REFUSED = [
    ("empty", b""),
    ("text", b"hello world, this is not an image at all, nor a voice clip......"),
    ("html", b"<!doctype html><html><body>...</body></html>" + bytes(40)),
    ("pdf", b"%PDF-1.7\n" + bytes(60)),
    ("riff-avi", b"RIFF\x00\x00\x00\x00AVI LIST" + bytes(60)),
    ("webp-unknown-chunk", b"RIFF\x00\x00\x00\x00WEBPXXXX" + bytes(60)),
    ("png-without-ihdr", b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dJUNK" + bytes(60)),
    ("ogg-vorbis", b"OggS" + bytes(24) + b"\x01vorbis" + bytes(40)),
    ("mp4-video", s.m4a(b"isom", (b"mp41", b"avc1"))),
    ("mp3-frame", b"\xff\xfb\x90\x64" + bytes(60)),
    ("adts-bad-sampling", bytes([0xFF, 0xF1, 0x3C, 0x80, 0x0D, 0x7F, 0xFC]) + bytes(60)),
]


@pytest.mark.parametrize(("name", "data"), REFUSED, ids=[x[0] for x in REFUSED])
def test_sniff_refuses(name: str, data: bytes) -> None:
    assert sniff(data) is None


@pytest.mark.parametrize(
    ("data", "cut"),
    [(s.png(5, 5), 20), (s.gif(5, 5), 8), (s.jpeg(5, 5, exif=500), 300), (s.webp_vp8(5, 5), 27)],
)
def test_dimensions_of_truncated_headers(data: bytes, cut: int) -> None:
    kind = sniff(data)
    assert kind is not None
    assert image_dimensions(kind, data[:cut]) is None


def test_jpeg_without_a_frame_header() -> None:
    broken = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xda\x00\x08" + bytes(
        60
    )
    kind = sniff(broken)
    assert kind is not None
    assert image_dimensions(kind, broken) is None
    assert image_dimensions(kind, b"\xff\xd8\xff\xe0\x00\x01" + bytes(60)) is None  # length below 2


@given(st.binary(max_size=300))
def test_garbage_never_raises(data: bytes) -> None:
    kind = sniff(data)
    if kind is not None and kind.kind is Kind.IMAGE:
        dims = image_dimensions(kind, data)
        assert dims is None or all(isinstance(v, int) and v >= 0 for v in dims)


LIMITS = MediaLimits(max_label_chars=10, min_voice_ms=500, max_voice_ms=60_000)

LOCATIONS = [
    ((0.0, 0.0, 0.0, ""), None),
    ((90.0, 180.0, 5.0, "ten chars!"), None),
    ((-90.0, -180.0, 0.0, "北京"), None),
    ((90.0001, 0.0, 0.0, ""), ErrorCode.MALFORMED_BODY),
    ((-91.0, 0.0, 0.0, ""), ErrorCode.MALFORMED_BODY),
    ((0.0, 180.5, 0.0, ""), ErrorCode.MALFORMED_BODY),
    ((0.0, -181.0, 0.0, ""), ErrorCode.MALFORMED_BODY),
    ((math.nan, 0.0, 0.0, ""), ErrorCode.MALFORMED_BODY),
    ((0.0, math.inf, 0.0, ""), ErrorCode.MALFORMED_BODY),
    ((0.0, 0.0, -0.1, ""), ErrorCode.MALFORMED_BODY),
    ((0.0, 0.0, math.nan, ""), ErrorCode.MALFORMED_BODY),
    ((True, 0.0, 0.0, ""), ErrorCode.MALFORMED_BODY),
    ((0.0, 0.0, 0.0, "eleven char"), ErrorCode.PAYLOAD_TOO_LARGE),
]


@pytest.mark.parametrize(("args", "code"), LOCATIONS)
def test_validate_location(args: tuple[float, float, float, str], code: ErrorCode | None) -> None:
    if code is None:
        validate_location(*args, limits=LIMITS)
        return
    with pytest.raises(InvalidLocation) as info:
        validate_location(*args, limits=LIMITS)
    assert info.value.code is code
    assert info.value.status == 400


DURATIONS = [(500, True), (60_000, True), (499, False), (60_001, False), (0, False), (-1, False),
             (1.5, False), (True, False)]  # fmt: skip


@pytest.mark.parametrize(("duration", "ok"), DURATIONS)
def test_validate_voice_duration(duration: int, ok: bool) -> None:
    if ok:
        validate_voice_duration(duration, LIMITS)
    else:
        with pytest.raises(InvalidVoice):
            validate_voice_duration(duration, LIMITS)


IMAGES = [
    ((640, 480, 1000, "image/png"), True),
    ((16384, 1, 1, "image/webp"), True),
    ((0, 480, 1000, "image/png"), False),
    ((640, 16385, 1000, "image/png"), False),
    ((16384, 16384, 1000, "image/png"), False),  # over 100 M pixels
    ((640, 480, 0, "image/png"), False),
    ((640, 480, 10 * 1024 * 1024 + 1, "image/png"), False),
    ((640, 480, 1000, "image/svg+xml"), False),
    ((640, 480, 1000, "audio/wav"), False),
]


@pytest.mark.parametrize(("args", "ok"), IMAGES)
def test_validate_image_meta(args: tuple[int, int, int, str], ok: bool) -> None:
    if ok:
        validate_image_meta(*args)
    else:
        with pytest.raises(InvalidImage):
            validate_image_meta(*args)


DIGEST = bytes(range(32))
REFS = [
    (pb.MediaRef(sha256=DIGEST, mime="image/jpeg", size=10, width=2, height=3), Kind.IMAGE, True),
    (pb.MediaRef(sha256=DIGEST, mime="audio/amr", size=10), Kind.VOICE, True),
    (pb.MediaRef(sha256=DIGEST[:31], mime="audio/amr", size=10), Kind.VOICE, False),
    (pb.MediaRef(sha256=DIGEST, mime="audio/amr", size=10), Kind.IMAGE, False),
    (pb.MediaRef(sha256=DIGEST, mime="image/png", size=10, width=2, height=3), Kind.VOICE, False),
    (pb.MediaRef(sha256=DIGEST, mime="image/png", size=10), Kind.IMAGE, False),
    (pb.MediaRef(sha256=DIGEST, mime="audio/ogg", size=2 * 1024 * 1024 + 1), Kind.VOICE, False),
    (pb.MediaRef(sha256=DIGEST, mime="audio/ogg", size=0), Kind.VOICE, False),
    (pb.MediaRef(sha256=DIGEST, mime="audio/ogg", size=5, width=1), Kind.VOICE, False),
]


@pytest.mark.parametrize(("ref", "kind", "ok"), REFS)
def test_validate_media_ref(ref: pb.MediaRef, kind: Kind, ok: bool) -> None:
    if ok:
        validate_media_ref(ref, kind)
    else:
        with pytest.raises(InvalidMediaRef) as info:
            validate_media_ref(ref, kind)
        assert isinstance(info.value, MediaValidationError)
        assert info.value.code is ErrorCode.MALFORMED_BODY


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="min_voice_ms"):
        MediaLimits(min_voice_ms=10, max_voice_ms=5)
    with pytest.raises(ValueError, match="max_image_side"):
        MediaLimits(max_image_side=0)
    assert LIMITS.max_bytes(Kind.IMAGE) == 10 * 1024 * 1024
    assert LIMITS.max_bytes(Kind.VOICE) == 2 * 1024 * 1024
