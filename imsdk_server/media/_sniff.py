"""What a blob is, from its first bytes: the magic numbers of the accepted formats, and image dimensions.

Pure functions over ``bytes``; the client's ``Content-Type`` is never consulted. :func:`sniff` needs at most
:data:`SNIFF_MIN` bytes to name a type; :func:`image_dimensions` reads the header (for JPEG it walks the
segments up to the first start-of-frame marker, so it may need more).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import Enum

__all__ = ["IMAGE_MIMES", "SNIFF_MIN", "VOICE_MIMES", "Kind", "MediaType", "image_dimensions", "sniff"]

#: Bytes enough for :func:`sniff` to decide (a shorter blob is sniffed from what there is).
SNIFF_MIN = 64


class Kind(Enum):
    """The two kinds of media chat messages carry; each has its own size limit."""

    IMAGE = "image"
    VOICE = "voice"


@dataclass(frozen=True, slots=True)
class MediaType:
    """A recognised format."""

    kind: Kind
    mime: str
    format: str


JPEG = MediaType(Kind.IMAGE, "image/jpeg", "jpeg")
PNG = MediaType(Kind.IMAGE, "image/png", "png")
GIF = MediaType(Kind.IMAGE, "image/gif", "gif")
WEBP = MediaType(Kind.IMAGE, "image/webp", "webp")
AMR = MediaType(Kind.VOICE, "audio/amr", "amr")
AMR_WB = MediaType(Kind.VOICE, "audio/amr-wb", "amr-wb")
OPUS = MediaType(Kind.VOICE, "audio/ogg", "opus")
AAC = MediaType(Kind.VOICE, "audio/aac", "aac")
M4A = MediaType(Kind.VOICE, "audio/mp4", "m4a")
WAV = MediaType(Kind.VOICE, "audio/wav", "wav")

IMAGE_MIMES = frozenset(t.mime for t in (JPEG, PNG, GIF, WEBP))
VOICE_MIMES = frozenset(t.mime for t in (AMR, AMR_WB, OPUS, AAC, M4A, WAV))

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_M4A_BRANDS = (b"M4A ", b"M4B ")


def sniff(head: bytes) -> MediaType | None:
    """The format of a blob starting with ``head``, or ``None`` if it is none we accept."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(_PNG_MAGIC) and head[12:16] == b"IHDR":
        return PNG
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    if head[:4] == b"RIFF" and len(head) >= 12:
        if head[8:12] == b"WEBP" and head[12:16] in (b"VP8 ", b"VP8L", b"VP8X"):
            return WEBP
        if head[8:12] == b"WAVE":
            return WAV
        return None
    if head.startswith(b"#!AMR-WB\n"):
        return AMR_WB
    if head.startswith(b"#!AMR\n"):
        return AMR
    if head[:4] == b"OggS" and head[28:36] == b"OpusHead":
        return OPUS
    if head[4:8] == b"ftyp" and len(head) >= 12:
        box = struct.unpack_from(">I", head)[0]
        brands = [head[8:12]] + [head[i : i + 4] for i in range(16, min(box, len(head)) - 3, 4)]
        return M4A if any(b in _M4A_BRANDS for b in brands) else None
    if _adts(head):
        return AAC
    return None


def _adts(head: bytes) -> bool:
    """An AAC ADTS frame header: 12-bit sync, layer 0, a valid sampling index and a plausible frame length."""
    if len(head) < 7 or head[0] != 0xFF or head[1] & 0xF6 != 0xF0:
        return False
    sampling = (head[2] >> 2) & 0x0F
    length = ((head[3] & 0x03) << 11) | (head[4] << 3) | (head[5] >> 5)
    return sampling < 13 and length >= 7


def image_dimensions(kind: MediaType, head: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from an image's header bytes, or ``None`` if the header is cut short or broken."""
    try:
        if kind is PNG:
            if len(head) < 24:
                return None
            w, h = struct.unpack_from(">II", head, 16)
            return int(w), int(h)
        if kind is GIF:
            if len(head) < 10:
                return None
            w, h = struct.unpack_from("<HH", head, 6)
            return int(w), int(h)
        if kind is WEBP:
            return _webp(head)
        if kind is JPEG:
            return _jpeg(head)
    except struct.error:
        return None
    return None


def _webp(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8 ":
        if head[23:26] != b"\x9d\x01\x2a":
            return None
        w, h = struct.unpack_from("<HH", head, 26)
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L":
        if head[20:21] != b"\x2f":
            return None
        (bits,) = struct.unpack_from("<I", head, 21)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        if len(head) < 30:
            return None
        w = int.from_bytes(head[24:27], "little") + 1
        h = int.from_bytes(head[27:30], "little") + 1
        return w, h
    return None


_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg(head: bytes) -> tuple[int, int] | None:
    i = 2
    n = len(head)
    while i + 4 <= n:
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        (length,) = struct.unpack_from(">H", head, i + 2)
        if length < 2:
            return None
        if marker in _SOF:
            if i + 9 > n:
                return None
            h, w = struct.unpack_from(">HH", head, i + 5)
            return int(w), int(h)
        i += 2 + length
    return None
