"""The two wire codecs, each a header codec plus a body codec, looked up by :class:`~imsdk_proto.codes.Codec`.

* :mod:`imsdk_proto.codecs.bson_json` -- v1, the talk's original: BSON header, JSON body.
* :mod:`imsdk_proto.codecs.protobuf` -- v2: protobuf header and body.

Both turn foreign decoding failures into :class:`~imsdk_proto.errors.MalformedHeader` or
:class:`~imsdk_proto.errors.MalformedBody`, so callers only ever see the typed error tree.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from google.protobuf.message import Message

from imsdk_proto._header import Header
from imsdk_proto.codecs import bson_json, protobuf
from imsdk_proto.codes import Codec
from imsdk_proto.errors import UnknownCodec

__all__ = ["WireCodec", "get_codec"]

M = TypeVar("M", bound=Message)


class WireCodec(Protocol):
    """What a codec module provides."""

    CODEC: Codec

    def encode_header(self, header: Header) -> bytes: ...

    def decode_header(self, data: bytes) -> Header: ...

    def encode_body(self, body: Message) -> bytes: ...

    def decode_body(self, cls: type[M], data: bytes) -> M: ...


_CODECS: dict[int, WireCodec] = {Codec.BSON_JSON: bson_json, Codec.PROTOBUF: protobuf}


def get_codec(codec: int) -> WireCodec:
    """The codec module for a codec id; raises :class:`~imsdk_proto.errors.UnknownCodec`."""
    try:
        return _CODECS[codec]
    except KeyError:
        raise UnknownCodec(f"unknown codec id {codec}") from None
