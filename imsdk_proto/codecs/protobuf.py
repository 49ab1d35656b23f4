"""v2 codec: protobuf header (``imsdk.v1.Header``) and protobuf body. Defaults are not written at all."""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from imsdk_proto._generated.imsdk_pb2 import Header as _PBHeader
from imsdk_proto._header import Header
from imsdk_proto.codecs._common import flags_of
from imsdk_proto.codes import Codec
from imsdk_proto.errors import MalformedBody, MalformedHeader

__all__ = ["CODEC", "decode_body", "decode_header", "encode_body", "encode_header"]

CODEC = Codec.PROTOBUF

M = TypeVar("M", bound=Message)


def encode_header(header: Header) -> bytes:
    """Protobuf bytes of a header; fields at their default cost nothing."""
    pb = _PBHeader()
    pb.biz = header.biz
    pb.func = header.func
    if header.seq:
        pb.seq = header.seq
    if header.msg_id:
        pb.msg_id = header.msg_id
    if header.access_id:
        pb.access_id = header.access_id
    if header.msg_server_id:
        pb.msg_server_id = header.msg_server_id
    if header.flags:
        pb.flags = header.flags
    if header.error:
        pb.error = header.error
    if header.sender_uid:
        pb.sender_uid = header.sender_uid
    if header.sender_device:
        pb.sender_device = header.sender_device
    if header.receiver_uid:
        pb.receiver_uid = header.receiver_uid
    if header.receiver_device:
        pb.receiver_device = header.receiver_device
    if header.session:
        pb.session = header.session
    return pb.SerializeToString()


def decode_header(data: bytes) -> Header:
    """Parse a header; raises :class:`MalformedHeader` on bad bytes or a zero biz/func code."""
    pb = _PBHeader()
    try:
        pb.ParseFromString(data)
    except (DecodeError, ValueError, TypeError) as exc:
        raise MalformedHeader(f"protobuf header does not decode: {exc}") from None
    biz = pb.biz
    func = pb.func
    if not biz or not func:
        raise MalformedHeader(f"header needs non-zero biz and func codes, got ({biz}, {func})")
    return Header(
        biz,
        func,
        pb.seq,
        pb.msg_id,
        pb.access_id,
        pb.msg_server_id,
        flags_of(pb.flags),
        pb.error,
        pb.sender_uid,
        pb.sender_device,
        pb.receiver_uid,
        pb.receiver_device,
        pb.session,
    )


def encode_body(body: Message) -> bytes:
    return body.SerializeToString()


def decode_body(cls: type[M], data: bytes) -> M:
    """Parse a body of class ``cls``; raises :class:`MalformedBody` on bad bytes."""
    msg = cls()
    try:
        msg.ParseFromString(data)
    except (DecodeError, ValueError, TypeError) as exc:
        raise MalformedBody(f"protobuf body does not decode as {cls.__name__}: {exc}") from None
    return msg
