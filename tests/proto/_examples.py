"""Example messages and headers for the codec tests: every field set, at awkward values."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from imsdk_proto import codes
from imsdk_proto._header import UINT32_MAX, UINT64_MAX, Header
from imsdk_proto.codes import Flags

_T = FieldDescriptor

_INT_VALUES = {
    _T.TYPE_UINT64: UINT64_MAX,
    _T.TYPE_FIXED64: UINT64_MAX - 1,
    _T.TYPE_INT64: -(1 << 63),
    _T.TYPE_SINT64: -(1 << 62),
    _T.TYPE_SFIXED64: (1 << 63) - 1,
    _T.TYPE_UINT32: UINT32_MAX,
    _T.TYPE_FIXED32: UINT32_MAX - 1,
    _T.TYPE_INT32: -(1 << 31),
    _T.TYPE_SINT32: -5,
    _T.TYPE_SFIXED32: 7,
}


def _scalar(field: Any, n: int) -> object:  # a FieldDescriptor of either protobuf implementation
    if field.type in _INT_VALUES:
        value = _INT_VALUES[field.type]
        return value if n == 0 else 1 + n
    if field.type == _T.TYPE_STRING:
        return f"{field.name}-{n}-ünïcødé-电话"
    if field.type == _T.TYPE_BYTES:
        return bytes([0, 255, n]) + field.name.encode()
    if field.type == _T.TYPE_BOOL:
        return True
    if field.type == _T.TYPE_DOUBLE:
        return 0.1 + n
    if field.type == _T.TYPE_FLOAT:
        return 1.5 + n  # exact in float32
    if field.type == _T.TYPE_ENUM:
        assert field.enum_type is not None
        values = field.enum_type.values
        return values[-1 - (n % len(values))].number
    raise AssertionError(f"unhandled field type {field.type} of {field.full_name}")


def fill(message: Message, depth: int = 0, oneof_choice: int = 0) -> Message:
    """Set every field of ``message`` (both elements of repeated fields; one member of each oneof)."""
    descriptor = message.DESCRIPTOR
    for field in descriptor.fields:
        oneof = field.containing_oneof
        if oneof is not None:
            members = list(oneof.fields)
            if len(members) > 1 and members[oneof_choice % len(members)] is not field:
                continue
        if field.type == _T.TYPE_MESSAGE:
            if depth >= 3:
                continue
            if field.is_repeated:
                for _ in range(2):
                    fill(getattr(message, field.name).add(), depth + 1)
            else:
                fill(getattr(message, field.name), depth + 1)
        elif field.is_repeated:
            getattr(message, field.name).extend([_scalar(field, 0), _scalar(field, 1)])
        else:
            setattr(message, field.name, _scalar(field, 0))
    return message


def registered_bodies() -> list[tuple[int, int, type[Message] | None]]:
    """Every registered code of the suite with its body class."""
    return [(biz, func, cls) for (biz, func), cls in sorted(codes.registered_codes().items())]


FULL_HEADER = Header(
    biz=UINT32_MAX,
    func=UINT32_MAX,
    seq=UINT64_MAX,
    msg_id=UINT64_MAX,
    access_id=UINT32_MAX,
    msg_server_id=UINT32_MAX,
    flags=Flags.ACK_WANTED | Flags.RETRY | Flags.NO_STORE,
    error=UINT32_MAX,
    sender_uid="8613800138000",
    sender_device="dev-☎",
    receiver_uid="8613900139000",
    receiver_device="ipad",
    session=(1 << 63) + 5,
)
