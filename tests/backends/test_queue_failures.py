"""Queue behaviour beyond the shared suite: Redis unreachable, trimming, metrics."""

from __future__ import annotations

import anyio
import pytest

from imsdk_server.backends.queue import (
    ManualClock,
    MemoryQueue,
    MemoryQueueHub,
    QueueBackendError,
    QueueUnavailable,
    RedisQueue,
)
from imsdk_server.metrics import Metrics
from tests.conftest import RedisTarget

pytestmark = pytest.mark.anyio


async def test_redis_down_is_unavailable_not_a_builtin_shadow() -> None:
    q = RedisQueue.from_url("redis://127.0.0.1:1/0", connect_timeout=0.5)
    try:
        for call in (q.publish("t", b"x"), q.pending("t", "g"), q.ack("t", "g", "1-0")):
            with pytest.raises(QueueUnavailable) as info:
                await call
            assert not isinstance(info.value, ConnectionError | TimeoutError)
        with pytest.raises(QueueUnavailable):
            async with q.consume("t", "g", "c") as stream:
                await stream.__anext__()
    finally:
        await q.aclose()


@pytest.mark.redis
async def test_redis_wrong_type_is_a_backend_error(redis_target: RedisTarget) -> None:
    import redis.asyncio

    raw = redis.asyncio.Redis.from_url(redis_target.url)
    await raw.set(f"{redis_target.prefix}queue:clash", b"a string, not a stream")
    await raw.aclose()
    q = RedisQueue.from_url(redis_target.url, prefix=redis_target.prefix)
    try:
        with pytest.raises(QueueBackendError, match="WRONGTYPE"):
            await q.publish("clash", b"x")
    finally:
        await q.aclose()


@pytest.mark.redis
async def test_redis_group_recreated_after_key_deleted(redis_target: RedisTarget) -> None:
    import redis.asyncio

    q = RedisQueue.from_url(redis_target.url, prefix=redis_target.prefix, block=0.1)
    try:
        await q.publish("gone", b"1")
        async with q.consume("gone", "g", "c") as stream:
            assert (await stream.__anext__()).payload == b"1"
            raw = redis.asyncio.Redis.from_url(redis_target.url)
            await raw.delete(f"{redis_target.prefix}queue:gone")
            await raw.aclose()
            with anyio.fail_after(10):
                await q.publish("gone", b"2")
                assert (await stream.__anext__()).payload == b"2"
    finally:
        await q.aclose()


async def test_memory_trims_old_messages_and_their_pending_entries() -> None:
    clock = ManualClock()
    hub = MemoryQueueHub(maxlen=3, clock=clock)
    q = MemoryQueue(hub, claim_idle=1.0)
    async with q.consume("t", "g", "a", batch=1) as a:
        await q.publish("t", b"0")
        assert (await a.__anext__()).payload == b"0"  # pending, never acked
    for i in range(1, 6):
        await q.publish("t", str(i).encode())
    clock.advance(2)
    async with q.consume("t", "g", "b", batch=10) as b:
        with anyio.fail_after(5):
            got = [(await b.__anext__()).payload for _ in range(3)]
    assert got == [b"3", b"4", b"5"]  # "0" was trimmed while pending: dropped, not redelivered
    assert await q.pending("t", "g") == 3


async def test_memory_metrics() -> None:
    metrics = Metrics()
    clock = ManualClock()
    hub = MemoryQueueHub(clock=clock, metrics=metrics)
    q = MemoryQueue(hub, claim_idle=1.0)
    for i in range(4):
        await q.publish("events", bytes([i]))
    async with q.consume("events", "loc", "a") as a:
        first = [await a.__anext__() for _ in range(4)]
    await q.ack("events", "loc", first[0].id)
    clock.advance(5)
    async with q.consume("events", "loc", "b") as b:
        again = [await b.__anext__() for _ in range(3)]
    for d in again:
        await q.ack("events", "loc", d.id)
    assert metrics.value("queue_published", topic="events") == 4
    assert metrics.value("queue_consumed", topic="events", group="loc") == 7
    assert metrics.value("queue_reclaimed", topic="events", group="loc") == 3
    assert metrics.value("queue_acked", topic="events", group="loc") == 4
    assert metrics.value("queue_pending", topic="events", group="loc") == 0
