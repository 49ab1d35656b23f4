"""Byte-level helpers of the frame layer: the preamble, length varints and the receive buffer.

Preamble layout (see docs/wire-format.md)::

    byte 0      version << 4 | codec          (version 1; codec 1 = BSON/JSON, 2 = protobuf)
    varint      header length, 1..max          (LEB128, at most 4 bytes)
    varint      body length, 0..max            (LEB128, at most 4 bytes)

A small frame therefore spends 3 bytes on its preamble.
"""

from __future__ import annotations

from imsdk_proto.errors import BadPreamble, FrameTooLarge, UnknownCodec, UnsupportedVersion

__all__ = [
    "FORMAT_VERSION",
    "MAX_LENGTH",
    "MAX_PREAMBLE",
    "Preamble",
    "encode_preamble",
    "encode_varint",
    "parse_preamble",
]

#: The frame format version written in the preamble's high nibble.
FORMAT_VERSION = 1
#: Largest length a 4-byte varint can express; no frame may be larger.
MAX_LENGTH = (1 << 28) - 1
#: Longest possible preamble: one byte plus two 4-byte varints.
MAX_PREAMBLE = 9

_KNOWN_CODECS = frozenset((1, 2))

_SMALL_VARINTS: tuple[bytes, ...] = tuple(
    bytes((n,)) if n < 0x80 else bytes(((n & 0x7F) | 0x80, n >> 7)) for n in range(1 << 14)
)


def encode_varint(n: int) -> bytes:
    """LEB128 bytes of a non-negative length (at most :data:`MAX_LENGTH`)."""
    if n < 16384:
        return _SMALL_VARINTS[n]
    if n > MAX_LENGTH:
        raise FrameTooLarge(f"length {n} exceeds the format's limit of {MAX_LENGTH} bytes")
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def encode_preamble(codec: int, header_len: int, body_len: int) -> bytes:
    """The preamble of a frame with these lengths."""
    return bytes(((FORMAT_VERSION << 4) | codec,)) + encode_varint(header_len) + encode_varint(body_len)


# A parsed preamble: (codec, header length, body length, preamble length), or None if more bytes are needed.
Preamble = tuple[int, int, int, int]


def _varint(data: bytes | bytearray, pos: int, end: int) -> tuple[int, int] | None:
    """(value, next position) of the varint at ``pos``, None if incomplete; raises on more than 4 bytes."""
    result = 0
    shift = 0
    for i in range(pos, min(end, pos + 4)):
        b = data[i]
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i + 1
        shift += 7
    if end - pos >= 4:
        raise BadPreamble("length varint longer than 4 bytes")
    return None


def parse_preamble(data: bytes | bytearray, pos: int, end: int, max_frame_size: int) -> Preamble | None:
    """Parse and check the preamble at ``data[pos:end]``.

    Returns None when more bytes are needed. Raises the typed error as soon as the bytes seen so far are
    wrong, and :class:`FrameTooLarge` as soon as an announced length passes ``max_frame_size`` (counted as
    header plus body) -- before any of the body is buffered.
    """
    b0 = data[pos]
    if b0 >> 4 != FORMAT_VERSION:
        raise UnsupportedVersion(f"frame format version {b0 >> 4} is not supported (want {FORMAT_VERSION})")
    codec = b0 & 0x0F
    if codec not in _KNOWN_CODECS:
        raise UnknownCodec(f"unknown codec id {codec}")
    parsed = _varint(data, pos + 1, end)
    if parsed is None:
        return None
    header_len, p = parsed
    if header_len == 0:
        raise BadPreamble("header length is zero")
    if header_len > max_frame_size:
        raise FrameTooLarge(f"header of {header_len} bytes exceeds the {max_frame_size}-byte frame limit")
    parsed = _varint(data, p, end)
    if parsed is None:
        return None
    body_len, p = parsed
    if header_len + body_len > max_frame_size:
        raise FrameTooLarge(
            f"frame of {header_len + body_len} bytes exceeds the {max_frame_size}-byte frame limit"
        )
    return codec, header_len, body_len, p - pos
