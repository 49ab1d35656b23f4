"""Login delivery on every new session, with the embedded backends: an in-process queue carrying the access
servers' online and offline events, a real location service reading it (its grace window delays offline
notices and a quick reconnect produces none), a SQLite store, and the notification service reading the same
events in its own consumer group. The sink stands for the access servers and records what it is handed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from imsdk_proto import messages as pb
from imsdk_proto._header import Header
from imsdk_proto.codes import Biz, NotifyFunc
from imsdk_server.backends.queue import MemoryQueue
from imsdk_server.backends.sql import SQLiteDatabase
from imsdk_server.location import (
    CHAT,
    DeviceNotice,
    DeviceOffline,
    DeviceOnline,
    LocationConfig,
    LocationService,
    Network,
    Notice,
    encode_offline,
    encode_online,
)
from imsdk_server.metrics import Metrics
from imsdk_server.notify import NotifyConfig, NotifyService, Outcome, Policy, SQLNotificationStore
from tests.notify.test_service import RecordingSink

pytestmark = pytest.mark.anyio

#: The location service's grace window: long enough that every reconnect below falls inside it.
GRACE = 1.0
CONFIG = NotifyConfig(node_id=2, policies={"friend_request": Policy.KEEP_LATEST, "typing": Policy.DROP})


async def until(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(5):
        while not condition():  # noqa: ASYNC110 - polls state that has no event of its own
            await anyio.sleep(0.002)


@dataclass
class World:
    service: NotifyService
    location: LocationService
    queue: MemoryQueue
    store: SQLNotificationStore
    sink: RecordingSink
    metrics: Metrics
    notices: list[Notice]

    def _settled(self) -> bool:
        return not self.service.core.loads_inflight

    async def connect(self, uid: str, device: str, server: int, session: int) -> None:
        """An access server publishes the session's online event; returns once both services took it."""
        event = DeviceOnline(uid, device, server, session, Network.WIFI)
        await self.queue.publish("presence.online", encode_online(event))
        await until(
            lambda: (
                self.service.core.online_devices(uid).get(device) == server
                and any(p.session == session for p in self.location.devices(uid))
            )
        )
        await until(self._settled)

    async def drop(self, uid: str, device: str, server: int, session: int) -> None:
        """The line closes: the offline event; returns once both services took it (the location service
        answers queries from it at once; its offline notice waits for the grace window)."""
        await self.queue.publish(
            "presence.offline", encode_offline(DeviceOffline(uid, device, server, session))
        )
        await until(
            lambda: (
                device not in self.service.core.online_devices(uid)
                and not any(p.device == device for p in self.location.devices(uid))
            )
        )

    def received(self, uid: str, device: str) -> list[tuple[int, int]]:
        """(notify_id, session named by the push) of every frame handed on for the device."""
        return [
            (n.notify_id, h.session)
            for _, h, n in self.sink.frames
            if (h.receiver_uid, h.receiver_device) == (uid, device)
        ]

    async def ack(self, uid: str, device: str, server: int, *ids: int) -> None:
        header = Header(
            biz=Biz.NOTIFY, func=NotifyFunc.ACK, access_id=server, sender_uid=uid, sender_device=device
        )
        assert await self.service.handle_frame(header, pb.NotifyAck(notify_ids=ids).SerializeToString()) == []


@asynccontextmanager
async def world(tmp_path: Path) -> AsyncIterator[World]:
    metrics = Metrics()
    queue = MemoryQueue(block=0.05)
    location = LocationService(
        LocationConfig(grace=GRACE, burst_window=0.05), queue=queue, metrics=metrics.child("location")
    )
    store = SQLNotificationStore(SQLiteDatabase(str(tmp_path / "notify.db")), metrics=metrics)
    await store.setup()
    sink = RecordingSink()
    service = NotifyService(CONFIG, store=store, sink=sink, presence=location, metrics=metrics)
    notices: list[Notice] = []

    async def watch() -> None:
        async for notice in location.subscribe("test-watcher", classes=CHAT):
            notices.append(notice)

    async with anyio.create_task_group() as tg:
        await tg.start(location.run)
        tg.start_soon(watch)
        await tg.start(lambda task_status: service.run(location=location, task_status=task_status))
        try:
            yield World(service, location, queue, store, sink, metrics, notices)
        finally:
            tg.cancel_scope.cancel()
    await store.aclose()
    await queue.aclose()


async def test_a_notification_posted_in_the_grace_window_arrives_once_after_a_quick_reconnect(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        await w.connect("alice", "phone", 11, session=1)
        await w.drop("alice", "phone", 11, session=1)
        # The line is gone, and the service knows it: nothing claims a push.
        stored = await w.service.notify("alice", "friend_request", b"from bob")
        assert stored.outcome is Outcome.STORED
        assert (await w.service.notify("alice", "typing")).outcome is Outcome.DROPPED
        assert w.sink.frames == []
        # Back within the grace window, on the same access server: the location service stays silent, the
        # new session gets the notification from the access server's own event.
        await w.connect("alice", "phone", 11, session=2)
        await w.sink.wait_for(1)
        await anyio.sleep(GRACE + 0.3)  # past the grace window: nothing else comes
        assert w.received("alice", "phone") == [(stored.notify_id, 2)]
        device_notices = [n for n in w.notices if isinstance(n, DeviceNotice)]
        assert [(n.kind.name, n.presence and n.presence.session) for n in device_notices] == [("ONLINE", 1)]
        assert w.metrics.value("notify_login_delivered_total") == 1
        # Still pending until acked; the ack removes it, and the next session gets nothing.
        assert [r.notify_id for r in await w.store.pending("alice")] == [stored.notify_id]
        await w.ack("alice", "phone", 11, stored.notify_id)
        assert await w.store.pending("alice") == []
        await w.drop("alice", "phone", 11, session=2)
        await w.connect("alice", "phone", 11, session=3)
        assert len(w.sink.frames) == 1


async def test_a_quick_move_to_another_access_server_delivers_once(tmp_path: Path) -> None:
    """Here both words of the new session arrive (the event, and the location service's MOVED notice)."""
    async with world(tmp_path) as w:
        await w.connect("bob", "pad", 11, session=1)
        await w.drop("bob", "pad", 11, session=1)
        stored = await w.service.notify("bob", "friend_request", b"from alice")
        assert stored.outcome is Outcome.STORED
        await w.connect("bob", "pad", 12, session=2)
        await w.sink.wait_for(1)
        await until(lambda: any(isinstance(n, DeviceNotice) and n.kind.name == "MOVED" for n in w.notices))
        await until(w._settled)
        await anyio.sleep(GRACE + 0.3)
        assert w.received("bob", "pad") == [(stored.notify_id, 2)]
        assert [a for a, _, _ in w.sink.frames] == [12]


async def test_an_unacknowledged_push_stays_pending_and_comes_again_in_the_next_session(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        await w.connect("carol", "phone", 11, session=1)
        pushed = await w.service.notify("carol", "friend_request", b"from dave")
        assert pushed.outcome is Outcome.PUSHED  # handed on, not known to have arrived
        assert w.received("carol", "phone") == [(pushed.notify_id, 0)]
        # The line drops before the device acks: the row stays pending ...
        await w.drop("carol", "phone", 11, session=1)
        assert [r.notify_id for r in await w.store.pending("carol")] == [pushed.notify_id]
        # ... and the next session, a quick reconnect with no location notice, gets it again.
        await w.connect("carol", "phone", 11, session=2)
        await w.sink.wait_for(2)
        assert w.received("carol", "phone") == [(pushed.notify_id, 0), (pushed.notify_id, 2)]
        await w.ack("carol", "phone", 11, pushed.notify_id)
        assert await w.store.pending("carol") == []


async def test_bad_events_are_counted_and_the_service_keeps_reading(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.queue.publish("presence.online", b"\xff\xfe not an event")
        await w.queue.publish("presence.offline", encode_offline(DeviceOffline("", "", 0, 0)))
        await until(lambda: w.metrics.value("notify_session_events_total", kind="invalid") == 2)
        await w.service.notify("erin", "friend_request", b"x")
        await w.connect("erin", "phone", 11, session=1)
        await w.sink.wait_for(1)
        assert w.metrics.value("notify_session_events_total", kind="online") == 1
