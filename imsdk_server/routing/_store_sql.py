"""The message store on SQL: SQLite (embedded) and MySQL/MariaDB, over :mod:`imsdk_server.backends.sql`.

One class serves both engines; the few statements that differ (DDL, the sequence upsert, a locking read,
``RETURNING``) are in :data:`_DIALECT_SQL`. One :meth:`SQLMessageStore.append` call is one transaction:

1. for each conversation, in sorted order, add the number of new messages to its ``last_seq`` row with an
   upsert, which locks the row until commit, and read the new value back: that range is ours (SQLite: one
   multi-row upsert whose ``RETURNING`` gives every new value);
2. insert the new rows with multi-row ``INSERT`` statements (SQLite: ``RETURNING`` their server ids);
3. MySQL: read their server ids back by key.

A rollback undoes the ``last_seq`` change with the rows, so committed messages leave no gaps. The first try
does not look the idempotency keys up: a resend collides on the unique key (sender, device, client id), the
transaction rolls back, and the next try looks every key up first and gives resends the original row back.
Two processes storing the same key at once collide the same way; the loser retries and finds the winner's
row.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from imsdk_server.backends.sql import (
    Dialect,
    IntegrityViolation,
    SQLCursor,
    SQLDatabase,
    open_database,
    setup_schema,
)
from imsdk_server.metrics import Metrics
from imsdk_server.routing._store import (
    AckPosition,
    AppendResult,
    InvalidMessage,
    NewMessage,
    PendingCursor,
    SchemaMismatch,
    StoredRecord,
)

__all__ = ["SCHEMA_VERSION", "SQLMessageStore", "check_message", "open_message_store"]

#: The schema version this code creates and understands.
SCHEMA_VERSION = 2
"""1: pending messages were found through an index on the receiver; 2: through ``msg_members``, each
user's conversations (:meth:`SQLMessageStore.setup` moves a version 1 database over)."""

MAX_UID = 128
MAX_CONVERSATION = 255
_U64 = 1 << 64
_I64 = 1 << 63
_KEY_CHUNK = 100
_INSERT_CHUNK = 100
_INTEGRITY_RETRIES = 3
_K = TypeVar("_K")

_COLUMNS = (
    "id, conversation, conv_seq, sender_uid, sender_device, client_msg_id, receiver_uid, content_type, body, "
    "created_ms"
)


def _signed(u: int) -> int:
    """A 64-bit unsigned id as the signed 64-bit integer both engines store."""
    return u - _U64 if u >= _I64 else u


def _unsigned(s: int) -> int:
    return s + _U64 if s < 0 else s


def check_message(msg: NewMessage) -> None:
    """Raise :class:`InvalidMessage` if ``msg`` cannot be stored (ids out of range, overlong names)."""
    # Every stored message passes here (at submission and again in the store), so the common case is one
    # chained comparison per field; the loop that names the offending field runs only for a bad message.
    try:
        if (
            0 <= msg.client_msg_id < _U64
            and 0 < len(msg.sender_uid) <= MAX_UID
            and 0 < len(msg.sender_device) <= MAX_UID
            and 0 < len(msg.receiver_uid) <= MAX_UID
            and 0 < len(msg.conversation) <= MAX_CONVERSATION
            and 0 < msg.content_type < _CONTENT_TYPE_END
        ):
            return
    except TypeError:
        pass  # a field of the wrong type: the checks below say which
    if not 0 <= msg.client_msg_id < _U64:
        raise InvalidMessage(f"client message id {msg.client_msg_id} is not a 64-bit unsigned integer")
    for name, value, limit in (
        ("sender uid", msg.sender_uid, MAX_UID),
        ("sender device", msg.sender_device, MAX_UID),
        ("receiver uid", msg.receiver_uid, MAX_UID),
        ("conversation", msg.conversation, MAX_CONVERSATION),
    ):
        if not value or len(value) > limit:
            raise InvalidMessage(f"{name} must be 1..{limit} characters")
    if not 0 < msg.content_type < _CONTENT_TYPE_END:
        raise InvalidMessage(f"content type {msg.content_type} is out of range")
    raise AssertionError("unreachable")  # pragma: no cover


_CONTENT_TYPE_END = 1 << 31


@dataclass(frozen=True)
class _Statements:
    ddl: tuple[str, ...]
    add_members: str
    """Insert member rows (``{values}``: their ``(?, ?)`` pairs), ignoring those already there."""
    fill_members: str
    """Version 1 → 2: every sender and receiver of a stored message is a member of its conversation."""
    has_v1_index: str
    drop_v1_index: str
    """Version 1 → 2: the receiver index, which every stored message had to write a page of, goes."""
    bump_suffix: str
    """What follows the rows of ``INSERT INTO msg_conversations ... VALUES``: add to ``last_seq``."""
    read_seq_locked: str
    upsert_ack: str
    """What follows the rows of ``INSERT INTO msg_acks ... VALUES``: keep the higher of the two acks."""
    returning: bool
    """The engine has ``INSERT ... RETURNING`` (SQLite 3.35+): sequences and ids come back from the
    statements that make them, not from reads after them."""


_SQLITE = _Statements(
    ddl=(
        "CREATE TABLE IF NOT EXISTS msg_schema_version (id INTEGER PRIMARY KEY, version INTEGER NOT NULL)",
        "CREATE TABLE IF NOT EXISTS msg_conversations (id TEXT PRIMARY KEY, last_seq INTEGER NOT NULL)",
        "CREATE TABLE IF NOT EXISTS msg_messages ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT, conversation TEXT NOT NULL, conv_seq INTEGER NOT NULL,"
        " sender_uid TEXT NOT NULL, sender_device TEXT NOT NULL, client_msg_id INTEGER NOT NULL,"
        " receiver_uid TEXT NOT NULL, content_type INTEGER NOT NULL, body BLOB NOT NULL,"
        " created_ms INTEGER NOT NULL,"
        " UNIQUE (conversation, conv_seq), UNIQUE (sender_uid, sender_device, client_msg_id))",
        "CREATE TABLE IF NOT EXISTS msg_members (uid TEXT NOT NULL, conversation TEXT NOT NULL,"
        " PRIMARY KEY (uid, conversation)) WITHOUT ROWID",
        "CREATE TABLE IF NOT EXISTS msg_acks (uid TEXT NOT NULL, device TEXT NOT NULL,"
        " conversation TEXT NOT NULL, acked_seq INTEGER NOT NULL, PRIMARY KEY (uid, device, conversation))",
    ),
    add_members="INSERT OR IGNORE INTO msg_members (uid, conversation) VALUES {values}",
    fill_members="INSERT OR IGNORE INTO msg_members (uid, conversation)"
    " SELECT receiver_uid, conversation FROM msg_messages"
    " UNION SELECT sender_uid, conversation FROM msg_messages",
    has_v1_index="SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'msg_messages_receiver'",
    drop_v1_index="DROP INDEX IF EXISTS msg_messages_receiver",
    bump_suffix=" ON CONFLICT (id) DO UPDATE SET last_seq = last_seq + excluded.last_seq",
    read_seq_locked="SELECT last_seq FROM msg_conversations WHERE id = ?",
    upsert_ack=" ON CONFLICT (uid, device, conversation)"
    " DO UPDATE SET acked_seq = MAX(acked_seq, excluded.acked_seq)",
    returning=sqlite3.sqlite_version_info >= (3, 35),
)

_MYSQL_TABLE = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
_MYSQL = _Statements(
    ddl=(
        "CREATE TABLE IF NOT EXISTS msg_schema_version (id INT NOT NULL PRIMARY KEY, version INT NOT NULL)"
        + _MYSQL_TABLE,
        "CREATE TABLE IF NOT EXISTS msg_conversations (id VARCHAR(255) NOT NULL PRIMARY KEY,"
        " last_seq BIGINT NOT NULL)" + _MYSQL_TABLE,
        "CREATE TABLE IF NOT EXISTS msg_messages ("
        " id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, conversation VARCHAR(255) NOT NULL,"
        " conv_seq BIGINT NOT NULL, sender_uid VARCHAR(128) NOT NULL, sender_device VARCHAR(128) NOT NULL,"
        " client_msg_id BIGINT NOT NULL, receiver_uid VARCHAR(128) NOT NULL, content_type INT NOT NULL,"
        " body MEDIUMBLOB NOT NULL, created_ms BIGINT NOT NULL,"
        " UNIQUE KEY uq_conv_seq (conversation, conv_seq),"
        " UNIQUE KEY uq_sender (sender_uid, sender_device, client_msg_id))" + _MYSQL_TABLE,
        "CREATE TABLE IF NOT EXISTS msg_members (uid VARCHAR(128) NOT NULL,"
        " conversation VARCHAR(255) NOT NULL, PRIMARY KEY (uid, conversation))" + _MYSQL_TABLE,
        "CREATE TABLE IF NOT EXISTS msg_acks (uid VARCHAR(128) NOT NULL, device VARCHAR(128) NOT NULL,"
        " conversation VARCHAR(255) NOT NULL, acked_seq BIGINT NOT NULL,"
        " PRIMARY KEY (uid, device, conversation))" + _MYSQL_TABLE,
    ),
    add_members="INSERT IGNORE INTO msg_members (uid, conversation) VALUES {values}",
    fill_members="INSERT IGNORE INTO msg_members (uid, conversation)"
    " SELECT receiver_uid, conversation FROM msg_messages"
    " UNION SELECT sender_uid, conversation FROM msg_messages",
    has_v1_index="SELECT count(*) FROM information_schema.statistics WHERE table_schema = DATABASE()"
    " AND table_name = 'msg_messages' AND index_name = 'ix_receiver'",
    drop_v1_index="ALTER TABLE msg_messages DROP INDEX ix_receiver",
    bump_suffix=" ON DUPLICATE KEY UPDATE last_seq = last_seq + VALUES(last_seq)",
    read_seq_locked="SELECT last_seq FROM msg_conversations WHERE id = ? FOR UPDATE",
    upsert_ack=" ON DUPLICATE KEY UPDATE acked_seq = GREATEST(acked_seq, VALUES(acked_seq))",
    returning=False,
)

_DIALECT_SQL = {Dialect.SQLITE: _SQLITE, Dialect.MYSQL: _MYSQL}


def _record(row: Sequence[object]) -> StoredRecord:
    (sid, conv, seq, s_uid, s_dev, cmid, r_uid, ctype, body, created) = row
    return StoredRecord(
        server_msg_id=int(sid),  # type: ignore[call-overload]
        conversation=str(conv),
        conv_seq=int(seq),  # type: ignore[call-overload]
        sender_uid=str(s_uid),
        sender_device=str(s_dev),
        client_msg_id=_unsigned(int(cmid)),  # type: ignore[call-overload]
        receiver_uid=str(r_uid),
        content_type=int(ctype),  # type: ignore[call-overload]
        body=bytes(body),  # type: ignore[call-overload]
        created_ms=int(created),  # type: ignore[call-overload]
    )


def _chunks(items: Sequence[_K], size: int) -> Iterable[Sequence[_K]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class SQLMessageStore:
    """A :class:`~imsdk_server.routing.MessageStore` on a :class:`~imsdk_server.backends.sql.SQLDatabase`.

    Use :func:`open_message_store` to build one from a location (``":memory:"``, a SQLite path, or a
    ``mysql://`` DSN), then call :meth:`setup` once.
    """

    def __init__(self, db: SQLDatabase, *, metrics: Metrics | None = None) -> None:
        self._db = db
        self._sql = _DIALECT_SQL[db.dialect]
        m = (metrics or Metrics()).child("store")
        self._m_appended = m.counter("messages_appended_total")
        self._m_duplicates = m.counter("duplicates_total")
        self._m_transactions = m.counter("append_transactions_total")
        self._m_ack_transactions = m.counter("ack_transactions_total")
        self._m_conflicts = m.counter("append_conflicts_total")
        self._m_batch = m.histogram("append_batch_size", buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000))
        self._m_latency = m.histogram("append_seconds")

    @property
    def database(self) -> SQLDatabase:
        """The database underneath (for tests and operators)."""
        return self._db

    async def setup(self) -> None:
        """Create the tables if missing and record or check :data:`SCHEMA_VERSION` (the shared
        :func:`~imsdk_server.backends.sql.setup_schema`); a newer schema raises :class:`SchemaMismatch`.

        A version 1 database is moved to version 2 here, once: its conversations' members are listed from
        the stored messages (in the transaction that records version 2), then its receiver index is dropped
        (on MySQL a statement of its own, since DDL commits; a start interrupted in between drops it next
        time).
        """
        found = await setup_schema(
            self._db,
            self._sql.ddl,
            version_table="msg_schema_version",
            version=SCHEMA_VERSION,
            too_new=SchemaMismatch,
        )
        if found < 2:

            def move(cur: SQLCursor) -> None:
                cur.execute(self._sql.fill_members)
                cur.execute("UPDATE msg_schema_version SET version = ? WHERE id = 1", (SCHEMA_VERSION,))

            await self._db.transaction(move, write=True)
        row = await self._db.fetchone(self._sql.has_v1_index)
        if row is not None and int(row[0]) > 0:
            await self._db.execute(self._sql.drop_v1_index)

    # -- append ---------------------------------------------------------------------------------------------

    async def append(self, messages: Sequence[NewMessage]) -> list[AppendResult]:
        if not messages:
            return []
        for msg in messages:
            check_message(msg)
        started = time.perf_counter()
        batch = list(messages)
        for attempt in range(_INTEGRITY_RETRIES):
            try:
                # The first try inserts at once: resends are rare, and the unique key on (sender, device,
                # client id) refuses one anyway. Then the whole transaction rolls back and the next try
                # looks the keys up first, which is also what finds a row another process has just stored.
                tx = functools.partial(self._append_tx, batch=batch, look_up=attempt > 0)
                results = await self._db.transaction(tx, write=True)
                break
            except IntegrityViolation:
                self._m_conflicts.inc()
                if attempt == _INTEGRITY_RETRIES - 1:
                    raise
        self._m_transactions.inc()
        self._m_batch.observe(len(batch))
        self._m_latency.observe(time.perf_counter() - started)
        dups = sum(1 for r in results if r.duplicate)
        self._m_duplicates.inc(dups)
        self._m_appended.inc(len(results) - dups)
        return results

    def _lookup(
        self, cur: SQLCursor, keys: Sequence[tuple[str, str, int]]
    ) -> dict[tuple[str, str, int], AppendResult]:
        found: dict[tuple[str, str, int], AppendResult] = {}
        for chunk in _chunks(keys, _KEY_CHUNK):
            where = " OR ".join(["(sender_uid = ? AND sender_device = ? AND client_msg_id = ?)"] * len(chunk))
            params: list[object] = []
            for uid, device, cmid in chunk:
                params += (uid, device, _signed(cmid))
            rows = cur.fetchall(
                "SELECT sender_uid, sender_device, client_msg_id, id, conv_seq, created_ms FROM msg_messages"
                f" WHERE {where}",
                params,
            )
            for uid, device, cmid, sid, seq, created in rows:
                found[(str(uid), str(device), _unsigned(int(cmid)))] = AppendResult(
                    int(sid), int(seq), int(created), duplicate=True
                )
        return found

    def _append_tx(self, cur: SQLCursor, batch: list[NewMessage], look_up: bool) -> list[AppendResult]:
        existing = self._lookup(cur, list(dict.fromkeys(m.key for m in batch))) if look_up else {}
        fresh: list[NewMessage] = []
        counts: dict[str, int] = {}
        claimed: set[tuple[str, str, int]] = set()
        for msg in batch:
            if msg.key in existing or msg.key in claimed:
                continue
            claimed.add(msg.key)
            fresh.append(msg)
            counts[msg.conversation] = counts.get(msg.conversation, 0) + 1
        if fresh:
            next_seq = self._reserve(cur, counts)
            self._add_members(cur, fresh, next_seq)
            rows: list[tuple[object, ...]] = []
            for msg in fresh:
                seq = next_seq[msg.conversation]
                next_seq[msg.conversation] = seq + 1
                rows.append(
                    (
                        msg.conversation,
                        seq,
                        msg.sender_uid,
                        msg.sender_device,
                        _signed(msg.client_msg_id),
                        msg.receiver_uid,
                        msg.content_type,
                        msg.body,
                        msg.created_ms,
                    )
                )
            returning = " RETURNING conversation, conv_seq, id" if self._sql.returning else ""
            ids: dict[tuple[str, int], int] = {}
            for i in range(0, len(rows), _INSERT_CHUNK):
                chunk = rows[i : i + _INSERT_CHUNK]
                values = ",".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
                sql = (
                    "INSERT INTO msg_messages (conversation, conv_seq, sender_uid, sender_device,"
                    f" client_msg_id, receiver_uid, content_type, body, created_ms) VALUES {values}"
                ) + returning
                params = [v for row in chunk for v in row]
                if returning:
                    made = cur.fetchall(sql, params)
                    ids.update(((str(conv), int(seq)), int(sid)) for conv, seq, sid in made)
                else:
                    cur.execute(sql, params)
            if returning:
                for msg, row in zip(fresh, rows, strict=True):
                    seq = int(row[1])  # type: ignore[call-overload]
                    existing[msg.key] = AppendResult(ids[(msg.conversation, seq)], seq, msg.created_ms)
            else:
                stored = self._lookup(cur, [m.key for m in fresh])
                for key, res in stored.items():
                    existing.setdefault(key, AppendResult(res.server_msg_id, res.conv_seq, res.created_ms))
        results: list[AppendResult] = []
        first: set[tuple[str, str, int]] = set()
        fresh_keys = {m.key for m in fresh}
        for msg in batch:
            res = existing[msg.key]
            if msg.key in fresh_keys and msg.key not in first:
                first.add(msg.key)
                results.append(AppendResult(res.server_msg_id, res.conv_seq, res.created_ms, duplicate=False))
            else:
                results.append(AppendResult(res.server_msg_id, res.conv_seq, res.created_ms, duplicate=True))
        return results

    def _add_members(self, cur: SQLCursor, fresh: list[NewMessage], first_seq: dict[str, int]) -> None:
        """List the sender and the receiver as members of each conversation this transaction starts (its
        first sequence is 1): :meth:`pending` finds a user's messages through that list."""
        pairs: dict[tuple[str, str], None] = {}
        for msg in fresh:
            if first_seq[msg.conversation] == 1:
                pairs[(msg.sender_uid, msg.conversation)] = None
                pairs[(msg.receiver_uid, msg.conversation)] = None
        rows = list(pairs)
        for i in range(0, len(rows), _INSERT_CHUNK):
            chunk = rows[i : i + _INSERT_CHUNK]
            values = ", ".join(["(?, ?)"] * len(chunk))
            cur.execute(self._sql.add_members.format(values=values), [v for pair in chunk for v in pair])

    def _reserve(self, cur: SQLCursor, counts: dict[str, int]) -> dict[str, int]:
        """Add ``counts`` to the conversations' last sequences; the first sequence each one now owns."""
        first: dict[str, int] = {}
        conversations = sorted(counts)  # one lock order for every transaction: no cycles
        if self._sql.returning:
            for i in range(0, len(conversations), _INSERT_CHUNK):
                chunk = conversations[i : i + _INSERT_CHUNK]
                values = ", ".join(["(?, ?)"] * len(chunk))
                params = [v for conv in chunk for v in (conv, counts[conv])]
                sql = f"INSERT INTO msg_conversations (id, last_seq) VALUES {values}{self._sql.bump_suffix}"
                for conv, last in cur.fetchall(sql + " RETURNING id, last_seq", params):
                    first[str(conv)] = int(last) - counts[str(conv)] + 1
            return first
        for conv in conversations:
            n = counts[conv]
            sql = "INSERT INTO msg_conversations (id, last_seq) VALUES (?, ?)" + self._sql.bump_suffix
            cur.execute(sql, (conv, n))
            row = cur.fetchone(self._sql.read_seq_locked, (conv,))
            assert row is not None
            first[conv] = int(row[0]) - n + 1
        return first

    # -- reads ----------------------------------------------------------------------------------------------

    async def last_seq(self, conversation: str) -> int:
        row = await self._db.fetchone("SELECT last_seq FROM msg_conversations WHERE id = ?", (conversation,))
        return 0 if row is None else int(row[0])

    async def pull(self, conversation: str, from_seq: int, to_seq: int, limit: int) -> list[StoredRecord]:
        if limit <= 0:
            return []
        upper = to_seq if to_seq > 0 else _I64 - 1
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM msg_messages WHERE conversation = ? AND conv_seq >= ? AND conv_seq <= ?"
            " ORDER BY conv_seq LIMIT ?",
            (conversation, max(0, from_seq), upper, limit),
        )
        return [_record(r) for r in rows]

    async def pending(
        self, uid: str, device: str, after: PendingCursor | None, limit: int
    ) -> list[StoredRecord]:
        if limit <= 0:
            return []
        conv, seq = after if after is not None else ("", 0)
        cols = ", ".join(f"m.{c.strip()}" for c in _COLUMNS.split(","))
        # The user's conversations in order; in each, the messages to the user above the device's ack.
        rows = await self._db.fetchall(
            f"SELECT {cols} FROM msg_members c"
            " LEFT JOIN msg_acks a ON a.uid = c.uid AND a.device = ? AND a.conversation = c.conversation"
            " JOIN msg_messages m"
            " ON m.conversation = c.conversation AND m.conv_seq > COALESCE(a.acked_seq, 0)"
            " WHERE c.uid = ? AND c.conversation >= ? AND m.receiver_uid = ?"
            " AND (c.conversation > ? OR m.conv_seq > ?)"
            " ORDER BY c.conversation, m.conv_seq LIMIT ?",
            (device, uid, conv, uid, conv, seq, limit),
        )
        return [_record(r) for r in rows]

    # -- acks -----------------------------------------------------------------------------------------------

    async def ack(self, uid: str, device: str, conversation: str, up_to_seq: int) -> int:
        return (await self.ack_many([(uid, device, conversation, up_to_seq)]))[0]

    async def ack_many(self, acks: Sequence[AckPosition]) -> list[int]:
        if not acks:
            return []
        # the same device and conversation twice: the higher ack is the one that counts
        wanted: dict[tuple[str, str, str], int] = {}
        for uid, device, conversation, seq in acks:
            key = (uid, device, conversation)
            wanted[key] = max(seq, wanted.get(key, seq))
        keys = list(wanted)

        def tx(cur: SQLCursor) -> dict[tuple[str, str, str], int]:
            last: dict[str, int] = {}
            conversations = list(dict.fromkeys(conv for _, _, conv in keys))
            for i in range(0, len(conversations), _KEY_CHUNK):
                chunk = conversations[i : i + _KEY_CHUNK]
                marks = ", ".join(["?"] * len(chunk))
                sql = f"SELECT id, last_seq FROM msg_conversations WHERE id IN ({marks})"
                last.update((str(conv), int(seq)) for conv, seq in cur.fetchall(sql, chunk))
            rows_in: list[object] = []
            for uid, device, conversation in keys:
                target = min(max(0, wanted[(uid, device, conversation)]), last.get(conversation, 0))
                if target > 0:
                    rows_in += (uid, device, conversation, target)
            for i in range(0, len(rows_in), 4 * _INSERT_CHUNK):
                chunk_in = rows_in[i : i + 4 * _INSERT_CHUNK]
                values = ", ".join(["(?, ?, ?, ?)"] * (len(chunk_in) // 4))
                cur.execute(
                    f"INSERT INTO msg_acks (uid, device, conversation, acked_seq) VALUES {values}"
                    + self._sql.upsert_ack,
                    chunk_in,
                )
            now: dict[tuple[str, str, str], int] = {}
            for chunk_keys in _chunks(keys, _KEY_CHUNK):
                where = " OR ".join(["(uid = ? AND device = ? AND conversation = ?)"] * len(chunk_keys))
                params = [v for key in chunk_keys for v in key]
                for uid, device, conversation, seq in cur.fetchall(
                    f"SELECT uid, device, conversation, acked_seq FROM msg_acks WHERE {where}", params
                ):
                    now[(str(uid), str(device), str(conversation))] = int(seq)
            return now

        now = await self._db.transaction(tx, write=True)
        self._m_ack_transactions.inc()
        return [now.get((uid, device, conversation), 0) for uid, device, conversation, _ in acks]

    async def acked(self, uid: str, device: str, conversation: str) -> int:
        row = await self._db.fetchone(
            "SELECT acked_seq FROM msg_acks WHERE uid = ? AND device = ? AND conversation = ?",
            (uid, device, conversation),
        )
        return 0 if row is None else int(row[0])

    async def aclose(self) -> None:
        await self._db.aclose()


def open_message_store(location: str, *, metrics: Metrics | None = None) -> SQLMessageStore:
    """A store at ``location``: ``":memory:"``, a SQLite file path, or ``mysql://user:pw@host:port/db``.

    Call :meth:`SQLMessageStore.setup` before use.
    """
    return SQLMessageStore(open_database(location), metrics=metrics)
