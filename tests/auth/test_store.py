"""The user store: the one conformance suite on SQLite (memory and file) and MySQL, plus schema handling."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from imsdk_server.auth import SCHEMA_VERSION, SchemaTooNew, SQLUserStore, UserStore
from imsdk_server.auth.conformance import CHECKS
from imsdk_server.backends.sql import SQLiteDatabase
from tests.conftest import MySQLTarget

pytestmark = pytest.mark.anyio

Check = Callable[[UserStore], Awaitable[None]]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
async def test_sqlite_memory(check: Check) -> None:
    store = await SQLUserStore.open(SQLiteDatabase(":memory:"))
    try:
        await check(store)
    finally:
        await store.aclose()


@pytest.mark.parametrize("check", CHECKS[:3], ids=lambda c: c.__name__)
async def test_sqlite_file(check: Check, tmp_path: Path) -> None:
    store = await SQLUserStore.open(str(tmp_path / "auth.sqlite3"))
    try:
        await check(store)
    finally:
        await store.aclose()


@pytest.mark.mysql
@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
async def test_mysql(check: Check, mysql_db: MySQLTarget) -> None:
    db = mysql_db.open()
    store = await SQLUserStore.open(db)
    try:
        await check(store)
    finally:
        await store.aclose()


async def test_store_satisfies_protocol() -> None:
    store = await SQLUserStore.open(":memory:")
    assert isinstance(store, UserStore)
    await store.aclose()


async def test_reopen_keeps_data_and_version(tmp_path: Path) -> None:
    path = str(tmp_path / "auth.sqlite3")
    store = await SQLUserStore.open(path)
    await store.create_user("alice", "h", "Alice", now=1.0)
    await store.aclose()
    store = await SQLUserStore.open(path)
    assert await store.get_user("alice") is not None
    assert await store.db.fetchone("SELECT version FROM auth_schema") == (SCHEMA_VERSION,)
    await store.aclose()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "auth.sqlite3")
    store = await SQLUserStore.open(path)
    await store.db.execute("UPDATE auth_schema SET version = ?", (SCHEMA_VERSION + 1,))
    await store.aclose()
    db = SQLiteDatabase(path)
    with pytest.raises(SchemaTooNew):
        await SQLUserStore.open(db)
    await db.aclose()
