"""Input rules for every field the auth server accepts. Pure functions; violations raise typed errors naming
the field (never echoing its value)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from imsdk_server.auth._errors import FieldTooLarge, InvalidRequest

__all__ = [
    "MAX_AVATAR",
    "MAX_NICKNAME",
    "MAX_PASSWORD",
    "MAX_SIGNATURE",
    "MAX_UID",
    "MIN_PASSWORD",
    "check_device",
    "check_uid",
    "optional_text",
    "require_text",
]

MAX_UID = 64
MAX_NICKNAME = 64
MAX_SIGNATURE = 256
MAX_AVATAR = 512
MIN_PASSWORD = 8
MAX_PASSWORD = 256
MAX_META = 64

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*\Z")


def _check_id(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{field} must be a string")
    if not value:
        raise InvalidRequest(f"{field} must not be empty")
    if len(value) > MAX_UID:
        raise FieldTooLarge(f"{field} is longer than {MAX_UID} characters")
    if not _ID.match(value):
        raise InvalidRequest(
            f"{field} may hold only letters, digits, '.', '_' and '-', starting with a letter or digit"
        )
    return value


def check_uid(value: object, field: str = "uid") -> str:
    """A uid: 1-64 of ``A-Z a-z 0-9 . _ -``, starting with a letter or digit."""
    return _check_id(value, field)


def check_device(value: object, field: str = "device") -> str:
    """A device id: the same alphabet and length as a uid."""
    return _check_id(value, field)


def _check_text(value: object, field: str, *, min_len: int, max_len: int, ascii_only: bool) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{field} must be a string")
    if len(value) > max_len:
        raise FieldTooLarge(f"{field} is longer than {max_len} characters")
    if len(value) < min_len:
        raise InvalidRequest(f"{field} must have at least {min_len} characters")
    if ascii_only and not _PRINTABLE_ASCII.match(value):
        raise InvalidRequest(f"{field} must be printable ASCII")
    if _CONTROL.search(value):
        raise InvalidRequest(f"{field} must not contain control characters")
    return value


_TEXT_RULES: dict[str, tuple[int, int, bool]] = {
    "password": (MIN_PASSWORD, MAX_PASSWORD, False),
    "nickname": (1, MAX_NICKNAME, False),
    "signature": (0, MAX_SIGNATURE, False),
    "avatar": (0, MAX_AVATAR, True),
    "platform": (0, MAX_META, False),
    "client_version": (0, MAX_META, False),
    "region": (0, MAX_META, False),
    "isp": (0, MAX_META, False),
}


def require_text(body: Mapping[str, Any], field: str) -> str:
    """A required text field checked against its rule."""
    if field not in body:
        raise InvalidRequest(f"{field} is required")
    min_len, max_len, ascii_only = _TEXT_RULES[field]
    if field == "password":
        # Control characters are allowed in passwords: they are hashed, never shown.
        if not isinstance(body[field], str):
            raise InvalidRequest("password must be a string")
        if "\x00" in body[field]:
            raise InvalidRequest("password must not contain NUL")
        value: str = body[field]
        if len(value) > max_len:
            raise FieldTooLarge(f"password is longer than {max_len} characters")
        if len(value) < min_len:
            raise InvalidRequest(f"password must have at least {min_len} characters")
        return value
    return _check_text(body[field], field, min_len=min_len, max_len=max_len, ascii_only=ascii_only)


def optional_text(body: Mapping[str, Any], field: str, default: str | None = None) -> str | None:
    """An optional text field: ``default`` when absent or null, else checked against its rule."""
    value = body.get(field)
    if value is None:
        return default
    min_len, max_len, ascii_only = _TEXT_RULES[field]
    return _check_text(value, field, min_len=min_len, max_len=max_len, ascii_only=ascii_only)
