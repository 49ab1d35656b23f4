"""Routing's errors grow from the suite's one root, ``CodedError``; each carries its wire code."""

from __future__ import annotations

import pytest

import imsdk_server.routing as routing
from imsdk_proto.codes import ErrorCode
from imsdk_proto.errors import CodedError
from imsdk_server.routing import DownstreamUnavailable, InvalidMessage, MessageStoreError, SchemaMismatch
from imsdk_server.routing._core import _Reject

TREE: list[tuple[type[CodedError], type[Exception], ErrorCode]] = [
    (MessageStoreError, CodedError, ErrorCode.INTERNAL),
    (SchemaMismatch, MessageStoreError, ErrorCode.INTERNAL),
    (InvalidMessage, MessageStoreError, ErrorCode.MALFORMED_BODY),
    (DownstreamUnavailable, CodedError, ErrorCode.BACKEND_NOT_READY),
    (_Reject, CodedError, ErrorCode.INTERNAL),
]


@pytest.mark.parametrize(("cls", "parent", "code"), TREE, ids=[c[0].__name__ for c in TREE])
def test_each_error_has_its_place_and_its_wire_code(
    cls: type[CodedError], parent: type[Exception], code: ErrorCode
) -> None:
    assert issubclass(cls, parent)
    assert issubclass(cls, CodedError)
    # the root's constructor and repr serve every error: no copies of them
    assert "__init__" not in vars(cls)
    assert "__repr__" not in vars(cls)
    exc = cls("what went wrong")
    assert exc.code is code
    assert exc.message == str(exc) == "what went wrong"
    assert repr(exc) == f"{cls.__name__}('what went wrong', code={code.name})"
    assert cls("why", ErrorCode.STORAGE_UNAVAILABLE).code is ErrorCode.STORAGE_UNAVAILABLE


def test_every_exported_error_is_in_the_tree() -> None:
    exported = {
        obj
        for name in routing.__all__
        if isinstance(obj := getattr(routing, name), type) and issubclass(obj, BaseException)
    }
    assert exported == {cls for cls, _, _ in TREE} - {_Reject}
