"""The client SDK's error tree. Every error that comes from a server answer carries its
:class:`~imsdk_proto.codes.ErrorCode`; local failures carry ``None`` or the code that fits best.

::

    IMClientError                 .code: ErrorCode | None
    ├── TransportError            the network failed (connect, read, timeout); retry later
    │   └── ConnectTimeout        the client did not get a working session in time
    ├── BadResponse               the peer answered something that is not our protocol
    ├── NotLoggedIn               a call needs a token and there is none (log in first)
    ├── InvalidContent            content the client refuses to send (bad location, empty text)
    ├── ClientClosed              closed (by the app, or for good by the server) before an answer
    ├── SendError                 the server refused a chat message for good; .msg_id
    │   ├── ReceiverOffline       RECEIVER_OFFLINE (an instant message to a user with no device online)
    │   ├── UnknownReceiver       UNKNOWN_RECEIVER
    │   └── MessageRejected       MALFORMED_BODY, PAYLOAD_TOO_LARGE, FORBIDDEN and every other final refusal
    └── ServerError               the server refused; .status (HTTP) and .code from its error body
        ├── InvalidCredentials    BAD_CREDENTIALS
        ├── TokenRejected         TOKEN_INVALID, TOKEN_EXPIRED, TOKEN_REVOKED
        ├── RateLimited           AUTH_THROTTLED, RATE_LIMITED; .retry_after seconds
        ├── RequestRejected       MALFORMED_BODY, PAYLOAD_TOO_LARGE (the request was wrong)
        ├── Conflict              DUPLICATE, TOO_MANY_SUBSCRIPTIONS
        ├── NotFound              NOT_FOUND
        └── ServiceUnavailable    STORAGE_UNAVAILABLE and other server-side failures

No name here shadows a built-in exception.
"""

from __future__ import annotations

from typing import Any

from imsdk_proto.codes import ErrorCode

__all__ = [
    "BadResponse",
    "ClientClosed",
    "Conflict",
    "ConnectTimeout",
    "IMClientError",
    "InvalidContent",
    "InvalidCredentials",
    "MessageRejected",
    "NotFound",
    "NotLoggedIn",
    "RateLimited",
    "ReceiverOffline",
    "RequestRejected",
    "SendError",
    "ServerError",
    "ServiceUnavailable",
    "TokenRejected",
    "TransportError",
    "UnknownReceiver",
    "error_from_response",
    "send_error",
]


class IMClientError(Exception):
    """Base of every client SDK error; :attr:`code` is the wire error code when one applies."""

    code: ErrorCode | None = None

    def __init__(self, message: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0])

    def __repr__(self) -> str:
        code = self.code.name if self.code is not None else None
        return f"{type(self).__name__}({self.message!r}, code={code})"


class TransportError(IMClientError):
    """The request did not get an answer: connection refused or reset, DNS, timeout."""


class BadResponse(IMClientError):
    """The answer is not what the protocol says (not JSON, missing fields, unexpected status)."""


class NotLoggedIn(IMClientError):
    """The call needs a token; log in first."""

    code = ErrorCode.TOKEN_INVALID


class ServerError(IMClientError):
    """The server answered with an error body; :attr:`status` is the HTTP status."""

    code: ErrorCode | None = ErrorCode.INTERNAL

    def __init__(self, message: str, *, status: int, code: ErrorCode | None = None) -> None:
        super().__init__(message, code=code)
        self.status = status


class InvalidCredentials(ServerError):
    """Unknown uid or wrong password (the server does not say which)."""

    code = ErrorCode.BAD_CREDENTIALS


class TokenRejected(ServerError):
    """The token was refused (expired, revoked, forged...); log in again."""

    code = ErrorCode.TOKEN_INVALID


class RateLimited(ServerError):
    """Too many attempts; wait :attr:`retry_after` seconds."""

    code = ErrorCode.RATE_LIMITED

    def __init__(
        self, message: str, *, status: int, code: ErrorCode | None = None, retry_after: int = 1
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after


class RequestRejected(ServerError):
    """The request was malformed or too large."""

    code = ErrorCode.MALFORMED_BODY


class Conflict(ServerError):
    """The request conflicts with existing state (uid taken, list full)."""

    code = ErrorCode.DUPLICATE


class NotFound(ServerError):
    """The named user or record does not exist."""

    code = ErrorCode.NOT_FOUND


class ServiceUnavailable(ServerError):
    """The server failed or its storage is down; retry later."""

    code = ErrorCode.STORAGE_UNAVAILABLE


_BY_CODE: dict[ErrorCode, type[ServerError]] = {
    ErrorCode.BAD_CREDENTIALS: InvalidCredentials,
    ErrorCode.TOKEN_INVALID: TokenRejected,
    ErrorCode.TOKEN_EXPIRED: TokenRejected,
    ErrorCode.TOKEN_REVOKED: TokenRejected,
    ErrorCode.AUTH_THROTTLED: RateLimited,
    ErrorCode.RATE_LIMITED: RateLimited,
    ErrorCode.MALFORMED_BODY: RequestRejected,
    ErrorCode.PAYLOAD_TOO_LARGE: RequestRejected,
    ErrorCode.DUPLICATE: Conflict,
    ErrorCode.TOO_MANY_SUBSCRIPTIONS: Conflict,
    ErrorCode.NOT_FOUND: NotFound,
    ErrorCode.STORAGE_UNAVAILABLE: ServiceUnavailable,
    ErrorCode.INTERNAL: ServiceUnavailable,
}

_BY_STATUS: dict[int, type[ServerError]] = {
    400: RequestRejected,
    401: TokenRejected,
    404: NotFound,
    409: Conflict,
    413: RequestRejected,
    429: RateLimited,
}


def error_from_response(status: int, body: Any, retry_after: str | None = None) -> ServerError:
    """The typed error for an HTTP error answer (``{"error": {"code": …, "message": …}}``)."""
    code: ErrorCode | None = None
    message = f"HTTP {status}"
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        if isinstance(err.get("code"), int):
            code = ErrorCode.from_wire(err["code"])
        if isinstance(err.get("message"), str):
            message = err["message"]
    cls = _BY_CODE.get(code) if code is not None else None
    if cls is None:
        cls = _BY_STATUS.get(status, ServiceUnavailable)
    if cls is RateLimited:
        wait = int(retry_after) if retry_after and retry_after.isdigit() else 1
        return RateLimited(message, status=status, code=code, retry_after=wait)
    return cls(message, status=status, code=code)


class ConnectTimeout(TransportError):
    """The client did not reach a working session (handshake done, caught up) within its time limit."""


class InvalidContent(IMClientError):
    """The client refuses to send this content (a location off the globe, an empty text, a bad duration)."""

    code = ErrorCode.MALFORMED_BODY


class ClientClosed(IMClientError):
    """The client was closed before the answer came: by the app, or for good by the server (this device
    logged in elsewhere, the credentials were refused). :attr:`code` says which when the server ended it."""


class SendError(IMClientError):
    """The server refused a chat message for good; :attr:`msg_id` is the client message id it had."""

    def __init__(self, message: str, *, msg_id: int, code: ErrorCode | None = None) -> None:
        super().__init__(message, code=code)
        self.msg_id = msg_id


class ReceiverOffline(SendError):
    """An instant message found no device of the receiver online, so it was dropped (not stored)."""

    code = ErrorCode.RECEIVER_OFFLINE


class UnknownReceiver(SendError):
    """The receiver does not exist."""

    code = ErrorCode.UNKNOWN_RECEIVER


class MessageRejected(SendError):
    """The message was refused (malformed, too large, forbidden…); :attr:`code` says why."""

    code = ErrorCode.MALFORMED_BODY


_SEND_BY_CODE: dict[ErrorCode, type[SendError]] = {
    ErrorCode.RECEIVER_OFFLINE: ReceiverOffline,
    ErrorCode.UNKNOWN_RECEIVER: UnknownReceiver,
}


def send_error(msg_id: int, code: ErrorCode, message: str = "") -> SendError:
    """The typed error for a final refusal of message ``msg_id`` with ``code``."""
    cls = _SEND_BY_CODE.get(code, MessageRejected)
    text = f"message {msg_id:#x} refused: {code.name}" + (f" ({message})" if message else "")
    return cls(text, msg_id=msg_id, code=code)
