"""The access server's error tree; each error carries its wire :class:`~imsdk_proto.codes.ErrorCode`.

::

    AccessError                   .code: ErrorCode
    ├── AuthenticationFailed      TOKEN_INVALID / TOKEN_EXPIRED / TOKEN_REVOKED / ...
    ├── AuthUnavailable           INTERNAL (the verifier could not answer; the client may retry)
    └── RoutingError
        ├── NoBackend             NO_BACKEND: nobody serves the frame's (biz, func)
        ├── BackendNotReady       BACKEND_NOT_READY: registered back-ends exist, none is ready
        └── BackendTimeout        BACKEND_TIMEOUT: the back-end did not take the frame in time

Errors of the token packages and of the links are mapped to these at the boundary (see
:mod:`imsdk_server.access._verify` and :mod:`imsdk_server.access._routing`).
"""

from __future__ import annotations

from imsdk_proto.codes import ErrorCode

__all__ = [
    "AccessError",
    "AuthUnavailable",
    "AuthenticationFailed",
    "BackendNotReady",
    "BackendTimeout",
    "NoBackend",
    "RoutingError",
]


class AccessError(Exception):
    """Base of the access server's errors; :attr:`code` is what the client is told."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.args[0]!r}, code={self.code.name})"


class AuthenticationFailed(AccessError):
    """The handshake's token was refused; the line closes with :attr:`code` (an auth-range code)."""

    code = ErrorCode.TOKEN_INVALID


class AuthUnavailable(AccessError):
    """The token could not be checked now (the auth server is unreachable); the client should retry."""

    code = ErrorCode.INTERNAL


class RoutingError(AccessError):
    """An upstream frame could not be handed to a back-end; the client gets an error frame, the line stays."""

    code = ErrorCode.NO_BACKEND


class NoBackend(RoutingError):
    """No back-end is registered for the frame's business (and function) code."""

    code = ErrorCode.NO_BACKEND


class BackendNotReady(RoutingError):
    """Back-ends are registered for the code, but none is ready (not-ready, down, or its send failed)."""

    code = ErrorCode.BACKEND_NOT_READY


class BackendTimeout(RoutingError):
    """A busy back-end did not take the frame within ``backend_send_timeout``; the frame was not sent."""

    code = ErrorCode.BACKEND_TIMEOUT
