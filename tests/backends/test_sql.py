"""The SQL helper on both engines: placeholders, transactions, error mapping, and not blocking the loop."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from imsdk_server.backends.sql import (
    Dialect,
    IntegrityViolation,
    MySQLDatabase,
    SQLCursor,
    SQLDatabase,
    SQLiteDatabase,
    StorageUnavailable,
    check_schema_version,
    open_database,
    parse_mysql_dsn,
    setup_schema,
)
from tests.conftest import MySQLTarget

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
async def db(request: pytest.FixtureRequest) -> AsyncIterator[SQLDatabase]:
    database: SQLDatabase
    if request.param == "sqlite":
        database = SQLiteDatabase(":memory:")
    else:
        t: MySQLTarget = request.getfixturevalue("mysql_db")
        database = MySQLDatabase(
            host=t.host, port=t.port, user=t.user, password=t.password, database=t.database
        )
    await database.execute("CREATE TABLE t (k VARCHAR(32) NOT NULL PRIMARY KEY, v VARCHAR(255) NOT NULL)")
    yield database
    await database.aclose()


async def test_placeholders_bind_values(db: SQLDatabase) -> None:
    values = ["plain", "it's", "%s", "%%", "?", "'); DROP TABLE t; --", "☃"]
    for i, v in enumerate(values):
        assert await db.execute("INSERT INTO t (k, v) VALUES (?, ?)", (f"k{i}", v)) == 1
    rows = await db.fetchall("SELECT k, v FROM t WHERE v LIKE '%' ORDER BY k")
    assert [r[1] for r in rows] == values
    assert await db.fetchone("SELECT v FROM t WHERE k = ?", ("k3",)) == ("%%",)
    assert await db.fetchone("SELECT v FROM t WHERE k = ?", ("nope",)) is None


async def test_transaction_commits_and_rolls_back(db: SQLDatabase) -> None:
    def good(cur: SQLCursor) -> int:
        cur.execute("INSERT INTO t (k, v) VALUES (?, ?)", ("a", "1"))
        cur.execute("INSERT INTO t (k, v) VALUES (?, ?)", ("b", "2"))
        row = cur.fetchone("SELECT COUNT(*) FROM t")
        assert row is not None
        return int(row[0])

    assert await db.transaction(good) == 2

    class Boom(Exception):
        pass

    def bad(cur: SQLCursor) -> None:
        cur.execute("INSERT INTO t (k, v) VALUES (?, ?)", ("c", "3"))
        raise Boom

    with pytest.raises(Boom):
        await db.transaction(bad)
    assert await db.fetchall("SELECT k FROM t ORDER BY k") == [("a",), ("b",)]
    # The connection is still usable after the failed transaction.
    assert await db.execute("INSERT INTO t (k, v) VALUES (?, ?)", ("c", "3")) == 1


async def test_duplicate_key_is_integrity_violation(db: SQLDatabase) -> None:
    await db.execute("INSERT INTO t (k, v) VALUES (?, ?)", ("a", "1"))
    with pytest.raises(IntegrityViolation) as info:
        await db.execute("INSERT INTO t (k, v) VALUES (?, ?)", ("a", "2"))
    assert info.value.code.name == "DUPLICATE"
    assert await db.fetchone("SELECT v FROM t WHERE k = ?", ("a",)) == ("1",)


async def test_closed_database_is_unavailable(db: SQLDatabase) -> None:
    await db.aclose()
    with pytest.raises(StorageUnavailable):
        await db.fetchone("SELECT 1")


async def test_unreachable_mysql_is_storage_unavailable() -> None:
    db = MySQLDatabase(host="127.0.0.1", port=1, database="nothing", connect_timeout=1)
    with pytest.raises(StorageUnavailable) as info:
        await db.fetchone("SELECT 1")
    assert info.value.code.name == "STORAGE_UNAVAILABLE"
    await db.aclose()


async def test_unopenable_sqlite_is_storage_unavailable(tmp_path: Path) -> None:
    db = SQLiteDatabase(str(tmp_path / "missing-dir" / "x.sqlite3"))
    with pytest.raises(StorageUnavailable):
        await db.fetchone("SELECT 1")


async def test_sqlite_file_journal_settings(tmp_path: Path) -> None:
    db = SQLiteDatabase(str(tmp_path / "x.sqlite3"), wal_autocheckpoint=2500, wal_size_limit=1 << 20)
    try:
        assert await db.fetchone("PRAGMA journal_mode") == ("wal",)
        assert await db.fetchone("PRAGMA wal_autocheckpoint") == (2500,)
        assert await db.fetchone("PRAGMA journal_size_limit") == (1 << 20,)
        assert await SQLiteDatabase(":memory:").fetchone("PRAGMA journal_mode") == ("memory",)
    finally:
        await db.aclose()


async def test_sqlite_write_transaction_takes_the_write_lock_when_it_begins(tmp_path: Path) -> None:
    """``write=True``: while another connection writes, the transaction waits at its start (here up to a
    short busy timeout, then fails) and runs none of its statements; a read-only one still runs."""
    path = str(tmp_path / "x.sqlite3")
    db = SQLiteDatabase(path, busy_timeout=0.05)
    await db.execute("CREATE TABLE t (a INTEGER)")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    ran: list[str] = []

    def tx(cur: SQLCursor) -> None:
        ran.append("ran")
        cur.fetchone("SELECT count(*) FROM t")

    try:
        with pytest.raises(StorageUnavailable):
            await db.transaction(tx, write=True)
        assert ran == []
        await db.transaction(tx)
        assert ran == ["ran"]
    finally:
        other.execute("ROLLBACK")
        other.close()
        await db.aclose()


@pytest.mark.mysql
async def test_mysql_call_does_not_block_the_event_loop(mysql_db: MySQLTarget) -> None:
    t = mysql_db
    db = MySQLDatabase(host=t.host, port=t.port, user=t.user, password=t.password, database=t.database)
    ticks = 0
    done = anyio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        assert await db.fetchone("SELECT SLEEP(0.3)") == (0,)
        done.set()
    # The loop kept running other tasks while the query slept in the server.
    assert ticks >= 2
    await db.aclose()


@pytest.mark.mysql
async def test_mysql_recovers_after_connection_loss(mysql_db: MySQLTarget) -> None:
    t = mysql_db
    db = MySQLDatabase(host=t.host, port=t.port, user=t.user, password=t.password, database=t.database)
    row = await db.fetchone("SELECT CONNECTION_ID()")
    assert row is not None
    import pymysql

    admin = pymysql.connect(host=t.host, port=t.port, user=t.user, password=t.password, autocommit=True)
    with admin.cursor() as cur:
        cur.execute("KILL %s", (row[0],))
    admin.close()
    # The killed connection was idle in the pool: the next call notices before running anything and dials
    # afresh, so the caller sees no error at all.
    assert await db.fetchone("SELECT 1") == (1,)
    row2 = await db.fetchone("SELECT CONNECTION_ID()")
    assert row2 is not None
    assert row2 != row
    await db.aclose()


class _TooNew(Exception):
    pass


async def test_setup_schema_records_then_checks_the_version(db: SQLDatabase) -> None:
    ddl = [
        "CREATE TABLE IF NOT EXISTS s_version (id INTEGER PRIMARY KEY, version INTEGER NOT NULL)",
        "CREATE TABLE IF NOT EXISTS s_data (k VARCHAR(32) NOT NULL PRIMARY KEY)",
    ]
    assert await setup_schema(db, ddl, version_table="s_version", version=2, too_new=_TooNew) == 2
    await db.execute("INSERT INTO s_data (k) VALUES (?)", ("kept",))
    # Set up again by the same or an older code: the data stays and the recorded version is reported.
    assert await setup_schema(db, ddl, version_table="s_version", version=2, too_new=_TooNew) == 2
    assert await setup_schema(db, ddl, version_table="s_version", version=3, too_new=_TooNew) == 2
    assert await db.fetchall("SELECT k FROM s_data") == [("kept",)]
    # A newer schema than the code knows is refused with the store's own error, naming both versions.
    await db.execute("UPDATE s_version SET version = 9 WHERE id = 1")
    with pytest.raises(_TooNew, match="version 9 of s_version; this code knows 2"):
        await setup_schema(db, ddl, version_table="s_version", version=2, too_new=_TooNew)
    assert await db.fetchall("SELECT version FROM s_version") == [(9,)]


async def test_schema_version_table_must_be_an_identifier(db: SQLDatabase) -> None:
    def tx(cur: SQLCursor) -> int:
        return check_schema_version(cur, "t; DROP TABLE t", 1, _TooNew)

    with pytest.raises(ValueError, match="table name"):
        await db.transaction(tx)


def test_open_database_and_dsn() -> None:
    assert open_database(":memory:").dialect is Dialect.SQLITE
    assert open_database("sqlite:///tmp/x.db").dialect is Dialect.SQLITE
    assert open_database("mysql://u:p%40ss@db.example:3307/imsdk").dialect is Dialect.MYSQL
    assert parse_mysql_dsn("mysql://u:p%40ss@db.example:3307/imsdk") == {
        "host": "db.example",
        "port": 3307,
        "user": "u",
        "password": "p@ss",
        "database": "imsdk",
    }
    for bad in ("postgres://x/y", "mysql://host:3306/"):
        with pytest.raises(ValueError, match="DSN"):
            parse_mysql_dsn(bad)


@pytest.mark.mysql
async def test_mysql_connection_lost_mid_query_is_storage_unavailable(mysql_db: MySQLTarget) -> None:
    import pymysql

    t = mysql_db
    db = MySQLDatabase(host=t.host, port=t.port, user=t.user, password=t.password, database=t.database)
    row = await db.fetchone("SELECT CONNECTION_ID()")
    assert row is not None

    def kill_when_sleeping() -> None:
        admin = pymysql.connect(host=t.host, port=t.port, user=t.user, password=t.password, autocommit=True)
        try:
            with admin.cursor() as cur:
                for _ in range(200):
                    cur.execute("SELECT COMMAND FROM information_schema.PROCESSLIST WHERE ID = %s", (row[0],))
                    state = cur.fetchone()
                    if state is not None and state[0] == "Query":
                        cur.execute("KILL %s", (row[0],))
                        return
                    time.sleep(0.01)
        finally:
            admin.close()

    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.to_thread.run_sync, kill_when_sleeping)
        with pytest.raises(StorageUnavailable):
            await db.fetchone("SELECT SLEEP(5)")
    assert await db.fetchone("SELECT 1") == (1,)  # and the next call works on a fresh connection
    await db.aclose()
