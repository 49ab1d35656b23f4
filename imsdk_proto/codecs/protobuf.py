"""v2 codec: protobuf header (``imsdk.v1.Header``) and protobuf body. Defaults are not written at all."""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from imsdk_proto._generated.imsdk_pb2 import Header as _PBHeader
from imsdk_proto._header import UINT32_MAX, UINT64_MAX, Header
from imsdk_proto.codecs._common import _FLAG_CACHE, flags_of
from imsdk_proto.codes import Codec
from imsdk_proto.errors import MalformedBody, MalformedHeader

__all__ = ["CODEC", "decode_body", "decode_header", "encode_body", "encode_header", "encode_stamp"]

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
    flags = header.flags
    if flags != 0:  # not "if flags": truth of an IntFlag is a Python call (Flag.__bool__)
        pb.flags = flags
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


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _text(tag: int, value: str) -> bytes:
    data = value.encode()
    return bytes((tag,)) + _varint(len(data)) + data


def encode_stamp(access_id: int, sender_uid: str, sender_device: str, session: int) -> bytes:
    """Bytes that, appended to a v2 header's bytes, set ``access_id``, ``sender_uid``, ``sender_device`` and
    ``session`` to these values, whatever the header said before.

    Protobuf keeps the last value of a scalar field that occurs twice, so ``header_bytes + stamp`` decodes
    to the header with those four fields replaced -- what an access server stamps into every upstream
    header -- without encoding the header again. Every field is written, even at its default, so that a
    default here also overrides the header's value. Compute it once per session and append it per frame.
    """
    if not (0 <= access_id <= UINT32_MAX and 0 <= session <= UINT64_MAX):
        raise ValueError(f"access_id {access_id} or session {session} out of range")
    return (
        b"\x28" + _varint(access_id)  # field 5, varint
        + _text(0x4A, sender_uid)  # field 9, length-delimited
        + _text(0x52, sender_device)  # field 10
        + b"\x68" + _varint(session)  # field 13, varint
    )  # fmt: skip


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
    flags = _FLAG_CACHE.get(pb.flags)  # flags_of inlined for the common values: one call less per frame
    if flags is None:
        flags = flags_of(pb.flags)
    return Header(
        biz,
        func,
        pb.seq,
        pb.msg_id,
        pb.access_id,
        pb.msg_server_id,
        flags,
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
