"""Cached store: the conformance suite on both caches, Redis loss loses nothing. Group commit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest
import redis

from imsdk_proto.codes import ErrorCode
from imsdk_server.backends.cache import Cache, MemoryCache, RedisCache
from imsdk_server.backends.sql import SQLiteDatabase, StorageUnavailable
from imsdk_server.metrics import Metrics
from imsdk_server.routing import AppendResult, InvalidMessage, MessageStore, SQLMessageStore, conversation_id
from imsdk_server.routing._cache import CachedMessageStore
from imsdk_server.routing._writer import GroupCommitWriter
from imsdk_server.routing.conformance import CHECKS, Harness, msg
from tests.conftest import RedisTarget

pytestmark = pytest.mark.anyio

Check = Callable[[Harness], Awaitable[None]]


async def _cached(path: Path, cache: Cache, metrics: Metrics | None = None) -> CachedMessageStore:
    store = CachedMessageStore(SQLMessageStore(SQLiteDatabase(str(path))), cache, metrics=metrics)
    await store.setup()
    return store


async def _run_conformance(check: Check, tmp_path: Path, cache: Cache) -> None:
    path = tmp_path / "m.db"
    store = await _cached(path, cache)

    async def reopen() -> MessageStore:
        return await _cached(path, cache)

    def unreachable() -> MessageStore:
        return CachedMessageStore(SQLMessageStore(SQLiteDatabase(str(tmp_path / "no" / "x.db"))), cache)

    try:
        await check(Harness(store, reopen, unreachable))
    finally:
        await store.aclose()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
async def test_cached_store_conformance_memory(check: Check, tmp_path: Path) -> None:
    await _run_conformance(check, tmp_path, MemoryCache())


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
async def test_cached_store_conformance_redis(
    check: Check, tmp_path: Path, redis_target: RedisTarget
) -> None:
    cache = RedisCache(redis_target.url, prefix=redis_target.prefix)
    try:
        await _run_conformance(check, tmp_path, cache)
    finally:
        await cache.aclose()


async def test_recent_pulls_are_served_from_the_cache(tmp_path: Path) -> None:
    metrics = Metrics()
    store = await _cached(tmp_path / "m.db", MemoryCache(), metrics)
    await store.append([msg("a", "b", i) for i in range(1, 6)])
    conv = conversation_id("a", "b")
    got = await store.pull(conv, 2, 4, 10)
    assert [r.conv_seq for r in got] == [2, 3, 4]
    assert metrics.value("message_cache_hits_total") == 1
    assert got == await store.store.pull(conv, 2, 4, 10)
    assert [r.conv_seq for r in await store.pull(conv, 4, 9, 10)] == [4, 5]  # beyond the end: the store
    assert metrics.value("message_cache_misses_total") == 1
    await store.aclose()


async def test_redis_flushed_mid_run_loses_nothing(tmp_path: Path, redis_target: RedisTarget) -> None:
    cache = RedisCache(redis_target.url, prefix=redis_target.prefix)
    metrics = Metrics()
    store = await _cached(tmp_path / "m.db", cache, metrics)
    conv = conversation_id("a", "b")
    seqs: list[int] = []
    admin = redis.Redis.from_url(redis_target.url)
    try:
        for round_ in range(4):
            results = await store.append([msg("a", "b", round_ * 10 + i) for i in range(10)])
            seqs += [r.conv_seq for r in results]
            if round_ == 1:
                keys = list(admin.scan_iter(match=redis_target.prefix + "*"))
                assert keys, "the cache was written through"
                admin.delete(*keys)
        assert seqs == list(range(1, 41))
        assert await store.last_seq(conv) == 40
        for start in range(1, 41, 5):
            got = await store.pull(conv, start, start + 4, 5)
            assert [r.conv_seq for r in got] == list(range(start, start + 5))
            assert [r.client_msg_id for r in got] == list(range(start - 1, start + 4))
        assert metrics.value("message_cache_hits_total") >= 4  # rounds after the flush were cached again
    finally:
        admin.close()
        await store.aclose()
        await cache.aclose()


async def test_unreachable_redis_is_ignored(tmp_path: Path) -> None:
    metrics = Metrics()
    cache = RedisCache("redis://127.0.0.1:1/0", prefix="x:", timeout=0.5)
    store = await _cached(tmp_path / "m.db", cache, metrics)
    (res,) = await store.append([msg("a", "b", 1)])
    assert res.conv_seq == 1
    assert [r.conv_seq for r in await store.pull(conversation_id("a", "b"), 1, 1, 1)] == [1]
    assert metrics.value("message_cache_errors_total") >= 2
    await store.aclose()


# -- group commit -------------------------------------------------------------------------------------------


async def test_writer_commits_together_in_order(tmp_path: Path) -> None:
    metrics = Metrics()
    store = SQLMessageStore(SQLiteDatabase(str(tmp_path / "m.db")), metrics=metrics)
    await store.setup()
    writer = GroupCommitWriter(store, max_batch=50, max_delay=0.01, metrics=metrics)
    results: list[AppendResult | Exception] = []
    all_done = anyio.Event()

    def done(result: AppendResult | Exception) -> None:
        results.append(result)
        if len(results) == 200:
            all_done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer.run)
        for i in range(200):
            writer.submit(msg("a", "b", i), done)
            if i % 50 == 49:
                await anyio.sleep(0.001)
        await all_done.wait()
        tg.cancel_scope.cancel()
    # answered in submission order, with sequences in submission order
    assert [r.conv_seq for r in results if isinstance(r, AppendResult)] == list(range(1, 201))
    transactions = metrics.value("store_append_transactions_total")
    assert 4 <= transactions < 200
    await store.aclose()


async def test_writer_database_down_answers_everyone_with_the_error(tmp_path: Path) -> None:
    store = SQLMessageStore(SQLiteDatabase(str(tmp_path / "missing" / "m.db")))
    writer = GroupCommitWriter(store, max_delay=0)
    outcomes: list[AppendResult | Exception] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(writer.run)
        for i in range(4):
            writer.submit(msg("a", "b", i), outcomes.append)
        with pytest.raises(StorageUnavailable):
            await writer.append(msg("a", "b", 9))
        tg.cancel_scope.cancel()
    assert len(outcomes) == 4
    assert all(isinstance(o, StorageUnavailable) for o in outcomes)
    assert {o.code for o in outcomes if isinstance(o, StorageUnavailable)} == {ErrorCode.STORAGE_UNAVAILABLE}


async def test_writer_refuses_a_bad_message_alone() -> None:
    store = SQLMessageStore(SQLiteDatabase(":memory:"))
    writer = GroupCommitWriter(store)
    with pytest.raises(InvalidMessage):
        writer.submit(msg("a", "b", -1), lambda _: None)
    assert writer.queued == 0
