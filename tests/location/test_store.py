"""Both presence stores pass the one conformance suite, plus what is particular to each."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from imsdk_server.location import (
    MemoryPresenceStore,
    PresenceStore,
    PresenceStoreUnavailable,
    RedisPresenceStore,
)
from imsdk_server.location.conformance import CHECKS, Check
from tests.conftest import RedisTarget

pytestmark = pytest.mark.anyio


@pytest.fixture
async def redis_store(redis_target: RedisTarget) -> AsyncIterator[RedisPresenceStore]:
    store = RedisPresenceStore(redis_target.url, prefix=redis_target.prefix)
    yield store
    await store.aclose()


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__ for c in CHECKS])
async def test_memory_store_conformance(check: Check) -> None:
    await check(MemoryPresenceStore())


@pytest.mark.redis
@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__ for c in CHECKS])
async def test_redis_store_conformance(check: Check, redis_store: RedisPresenceStore) -> None:
    await check(redis_store)


def test_both_satisfy_the_protocol() -> None:
    assert isinstance(MemoryPresenceStore(), PresenceStore)
    assert isinstance(RedisPresenceStore(client=object()), PresenceStore)


@pytest.mark.redis
async def test_redis_keys_stay_under_the_prefix_and_a_flush_is_noticed(redis_target: RedisTarget) -> None:
    import redis.asyncio

    store = RedisPresenceStore(redis_target.url, prefix=redis_target.prefix)
    other = RedisPresenceStore(redis_target.url, prefix=redis_target.prefix + "other:")
    raw = redis.asyncio.Redis.from_url(redis_target.url)
    try:
        from imsdk_server.location import Network, Presence

        p = Presence("alice", "phone", 1, 1, Network.G4)
        await store.replace_all([p])
        await other.replace_all([])
        keys = sorted([k.decode() async for k in raw.scan_iter(match=redis_target.prefix + "*")])
        assert f"{redis_target.prefix}u:alice" in keys
        assert all(k.startswith(redis_target.prefix) for k in keys)
        assert await other.load_all() == []  # one store per location server
        # What a flush does to our keys: the marker goes, and the store says so.
        await raw.delete(*[k for k in keys if not k.startswith(redis_target.prefix + "other:")])
        assert await store.intact() is False
        assert await other.intact() is True
    finally:
        await raw.aclose()
        await store.aclose()
        await other.aclose()


async def test_redis_unreachable_is_store_unavailable() -> None:
    store = RedisPresenceStore("redis://127.0.0.1:1/0", timeout=0.5)
    from imsdk_server.location import Network, Presence

    p = Presence("a", "d", 1, 1, Network.WIFI)
    with pytest.raises(PresenceStoreUnavailable):
        await store.apply({p.key: p})
    with pytest.raises(PresenceStoreUnavailable):
        await store.intact()
    await store.aclose()


@pytest.mark.redis
async def test_redis_entries_that_do_not_decode_are_skipped(
    redis_store: RedisPresenceStore, redis_target: RedisTarget
) -> None:
    import redis.asyncio

    from imsdk_server.location import InvalidPresenceEvent, Network, Presence, decode_presence

    p = Presence("alice", "phone", 1, 1, Network.G4)
    await redis_store.apply({p.key: p})
    raw = redis.asyncio.Redis.from_url(redis_target.url)
    try:
        await raw.hset(f"{redis_target.prefix}u:alice", "junk", b"not json")
        await raw.hset(f"{redis_target.prefix}u:alice", "odd", b'{"s": 1}')
    finally:
        await raw.aclose()
    assert await redis_store.devices("alice") == [p]
    assert await redis_store.load_all() == [p]
    with pytest.raises(InvalidPresenceEvent):
        decode_presence("a", "d", b'{"n": "6g"}')
