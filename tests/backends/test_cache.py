"""Both cache implementations pass the one conformance suite, plus what is particular to each."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import anyio
import pytest

from imsdk_server.backends.cache import Cache, CacheUnavailable, MemoryCache, RedisCache
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
