"""The code tables, the (biz, func) registry and the error tree."""

from __future__ import annotations

from enum import IntEnum

import pytest

from imsdk_proto import codes, errors, messages
from imsdk_proto.codes import Biz, ErrorCode, Flags, VoipFunc


def test_every_business_has_a_function_enum_and_every_function_is_registered() -> None:
    registered = codes.registered_codes()
    for biz in Biz:
        func_enum = codes.func_enum(biz)
        assert func_enum is not None, biz
        for func in func_enum:
            assert (biz, func) in registered, (biz.name, func.name)
    assert codes.func_enum(250) is None


def test_registry_maps_both_ways() -> None:
    for (biz, func), cls in codes.registered_codes().items():
        assert codes.message_type(biz, func) is cls
        if cls is not None:
            assert codes.codes_of(cls) == (biz, func)
            assert codes.codes_of(cls()) == (biz, func)
            assert codes.has_body(biz, func)
        else:
            assert not codes.has_body(biz, func)


def test_call_req_ack_carries_no_body() -> None:
    assert codes.message_type(Biz.VOIP, VoipFunc.CALL_REQ_ACK) is None


def test_unknown_codes_raise_typed_errors() -> None:
    with pytest.raises(errors.UnknownMessageCode) as info:
        codes.message_type(Biz.VOIP, 99)
    assert info.value.code is ErrorCode.UNKNOWN_CODE
    with pytest.raises(errors.UnknownMessageCode):
        codes.codes_of(messages.MediaRef)  # a nested type, not a body


def test_register_refuses_conflicts() -> None:
    with pytest.raises(ValueError, match="already registered"):
        codes.register(Biz.CHAT, 1, messages.MediaRef)
    with pytest.raises(ValueError, match="already has code"):
        codes.register(200, 1, messages.ChatText)
    with pytest.raises(ValueError, match="codes must be"):
        codes.register(0, 1, None)


def test_error_codes_are_unique_documented_and_grouped() -> None:
    values = [code.value for code in ErrorCode]
    assert len(values) == len(set(values))
    categories = {code.category for code in ErrorCode}
    assert categories == {
        "ok", "protocol", "auth", "session", "routing", "storage", "limits", "business", "internal"
    }  # fmt: skip
    for code in ErrorCode:
        assert code.doc.endswith("."), code.name
        assert code.value < 16384  # two bytes at most as a varint
    assert ErrorCode.FORGED_SENDER.category == "routing"
    assert ErrorCode.from_wire(401) is ErrorCode.BACKEND_NOT_READY
    assert ErrorCode.from_wire(12345) is ErrorCode.INTERNAL


@pytest.mark.parametrize(
    ("exc_type", "code"),
    [
        (errors.BadPreamble, ErrorCode.BAD_PREAMBLE),
        (errors.UnsupportedVersion, ErrorCode.UNSUPPORTED_VERSION),
        (errors.UnknownCodec, ErrorCode.UNKNOWN_CODEC),
        (errors.FrameTooLarge, ErrorCode.FRAME_TOO_LARGE),
        (errors.MalformedHeader, ErrorCode.MALFORMED_HEADER),
        (errors.MalformedBody, ErrorCode.MALFORMED_BODY),
        (errors.UnknownMessageCode, ErrorCode.UNKNOWN_CODE),
        (errors.CodecChanged, ErrorCode.CODEC_CHANGED),
    ],
)
def test_each_error_carries_its_code(exc_type: type[errors.ProtocolError], code: ErrorCode) -> None:
    assert exc_type.code is code
    exc = exc_type("boom")
    assert exc.code is code
    assert isinstance(exc, errors.ProtocolError)
    assert str(exc) == "boom"
    assert code.name in repr(exc)
    assert exc_type("x", ErrorCode.INTERNAL).code is ErrorCode.INTERNAL


def test_no_error_name_shadows_a_builtin() -> None:
    import builtins

    for name in errors.__all__:
        assert not hasattr(builtins, name), name


def test_enums_are_int_enums_and_flags_combine() -> None:
    for biz in Biz:
        enum = codes.func_enum(biz)
        assert enum is not None
        assert issubclass(enum, IntEnum)
    flags = Flags.ACK_WANTED | Flags.NO_STORE
    assert int(flags) == 0x09
    assert Flags(0x09) == flags


def test_coded_error_is_the_root_of_the_codec_tree() -> None:
    assert issubclass(errors.ProtocolError, errors.CodedError)
    exc = errors.CodedError("text")
    assert (exc.code, exc.message, repr(exc)) == (
        ErrorCode.INTERNAL,
        "text",
        "CodedError('text', code=INTERNAL)",
    )
    assert errors.CodedError("x", code=ErrorCode.NOT_FOUND).code is ErrorCode.NOT_FOUND
    assert errors.MalformedBody("bad").message == "bad"
