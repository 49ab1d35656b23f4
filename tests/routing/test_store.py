"""Both SQL engines pass the one message-store conformance suite, plus what is particular to each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pymysql
import pytest

from imsdk_server.backends.sql import MySQLDatabase, SQLiteDatabase
from imsdk_server.routing import (
    SCHEMA_VERSION,
    MessageStore,
    SchemaMismatch,
    SQLMessageStore,
    conversation_id,
    conversation_members,
    open_message_store,
)
from imsdk_server.routing.conformance import CHECKS, Harness, msg
from tests.conftest import MySQLTarget

pytestmark = pytest.mark.anyio

Check = Callable[[Harness], Awaitable[None]]


async def _sqlite_store(path: Path) -> SQLMessageStore:
    store = SQLMessageStore(SQLiteDatabase(str(path)))
    await store.setup()
    return store


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
async def test_sqlite_conformance(check: Check, tmp_path: Path) -> None:
    path = tmp_path / "messages.db"
    store = await _sqlite_store(path)

    async def reopen() -> MessageStore:
        return await _sqlite_store(path)

    def unreachable() -> MessageStore:
        return SQLMessageStore(SQLiteDatabase(str(tmp_path / "missing-dir" / "x.db")))

    try:
        await check(Harness(store, reopen, unreachable))
    finally:
        await store.aclose()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
async def test_mysql_conformance(check: Check, mysql_db: MySQLTarget) -> None:
    store = SQLMessageStore(mysql_db.open())
    await store.setup()

    async def reopen() -> MessageStore:
        other = SQLMessageStore(mysql_db.open())
        await other.setup()
        return other

    def unreachable() -> MessageStore:
        return SQLMessageStore(
            MySQLDatabase(host="127.0.0.1", port=1, database=mysql_db.database, connect_timeout=1)
        )

    try:
        await check(Harness(store, reopen, unreachable))
    finally:
        await store.aclose()


async def test_memory_store_from_location() -> None:
    store = open_message_store(":memory:")
    await store.setup()
    (res,) = await store.append([msg("a", "b", 1)])
    assert res.conv_seq == 1
    await store.aclose()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    store = await _sqlite_store(path)
    await store.database.execute("UPDATE msg_schema_version SET version = 99")
    with pytest.raises(SchemaMismatch):
        await store.setup()
    await store.aclose()


async def test_schema_version_is_checked_like_every_store_s(tmp_path: Path) -> None:
    """The shared SQL helper records and checks the version: its message names the table and both versions,
    a refused database is left as it was, and an older recorded version is accepted and kept."""
    store = await _sqlite_store(tmp_path / "m.db")
    assert await store.database.fetchone("SELECT version FROM msg_schema_version") == (SCHEMA_VERSION,)
    await store.database.execute("UPDATE msg_schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    expected = (
        f"the database holds schema version {SCHEMA_VERSION + 1} of msg_schema_version; "
        f"this code knows {SCHEMA_VERSION}"
    )
    with pytest.raises(SchemaMismatch, match=f"^{expected}$"):
        await store.setup()
    assert await store.database.fetchone("SELECT version FROM msg_schema_version") == (SCHEMA_VERSION + 1,)
    await store.database.execute("UPDATE msg_schema_version SET version = 1")
    await store.setup()  # an older version is moved over (see the test below) and recorded as this one
    assert await store.database.fetchone("SELECT version FROM msg_schema_version") == (SCHEMA_VERSION,)
    await store.aclose()


async def _version_1_store(db: SQLiteDatabase | MySQLDatabase) -> None:
    """Make a store's database what schema version 1 left: messages, no member list, the receiver index."""
    store = SQLMessageStore(db)
    await store.setup()
    await store.append(
        [
            msg("a", "b", 1),
            msg("a", "b", 2),
            msg("b", "a", 3),
            msg("a", "b", 4),
            msg("c", "b", 5),
            msg("c", "b", 6),
        ]
    )
    await store.ack("b", "phone", conversation_id("a", "b"), 2)
    index = "msg_messages_receiver" if isinstance(db, SQLiteDatabase) else "ix_receiver"
    await db.execute("DROP TABLE msg_members")
    await db.execute(f"CREATE INDEX {index} ON msg_messages (receiver_uid, conversation, conv_seq)")
    await db.execute("UPDATE msg_schema_version SET version = 1")
    await store.aclose()


async def _check_moved_from_version_1(store: SQLMessageStore) -> None:
    await store.setup()
    db = store.database
    assert await db.fetchone("SELECT version FROM msg_schema_version") == (SCHEMA_VERSION,)
    assert await db.fetchone(store._sql.has_v1_index) == (0,)
    ab, bc = conversation_id("a", "b"), conversation_id("b", "c")
    members = await db.fetchall("SELECT uid, conversation FROM msg_members ORDER BY uid, conversation")
    assert [tuple(r) for r in members] == [("a", ab), ("b", ab), ("b", bc), ("c", bc)]
    pending = await store.pending("b", "phone", None, 100)
    assert [(r.conversation, r.conv_seq) for r in pending] == [(ab, 4), (bc, 1), (bc, 2)]
    assert [(r.conversation, r.conv_seq) for r in await store.pending("a", "phone", None, 100)] == [(ab, 3)]
    await store.append([msg("b", "c", 7), msg("d", "b", 8)])  # an old conversation and a new one
    pending = await store.pending("b", "laptop", None, 100)
    assert [(r.conversation, r.conv_seq) for r in pending] == [(ab, 1), (ab, 2), (ab, 4), (bc, 1), (bc, 2),
                                                               (conversation_id("b", "d"), 1)]  # fmt: skip
    await store.setup()  # once moved, a start changes nothing
    assert await db.fetchone("SELECT version FROM msg_schema_version") == (SCHEMA_VERSION,)


async def test_a_version_1_sqlite_database_is_moved_over(tmp_path: Path) -> None:
    path = str(tmp_path / "m.db")
    await _version_1_store(SQLiteDatabase(path))
    store = SQLMessageStore(SQLiteDatabase(path))
    try:
        await _check_moved_from_version_1(store)
    finally:
        await store.aclose()


async def test_a_version_1_mysql_database_is_moved_over(mysql_db: MySQLTarget) -> None:
    await _version_1_store(mysql_db.open())
    store = SQLMessageStore(mysql_db.open())
    try:
        await _check_moved_from_version_1(store)
    finally:
        await store.aclose()


async def test_mysql_pooled_connection_killed_between_calls_is_redialled(mysql_db: MySQLTarget) -> None:
    """A pooled connection the server dropped is redialled before anything runs on it: nothing is lost.

    (A connection lost in the middle of a transaction fails that call with StorageUnavailable; that case is
    covered by the SQL helper's own tests.)
    """
    store = SQLMessageStore(mysql_db.open(max_connections=1))
    await store.setup()
    await store.append([msg("a", "b", 1)])
    row = await store.database.fetchone("SELECT CONNECTION_ID()")
    assert row is not None
    admin = pymysql.connect(
        host=mysql_db.host, port=mysql_db.port, user=mysql_db.user, password=mysql_db.password
    )
    try:
        with admin.cursor() as cur:
            cur.execute(f"KILL {int(row[0])}")
    finally:
        admin.close()
    (res,) = await store.append([msg("a", "b", 2)])
    assert (res.conv_seq, res.duplicate) == (2, False)
    new_row = await store.database.fetchone("SELECT CONNECTION_ID()")
    assert new_row is not None
    assert new_row[0] != row[0]
    assert await store.last_seq(conversation_id("a", "b")) == 2
    await store.aclose()


@pytest.mark.parametrize(
    ("a", "b"),
    [("alice", "bob"), ("bob", "alice"), ("a:b", "c"), ("a", "b:c"), ("", "x"), ("同", "样"), ("x", "x")],
)
def test_conversation_ids_round_trip(a: str, b: str) -> None:
    conv = conversation_id(a, b)
    assert conv == conversation_id(b, a)
    assert conversation_members(conv) == tuple(sorted((a, b)))


def test_conversation_ids_are_unambiguous() -> None:
    assert conversation_id("a:b", "c") != conversation_id("a", "b:c")


@pytest.mark.parametrize("bad", ["", "group:1", "p2p:", "p2p:x:a:b", "p2p:5:a:b", "p2p:1:b:a", "p2p:01:a:b"])
def test_conversation_members_rejects_garbage(bad: str) -> None:
    assert conversation_members(bad) is None
