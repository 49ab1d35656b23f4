"""Both SQL engines pass the one notification-store conformance suite, plus what is particular to each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from imsdk_server.backends.sql import MySQLDatabase, SQLiteDatabase
from imsdk_server.notify import (
    NotificationStore,
    SchemaMismatch,
    SQLNotificationStore,
    UpsertResult,
    open_notification_store,
)
from imsdk_server.notify.conformance import CHECKS, Harness, note
from tests.conftest import MySQLTarget

pytestmark = pytest.mark.anyio

Check = Callable[[Harness], Awaitable[None]]


async def _sqlite_store(path: Path) -> SQLNotificationStore:
    store = SQLNotificationStore(SQLiteDatabase(str(path)))
    await store.setup()
    return store


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
async def test_sqlite_conformance(check: Check, tmp_path: Path) -> None:
    path = tmp_path / "notify.db"
    store = await _sqlite_store(path)

    async def reopen() -> NotificationStore:
        return await _sqlite_store(path)

    def unreachable() -> NotificationStore:
        return SQLNotificationStore(SQLiteDatabase(str(tmp_path / "missing-dir" / "x.db")))

    try:
        await check(Harness(store, reopen, unreachable))
    finally:
        await store.aclose()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
async def test_mysql_conformance(check: Check, mysql_db: MySQLTarget) -> None:
    store = SQLNotificationStore(mysql_db.open())
    await store.setup()

    async def reopen() -> NotificationStore:
        other = SQLNotificationStore(mysql_db.open())
        await other.setup()
        return other

    def unreachable() -> NotificationStore:
        return SQLNotificationStore(
            MySQLDatabase(host="127.0.0.1", port=1, database=mysql_db.database, connect_timeout=1)
        )

    try:
        await check(Harness(store, reopen, unreachable))
    finally:
        await store.aclose()


async def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    store = await _sqlite_store(tmp_path / "n.db")
    await store.database.execute("UPDATE notify_schema_version SET version = 99 WHERE id = 1")
    with pytest.raises(SchemaMismatch):
        await store.setup()
    await store.aclose()


async def test_mysql_refuses_a_newer_schema(mysql_db: MySQLTarget) -> None:
    store = SQLNotificationStore(mysql_db.open())
    await store.setup()
    await store.database.execute("UPDATE notify_schema_version SET version = 99 WHERE id = 1")
    with pytest.raises(SchemaMismatch):
        await store.setup()
    await store.aclose()


async def test_open_from_a_location_and_the_store_counts(tmp_path: Path) -> None:
    store = open_notification_store(str(tmp_path / "loc.db"))
    await store.setup()
    assert isinstance(store, NotificationStore)
    assert await store.upsert(note("a", "t", 2)) is UpsertResult.STORED
    assert await store.upsert(note("a", "t", 1)) is UpsertResult.SUPERSEDED
    await store.aclose()
    memory = open_notification_store(":memory:")
    await memory.setup()
    assert await memory.pending("a") == []
    await memory.aclose()
