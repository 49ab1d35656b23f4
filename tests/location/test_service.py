"""The anyio service with the real embedded queue (and the real Redis store and queue where marked)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import pytest

from imsdk_server.backends.queue import MemoryQueue, Queue
from imsdk_server.location import (
    VOIP,
    DeviceNotice,
    LocationConfig,
    LocationService,
    MemoryPresenceStore,
    NoticeKind,
    PresenceStore,
    RedisPresenceStore,
    ServerDownNotice,
    SubscriberOverflow,
    encode_offline,
    encode_online,
)
from imsdk_server.metrics import Metrics
from tests.conftest import RedisTarget

from ._helpers import fmt, off, on

pytestmark = pytest.mark.anyio

CONFIG = LocationConfig(grace=0.2, burst_window=0.2, store_check_interval=0.05, store_retry_interval=0.05)


@asynccontextmanager
async def serving(
    config: LocationConfig = CONFIG, store: PresenceStore | None = None, queue: Queue | None = None
) -> AsyncIterator[LocationService]:
    service = LocationService(config, store=store, queue=queue, metrics=Metrics())
    async with anyio.create_task_group() as tg:
        await tg.start(service.run)
        yield service
        tg.cancel_scope.cancel()


async def eventually(condition: Callable[[], Awaitable[bool]], tries: int = 250) -> None:
    """Poll a condition of a background task (at most about 5 s)."""
    for _ in range(tries):
        if await condition():
            return
        await anyio.sleep(0.02)
    raise AssertionError("condition never became true")


async def next_line(sub: AsyncIterator[object]) -> str:
    with anyio.fail_after(5):
        notice = await sub.__anext__()
    return fmt(notice)  # type: ignore[arg-type]


async def test_events_from_the_queue_reach_subscribers_queries_and_the_store() -> None:
    queue = MemoryQueue()
    store = MemoryPresenceStore()
    async with serving(store=store, queue=queue) as service:
        chat = service.subscribe("chat")
        voip = service.subscribe("voip", classes=VOIP)
        await queue.publish("presence.online", encode_online(on("alice", 7, "4g", 1)))
        await queue.publish("presence.online", encode_online(on("bob", 7, "2g", 1)))
        assert await next_line(chat) == "online alice @7"
        assert await next_line(chat) == "online bob @7"
        assert await next_line(voip) == "online alice @7"
        assert [p.uid for p in service.devices_many(["alice", "bob"])["bob"]] == ["bob"]
        assert service.is_online("bob")
        assert not service.is_online("bob", VOIP)
        # An offline event: queries know at once, subscribers after the grace window.
        await queue.publish("presence.offline", encode_offline(off("alice", 7, 1)))
        assert await next_line(chat) == "offline alice disconnected"
        assert service.devices("alice") == []
        await service.flush_store()
        assert await store.devices("alice") == []
        assert [p.network.value for p in await store.devices("bob")] == ["2g"]
        assert await queue.pending("presence.online", CONFIG.server_id) == 0
        assert service.metrics.value("location_events", kind="online") == 2


async def test_a_quick_reconnect_is_silent() -> None:
    queue = MemoryQueue()
    async with serving(queue=queue) as service:
        chat = service.subscribe("chat")
        await queue.publish("presence.online", encode_online(on("alice", 7, "4g", 1)))
        assert await next_line(chat) == "online alice @7"
        await queue.publish("presence.offline", encode_offline(off("alice", 7, 1)))
        await queue.publish("presence.online", encode_online(on("alice", 7, "3g", 2)))
        await anyio.sleep(CONFIG.grace * 2)  # the grace window has long passed
        await queue.publish("presence.online", encode_online(on("carol", 7)))
        assert await next_line(chat) == "online carol @7"  # nothing came for alice
        assert service.metrics.value("location_suppressed", reason="quick_reconnect") == 1


async def test_malformed_payloads_are_counted_and_acked_and_serving_goes_on() -> None:
    queue = MemoryQueue()
    async with serving(queue=queue) as service:
        chat = service.subscribe("chat")
        await queue.publish("presence.online", b"\xff\xfe not protobuf")
        await queue.publish("presence.online", b'{"uid": 5')
        await queue.publish("presence.online", encode_online(on("", 7)))  # decodes, but no uid
        await queue.publish(
            "presence.online", b'{"uid":"dave","device":"d","access_id":3,"network":3,"session":1}'
        )
        assert await next_line(chat) == "online dave @3"
        assert service.metrics.value("location_events", kind="invalid") == 3
        assert await queue.pending("presence.online", CONFIG.server_id) == 0
        assert not service.handle_payload("other.topic", b"")


async def test_detector_verdicts_give_one_server_down_notice() -> None:
    async with serving() as service:
        chat = service.subscribe("chat")
        for i in range(50):
            service.device_online(on(f"u{i}", 3))
        for _ in range(50):
            await next_line(chat)
        service.server_status(3, "suspect")
        service.server_status(3, "stopped")  # an orderly end of the link changes nothing
        service.server_status(3, "down")
        with anyio.fail_after(5):
            notice = await chat.receive()
        assert isinstance(notice, ServerDownNotice)
        assert notice.server == 3
        assert len(notice.devices) == 50
        assert service.core.connected_count == 0
        with pytest.raises(ValueError, match="server status"):
            service.server_status(3, "sleepy")


async def test_a_slow_subscriber_is_dropped_and_the_others_go_on() -> None:
    config = LocationConfig(grace=0.2, burst_window=0.2, subscriber_buffer=2)
    async with serving(config) as service:
        slow = service.subscribe("slow")
        fast = service.subscribe("fast")
        for i in range(4):
            service.device_online(on(f"u{i}", 1))
            assert await next_line(fast) == f"online u{i} @1"
        assert await next_line(slow) == "online u0 @1"
        assert await next_line(slow) == "online u1 @1"
        with pytest.raises(SubscriberOverflow):
            await next_line(slow)
        assert service.metrics.value("location_subscriber_overflows") == 1
        service.device_online(on("u9", 1))
        assert await next_line(fast) == "online u9 @1"
        await fast.aclose()
        assert service.metrics.value("location_subscribers") == 0


async def test_subscription_replaced_and_closed_ends_iteration() -> None:
    async with serving() as service:
        first = service.subscribe("x")
        second = service.subscribe("x", uids=["b"])
        with pytest.raises(StopAsyncIteration):
            await first.receive()
        service.device_online(on("a", 1))
        service.device_online(on("b", 1))
        notice = await second.receive()
        assert isinstance(notice, DeviceNotice)
        assert notice.kind is NoticeKind.ONLINE
        assert notice.uid == "b"
        async with second:
            pass
        with pytest.raises(StopAsyncIteration):
            await second.receive()


async def test_a_wiped_store_is_rewritten_from_memory() -> None:
    store = MemoryPresenceStore()
    async with serving(store=store) as service:
        for i in range(20):
            service.device_online(on(f"u{i}", 1 + i % 2))
        await service.flush_store()
        assert len(await store.load_all()) == 20
        store.wipe()  # what a flushed Redis looks like
        await eventually(store.intact)
        assert sorted(p.key for p in await store.load_all()) == sorted(p.key for p in service.core.snapshot())
        assert service.metrics.value("location_store_rewrites") >= 2


@pytest.mark.redis
async def test_redis_store_flush_restart_and_queue(redis_target: RedisTarget) -> None:
    import redis.asyncio

    from imsdk_server.backends.queue import RedisQueue

    raw = redis.asyncio.Redis.from_url(redis_target.url)
    queue = RedisQueue(raw, prefix=redis_target.prefix + "q:", block=0.05)
    store = RedisPresenceStore(redis_target.url, prefix=redis_target.prefix + "loc:")
    try:
        async with serving(store=store, queue=queue) as service:
            chat = service.subscribe("chat")
            for i in range(30):
                await queue.publish("presence.online", encode_online(on(f"u{i}", 4, "wifi", 1)))
            for i in range(30):
                assert await next_line(chat) == f"online u{i} @4"
            await service.flush_store()
            assert len(await store.load_all()) == 30
            # Redis loses our keys: the marker check notices and the store is rewritten whole.
            keys = [k async for k in raw.scan_iter(match=redis_target.prefix + "loc:*")]
            await raw.delete(*keys)

            async def rewritten() -> bool:
                return len(await store.load_all()) == 30 and await store.intact()

            await eventually(rewritten)
        # A restarted location server loads the store: settled presence, no notices.
        async with serving(
            store=RedisPresenceStore(redis_target.url, prefix=redis_target.prefix + "loc:")
        ) as again:
            assert again.core.connected_count == 30
            assert again.is_online("u7")
            sub = again.subscribe("chat")
            assert sub.pending() == 0
    finally:
        await queue.aclose()
        await raw.aclose()
        await store.aclose()


async def test_an_unreachable_store_does_not_stop_presence() -> None:
    store = RedisPresenceStore("redis://127.0.0.1:1/0", timeout=0.2)
    async with serving(store=store) as service:
        chat = service.subscribe("chat")
        service.device_online(on("alice", 1))
        assert await next_line(chat) == "online alice @1"
        assert service.is_online("alice")

        async def failing() -> bool:
            return service.metrics.value("location_store_errors") >= 2

        await eventually(failing)
        service.device_offline(off("alice", 1))
        assert await next_line(chat) == "offline alice disconnected"
