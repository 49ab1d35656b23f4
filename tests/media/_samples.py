"""Real file headers of every accepted format, built byte by byte (PNG and WAV are complete, valid files)."""

from __future__ import annotations

import io
import struct
import wave
import zlib


def png(width: int, height: int) -> bytes:
    """A complete, valid greyscale PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes(width) for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def gif(width: int, height: int) -> bytes:
    """A one-colour GIF89a."""
    return (
        b"GIF89a"
        + struct.pack("<HHBBB", width, height, 0x80, 0, 0)
        + b"\x00\x00\x00\xff\xff\xff"
        + b"\x2c"
        + struct.pack("<HHHHB", 0, 0, width, height, 0)
        + b"\x02\x02\x44\x01\x00\x3b"
    )


def jpeg(width: int, height: int, *, exif: int = 0) -> bytes:
    """A baseline JPEG header: SOI, JFIF, an optional large APP1, a DQT, SOF0 with the size, then SOS."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    app1 = b"\xff\xe1" + struct.pack(">H", exif + 2) + bytes(exif) if exif else b""
    dqt = b"\xff\xdb" + struct.pack(">H", 67) + b"\x00" + bytes(range(64))
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    sos = b"\xff\xda" + struct.pack(">H", 8) + b"\x01\x01\x00\x00\x3f\x00"
    return b"\xff\xd8" + app0 + app1 + dqt + sof + sos + bytes(200) + b"\xff\xd9"


def webp_vp8(width: int, height: int) -> bytes:
    frame = b"\x10\x02\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", width, height) + bytes(40)
    body = b"WEBP" + b"VP8 " + struct.pack("<I", len(frame)) + frame
    return b"RIFF" + struct.pack("<I", len(body)) + body


def webp_vp8l(width: int, height: int) -> bytes:
    bits = (width - 1) | ((height - 1) << 14)
    data = b"\x2f" + struct.pack("<I", bits) + bytes(40)
    body = b"WEBP" + b"VP8L" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def webp_vp8x(width: int, height: int) -> bytes:
    data = b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(data)) + data + bytes(40)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def wav(frames: int = 800) -> bytes:
    """A complete 8 kHz mono 16-bit WAV made by the standard library."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(2 * frames))
    return out.getvalue()


def amr(frames: int = 50) -> bytes:
    return b"#!AMR\n" + (b"\x3c" + bytes(31)) * frames


def amr_wb(frames: int = 50) -> bytes:
    return b"#!AMR-WB\n" + (b"\x44" + bytes(60)) * frames


def opus() -> bytes:
    head = b"OpusHead" + bytes([1, 1]) + struct.pack("<HIhB", 312, 48000, 0, 0)
    page = b"OggS\x00\x02" + bytes(8) + struct.pack("<IIIB", 1, 0, 0, 1) + bytes([len(head)])
    return page + head + bytes(100)


def aac(frames: int = 20) -> bytes:
    length = 7 + 100
    header = bytes(
        [0xFF, 0xF1, 0x50, 0x80 | (length >> 11), (length >> 3) & 0xFF, ((length & 7) << 5) | 0x1F, 0xFC]
    )
    return (header + bytes(100)) * frames


def m4a(major: bytes = b"M4A ", compatible: tuple[bytes, ...] = (b"isom",)) -> bytes:
    brands = b"".join(compatible)
    ftyp = struct.pack(">I", 16 + len(brands)) + b"ftyp" + major + b"\x00\x00\x02\x00" + brands
    return ftyp + struct.pack(">I", 8 + 100) + b"mdat" + bytes(100)
