"""The codec's error tree. Every error carries the wire :class:`~imsdk_proto.codes.ErrorCode` it maps to.

::

    CodedError                        .code: ErrorCode (class default, overridable per instance), .message
    └── ProtocolError                 the peer's bytes break the wire format
        ├── BadPreamble               BAD_PREAMBLE
        ├── UnsupportedVersion        UNSUPPORTED_VERSION
        ├── UnknownCodec              UNKNOWN_CODEC
        ├── FrameTooLarge             FRAME_TOO_LARGE
        ├── MalformedHeader           MALFORMED_HEADER
        ├── MalformedBody             MALFORMED_BODY
        ├── UnknownMessageCode        UNKNOWN_CODE
        └── CodecChanged              CODEC_CHANGED

A connection that sees one of these closes with its code (see :class:`~imsdk_proto.FrameDecoder`); a server
answering a single bad request may instead reply with an error frame carrying the code. No name here shadows a
built-in exception.
"""

from __future__ import annotations

from imsdk_proto.codes import ErrorCode

__all__ = [
    "BadPreamble",
    "CodecChanged",
    "CodedError",
    "FrameTooLarge",
    "MalformedBody",
    "MalformedHeader",
    "ProtocolError",
    "UnknownCodec",
    "UnknownMessageCode",
    "UnsupportedVersion",
]


class CodedError(Exception):
    """What every imsdk error tree grows from: an error that carries the wire :class:`ErrorCode` it maps to.

    :attr:`code` is a class default that one instance may override (``SomeError("text", ErrorCode.X)``);
    :attr:`message` is the text, safe to show to the peer. The codec's :class:`ProtocolError` and the server
    components' trees (auth, media, access manager) derive from it, so a caller can map any of them to a
    wire answer the same way.
    """

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        """The text of the error."""
        return str(self.args[0]) if self.args else ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code.name})"


class ProtocolError(CodedError):
    """Base of every codec error: the peer's bytes break the wire format.

    :attr:`code` is the wire error code to close the connection (or answer) with.
    """


class BadPreamble(ProtocolError):
    """The preamble is malformed: zero header length or an overlong length varint."""

    code = ErrorCode.BAD_PREAMBLE


class UnsupportedVersion(ProtocolError):
    """The frame format version nibble is not one this decoder speaks."""

    code = ErrorCode.UNSUPPORTED_VERSION


class UnknownCodec(ProtocolError):
    """The codec nibble names no :class:`~imsdk_proto.codes.Codec`."""

    code = ErrorCode.UNKNOWN_CODEC


class FrameTooLarge(ProtocolError):
    """The announced (or requested) frame length exceeds the maximum frame size."""

    code = ErrorCode.FRAME_TOO_LARGE


class MalformedHeader(ProtocolError):
    """The header bytes do not decode, or a field is missing, of the wrong type or out of range."""

    code = ErrorCode.MALFORMED_HEADER


class MalformedBody(ProtocolError):
    """The body bytes do not decode as the message class registered for the frame's code."""

    code = ErrorCode.MALFORMED_BODY


class UnknownMessageCode(ProtocolError):
    """No message class is registered for a ``(biz, func)`` code, or a class has no code."""

    code = ErrorCode.UNKNOWN_CODE


class CodecChanged(ProtocolError):
    """A frame used a different codec from the one chosen by the connection's first frame."""

    code = ErrorCode.CODEC_CHANGED
