"""Both cache implementations pass the one conformance suite, plus what is particular to each."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import anyio
import pytest

from imsdk_server.backends.cache import Cache, CacheFull, CacheUnavailable, MemoryCache, RedisCache
from imsdk_server.backends.cache.conformance import CHECKS, Harness
from tests.conftest import RedisTarget

pytestmark = pytest.mark.anyio


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    async def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
async def test_memory_cache_conformance(check: Callable[[Harness], object]) -> None:
    clock = FakeClock()
    cache = MemoryCache(clock=clock)
    await check(Harness(cache, clock.advance, clock))  # type: ignore[misc]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
async def test_non_evicting_memory_cache_conformance(check: Callable[[Harness], object]) -> None:
    clock = FakeClock()
    cache = MemoryCache(evict=False, clock=clock)
    await check(Harness(cache, clock.advance, clock))  # type: ignore[misc]


@pytest.fixture
async def redis_cache(redis_target: RedisTarget) -> AsyncIterator[RedisCache]:
    cache = RedisCache(redis_target.url, prefix=redis_target.prefix)
    yield cache
    await cache.aclose()


@pytest.mark.redis
@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
async def test_redis_cache_conformance(check: Callable[[Harness], object], redis_cache: RedisCache) -> None:
    import time

    await check(Harness(redis_cache, anyio.sleep, time.time))  # type: ignore[misc]


def test_both_satisfy_the_protocol() -> None:
    assert isinstance(MemoryCache(), Cache)
    assert isinstance(RedisCache(prefix="unused:"), Cache)


async def test_memory_cache_evicts_least_recently_used() -> None:
    cache = MemoryCache(max_entries=3)
    for key in "abc":
        await cache.set(key, key.encode())
    assert await cache.get("a") == b"a"  # touch a: b is now the oldest
    await cache.set("d", b"d")
    assert len(cache) == 3
    assert await cache.get("b") is None
    assert [await cache.get(k) for k in "acd"] == [b"a", b"c", b"d"]


async def test_non_evicting_cache_refuses_new_keys_rather_than_drop_live_ones() -> None:
    clock = FakeClock()
    cache = MemoryCache(max_entries=3, evict=False, clock=clock)
    assert not cache.evicts
    assert MemoryCache().evicts
    await cache.set("a", b"a", ttl=10)
    await cache.timed_add("revoked", "t1", expires_at=clock.now + 100)
    await cache.set("c", b"c")  # no expiry
    for call in (
        lambda: cache.set("d", b"d", ttl=5),
        lambda: cache.add("d", b"d"),
        lambda: cache.incr("d", ttl=5),
        lambda: cache.timed_add("other", "m", expires_at=clock.now + 5),
    ):
        with pytest.raises(CacheFull) as info:
            await call()
        assert isinstance(info.value, CacheUnavailable)
        assert info.value.code.name == "STORAGE_UNAVAILABLE"
    # Nothing was dropped, and keys already present still update (the revocation set keeps growing).
    await cache.set("a", b"A", ttl=10)
    await cache.timed_add("revoked", "t2", expires_at=clock.now + 100)
    assert [await cache.get(k) for k in "ac"] == [b"A", b"c"]
    assert set(await cache.timed_members("revoked")) == {"t1", "t2"}
    # Once an entry expires its room is reclaimed for a new key, without touching the live ones.
    await clock.advance(11)
    await cache.set("d", b"d", ttl=5)
    assert len(cache) == 3
    assert await cache.get("d") == b"d"
    assert await cache.timed_contains("revoked", "t1")
    # A deleted key frees its room at once.
    assert await cache.delete("c")
    await cache.set("e", b"e")
    assert await cache.get("e") == b"e"


async def test_non_evicting_cache_reclaims_rewritten_entries_by_their_latest_expiry() -> None:
    clock = FakeClock()
    cache = MemoryCache(max_entries=2, evict=False, clock=clock)
    for _ in range(500):  # many rewrites of the same keys leave stale expiry records behind
        await cache.set("a", b"a", ttl=1)
        await cache.set("b", b"b", ttl=100)
    await clock.advance(2)
    await cache.set("a2", b"x")  # "a" expired: reclaimed
    with pytest.raises(CacheFull):
        await cache.set("b2", b"x")  # "b" is live under its latest expiry
    assert await cache.get("b") == b"b"


def test_memory_cache_rejects_zero_size() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        MemoryCache(max_entries=0)


async def test_redis_down_is_cache_unavailable() -> None:
    # Nothing listens on port 1 of loopback: every call fails fast and maps to the typed error.
    cache = RedisCache("redis://127.0.0.1:1/0", prefix="x:", timeout=0.5)
    for call in (
        lambda: cache.get("k"),
        lambda: cache.set("k", b"v"),
        lambda: cache.incr("k", ttl=1),
        lambda: cache.timed_add("t", "m", expires_at=1e10),
        lambda: cache.timed_members("t"),
    ):
        with pytest.raises(CacheUnavailable) as info:
            await call()
        assert info.value.code.name == "STORAGE_UNAVAILABLE"
    await cache.aclose()
