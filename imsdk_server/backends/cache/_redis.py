"""The real cache: Redis through ``redis.asyncio`` (runs on anyio's asyncio backend)."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from imsdk_server.backends.cache._base import CacheUnavailable

__all__ = ["RedisCache"]


class RedisCache:
    """A :class:`~imsdk_server.backends.cache.Cache` in Redis. Every key is stored under ``prefix``.

    Values are plain strings with ``PX`` expiry; counters use ``INCR``; timed sets are sorted sets scored by
    their members' expiry times, pruned on write, and the whole key expires with its last member. Redis and
    socket errors become :class:`CacheUnavailable`.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "imsdk:",
        client: Any | None = None,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if client is None:
            import redis.asyncio

            client = redis.asyncio.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30
            )
        self._redis: Any = client
        self._prefix = prefix
        self._clock = clock

    def _k(self, key: str) -> str:
        return self._prefix + key

    @asynccontextmanager
    async def _mapped(self) -> AsyncIterator[None]:
        import redis

        try:
            yield
        except (redis.RedisError, OSError) as exc:
            raise CacheUnavailable(f"Redis failed: {exc}") from exc

    @staticmethod
    def _ms(ttl: float | None) -> int | None:
        return None if ttl is None else max(1, math.ceil(ttl * 1000))

    async def get(self, key: str) -> bytes | None:
        async with self._mapped():
            value = await self._redis.get(self._k(key))
        return None if value is None else bytes(value)

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        async with self._mapped():
            await self._redis.set(self._k(key), value, px=self._ms(ttl))

    async def add(self, key: str, value: bytes, *, ttl: float | None = None) -> bool:
        async with self._mapped():
            return bool(await self._redis.set(self._k(key), value, px=self._ms(ttl), nx=True))

    async def delete(self, key: str) -> bool:
        async with self._mapped():
            return bool(await self._redis.delete(self._k(key)))

    async def incr(self, key: str, *, ttl: float) -> int:
        k = self._k(key)
        async with self._mapped():
            pipe = self._redis.pipeline(transaction=True)
            pipe.set(k, 0, px=self._ms(ttl), nx=True)
            pipe.incr(k)
            _, count = await pipe.execute()
        return int(count)

    async def timed_add(self, key: str, member: str, *, expires_at: float) -> None:
        k = self._k(key)
        async with self._mapped():
            pipe = self._redis.pipeline(transaction=True)
            pipe.zadd(k, {member: expires_at}, gt=True)
            pipe.zremrangebyscore(k, "-inf", self._clock())
            pipe.zrange(k, -1, -1, withscores=True)
            _, _, last = await pipe.execute()
            if last:
                await self._redis.pexpireat(k, math.ceil(float(last[0][1]) * 1000))

    async def timed_contains(self, key: str, member: str) -> bool:
        async with self._mapped():
            score = await self._redis.zscore(self._k(key), member)
        return score is not None and float(score) > self._clock()

    async def timed_members(self, key: str) -> Mapping[str, float]:
        async with self._mapped():
            rows = await self._redis.zrangebyscore(
                self._k(key), f"({self._clock()!r}", "+inf", withscores=True
            )
        return {(m.decode() if isinstance(m, bytes) else str(m)): float(s) for m, s in rows}

    async def aclose(self) -> None:
        async with self._mapped():
            await self._redis.aclose()
