"""The notification store's records, limits and errors: plain data, importable by the sans-IO core."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from imsdk_proto.codes import ErrorCode
from imsdk_proto.errors import CodedError

__all__ = [
    "MAX_MERGE_KEY",
    "MAX_NOTIFY_ID",
    "MAX_PAYLOAD",
    "MAX_TYPE",
    "MAX_UID",
    "InvalidNotification",
    "NotificationStoreError",
    "SchemaMismatch",
    "StoredNotification",
    "UpsertResult",
    "check_notification",
]

MAX_UID = 128
MAX_TYPE = 64
MAX_MERGE_KEY = 128
#: Versions are stored as signed 64-bit integers by both engines, so ids stay below 2**63.
MAX_NOTIFY_ID = (1 << 63) - 1
MAX_PAYLOAD = 64 * 1024


class NotificationStoreError(CodedError):
    """Base of the store's own errors; :attr:`code` is the wire error code it maps to."""


class SchemaMismatch(NotificationStoreError):
    """The database's schema version is newer than the one this code writes; refuse to touch it."""


class InvalidNotification(NotificationStoreError):
    """A record breaks the store's limits (an empty or overlong name, an id out of range)."""

    code = ErrorCode.MALFORMED_BODY


class UpsertResult(Enum):
    """What :meth:`NotificationStore.upsert` did."""

    STORED = "stored"
    """Inserted, or replaced an older version (which makes the row pending again)."""
    DUPLICATE = "duplicate"
    """The row already holds this very version (pending or acknowledged): nothing changed."""
    SUPERSEDED = "superseded"
    """The row holds a newer version: nothing changed."""


@dataclass(frozen=True, slots=True)
class StoredNotification:
    """One stored notification: the latest of its ``(uid, type, merge_key)``."""

    uid: str
    type: str
    merge_key: str
    notify_id: int
    """The version: 1..2**63-1; a row is only ever replaced by a higher one."""
    payload: bytes
    created_ms: int
    acked_ms: int = 0
    """0 while pending; the ack time (a tombstone, payload empty) once a device acknowledged it."""

    @property
    def pending(self) -> bool:
        return self.acked_ms == 0


def check_notification(n: StoredNotification) -> None:
    """Raise :class:`InvalidNotification` if ``n`` cannot be stored."""
    if not 0 < n.notify_id <= MAX_NOTIFY_ID:
        raise InvalidNotification(f"notify_id {n.notify_id} is not in 1..2**63-1")
    for name, value, low, high in (
        ("uid", n.uid, 1, MAX_UID),
        ("type", n.type, 1, MAX_TYPE),
        ("merge_key", n.merge_key, 0, MAX_MERGE_KEY),
    ):
        if not low <= len(value) <= high:
            raise InvalidNotification(f"{name} must be {low}..{high} characters")
    if len(n.payload) > MAX_PAYLOAD:
        raise InvalidNotification(f"payload over {MAX_PAYLOAD} bytes")
    if n.acked_ms != 0:
        raise InvalidNotification("a new notification cannot be acknowledged already")
