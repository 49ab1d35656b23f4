"""v1 JSON bodies: the direct decoding path builds exactly what protobuf's ``json_format.ParseDict`` builds.

``bson_json.decode_body`` takes a direct path for bodies in the canonical form ``encode_body`` writes and
leaves every other spelling to ParseDict. These tests hold it to that: every registered message, fully
populated, goes the direct path (so the speed-up cannot silently vanish); and documents with every kind of
odd spelling decode to the same message as ParseDict alone would make, or fail with ``MalformedBody`` where
ParseDict fails.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from imsdk_proto import errors
from imsdk_proto.codecs import bson_json
from tests.proto._examples import fill, registered_bodies

CLASSES = sorted({cls for _, _, cls in registered_bodies() if cls is not None}, key=lambda c: c.__name__)


def reference(cls: type[Message], data: bytes) -> Message | None:
    """What ParseDict alone makes of ``data`` (``None`` where it refuses it), under the codec's one rule of
    its own: text with an unpaired surrogate is refused anywhere, even in an unknown field ParseDict skips."""
    doc = json.loads(data)
    if bson_json._has_lone_surrogate(doc):
        return None
    msg = cls()
    try:
        json_format.ParseDict(doc, msg, ignore_unknown_fields=True)
    except Exception:
        return None
    return msg


def decoded(cls: type[Message], data: bytes) -> Message | None:
    try:
        return bson_json.decode_body(cls, data)
    except errors.MalformedBody:
        return None


def canonical(msg: Message) -> dict[str, Any]:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True, use_integers_for_enums=True)


@pytest.mark.parametrize("cls", CLASSES, ids=[c.__name__ for c in CLASSES])
def test_every_canonical_body_takes_the_direct_path(cls: type[Message]) -> None:
    for choice in (0, 1, 4):
        full = fill(cls(), oneof_choice=choice)
        msg = cls()
        bson_json._fill(msg, canonical(full), 0)  # raises _NotCanonical if the body would fall back
        assert msg == full
        assert bson_json.decode_body(cls, bson_json.encode_body(full)) == full


# Spellings ParseDict accepts or refuses, put in place of one value of a canonical document.
ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1 << 32,
    1 << 64,
    -(1 << 63) - 1,
    1.0,
    1.5,
    -0.0,
    1e39,
    -1e39,
    1e300,
    float("inf"),
    float("nan"),
    "",
    "7",
    "-7",
    "+7",
    "007",
    " 7",
    "7_000",
    "1e3",
    "1.5",
    "NaN",
    "Infinity",
    "-Infinity",
    "nan",
    "\ud800",
    "AAEC",
    "AAE",
    "A-_B",
    "not base64!",
    "CALL_MEDIA_VIDEO",
    "SEND_STATUS_STORED",
    "ünïcødé",
    [],
    [1, 2],
    ["7", 8],
    [None],
    [{}],
    {},
    {"unknown": 1},
]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


@st.composite
def odd_documents(draw: st.DrawFn) -> tuple[type[Message], dict[str, Any]]:
    # Every odd value is a fresh copy: the "nested" action writes into a dict in place, and writing a shared
    # ODD_VALUES dict into itself made a circular document that json.dumps refuses.
    odd = st.sampled_from(ODD_VALUES).map(copy.deepcopy)
    cls = draw(st.sampled_from(CLASSES))
    doc = canonical(fill(cls(), oneof_choice=draw(st.integers(0, 4))))
    fields = {f.name: f for f in cls.DESCRIPTOR.fields}
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["value", "camel", "unknown", "drop", "nested", "oneof"]))
        keys = sorted(doc)
        if action == "unknown" or not keys:
            doc[draw(st.sampled_from(["zzz", "callId", "x_y"]))] = draw(odd)
            continue
        key = draw(st.sampled_from(keys))
        if action == "value":
            doc[key] = draw(odd)
        elif action == "camel":
            doc[_camel(key)] = doc.pop(key)
        elif action == "drop":
            del doc[key]
        elif action == "nested" and isinstance(doc[key], dict) and doc[key]:
            inner = doc[key]
            inner[draw(st.sampled_from(sorted(inner)))] = draw(odd)
        elif action == "oneof":
            f = fields.get(key)
            if f is not None and f.containing_oneof is not None:
                for other in f.containing_oneof.fields:  # a second member of the same oneof
                    if other.name != key and other.type != FieldDescriptor.TYPE_MESSAGE:
                        doc[other.name] = canonical(fill(cls(), oneof_choice=1)).get(other.name, 1)
                        break
    return cls, doc


@settings(max_examples=1500, deadline=None)
@given(case=odd_documents())
def test_odd_spellings_decode_as_parse_dict_decodes_them(case: tuple[type[Message], dict[str, Any]]) -> None:
    cls, doc = case
    data = json.dumps(doc).encode()  # Python's json writes NaN and Infinity bare, as some peers do
    expected = reference(cls, data)
    got = decoded(cls, data)
    if expected is None:
        assert got is None, (doc, got)
    else:
        assert got is not None, doc
        assert got == expected or _same_with_nan(got, expected), doc
        assert got.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)


def _same_with_nan(a: Message, b: Message) -> bool:
    """Messages holding NaN never compare equal; compare their bytes instead."""
    return any(isinstance(v, float) and math.isnan(v) for _, v in a.ListFields()) and a.SerializeToString(
        deterministic=True
    ) == b.SerializeToString(deterministic=True)


@pytest.mark.parametrize(
    ("cls_name", "doc"),
    [
        ("CallRequest", {"call_id": "123", "callId": "456"}),  # both names of one field: the later wins
        ("CallRequest", {"media_type": "CALL_MEDIA_VIDEO"}),  # an enum by name
        ("CallRequest", {"media_type": "NO_SUCH_NAME"}),  # an unknown enum name is ignored
        ("CallRequest", {"call_id": None}),  # null: the default
        ("ChatText", {"text": "\ud800"}),  # a lone surrogate is refused
        ("ChatText", {"text": 5}),  # a number for a string is refused
        ("SendAck", {"conv_seq": 1.0}),  # an integral float for an integer
        ("SendAck", {"conv_seq": "1e3"}),  # an integer in exponent form
        ("SendAck", {"conv_seq": -1}),  # out of range for uint64: refused
    ],
)
def test_named_odd_cases(cls_name: str, doc: dict[str, Any]) -> None:
    cls = next(c for c in CLASSES if c.__name__ == cls_name)
    data = json.dumps(doc).encode()
    assert decoded(cls, data) == reference(cls, data)
