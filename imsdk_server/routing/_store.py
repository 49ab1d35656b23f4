"""The message store interface, its records and its errors.

A :class:`MessageStore` keeps chat messages durably: per-conversation sequences that never go backwards and
leave no gaps among committed messages, idempotent appends keyed by ``(sender uid, sender device, client
message id)``, per-device cumulative delivery acks, and pulls by range or by "everything pending for this
device". :mod:`imsdk_server.routing.conformance` is the one suite every implementation passes.

Errors (grown from the suite's one root, :class:`~imsdk_proto.errors.CodedError`)::

    MessageStoreError             .code: ErrorCode (INTERNAL)
    ├── SchemaMismatch            the database holds a newer schema than this code knows (INTERNAL)
    └── InvalidMessage            a record breaks the store's limits (MALFORMED_BODY)

A database that is down raises :class:`~imsdk_server.backends.sql.StorageUnavailable`
(``STORAGE_UNAVAILABLE``) from every method; nothing has been committed when it does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from imsdk_proto.codes import ErrorCode
from imsdk_proto.errors import CodedError

__all__ = [
    "AckPosition",
    "AppendResult",
    "InvalidMessage",
    "MessageStore",
    "MessageStoreError",
    "NewMessage",
    "PendingCursor",
    "SchemaMismatch",
    "StoredRecord",
    "conversation_id",
    "conversation_members",
]


class MessageStoreError(CodedError):
    """Base of the store's own errors; :attr:`code` is the wire error code it maps to."""


class SchemaMismatch(MessageStoreError):
    """The database's schema version is newer than the one this code writes; refuse to touch it."""


class InvalidMessage(MessageStoreError):
    """A message breaks the store's limits (an id out of range, an overlong uid or conversation id)."""

    code = ErrorCode.MALFORMED_BODY


_P2P = "p2p:"


def conversation_id(uid_a: str, uid_b: str) -> str:
    """The canonical id of the 1:1 conversation between two users; the same whichever side asks.

    ``p2p:<len(smaller)>:<smaller>:<larger>``: the length prefix keeps it unambiguous for any characters.
    """
    lo, hi = (uid_a, uid_b) if uid_a <= uid_b else (uid_b, uid_a)
    return f"{_P2P}{len(lo)}:{lo}:{hi}"


def conversation_members(conversation: str) -> tuple[str, str] | None:
    """The two uids of a 1:1 conversation id, or ``None`` if ``conversation`` is not one."""
    if not conversation.startswith(_P2P):
        return None
    rest = conversation[len(_P2P) :]
    length, sep, pair = rest.partition(":")
    if not sep or not length.isdigit() or length != str(int(length)):
        return None
    n = int(length)
    if len(pair) < n + 1 or pair[n] != ":":
        return None
    lo, hi = pair[:n], pair[n + 1 :]
    if lo > hi or conversation_id(lo, hi) != conversation:
        return None
    return lo, hi


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to append. ``body`` is the raw v2 body the sender sent (fields 13-15 unset)."""

    conversation: str
    sender_uid: str
    sender_device: str
    client_msg_id: int
    """The sender's 64-bit message id (``header.msg_id``), kept across resends."""
    receiver_uid: str
    content_type: int
    """The chat function code (:class:`~imsdk_proto.codes.ChatFunc`) saying what ``body`` holds."""
    body: bytes
    created_ms: int
    """The router's clock when the message arrived, in Unix milliseconds."""

    @property
    def key(self) -> tuple[str, str, int]:
        """The idempotency key: a resend of the same message has the same key."""
        return (self.sender_uid, self.sender_device, self.client_msg_id)


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where a message landed. For a resend (``duplicate``) these are the original message's values."""

    server_msg_id: int
    conv_seq: int
    created_ms: int
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A committed message as the store returns it."""

    server_msg_id: int
    conversation: str
    conv_seq: int
    sender_uid: str
    sender_device: str
    client_msg_id: int
    receiver_uid: str
    content_type: int
    body: bytes
    created_ms: int


AckPosition = tuple[str, str, str, int]
"""One device's cumulative ack: ``(uid, device, conversation, up_to_seq)``."""

PendingCursor = tuple[str, int]
"""Where a page of pending messages ended: ``(conversation, conv_seq)`` of its last message."""


@runtime_checkable
class MessageStore(Protocol):
    """Durable chat messages. Every method may raise ``StorageUnavailable``; then nothing was committed."""

    async def setup(self) -> None:
        """Create the schema if missing and check its version; call once at start-up."""
        ...

    async def append(self, messages: Sequence[NewMessage]) -> list[AppendResult]:
        """Commit ``messages`` in one transaction, in order; one result per message, in the same order.

        Sequences are allocated per conversation in list order. A message whose key was stored before (or
        appears earlier in the same list) is not stored again: its result is the original with
        ``duplicate=True``. Either every message of the call is committed or none is.
        """
        ...

    async def last_seq(self, conversation: str) -> int:
        """The highest committed sequence of ``conversation`` (0 when it has none)."""
        ...

    async def pull(self, conversation: str, from_seq: int, to_seq: int, limit: int) -> list[StoredRecord]:
        """Messages of ``conversation`` with ``from_seq <= conv_seq <= to_seq`` (``to_seq`` 0: no upper
        bound), in sequence order, at most ``limit``."""
        ...

    async def pending(
        self, uid: str, device: str, after: PendingCursor | None, limit: int
    ) -> list[StoredRecord]:
        """Messages to ``uid`` above the device's ack in each conversation, ordered by
        ``(conversation, conv_seq)``, starting after ``after``, at most ``limit``."""
        ...

    async def ack(self, uid: str, device: str, conversation: str, up_to_seq: int) -> int:
        """Record that ``device`` of ``uid`` has everything of ``conversation`` up to ``up_to_seq``.

        Cumulative: the stored ack only grows, and is clamped to the conversation's last sequence. Returns
        the ack now in force.
        """
        ...

    async def ack_many(self, acks: Sequence[AckPosition]) -> list[int]:
        """:meth:`ack` for many devices and conversations in one transaction; one result per entry, in order.

        Receivers ack often and together; folding their acks into one transaction costs one commit instead
        of one each. Entries for the same device and conversation count as the highest of them. Either
        every ack of the call is recorded or none is.
        """
        ...

    async def acked(self, uid: str, device: str, conversation: str) -> int:
        """The device's ack for ``conversation`` (0 when it never acked)."""
        ...

    async def aclose(self) -> None:
        """Release the database; the store is not used afterwards."""
        ...
