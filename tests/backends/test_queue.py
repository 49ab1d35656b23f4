"""The queue conformance suite against the embedded and the Redis Streams implementations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import pytest

from imsdk_server.backends.queue import ManualClock, MemoryQueue, MemoryQueueHub, Queue, RedisQueue
from imsdk_server.backends.queue import conformance as c
from tests.conftest import RedisTarget

Check = Callable[[c.QueueFactory, c.Advance, float], Awaitable[None]]


def _without_time(f: Callable[[c.QueueFactory], Awaitable[None]]) -> Check:
    async def run(make: c.QueueFactory, advance: c.Advance, claim_idle: float) -> None:
        await f(make)

    return run


CHECKS: list[tuple[str, Check]] = [
    (f.__name__, _without_time(f))
    for f in (
        c.check_publish_consume,
        c.check_every_group_sees_every_message,
        c.check_one_consumer_per_message,
        c.check_ack,
        c.check_bounded_batches,
        c.check_group_start,
        c.check_invalid_arguments,
        c.check_closed_queue,
    )
] + [("check_dead_consumer_reclaimed", c.check_dead_consumer_reclaimed)]


@pytest.mark.anyio
@pytest.mark.parametrize(("name", "check"), CHECKS, ids=[n for n, _ in CHECKS])
async def test_memory(name: str, check: Check) -> None:
    clock = ManualClock()
    hub = MemoryQueueHub(clock=clock)

    async def make(claim_idle: float) -> Queue:
        return await hub.connect(claim_idle=claim_idle)

    async def advance(seconds: float) -> None:
        clock.advance(seconds)
        hub.recheck()

    await check(make, advance, 5.0)


@pytest.mark.anyio
@pytest.mark.redis
@pytest.mark.parametrize(("name", "check"), CHECKS, ids=[n for n, _ in CHECKS])
async def test_redis(name: str, check: Check, redis_target: RedisTarget) -> None:
    async def make(claim_idle: float) -> Queue:
        return RedisQueue.from_url(
            redis_target.url, prefix=redis_target.prefix, claim_idle=claim_idle, block=0.2
        )

    await check(make, anyio.sleep, 0.2)


@pytest.mark.parametrize("anyio_backend", ["trio"])
@pytest.mark.anyio
async def test_memory_whole_suite_on_trio(anyio_backend: str) -> None:
    """The embedded queue is backend-neutral: the whole suite passes on trio too."""
    clock = ManualClock()
    hub = MemoryQueueHub(clock=clock)

    async def make(claim_idle: float) -> Queue:
        return MemoryQueue(hub, claim_idle=claim_idle)

    async def advance(seconds: float) -> None:
        clock.advance(seconds)
        hub.recheck()

    await c.check_queue(make, advance, claim_idle=5.0)
