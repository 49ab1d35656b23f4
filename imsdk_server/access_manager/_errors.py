"""The access manager's error tree. Each error carries its wire error code and the HTTP status it answers.

::

    AccessManagerError            .code: ErrorCode, .http_status: int
    ├── TokenRejected             TOKEN_INVALID (or EXPIRED / REVOKED), 401
    ├── AdminKeyRejected          FORBIDDEN, 401
    ├── BadAccessRequest          PAYLOAD_TOO_LARGE (or another limit), 400
    ├── NoAccessPoints            NO_ACCESS_POINTS, 503
    └── BadLoadReport             MALFORMED_BODY (a report that cannot be used; counted and skipped)
"""

from __future__ import annotations

from imsdk_proto.codes import ErrorCode
from imsdk_proto.errors import CodedError

__all__ = [
    "AccessManagerError",
    "AdminKeyRejected",
    "BadAccessRequest",
    "BadLoadReport",
    "NoAccessPoints",
    "TokenRejected",
]


class AccessManagerError(CodedError):
    """Base of every access-manager error: :attr:`code` is the wire code, :attr:`http_status` the status."""

    http_status: int = 500


class TokenRejected(AccessManagerError):
    """The bearer token is missing, malformed, expired, revoked or not ours."""

    code = ErrorCode.TOKEN_INVALID
    http_status = 401


class AdminKeyRejected(AccessManagerError):
    """The ops view was asked for without the right admin key."""

    code = ErrorCode.FORBIDDEN
    http_status = 401


class BadAccessRequest(AccessManagerError):
    """A query parameter is out of bounds."""

    code = ErrorCode.PAYLOAD_TOO_LARGE
    http_status = 400


class NoAccessPoints(AccessManagerError):
    """No access server is registered and reporting right now."""

    code = ErrorCode.NO_ACCESS_POINTS
    http_status = 503


class BadLoadReport(AccessManagerError):
    """A load report that does not decode or describes no usable server; it is counted and skipped."""

    code = ErrorCode.MALFORMED_BODY
    http_status = 400
