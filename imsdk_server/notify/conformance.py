"""The one conformance suite every :class:`~imsdk_server.notify.NotificationStore` must pass.

Each check is a plain async function taking a :class:`Harness`: a fresh store (already set up), a way to open
a second store on the same database (a second notification server), and a way to open a store whose database
is unreachable. Test modules run every function in :data:`CHECKS` against every implementation, the real ones
against the real servers.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

from imsdk_server.backends.sql import StorageUnavailable
from imsdk_server.notify._store import (
    MAX_NOTIFY_ID,
    InvalidNotification,
    NotificationStore,
    StoredNotification,
    UpsertResult,
)

__all__ = ["CHECKS", "Harness", "note"]


@dataclass(frozen=True)
class Harness:
    """What one check gets."""

    store: NotificationStore
    """A fresh store, set up, holding nothing."""
    reopen: Callable[[], Awaitable[NotificationStore]]
    """Open (and set up) another store on the same database, as a second server process would."""
    unreachable: Callable[[], NotificationStore]
    """A store whose database cannot be reached (not set up; its first call fails)."""


def note(
    uid: str,
    kind: str,
    notify_id: int,
    *,
    merge_key: str = "",
    payload: bytes | None = None,
    created_ms: int = 1_700_000_000_000,
) -> StoredNotification:
    """A pending notification of type ``kind`` for ``uid`` with version ``notify_id``."""
    return StoredNotification(
        uid=uid,
        type=kind,
        merge_key=merge_key,
        notify_id=notify_id,
        payload=payload if payload is not None else f"{uid}/{kind}/{merge_key}@{notify_id}".encode(),
        created_ms=created_ms,
    )


async def check_setup_is_idempotent(h: Harness) -> None:
    """Setting up an existing schema again keeps the data; a second process sees it."""
    assert await h.store.upsert(note("a", "t", 5)) is UpsertResult.STORED
    await h.store.setup()
    other = await h.reopen()
    try:
        got = await other.get("a", "t")
        assert got == note("a", "t", 5)
    finally:
        await other.aclose()


async def check_round_trip(h: Harness) -> None:
    """Every field comes back as written: unicode names, binary and empty payloads, the largest id."""
    records = [
        note("ユーザー", "好友请求", 1, merge_key="группа", payload=bytes(range(256))),
        note("u", "empty", MAX_NOTIFY_ID, payload=b""),
        note("u", "x" * 64, 7, merge_key="k" * 128, created_ms=0),
    ]
    for rec in records:
        assert await h.store.upsert(rec) is UpsertResult.STORED
    for rec in records:
        assert await h.store.get(rec.uid, rec.type, rec.merge_key) == rec
    assert await h.store.get("u", "missing") is None
    assert await h.store.get("nobody", "empty") is None


async def check_latest_version_wins(h: Harness) -> None:
    """Newer replaces, the same version is a duplicate, an older one is superseded; only the newest stays."""
    s = h.store
    table = [
        (10, UpsertResult.STORED, 10),
        (20, UpsertResult.STORED, 20),
        (20, UpsertResult.DUPLICATE, 20),
        (15, UpsertResult.SUPERSEDED, 20),
        (1, UpsertResult.SUPERSEDED, 20),
        (21, UpsertResult.STORED, 21),
    ]
    for version, expected, kept in table:
        result = await s.upsert(note("a", "friend", version, payload=f"v{version}".encode()))
        assert result is expected, (version, result)
        got = await s.get("a", "friend")
        assert got is not None
        assert got.notify_id == kept
        assert got.payload == f"v{kept}".encode()
    pending = await s.pending("a")
    assert [p.notify_id for p in pending] == [21]


async def check_keys_are_separate(h: Harness) -> None:
    """Users, types and merge keys each make their own row; one never replaces another."""
    s = h.store
    rows = [
        note("a", "t1", 5),
        note("a", "t2", 4),
        note("a", "t1", 3, merge_key="g1"),
        note("a", "t1", 2, merge_key="g2"),
        note("b", "t1", 1),
    ]
    for rec in rows:
        assert await s.upsert(rec) is UpsertResult.STORED
    assert [p.notify_id for p in await s.pending("a")] == [2, 3, 4, 5]
    assert [p.notify_id for p in await s.pending("b")] == [1]
    assert await s.pending("c") == []


async def check_pending_pages(h: Harness) -> None:
    """Pending rows come in id order, after a cursor, at most ``limit`` at a time."""
    s = h.store
    ids = random.Random(7).sample(range(1, 10_000), 25)
    for i, notify_id in enumerate(ids):
        await s.upsert(note("a", f"type{i}", notify_id))
    seen: list[int] = []
    after = 0
    while True:
        page = await s.pending("a", after_id=after, limit=7)
        assert len(page) <= 7
        seen += [p.notify_id for p in page]
        if len(page) < 7:
            break
        after = page[-1].notify_id
    assert seen == sorted(ids)
    assert await s.pending("a", limit=0) == []


async def check_ack_makes_tombstones(h: Harness) -> None:
    """An ack hides a row from pending; its version stays, so stale and repeated writes change nothing."""
    s = h.store
    await s.upsert(note("a", "t", 10))
    await s.upsert(note("a", "u", 11))
    assert await s.ack("a", [10], now_ms=5_000) == 1
    assert [p.notify_id for p in await s.pending("a")] == [11]
    tomb = await s.get("a", "t")
    assert tomb is not None
    assert tomb.notify_id == 10
    assert tomb.acked_ms == 5_000
    assert not tomb.pending
    assert tomb.payload == b""
    assert await s.upsert(note("a", "t", 9)) is UpsertResult.SUPERSEDED
    assert await s.upsert(note("a", "t", 10)) is UpsertResult.DUPLICATE
    assert [p.notify_id for p in await s.pending("a")] == [11]
    # A newer one revives the key as pending.
    assert await s.upsert(note("a", "t", 12, payload=b"new")) is UpsertResult.STORED
    got = await s.get("a", "t")
    assert got == note("a", "t", 12, payload=b"new")
    assert [p.notify_id for p in await s.pending("a")] == [11, 12]


async def check_ack_only_current_versions(h: Harness) -> None:
    """Acking a replaced id, another user's id, an unknown id or twice changes nothing."""
    s = h.store
    await s.upsert(note("a", "t", 10))
    await s.upsert(note("a", "t", 20))
    await s.upsert(note("b", "t", 30))
    assert await s.ack("a", [10], now_ms=1) == 0
    assert await s.ack("a", [30, 999, 0, -5], now_ms=1) == 0
    assert [p.notify_id for p in await s.pending("a")] == [20]
    assert await s.ack("a", [20, 20], now_ms=1) == 1
    assert await s.ack("a", [20], now_ms=2) == 0
    tomb = await s.get("a", "t")
    assert tomb is not None
    assert tomb.acked_ms == 1
    assert [p.notify_id for p in await s.pending("b")] == [30]
    assert await s.ack("a", [], now_ms=3) == 0


async def check_ack_many(h: Harness) -> None:
    """One ack may name hundreds of ids."""
    s = h.store
    for i in range(1, 251):
        await s.upsert(note("a", f"t{i}", i))
    assert await s.ack("a", list(range(1, 251)), now_ms=9) == 250
    assert await s.pending("a") == []


async def check_purge(h: Harness) -> None:
    """Purge deletes tombstones acked before the cutoff and nothing else."""
    s = h.store
    await s.upsert(note("a", "old", 1))
    await s.upsert(note("a", "new", 2))
    await s.upsert(note("a", "live", 3))
    await s.ack("a", [1], now_ms=1_000)
    await s.ack("a", [2], now_ms=5_000)
    assert await s.purge(acked_before_ms=5_000) == 1
    assert await s.get("a", "old") is None
    assert await s.get("a", "new") is not None
    assert [p.notify_id for p in await s.pending("a")] == [3]
    # Once purged, the key is free again (old versions are accepted: the retention is the guard).
    assert await s.upsert(note("a", "old", 1)) is UpsertResult.STORED
    assert await s.purge(acked_before_ms=10**12) == 1


async def check_invalid_records(h: Harness) -> None:
    """Records outside the limits are refused before touching the database."""
    bad = [
        note("a", "t", 0),
        note("a", "t", MAX_NOTIFY_ID + 1),
        note("", "t", 1),
        note("a", "", 1),
        note("a" * 129, "t", 1),
        note("a", "t" * 65, 1),
        note("a", "t", 1, merge_key="m" * 129),
        StoredNotification("a", "t", "", 1, b"", 0, acked_ms=5),
    ]
    for rec in bad:
        try:
            await h.store.upsert(rec)
        except InvalidNotification:
            continue
        raise AssertionError(f"accepted {rec!r}")
    assert await h.store.pending("a") == []


async def check_concurrent_writers_keep_the_max(h: Harness) -> None:
    """Two processes racing versions onto one key end with the highest; each answer is consistent."""
    other = await h.reopen()
    try:
        versions = list(range(1, 41))
        random.Random(3).shuffle(versions)
        results: dict[int, UpsertResult] = {}

        async def write(store: NotificationStore, chunk: list[int]) -> None:
            for v in chunk:
                results[v] = await store.upsert(note("race", "t", v))

        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(write, h.store if i % 2 else other, versions[i::4])
        got = await h.store.get("race", "t")
        assert got is not None
        assert got.notify_id == 40
        assert got.pending
        assert results[40] is UpsertResult.STORED
        assert all(r is not UpsertResult.DUPLICATE for r in results.values())
    finally:
        await other.aclose()


async def check_unreachable_database(h: Harness) -> None:
    """A database that cannot be reached raises StorageUnavailable from every call."""
    store = h.unreachable()
    calls: list[Callable[[], Awaitable[object]]] = [
        store.setup,
        lambda: store.upsert(note("a", "t", 1)),
        lambda: store.pending("a"),
        lambda: store.ack("a", [1], 1),
        lambda: store.get("a", "t"),
        lambda: store.purge(1),
    ]
    try:
        for call in calls:
            try:
                await call()
            except StorageUnavailable:
                continue
            raise AssertionError("an unreachable database answered")
    finally:
        await store.aclose()


CHECKS: tuple[Callable[[Harness], Awaitable[None]], ...] = (
    check_setup_is_idempotent,
    check_round_trip,
    check_latest_version_wins,
    check_keys_are_separate,
    check_pending_pages,
    check_ack_makes_tombstones,
    check_ack_only_current_versions,
    check_ack_many,
    check_purge,
    check_invalid_records,
    check_concurrent_writers_keep_the_max,
    check_unreachable_database,
)
"""Every check, in a stable order."""
