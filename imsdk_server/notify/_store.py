"""The notification store: the latest stored notification per ``(uid, type, merge_key)``, versioned.

:class:`NotificationStore` is the interface; :class:`SQLNotificationStore` implements it on SQLite (embedded)
and MySQL/MariaDB through :mod:`imsdk_server.backends.sql`. :mod:`imsdk_server.notify.conformance` is the
one suite every implementation passes.

The write is an upsert guarded by the version (the ``notify_id``): a row is replaced only by a *newer*
version, so a retry is a no-op (:attr:`UpsertResult.DUPLICATE`) and a late older write changes nothing
(:attr:`UpsertResult.SUPERSEDED`). Acknowledged rows keep their key and version as tombstones (payload
emptied, ``acked_ms`` set) until :meth:`NotificationStore.purge` removes them, so a stale write arriving
after the ack cannot bring an old notification back.

Errors::

    NotificationStoreError        .code: ErrorCode (INTERNAL)
    ├── SchemaMismatch            the database holds a newer schema than this code knows (INTERNAL)
    └── InvalidNotification       a record breaks the store's limits (MALFORMED_BODY)

A database that is down raises :class:`~imsdk_server.backends.sql.StorageUnavailable`
(``STORAGE_UNAVAILABLE``) from every method; nothing has been committed when it does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from imsdk_server.backends.sql import Dialect, SQLCursor, SQLDatabase, open_database, setup_schema
from imsdk_server.metrics import Metrics
from imsdk_server.notify._records import (
    MAX_MERGE_KEY,
    MAX_NOTIFY_ID,
    MAX_TYPE,
    MAX_UID,
    InvalidNotification,
    NotificationStoreError,
    SchemaMismatch,
    StoredNotification,
    UpsertResult,
    check_notification,
)

__all__ = [
    "MAX_MERGE_KEY",
    "MAX_NOTIFY_ID",
    "MAX_TYPE",
    "MAX_UID",
    "SCHEMA_VERSION",
    "InvalidNotification",
    "NotificationStore",
    "NotificationStoreError",
    "SQLNotificationStore",
    "SchemaMismatch",
    "StoredNotification",
    "UpsertResult",
    "check_notification",
    "open_notification_store",
]

#: The schema version this code creates and understands.
SCHEMA_VERSION = 1

_ID_CHUNK = 100


@runtime_checkable
class NotificationStore(Protocol):
    """Where offline notifications wait: one row per ``(uid, type, merge_key)``, the latest version wins."""

    async def setup(self) -> None:
        """Create the schema if needed (idempotent); raises :class:`SchemaMismatch` for a newer one."""
        ...

    async def upsert(self, notification: StoredNotification) -> UpsertResult:
        """Keep ``notification`` unless its key already holds the same or a newer version."""
        ...

    async def pending(self, uid: str, *, after_id: int = 0, limit: int = 200) -> list[StoredNotification]:
        """``uid``'s pending (unacknowledged) notifications with ``notify_id > after_id``, by id."""
        ...

    async def ack(self, uid: str, notify_ids: Sequence[int], now_ms: int) -> int:
        """Turn ``uid``'s pending rows whose *current* version is one of ``notify_ids`` into tombstones;
        returns how many changed. Unknown, stale and already acknowledged ids are ignored."""
        ...

    async def get(self, uid: str, type: str, merge_key: str = "") -> StoredNotification | None:
        """The row of one key, pending or tombstone, or ``None``."""
        ...

    async def purge(self, acked_before_ms: int) -> int:
        """Delete tombstones acknowledged before ``acked_before_ms``; returns how many."""
        ...

    async def aclose(self) -> None:
        """Release the connections."""
        ...


# -- SQL -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Statements:
    ddl: tuple[str, ...]
    upsert: str
    read_locked: str
    """Read a key's version as committed now (MySQL's plain reads see the transaction's snapshot)."""


_COLUMNS = "uid, type, merge_key, version, payload, created_ms, acked_ms"

_SQLITE = _Statements(
    ddl=(
        "CREATE TABLE IF NOT EXISTS notify_schema_version (id INTEGER PRIMARY KEY, version INTEGER NOT NULL)",
        "CREATE TABLE IF NOT EXISTS notify_latest (uid TEXT NOT NULL, type TEXT NOT NULL,"
        " merge_key TEXT NOT NULL, version INTEGER NOT NULL, payload BLOB NOT NULL,"
        " created_ms INTEGER NOT NULL, acked_ms INTEGER NOT NULL DEFAULT 0,"
        " PRIMARY KEY (uid, type, merge_key))",
        "CREATE INDEX IF NOT EXISTS notify_latest_pending ON notify_latest (uid, acked_ms, version)",
        "CREATE INDEX IF NOT EXISTS notify_latest_acked ON notify_latest (acked_ms)",
    ),
    upsert=f"INSERT INTO notify_latest ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, 0)"
    " ON CONFLICT (uid, type, merge_key) DO UPDATE SET version = excluded.version,"
    " payload = excluded.payload, created_ms = excluded.created_ms, acked_ms = 0"
    " WHERE excluded.version > notify_latest.version",
    read_locked="SELECT version FROM notify_latest WHERE uid = ? AND type = ? AND merge_key = ?",
)

_MYSQL_TABLE = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
_MYSQL = _Statements(
    ddl=(
        "CREATE TABLE IF NOT EXISTS notify_schema_version (id INT NOT NULL PRIMARY KEY,"
        " version INT NOT NULL)" + _MYSQL_TABLE,
        "CREATE TABLE IF NOT EXISTS notify_latest (uid VARCHAR(128) NOT NULL, type VARCHAR(64) NOT NULL,"
        " merge_key VARCHAR(128) NOT NULL, version BIGINT NOT NULL, payload MEDIUMBLOB NOT NULL,"
        " created_ms BIGINT NOT NULL, acked_ms BIGINT NOT NULL DEFAULT 0,"
        " PRIMARY KEY (uid, type, merge_key), KEY ix_pending (uid, acked_ms, version),"
        " KEY ix_acked (acked_ms))" + _MYSQL_TABLE,
    ),
    # MySQL evaluates the assignments left to right, so ``version`` is compared before it is changed.
    upsert=f"INSERT INTO notify_latest ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, 0)"
    " ON DUPLICATE KEY UPDATE"
    " payload = IF(VALUES(version) > version, VALUES(payload), payload),"
    " created_ms = IF(VALUES(version) > version, VALUES(created_ms), created_ms),"
    " acked_ms = IF(VALUES(version) > version, 0, acked_ms),"
    " version = GREATEST(version, VALUES(version))",
    read_locked="SELECT version FROM notify_latest WHERE uid = ? AND type = ? AND merge_key = ? FOR UPDATE",
)

_DIALECT_SQL = {Dialect.SQLITE: _SQLITE, Dialect.MYSQL: _MYSQL}


def _row(row: Sequence[object]) -> StoredNotification:
    uid, kind, merge_key, version, payload, created, acked = row
    return StoredNotification(
        uid=str(uid),
        type=str(kind),
        merge_key=str(merge_key),
        notify_id=int(version),  # type: ignore[call-overload]
        payload=bytes(payload),  # type: ignore[call-overload]
        created_ms=int(created),  # type: ignore[call-overload]
        acked_ms=int(acked),  # type: ignore[call-overload]
    )


class SQLNotificationStore:
    """A :class:`NotificationStore` on a :class:`~imsdk_server.backends.sql.SQLDatabase` (SQLite or MySQL).

    Use :func:`open_notification_store` to build one from a location (``":memory:"``, a SQLite path, or a
    ``mysql://`` DSN), then call :meth:`setup` once.
    """

    def __init__(self, db: SQLDatabase, *, metrics: Metrics | None = None) -> None:
        self._db = db
        self._sql = _DIALECT_SQL[db.dialect]
        m = (metrics or Metrics()).child("notify_store")
        self._m_upserts = {r: m.counter("upserts_total", result=r.value) for r in UpsertResult}
        self._m_acked = m.counter("acked_total")
        self._m_purged = m.counter("purged_total")

    @property
    def database(self) -> SQLDatabase:
        """The database underneath (for tests and operators)."""
        return self._db

    async def setup(self) -> None:
        await setup_schema(
            self._db,
            self._sql.ddl,
            version_table="notify_schema_version",
            version=SCHEMA_VERSION,
            too_new=SchemaMismatch,
        )

    async def upsert(self, notification: StoredNotification) -> UpsertResult:
        check_notification(notification)
        n = notification
        key = (n.uid, n.type, n.merge_key)

        def tx(cur: SQLCursor) -> UpsertResult:
            select = "SELECT version FROM notify_latest WHERE uid = ? AND type = ? AND merge_key = ?"
            before = cur.fetchone(select, key)
            cur.execute(self._sql.upsert, (*key, n.notify_id, n.payload, n.created_ms))
            prior = None if before is None else int(before[0])
            if prior == n.notify_id:
                return UpsertResult.DUPLICATE
            if prior is not None and prior > n.notify_id:
                return UpsertResult.SUPERSEDED
            after = cur.fetchone(self._sql.read_locked, key)
            if after is not None and int(after[0]) > n.notify_id:
                return UpsertResult.SUPERSEDED  # a concurrent newer write committed in between
            return UpsertResult.STORED

        result = await self._db.transaction(tx, write=True)
        self._m_upserts[result].inc()
        return result

    async def pending(self, uid: str, *, after_id: int = 0, limit: int = 200) -> list[StoredNotification]:
        if limit < 1:
            return []
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM notify_latest WHERE uid = ? AND acked_ms = 0 AND version > ?"
            " ORDER BY version LIMIT ?",
            (uid, max(0, min(after_id, MAX_NOTIFY_ID)), limit),
        )
        return [_row(r) for r in rows]

    async def ack(self, uid: str, notify_ids: Sequence[int], now_ms: int) -> int:
        ids = sorted({i for i in notify_ids if 0 < i <= MAX_NOTIFY_ID})
        if not ids:
            return 0
        stamp = max(1, now_ms)

        def tx(cur: SQLCursor) -> int:
            changed = 0
            for start in range(0, len(ids), _ID_CHUNK):
                chunk = ids[start : start + _ID_CHUNK]
                marks = ", ".join("?" * len(chunk))
                changed += cur.execute(
                    "UPDATE notify_latest SET acked_ms = ?, payload = ?"
                    f" WHERE uid = ? AND acked_ms = 0 AND version IN ({marks})",
                    (stamp, b"", uid, *chunk),
                )
            return changed

        changed = await self._db.transaction(tx)
        self._m_acked.inc(changed)
        return changed

    async def get(self, uid: str, type: str, merge_key: str = "") -> StoredNotification | None:
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM notify_latest WHERE uid = ? AND type = ? AND merge_key = ?",
            (uid, type, merge_key),
        )
        return None if row is None else _row(row)

    async def purge(self, acked_before_ms: int) -> int:
        purged = await self._db.execute(
            "DELETE FROM notify_latest WHERE acked_ms > 0 AND acked_ms < ?", (acked_before_ms,)
        )
        self._m_purged.inc(purged)
        return purged

    async def aclose(self) -> None:
        await self._db.aclose()


def open_notification_store(location: str, *, metrics: Metrics | None = None) -> SQLNotificationStore:
    """A store from a location: ``":memory:"``, a SQLite file path, or a ``mysql://`` DSN (not set up yet)."""
    return SQLNotificationStore(open_database(location), metrics=metrics)
