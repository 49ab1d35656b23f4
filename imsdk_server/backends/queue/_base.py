"""The queue interface: topics, consumer groups, deliveries, acknowledgements, errors.

Every implementation (embedded, Redis Streams, or a third party's) provides :class:`Queue` and must pass
:mod:`imsdk_server.backends.queue.conformance`. Semantics are described in docs/queue.md.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Protocol, Self, runtime_checkable

from imsdk_proto.codes import ErrorCode
from imsdk_proto.errors import CodedError

__all__ = [
    "DEFAULT_MAX_PAYLOAD",
    "ConsumerStream",
    "Delivery",
    "GroupStart",
    "InvalidQueueArgument",
    "Queue",
    "QueueBackendError",
    "QueueClosed",
    "QueueError",
    "QueueUnavailable",
    "validate_consume_args",
    "validate_queue_name",
]

#: Largest payload accepted by default (online/offline events and load reports are far smaller).
DEFAULT_MAX_PAYLOAD = 1024 * 1024

#: Where a new consumer group starts: at the oldest retained message or after the newest.
GroupStart = Literal["earliest", "latest"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class QueueError(CodedError):
    """Base of every error a queue raises; foreign (Redis, network) errors are mapped to these.

    :attr:`code` is the wire error code it maps to.
    """


class QueueUnavailable(QueueError):
    """The backing store cannot be reached now (down, refused, timed out); retry later."""

    code = ErrorCode.STORAGE_UNAVAILABLE


class QueueClosed(QueueError):
    """This queue client (or consumer) was closed (its server is stopping)."""

    code = ErrorCode.SERVER_SHUTTING_DOWN


class QueueBackendError(QueueError):
    """The backing store rejected a command; the message says why."""


class InvalidQueueArgument(QueueError, ValueError):
    """A bad topic, group or consumer name, batch size, or a payload that is not bytes or too large."""

    code = ErrorCode.MALFORMED_BODY


def validate_queue_name(kind: str, value: str) -> str:
    """Check a topic, group or consumer name: a letter or digit, then up to 127 of ``[A-Za-z0-9._-]``."""
    if not isinstance(value, str) or _NAME.fullmatch(value) is None:
        raise InvalidQueueArgument(
            f"bad {kind} {value!r}: use a letter or digit, then up to 127 letters, digits, '.', '_' or '-'"
        )
    return value


def validate_consume_args(topic: str, group: str, consumer: str, batch: int, start: str) -> None:
    validate_queue_name("topic", topic)
    validate_queue_name("group", group)
    validate_queue_name("consumer", consumer)
    if not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= 10_000:
        raise InvalidQueueArgument(f"batch must be 1 … 10000, not {batch!r}")
    if start not in ("earliest", "latest"):
        raise InvalidQueueArgument(f"start must be 'earliest' or 'latest', not {start!r}")


@dataclass(frozen=True)
class Delivery:
    """One message handed to one consumer. Ack it with ``queue.ack(d.topic, d.group, d.id)``."""

    #: The message id (opaque; ids of one topic sort in publish order).
    id: str
    payload: bytes
    #: 1 on first delivery, one more each time the message is reclaimed from a consumer that did not ack.
    attempt: int
    topic: str
    group: str


class ConsumerStream(Protocol):
    """What :meth:`Queue.consume` returns: ``async with queue.consume(...) as s: async for d in s: ...``."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def __aiter__(self) -> AsyncIterator[Delivery]: ...

    async def __anext__(self) -> Delivery: ...

    async def aclose(self) -> None:
        """Stop consuming; deliveries not yet acked stay pending and will be reclaimed."""
        ...


@runtime_checkable
class Queue(Protocol):
    """Topics with consumer groups, acknowledged at-least-once delivery, reclaim of dead consumers' work."""

    async def publish(self, topic: str, payload: bytes) -> str:
        """Append ``payload`` to ``topic``; returns the message id."""
        ...

    def consume(
        self, topic: str, group: str, consumer: str, *, batch: int = 64, start: GroupStart = "earliest"
    ) -> ConsumerStream:
        """Deliveries of ``topic`` for ``consumer`` of ``group``, reading at most ``batch`` at a time.

        Creates the group when it does not exist yet, starting at ``start``. Entries of the group left
        unacked for longer than the queue's ``claim_idle`` are reclaimed and delivered again first.
        """
        ...

    async def ack(self, topic: str, group: str, message_id: str) -> bool:
        """Mark a delivery done; ``False`` when it was not pending (already acked, or unknown)."""
        ...

    async def pending(self, topic: str, group: str) -> int:
        """How many deliveries of ``group`` are unacknowledged (0 for an unknown group)."""
        ...

    async def aclose(self) -> None:
        """End every consumer stream and release connections. Idempotent."""
        ...
