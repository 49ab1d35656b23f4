"""The location server's error tree; each error carries the wire :class:`~imsdk_proto.codes.ErrorCode`.

::

    LocationError                   .code: ErrorCode
    ├── InvalidPresenceEvent        MALFORMED_BODY       bad event or argument (also ValueError)
    ├── PresenceStateError          INTERNAL             a (state, input) pair absent from a state table
    ├── SubscriberOverflow          SLOW_CONSUMER        a subscriber read too slowly; its subscription ended
    └── PresenceStoreUnavailable    STORAGE_UNAVAILABLE  the presence store cannot be reached now

redis-py's exceptions (which shadow the built-in ``ConnectionError`` and ``TimeoutError``) are mapped to
:class:`PresenceStoreUnavailable` at the store boundary and never escape. No name here shadows a built-in.
"""

from __future__ import annotations

from imsdk_proto.codes import ErrorCode
from imsdk_proto.errors import CodedError

__all__ = [
    "InvalidPresenceEvent",
    "LocationError",
    "PresenceStateError",
    "PresenceStoreUnavailable",
    "SubscriberOverflow",
]


class LocationError(CodedError):
    """Base of every location-server error; :attr:`code` is the wire error code it maps to."""


class InvalidPresenceEvent(LocationError, ValueError):
    """An event, query or subscription that cannot be presence: empty uid, unknown network, bad payload."""

    code = ErrorCode.MALFORMED_BODY


class PresenceStateError(LocationError):
    """A ``(state, input)`` pair that the state tables do not allow: a bug in the core, never bad input."""

    code = ErrorCode.INTERNAL


class SubscriberOverflow(LocationError):
    """The subscriber read its notices too slowly and its subscription ended; subscribe again and query."""

    code = ErrorCode.SLOW_CONSUMER


class PresenceStoreUnavailable(LocationError):
    """The presence store (Redis) cannot be reached or failed; the core keeps the truth, so retry later."""

    code = ErrorCode.STORAGE_UNAVAILABLE
