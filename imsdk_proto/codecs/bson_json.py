"""v1 codec, the talk's original: a BSON header and a compact JSON body.

The header is a BSON document whose keys are the :class:`~imsdk_proto.Header` field names; fields at their
default are left out. BSON has no unsigned integers, so 64-bit fields above ``2**63 - 1`` travel as their
two's-complement negative int64 and are mapped back on decode. BSON comes from pymongo's C-accelerated
``bson`` module (never the standalone ``bson`` package, which claims the same top-level name).

The body is the protobuf message in its canonical JSON mapping with the field names of the ``.proto`` file
(``call_id``, not ``callId``), enums as numbers, without spaces; an empty message is an empty body. The
decoder also accepts enum names and camelCase field names, as the JSON mapping allows.
"""

from __future__ import annotations

import base64
import json
import math
import re
from typing import Any, TypeVar

import bson
from bson.errors import BSONError
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from imsdk_proto._header import UINT32_MAX, UINT64_MAX, Header
from imsdk_proto.codecs._common import flags_of
from imsdk_proto.codes import Codec
from imsdk_proto.errors import MalformedBody, MalformedHeader

__all__ = ["CODEC", "decode_body", "decode_header", "encode_body", "encode_header"]

CODEC = Codec.BSON_JSON

M = TypeVar("M", bound=Message)

_INT64_MAX = (1 << 63) - 1
_U32_FIELDS = ("access_id", "msg_server_id", "flags", "error")
_U64_FIELDS = ("seq", "msg_id", "session")
_STR_FIELDS = ("sender_uid", "sender_device", "receiver_uid", "receiver_device")


def _signed64(value: int) -> int:
    return value - (1 << 64) if value > _INT64_MAX else value


def encode_header(header: Header) -> bytes:
    """BSON bytes of a header (only non-default fields)."""
    doc: dict[str, Any] = {"biz": header.biz, "func": header.func}
    if header.seq:
        doc["seq"] = _signed64(header.seq)
    if header.msg_id:
        doc["msg_id"] = _signed64(header.msg_id)
    if header.access_id:
        doc["access_id"] = header.access_id
    if header.msg_server_id:
        doc["msg_server_id"] = header.msg_server_id
    if header.flags:
        doc["flags"] = int(header.flags)
    if header.error:
        doc["error"] = header.error
    if header.sender_uid:
        doc["sender_uid"] = header.sender_uid
    if header.sender_device:
        doc["sender_device"] = header.sender_device
    if header.receiver_uid:
        doc["receiver_uid"] = header.receiver_uid
    if header.receiver_device:
        doc["receiver_device"] = header.receiver_device
    if header.session:
        doc["session"] = _signed64(header.session)
    return bson.encode(doc)


def _int_field(doc: dict[str, Any], key: str, lo: int, hi: int) -> int:
    value = doc.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedHeader(f"header field {key!r} must be an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise MalformedHeader(f"header field {key!r} out of range: {value}")
    return int(value)


def decode_header(data: bytes) -> Header:
    """Parse a BSON header; raises :class:`MalformedHeader` on bad bytes, types or ranges."""
    try:
        doc = bson.decode(data)
    except (BSONError, ValueError, TypeError, OverflowError, IndexError, UnicodeDecodeError) as exc:
        raise MalformedHeader(f"BSON header does not decode: {exc}") from None
    except Exception as exc:  # a foreign decoder fed hostile bytes: any failure means "malformed"
        raise MalformedHeader(f"BSON header does not decode: {type(exc).__name__}: {exc}") from None
    biz = _int_field(doc, "biz", 1, UINT32_MAX)
    func = _int_field(doc, "func", 1, UINT32_MAX)
    u32 = [_int_field(doc, key, 0, UINT32_MAX) for key in _U32_FIELDS]
    u64 = [_int_field(doc, key, -(1 << 63), UINT64_MAX) & UINT64_MAX for key in _U64_FIELDS]
    strs: list[str] = []
    for key in _STR_FIELDS:
        value = doc.get(key, "")
        if not isinstance(value, str):
            raise MalformedHeader(f"header field {key!r} must be a string, got {type(value).__name__}")
        strs.append(value)
    return Header(
        biz,
        func,
        u64[0],
        u64[1],
        u32[0],
        u32[1],
        flags_of(u32[2]),
        u32[3],
        strs[0],
        strs[1],
        strs[2],
        strs[3],
        u64[2],
    )


def encode_body(body: Message) -> bytes:
    """Compact JSON of a message, field names as in the .proto; empty for an all-default message."""
    doc = json_format.MessageToDict(body, preserving_proto_field_name=True, use_integers_for_enums=True)
    if not doc:
        return b""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


# Only a \uD800-\uDFFF escape can put a surrogate into decoded JSON (UTF-8 cannot carry one).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(doc: object) -> bool:
    try:
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def decode_body(cls: type[M], data: bytes) -> M:
    """Parse a JSON body as ``cls``; unknown fields are ignored (newer peers), anything else malformed raises
    :class:`MalformedBody`.

    Bodies in the form :func:`encode_body` writes take a direct path (:func:`_fill`); anything else (camelCase
    or unknown names, enum names, nulls, numbers in unusual spellings, bad values) goes through protobuf's own
    ``json_format.ParseDict``, so both paths accept the same documents and build equal messages.
    """
    msg = cls()
    if not data:
        return msg
    try:
        doc = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise MalformedBody(f"JSON body does not decode: {exc}") from None
    if not isinstance(doc, dict):
        raise MalformedBody(f"JSON body must be an object, got {type(doc).__name__}")
    if _SURROGATE_ESCAPE.search(data) and _has_lone_surrogate(doc):
        # Not Unicode; and protobuf's name look-ups fail on such text with a SystemError.
        raise MalformedBody("JSON body holds an unpaired surrogate escape")
    try:
        _fill(msg, doc, 0)
        return msg
    except Exception:  # _NotCanonical, or a value that does not fit: ParseDict decides, as it always did
        msg = cls()
    try:
        json_format.ParseDict(doc, msg, ignore_unknown_fields=True)
    except (json_format.Error, ValueError, TypeError, AttributeError, RecursionError, OverflowError) as exc:
        raise MalformedBody(f"JSON body does not fit {cls.__name__}: {exc}") from None
    return msg


# -- the direct path for canonical bodies -------------------------------------------------------------------
#
# ``json_format.ParseDict`` is pure Python and general (every spelling the JSON mapping allows, well-known
# types, maps, extensions); it made v1 body decoding several times slower than the rest of a frame. The
# direct path handles exactly the spellings ``MessageToDict`` produces for our schema: ``.proto`` field names;
# integers as JSON numbers or, for 64-bit fields, decimal strings; enums as numbers; bools; finite floats;
# strings without lone surrogates; bytes as base64; nested objects and lists. Anything else raises
# ``_NotCanonical`` and the whole body is parsed again by ParseDict, which then decides (and raises) exactly
# as before; so does any other failure on the direct path (an out-of-range integer, bad base64).


class _NotCanonical(Exception):
    """Internal: the document uses a spelling the direct path leaves to ``json_format.ParseDict``."""


_INT, _FLOAT32, _DOUBLE, _BOOL, _STRING, _BYTES, _ENUM, _MESSAGE = range(8)
_KINDS = {
    FieldDescriptor.CPPTYPE_INT32: _INT,
    FieldDescriptor.CPPTYPE_INT64: _INT,
    FieldDescriptor.CPPTYPE_UINT32: _INT,
    FieldDescriptor.CPPTYPE_UINT64: _INT,
    FieldDescriptor.CPPTYPE_FLOAT: _FLOAT32,
    FieldDescriptor.CPPTYPE_DOUBLE: _DOUBLE,
    FieldDescriptor.CPPTYPE_BOOL: _BOOL,
    FieldDescriptor.CPPTYPE_ENUM: _ENUM,
    FieldDescriptor.CPPTYPE_MESSAGE: _MESSAGE,
}
# ParseDict refuses float values beyond float32's range for float fields (and nesting deeper than this).
_FLOAT32_MAX = 3.4028234663852886e38
_MAX_DEPTH = 100
_DECIMAL = re.compile(r"-?[0-9]+\Z")
_SURROGATE = re.compile("[\ud800-\udfff]")

# (attribute name, kind, repeated, oneof name or None)
_Plan = dict[str, tuple[str, int, bool, str | None]]
_PLANS: dict[Any, _Plan] = {}


def _plan(descriptor: Any) -> _Plan:
    """Field look-up by ``.proto`` name for one message type (built once per type)."""
    plan = _PLANS.get(descriptor)
    if plan is None:
        plan = {}
        for f in descriptor.fields:
            if f.cpp_type == FieldDescriptor.CPPTYPE_STRING:
                kind = _BYTES if f.type == FieldDescriptor.TYPE_BYTES else _STRING
            else:
                kind = _KINDS[f.cpp_type]
            if kind == _MESSAGE and (f.message_type.GetOptions().map_entry or _is_wkt(f.message_type)):
                continue  # maps and well-known types: ParseDict only (the key is then "unknown" here)
            oneof = f.containing_oneof.name if f.containing_oneof is not None else None
            plan[f.name] = (f.name, kind, f.is_repeated, oneof)
        _PLANS[descriptor] = plan
    return plan


def _is_wkt(descriptor: Any) -> bool:
    return str(descriptor.full_name).startswith("google.protobuf.")


def _scalar(kind: int, value: Any) -> Any:
    """The field value of a canonical JSON scalar; raises ``_NotCanonical`` for any other spelling."""
    t = type(value)  # exact types: a JSON true is never an integer here
    if kind in (_INT, _ENUM):
        if t is int:
            return value
        if kind == _INT and t is str and _DECIMAL.match(value):
            return int(value)
    elif kind == _STRING:
        if t is str and not _SURROGATE.search(value):
            return value
    elif kind == _BOOL:
        if t is bool:
            return value
    elif kind in (_DOUBLE, _FLOAT32):
        if t is int:
            return float(value)
        if t is float and math.isfinite(value) and (kind == _DOUBLE or abs(value) <= _FLOAT32_MAX):
            return value
    elif kind == _BYTES and t is str:
        encoded = value.encode("utf-8")
        return base64.urlsafe_b64decode(encoded + b"=" * (4 - len(encoded) % 4))  # as ParseDict does
    raise _NotCanonical


def _fill(msg: Message, doc: dict[str, Any], depth: int) -> None:
    """Set ``msg``'s fields from a canonical JSON object (see above)."""
    if depth >= _MAX_DEPTH:
        raise _NotCanonical
    plan = _plan(msg.DESCRIPTOR)
    oneofs: set[str] | None = None
    for key, value in doc.items():
        entry = plan.get(key)
        if entry is None or value is None:
            raise _NotCanonical  # unknown or camelCase name, or null: ParseDict's rules apply
        name, kind, repeated, oneof = entry
        if oneof is not None:
            if oneofs is None:
                oneofs = set()
            elif oneof in oneofs:
                raise _NotCanonical
            oneofs.add(oneof)
        if repeated:
            if type(value) is not list:
                raise _NotCanonical
            target = getattr(msg, name)
            if kind == _MESSAGE:
                for item in value:
                    if type(item) is not dict:
                        raise _NotCanonical
                    _fill(target.add(), item, depth + 1)
            else:
                target.extend([_scalar(kind, item) for item in value])
        elif kind == _MESSAGE:
            if type(value) is not dict:
                raise _NotCanonical
            sub = getattr(msg, name)
            sub.SetInParent()
            _fill(sub, value, depth + 1)
        else:
            setattr(msg, name, _scalar(kind, value))
