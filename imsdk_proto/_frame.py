"""Frames: encoding, the lazily decoded :class:`Frame`, and the sans-IO :class:`FrameDecoder`.

A frame is ``preamble | header | body`` (layout in :mod:`imsdk_proto._buffer` and docs/wire-format.md). The
header is always decoded; the body stays raw bytes until someone reads :attr:`Frame.body`, so a router that
only looks at the header forwards ``raw_body`` untouched. A decoded frame also keeps the header bytes it
arrived with (:attr:`Frame.header_bytes`), so forwarding it unchanged costs no header encode.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import TypeVar

from google.protobuf.message import Message

from imsdk_proto import _registry
from imsdk_proto._buffer import FORMAT_VERSION, MAX_LENGTH, MAX_PREAMBLE, encode_preamble, parse_preamble
from imsdk_proto._generated.imsdk_pb2 import ErrorReport
from imsdk_proto._header import Header
from imsdk_proto.codecs import bson_json, get_codec, protobuf
from imsdk_proto.codes import Codec, ErrorCode, Flags
from imsdk_proto.errors import (
    CodecChanged,
    FrameTooLarge,
    MalformedBody,
    ProtocolError,
    UnknownMessageCode,
)

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "Frame",
    "FrameDecoder",
    "body_class",
    "encode_frame",
    "encode_raw",
]

M = TypeVar("M", bound=Message)

#: Default limit on header + body bytes of one frame.
DEFAULT_MAX_FRAME_SIZE = 65536

_CODEC_BY_ID: dict[int, Codec] = {c.value: c for c in Codec}
_V1 = Codec.BSON_JSON.value
_V2 = Codec.PROTOBUF.value
_HEADER_DECODERS = {_V1: bson_json.decode_header, _V2: protobuf.decode_header}
_HEADER_ENCODERS = {_V1: bson_json.encode_header, _V2: protobuf.encode_header}
_BODY_DECODERS = {_V1: bson_json.decode_body, _V2: protobuf.decode_body}
_BODY_ENCODERS = {_V1: bson_json.encode_body, _V2: protobuf.encode_body}
_BY_CODE = _registry._BY_CODE
_ERROR_FLAG = int(Flags.ERROR)
# int's own "&": IntFlag.__and__ builds a new flag member on every call, which cost a quarter of the time
# of a whole v2 decode.
_int_and = int.__and__
_UNSET: object = object()
_FORMAT_BITS = FORMAT_VERSION << 4


def body_class(header: Header) -> type[Message] | None:
    """The body class a frame with this header carries.

    Frames flagged :attr:`~imsdk_proto.codes.Flags.ERROR` carry an ``ErrorReport`` (possibly empty) whatever
    their code; all others carry the class registered for ``(biz, func)``, or nothing (``None``).
    Raises :class:`~imsdk_proto.errors.UnknownMessageCode` for an unregistered code.
    """
    if _int_and(header.flags, _ERROR_FLAG):
        return ErrorReport
    try:
        return _BY_CODE[(header.biz, header.func)]
    except KeyError:
        raise UnknownMessageCode(f"no message is registered for code ({header.biz}, {header.func})") from None


def encode_raw(
    header: Header,
    raw_body: bytes,
    codec: Codec = Codec.PROTOBUF,
    *,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
) -> bytes:
    """A whole frame from a header and an already encoded body (forwarding, stamping a new header).

    ``raw_body`` must be in ``codec``'s body encoding; it is copied as is.
    Raises :class:`~imsdk_proto.errors.FrameTooLarge` when header + body exceed ``max_frame_size``.
    """
    try:
        header_bytes = _HEADER_ENCODERS[codec](header)
    except KeyError:
        get_codec(codec)  # raises UnknownCodec
        raise
    return _assemble(codec, header_bytes, raw_body, max_frame_size)


def _assemble(codec: int, header_bytes: bytes, raw_body: bytes, max_frame_size: int) -> bytes:
    """Preamble + ``header_bytes`` + ``raw_body``, checked against ``max_frame_size``."""
    header_len = len(header_bytes)
    body_len = len(raw_body)
    if header_len + body_len > max_frame_size:
        raise FrameTooLarge(
            f"frame of {header_len + body_len} bytes exceeds the {max_frame_size}-byte frame limit"
        )
    if header_len < 0x80 and body_len < 0x80:  # the common case: one byte per length
        return bytes((_FORMAT_BITS | codec, header_len, body_len)) + header_bytes + raw_body
    return encode_preamble(codec, header_len, body_len) + header_bytes + raw_body


def _encode_body(header: Header, body: Message | None, codec: int) -> bytes:
    expected = body_class(header)
    if body is None:
        return b""
    if type(body) is not expected:
        wanted = "no body" if expected is None else expected.__name__
        raise TypeError(f"code ({header.biz}, {header.func}) carries {wanted}, not {type(body).__name__}")
    try:
        return _BODY_ENCODERS[codec](body)
    except KeyError:
        get_codec(codec)
        raise


def encode_frame(
    header: Header,
    body: Message | None = None,
    codec: Codec = Codec.PROTOBUF,
    *,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
) -> bytes:
    """A whole frame: preamble, header and ``body`` encoded with ``codec``.

    ``body`` must be an instance of the class registered for the header's code (an ``ErrorReport`` when the
    ERROR flag is set), or ``None`` for codes without body and for an all-default body.
    Raises ``TypeError`` for a body of the wrong class, :class:`~imsdk_proto.errors.UnknownMessageCode` for
    an unregistered code and :class:`~imsdk_proto.errors.FrameTooLarge` past ``max_frame_size``.
    """
    return encode_raw(header, _encode_body(header, body, codec), codec, max_frame_size=max_frame_size)


class Frame:
    """One decoded frame: the :class:`Header`, the codec, the raw body bytes and a lazily decoded body.

    :attr:`body` decodes ``raw_body`` on first access (and caches the message; treat it as read-only, or
    build a new frame after changing it). Decoding errors raise :class:`~imsdk_proto.errors.MalformedBody`
    (or :class:`~imsdk_proto.errors.UnknownMessageCode`) at that access, never while routing on the header.

    :attr:`header_bytes`, when not ``None``, is an encoding of :attr:`header` in :attr:`codec` that
    :meth:`encode` sends instead of encoding the header again: a decoded frame keeps the bytes its header
    arrived in, so a frame passed on unchanged (a router's push relayed by an access server) costs no header
    encode. The bytes must decode equal to the header, so whoever changes a header in place must set
    :attr:`header_bytes` to match or to ``None`` (the access server's stamping appends the stamped fields,
    see :func:`imsdk_proto.codecs.protobuf.encode_stamp`); :meth:`with_header` and :meth:`to_codec` drop it.
    """

    __slots__ = ("_body", "codec", "header", "header_bytes", "raw_body")

    header: Header
    codec: Codec
    raw_body: bytes
    header_bytes: bytes | None

    def __init__(
        self,
        header: Header,
        codec: Codec = Codec.PROTOBUF,
        raw_body: bytes = b"",
        body: Message | object | None = _UNSET,
        header_bytes: bytes | None = None,
    ) -> None:
        self.header = header
        self.codec = codec
        self.raw_body = raw_body
        self._body = body
        self.header_bytes = header_bytes

    @classmethod
    def build(cls, header: Header, body: Message | None = None, codec: Codec = Codec.PROTOBUF) -> Frame:
        """A frame from a header and a message (encoded at once, and kept as the decoded body)."""
        raw = _encode_body(header, body, codec)
        if body is None:
            expected = body_class(header)
            body = None if expected is None else expected()
        return cls(header, codec, raw, body)

    @property
    def body(self) -> Message | None:
        """The decoded body: an instance of :func:`body_class`, or ``None`` for codes without body."""
        body = self._body
        if body is _UNSET:
            body = self._decode_body()
            self._body = body
        return body  # type: ignore[return-value]

    def _decode_body(self) -> Message | None:
        cls = body_class(self.header)
        if cls is None:
            if self.raw_body:
                raise MalformedBody(
                    f"code ({self.header.biz}, {self.header.func}) carries no body, "
                    f"but the frame has {len(self.raw_body)} body bytes"
                )
            return None
        return _BODY_DECODERS[self.codec](cls, self.raw_body)

    def body_as(self, cls: type[M]) -> M:
        """The body, checked to be a ``cls`` (typed access for callers that know what they expect).

        Raises :class:`~imsdk_proto.errors.ProtocolError` with code ``UNEXPECTED_MESSAGE`` otherwise.
        """
        body = self.body
        if not isinstance(body, cls):
            got = "no body" if body is None else type(body).__name__
            raise ProtocolError(
                f"expected {cls.__name__}, frame ({self.header.biz}, {self.header.func}) carries {got}",
                ErrorCode.UNEXPECTED_MESSAGE,
            )
        return body

    def to_codec(self, codec: Codec) -> Frame:
        """The same frame in another codec (the header is shared; the body is decoded and re-encoded)."""
        if codec == self.codec:
            return self
        body = self.body
        raw = b"" if body is None else get_codec(codec).encode_body(body)
        return Frame(self.header, _CODEC_BY_ID[codec], raw, body)

    def with_header(self, header: Header) -> Frame:
        """The same body under another header (e.g. stamped with the access-server id)."""
        return Frame(header, self.codec, self.raw_body, self._body)

    def encode(self, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> bytes:
        """The frame's bytes: the header (:attr:`header_bytes` when known, else encoded now), the raw body
        copied. Raises :class:`~imsdk_proto.errors.FrameTooLarge` past ``max_frame_size``."""
        header_bytes = self.header_bytes
        if header_bytes is None:
            return encode_raw(self.header, self.raw_body, self.codec, max_frame_size=max_frame_size)
        return _assemble(self.codec, header_bytes, self.raw_body, max_frame_size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return self.header == other.header and self.codec == other.codec and self.raw_body == other.raw_body

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Frame({self.header!r}, {self.codec.name}, raw_body={len(self.raw_body)} bytes)"


class FrameDecoder:
    """Sans-IO frame decoder: :meth:`feed` it bytes in any chunking, take frames with :meth:`next_frame`.

    * The announced lengths are checked against ``max_frame_size`` (header + body) as soon as the preamble is
      complete, before any body byte is kept; bytes still waiting for a frame never exceed
      ``max_frame_size`` plus the 9-byte maximum preamble.
    * The first frame fixes the connection's codec (unless ``codec`` is given up front); a later frame in
      another codec raises :class:`~imsdk_proto.errors.CodecChanged`. Pass ``lock_codec=False`` to allow
      mixing (e.g. a tool reading a capture).
    * Errors are reported in stream order: frames complete before the bad bytes are returned first, then
      :meth:`next_frame` raises the typed error. The decoder then stays failed: every later call raises the
      same error, and the connection should close with its ``code``.
    """

    __slots__ = ("_buf", "_codec", "_error", "_frames", "_lock", "_max", "_need")

    def __init__(
        self,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        *,
        codec: Codec | None = None,
        lock_codec: bool = True,
    ) -> None:
        if not 1 <= max_frame_size <= MAX_LENGTH:
            raise ValueError(f"max_frame_size must be in 1..{MAX_LENGTH}, got {max_frame_size}")
        self._max = max_frame_size
        self._codec: int | None = None if codec is None else int(codec)
        self._lock = lock_codec
        self._buf = bytearray()
        self._need = 1
        self._frames: deque[tuple[int, bytes, bytes]] = deque()
        self._error: ProtocolError | None = None

    @property
    def max_frame_size(self) -> int:
        return self._max

    @property
    def codec(self) -> Codec | None:
        """The connection's codec: preset, or fixed by the first frame; ``None`` before that."""
        return None if self._codec is None else _CODEC_BY_ID[self._codec]

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet form a whole frame (at most ``max_frame_size`` + 9)."""
        return len(self._buf)

    @property
    def pending(self) -> int:
        """Whole frames split off and waiting for :meth:`next_frame`."""
        return len(self._frames)

    @property
    def error(self) -> ProtocolError | None:
        """The error the stream failed with, if it did (raised once the frames before it are taken)."""
        return self._error

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add received bytes. Raises the stream's error if it already failed (more bytes change nothing)."""
        if self._error is not None:
            if not self._frames:
                raise self._error
            return
        buf = self._buf
        if buf:
            buf += data
            if len(buf) < self._need:
                return
            chunk = bytes(buf)
            buf.clear()
        else:
            chunk = bytes(data)
        pos = self._split(chunk)
        if pos < len(chunk):
            buf += memoryview(chunk)[pos:]

    def _split(self, data: bytes) -> int:
        """Cut whole frames off ``data``; return the position of the first byte not consumed."""
        pos = 0
        end = len(data)
        frames = self._frames
        max_size = self._max
        fast_b0 = -1 if self._codec is None else _FORMAT_BITS | self._codec
        while pos < end:
            # Fast path: the connection's codec and one-byte lengths (small frames, the bulk of traffic).
            if data[pos] == fast_b0 and pos + 2 < end and 0 < data[pos + 1] < 0x80 and data[pos + 2] < 0x80:
                header_len = data[pos + 1]
                body_len = data[pos + 2]
                if header_len + body_len <= max_size:
                    header_start = pos + 3
                    body_start = header_start + header_len
                    frame_end = body_start + body_len
                    if frame_end > end:
                        self._need = frame_end - pos
                        return pos
                    frames.append((fast_b0 & 0x0F, data[header_start:body_start], data[body_start:frame_end]))
                    pos = frame_end
                    continue
            try:
                pre = parse_preamble(data, pos, end, max_size)
            except ProtocolError as exc:
                self._fail(exc)
                return end
            if pre is None:
                self._need = end - pos + 1
                return pos
            codec, header_len, body_len, pre_len = pre
            if codec != self._codec:
                if self._codec is None:
                    if self._lock:
                        self._codec = codec
                        fast_b0 = _FORMAT_BITS | codec
                elif self._lock:
                    self._fail(
                        CodecChanged(f"frame uses codec {codec} on a connection using codec {self._codec}")
                    )
                    return end
            header_start = pos + pre_len
            body_start = header_start + header_len
            frame_end = body_start + body_len
            if frame_end > end:
                self._need = frame_end - pos
                return pos
            frames.append((codec, data[header_start:body_start], data[body_start:frame_end]))
            pos = frame_end
        self._need = 1
        return pos

    def _fail(self, exc: ProtocolError) -> None:
        self._error = exc
        self._buf.clear()
        self._need = MAX_PREAMBLE + self._max + 1

    def next_frame(self) -> Frame | None:
        """The next whole frame, or ``None`` if more bytes are needed.

        Raises the typed error once the frames before the bad bytes were returned (and on every later call).
        """
        frames = self._frames
        if frames:
            codec, header_bytes, raw_body = frames.popleft()
            try:
                header = _HEADER_DECODERS[codec](header_bytes)
            except ProtocolError as exc:
                frames.clear()
                self._fail(exc)
                raise
            return Frame(header, _CODEC_BY_ID[codec], raw_body, _UNSET, header_bytes)
        if self._error is not None:
            raise self._error
        return None

    def __iter__(self) -> Iterator[Frame]:
        """Yield every whole frame available now (then stop; feed more and iterate again)."""
        while True:
            frame = self.next_frame()
            if frame is None:
                return
            yield frame
