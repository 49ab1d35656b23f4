"""The auth server's error tree. Every error carries its wire :class:`~imsdk_proto.codes.ErrorCode` and the
HTTP status the API answers with; the message is safe to show to the caller (it never echoes the input).

::

    AuthError                     .code, .status
    ├── InvalidRequest            MALFORMED_BODY, 400 (bad JSON, wrong types, bad uid...)
    │   └── FieldTooLarge         PAYLOAD_TOO_LARGE, 400
    ├── BodyTooLarge              PAYLOAD_TOO_LARGE, 413
    ├── UserExists                DUPLICATE, 409
    ├── UserNotFound              NOT_FOUND, 404
    ├── TooManyFriends            TOO_MANY_SUBSCRIPTIONS, 409
    ├── BadCredentials            BAD_CREDENTIALS, 401 (unknown uid and wrong password alike)
    ├── TokenInvalid              TOKEN_INVALID, 401; .fault says why, for logs only
    ├── Throttled                 AUTH_THROTTLED / RATE_LIMITED, 429; .retry_after
    └── ServiceUnavailable        STORAGE_UNAVAILABLE, 503
"""

from __future__ import annotations

from enum import Enum

from imsdk_proto.codes import ErrorCode
from imsdk_proto.errors import CodedError

__all__ = [
    "AuthError",
    "BadCredentials",
    "BodyTooLarge",
    "FieldTooLarge",
    "InvalidRequest",
    "ServiceUnavailable",
    "Throttled",
    "TokenFault",
    "TokenInvalid",
    "TooManyFriends",
    "UserExists",
    "UserNotFound",
]


class AuthError(CodedError):
    """Base of every auth error; :attr:`code` is the wire code, :attr:`status` the HTTP status,
    :attr:`message` the text shown to the caller."""

    status: int = 500


class InvalidRequest(AuthError):
    """The request is malformed: not JSON, a field missing, of the wrong type or not allowed."""

    code = ErrorCode.MALFORMED_BODY
    status = 400


class FieldTooLarge(InvalidRequest):
    """One field is longer than allowed."""

    code = ErrorCode.PAYLOAD_TOO_LARGE


class BodyTooLarge(AuthError):
    """The request body exceeds the server's limit; it was not read past the limit."""

    code = ErrorCode.PAYLOAD_TOO_LARGE
    status = 413


class UserExists(AuthError):
    """Registration of a uid that is taken."""

    code = ErrorCode.DUPLICATE
    status = 409


class UserNotFound(AuthError):
    """The named user does not exist (friends and profiles only; logins say :class:`BadCredentials`)."""

    code = ErrorCode.NOT_FOUND
    status = 404


class TooManyFriends(AuthError):
    """The friend list is full."""

    code = ErrorCode.TOO_MANY_SUBSCRIPTIONS
    status = 409


class BadCredentials(AuthError):
    """Unknown uid or wrong password: one answer for both."""

    code = ErrorCode.BAD_CREDENTIALS
    status = 401


class TokenFault(Enum):
    """Why a token was refused. For logs and metrics only: callers always see the same answer."""

    MALFORMED = "malformed"
    UNKNOWN_KEY = "unknown_key"
    RETIRED_KEY = "retired_key"
    BAD_TAG = "bad_tag"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    REVOKED = "revoked"
    WRONG_SUBJECT = "wrong_subject"
    UNKNOWN_TOKEN = "unknown_token"


class TokenInvalid(AuthError):
    """A token was refused. :attr:`fault` tells why; :attr:`message` never does."""

    code = ErrorCode.TOKEN_INVALID
    status = 401

    def __init__(self, fault: TokenFault) -> None:
        super().__init__("invalid token")
        self.fault = fault

    def __repr__(self) -> str:
        return f"TokenInvalid(fault={self.fault.name})"


class Throttled(AuthError):
    """Too many attempts; :attr:`retry_after` is the number of whole seconds to wait."""

    code = ErrorCode.AUTH_THROTTLED
    status = 429

    def __init__(self, retry_after: int, *, code: ErrorCode | None = None) -> None:
        super().__init__("too many attempts, retry later", code=code)
        self.retry_after = max(1, int(retry_after))


class ServiceUnavailable(AuthError):
    """A store the operation needs (database or cache) is unavailable."""

    code = ErrorCode.STORAGE_UNAVAILABLE
    status = 503
