"""The queue conformance suite: plain async checks every :class:`Queue` implementation must pass.

Call :func:`check_queue` with

* ``make_queue(claim_idle)``: returns a fresh queue client on the backend under test whose reclaim idle time
  is ``claim_idle`` seconds (clients made for one check share the backend);
* ``advance(seconds)``: lets at least that much time pass *as the queue sees it* (move a manual clock and
  wake consumers for an embedded queue; sleep for a real server);
* ``claim_idle``: the short idle time used by the reclaim checks (keep it small for real servers).

Each check uses topics of its own. Checks raise :class:`AssertionError` on failure, wait with timeouts and
never assert on timing.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel

from imsdk_server.backends.queue._base import (
    ConsumerStream,
    Delivery,
    InvalidQueueArgument,
    Queue,
    QueueClosed,
)

__all__ = [
    "Advance",
    "QueueFactory",
    "check_ack",
    "check_bounded_batches",
    "check_closed_queue",
    "check_dead_consumer_reclaimed",
    "check_every_group_sees_every_message",
    "check_group_start",
    "check_invalid_arguments",
    "check_one_consumer_per_message",
    "check_publish_consume",
    "check_queue",
]

#: Opens a new queue client on the backend under test, with the given reclaim idle time in seconds.
QueueFactory = Callable[[float], Awaitable[Queue]]
#: Lets at least the given number of seconds pass as the queue sees it.
Advance = Callable[[float], Awaitable[None]]

#: Idle time for checks that must never see a reclaim.
_NO_RECLAIM = 600.0
_TIMEOUT = 10.0


def _topic(tag: str) -> str:
    return f"{tag}-{secrets.token_hex(4)}"


def _order(message_id: str) -> tuple[int, ...]:
    return tuple(int(p) for p in message_id.split("-"))


async def _take(stream: ConsumerStream, n: int) -> list[Delivery]:
    out: list[Delivery] = []
    with anyio.fail_after(_TIMEOUT):
        while len(out) < n:
            out.append(await stream.__anext__())
    return out


async def _expect(exc: type[BaseException], awaitable: Awaitable[Any]) -> None:
    try:
        await awaitable
    except exc:
        return
    raise AssertionError(f"expected {exc.__name__}")


async def check_publish_consume(make_queue: QueueFactory) -> None:
    """Payloads (any bytes, empty too) arrive intact, in publish order, as first attempts; acks clear them."""
    q = await make_queue(_NO_RECLAIM)
    try:
        t = _topic("order")
        payloads = [b"", bytes(range(256)), b"\x00" * 1000, *(f"m{i}".encode() for i in range(20))]
        ids = [await q.publish(t, p) for p in payloads]
        assert len(set(ids)) == len(ids)
        assert sorted(ids, key=_order) == ids, ids
        async with q.consume(t, "g", "c1") as stream:
            got = await _take(stream, len(payloads))
        assert [d.payload for d in got] == payloads
        assert [d.id for d in got] == ids
        assert all(d.attempt == 1 and d.topic == t and d.group == "g" for d in got)
        assert await q.pending(t, "g") == len(payloads)
        for d in got:
            assert await q.ack(t, "g", d.id)
        assert await q.pending(t, "g") == 0
    finally:
        await q.aclose()


async def check_every_group_sees_every_message(make_queue: QueueFactory) -> None:
    """Each consumer group gets its own copy of every message; acking in one group leaves the other alone."""
    p, c = await make_queue(_NO_RECLAIM), await make_queue(_NO_RECLAIM)
    try:
        t = _topic("fanout")
        sent = [f"e{i}".encode() for i in range(10)]
        for payload in sent:
            await p.publish(t, payload)
        for group in ("location", "audit", "billing"):
            async with c.consume(t, group, "only") as stream:
                got = await _take(stream, len(sent))
            assert [d.payload for d in got] == sent, group
            for d in got[:5]:
                await c.ack(t, group, d.id)
        assert await c.pending(t, "location") == 5
        assert await c.pending(t, "audit") == 5
    finally:
        await p.aclose()
        await c.aclose()


async def check_one_consumer_per_message(make_queue: QueueFactory) -> None:
    """Consumers of one group share the work: every message reaches exactly one of them."""
    q1, q2 = await make_queue(_NO_RECLAIM), await make_queue(_NO_RECLAIM)
    try:
        t = _topic("share")
        total = 60
        seen: dict[str, list[bytes]] = {"a": [], "b": []}
        done = anyio.Event()

        async def run(q: Queue, name: str) -> None:
            async with q.consume(t, "workers", name, batch=4) as stream:
                async for d in stream:
                    seen[name].append(d.payload)
                    assert await q.ack(t, "workers", d.id)
                    if len(seen["a"]) + len(seen["b"]) >= total:
                        done.set()

        with anyio.fail_after(_TIMEOUT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run, q1, "a")
                tg.start_soon(run, q2, "b")
                for i in range(total):
                    await q1.publish(t, f"job{i}".encode())
                    if i % 10 == 0:
                        await anyio.lowlevel.checkpoint()
                await done.wait()
                tg.cancel_scope.cancel()
        both = seen["a"] + seen["b"]
        assert sorted(both) == sorted(f"job{i}".encode() for i in range(total)), both
        assert await q1.pending(t, "workers") == 0
    finally:
        await q1.aclose()
        await q2.aclose()


async def check_ack(make_queue: QueueFactory) -> None:
    """ack is True once, then False; unknown ids and groups give False; malformed ids are refused."""
    q = await make_queue(_NO_RECLAIM)
    try:
        t = _topic("ack")
        mid = await q.publish(t, b"x")
        assert not await q.ack(t, "nobody", mid)
        assert await q.pending(t, "nobody") == 0
        assert await q.pending(_topic("none"), "g") == 0
        async with q.consume(t, "g", "c") as stream:
            (d,) = await _take(stream, 1)
        assert d.id == mid
        assert await q.ack(t, "g", mid)
        assert not await q.ack(t, "g", mid)
        other = await q.publish(t, b"y")
        assert not await q.ack(t, "g", other)  # never delivered: not pending
        for bad in ("", "abc", "1-x", "-1-0"):
            await _expect(InvalidQueueArgument, q.ack(t, "g", bad))
    finally:
        await q.aclose()


async def check_bounded_batches(make_queue: QueueFactory) -> None:
    """A consumer fetches at most ``batch`` messages at a time (they become pending as they are fetched)."""
    q = await make_queue(_NO_RECLAIM)
    try:
        t = _topic("batch")
        for i in range(10):
            await q.publish(t, f"{i}".encode())
        async with q.consume(t, "g", "c", batch=3) as stream:
            first = await _take(stream, 1)
            assert await q.pending(t, "g") == 3
            rest = await _take(stream, 9)
        assert [d.payload for d in first + rest] == [f"{i}".encode() for i in range(10)]
        assert await q.pending(t, "g") == 10
    finally:
        await q.aclose()


async def check_group_start(make_queue: QueueFactory) -> None:
    """A new group starts at the oldest retained message by default, or after the newest with "latest"."""
    q = await make_queue(_NO_RECLAIM)
    try:
        t = _topic("start")
        await q.publish(t, b"old")
        async with q.consume(t, "late", "c", start="latest") as late:
            await q.publish(t, b"new")
            assert [d.payload for d in await _take(late, 1)] == [b"new"]
        async with q.consume(t, "early", "c") as early:
            assert [d.payload for d in await _take(early, 2)] == [b"old", b"new"]
        # The start only matters when the group is created.
        await q.publish(t, b"newer")
        async with q.consume(t, "late", "c2", start="earliest") as again:
            assert [d.payload for d in await _take(again, 1)] == [b"newer"]
    finally:
        await q.aclose()


async def check_dead_consumer_reclaimed(
    make_queue: QueueFactory, advance: Advance, claim_idle: float
) -> None:
    """A consumer that dies without acking leaves pending entries that another consumer reclaims."""
    q_dead, q_live = await make_queue(claim_idle), await make_queue(claim_idle)
    try:
        t = _topic("reclaim")
        ids = [await q_dead.publish(t, f"work{i}".encode()) for i in range(4)]
        async with q_dead.consume(t, "g", "doomed", batch=4) as stream:
            taken = await _take(stream, 4)
            assert await q_dead.ack(t, "g", taken[0].id)  # it finished one job, then died
        await q_dead.aclose()
        assert await q_live.pending(t, "g") == 3
        await advance(claim_idle * 1.5)
        async with q_live.consume(t, "g", "survivor", batch=2) as stream:
            redone = await _take(stream, 3)
            assert sorted(d.id for d in redone) == ids[1:]
            assert sorted(d.payload for d in redone) == [b"work1", b"work2", b"work3"]
            assert all(d.attempt == 2 for d in redone), [d.attempt for d in redone]
            for d in redone:
                assert await q_live.ack(t, "g", d.id)
            fresh = await q_live.publish(t, b"after")
            (d,) = await _take(stream, 1)
            assert (d.id, d.payload, d.attempt) == (fresh, b"after", 1)
            await q_live.ack(t, "g", d.id)
        assert await q_live.pending(t, "g") == 0
        # A consumer that keeps a delivery unacked too long loses it to a peer, which sees the next attempt.
        again = await q_live.publish(t, b"slow")
        async with q_live.consume(t, "g", "slow", batch=1) as slow:
            (d1,) = await _take(slow, 1)
            await advance(claim_idle * 1.5)
            async with q_live.consume(t, "g", "peer", batch=1) as peer:
                (d2,) = await _take(peer, 1)
        assert d1.id == d2.id == again
        assert (d1.attempt, d2.attempt) == (1, 2)
        assert await q_live.ack(t, "g", again)
    finally:
        await q_dead.aclose()
        await q_live.aclose()


async def check_invalid_arguments(make_queue: QueueFactory) -> None:
    """Bad names, batch sizes and payloads are refused with :class:`InvalidQueueArgument`."""
    q = await make_queue(_NO_RECLAIM)
    try:
        for bad in ("", "a b", "a/b", "-x", "x" * 200):
            await _expect(InvalidQueueArgument, q.publish(bad, b"x"))
            try:
                q.consume(bad, "g", "c")
            except InvalidQueueArgument:
                pass
            else:
                raise AssertionError(f"consume accepted topic {bad!r}")
        payload: Any = "text"
        await _expect(InvalidQueueArgument, q.publish("t", payload))
        await _expect(InvalidQueueArgument, q.publish("t", b"x" * (1024 * 1024 + 1)))
        for kwargs in ({"batch": 0}, {"batch": 10_001}, {"start": "middle"}):
            try:
                q.consume("t", "g", "c", **kwargs)
            except InvalidQueueArgument:
                continue
            raise AssertionError(f"consume accepted {kwargs}")
    finally:
        await q.aclose()


async def check_closed_queue(make_queue: QueueFactory) -> None:
    """Closing a queue ends a consumer blocked in another task with :class:`QueueClosed`; calls then fail."""
    q = await make_queue(_NO_RECLAIM)
    t = _topic("closed")
    outcome: list[BaseException] = []

    async def consume() -> None:
        try:
            async with q.consume(t, "g", "c") as stream:
                async for _ in stream:
                    pass
        except QueueClosed as exc:
            outcome.append(exc)

    with anyio.fail_after(_TIMEOUT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await anyio.sleep(0.05)
            await q.aclose()
    assert len(outcome) == 1, outcome
    await _expect(QueueClosed, q.publish(t, b"x"))
    await _expect(QueueClosed, q.pending(t, "g"))
    await q.aclose()  # idempotent


async def check_queue(make_queue: QueueFactory, advance: Advance, *, claim_idle: float) -> None:
    """Run every check above."""
    await check_publish_consume(make_queue)
    await check_every_group_sees_every_message(make_queue)
    await check_one_consumer_per_message(make_queue)
    await check_ack(make_queue)
    await check_bounded_batches(make_queue)
    await check_group_start(make_queue)
    await check_dead_consumer_reclaimed(make_queue, advance, claim_idle)
    await check_invalid_arguments(make_queue)
    await check_closed_queue(make_queue)
