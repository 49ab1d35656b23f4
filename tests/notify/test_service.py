"""The notification service with the embedded backends: a real location service (in-process store) as the
source of presence and online notices, a SQLite notification store, and a sink standing for the access
servers that records what it is handed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest

from imsdk_proto import messages as pb
from imsdk_proto._header import Header
from imsdk_proto.codes import Biz, ErrorCode, Flags, NotifyFunc
from imsdk_server.backends.sql import SQLiteDatabase
from imsdk_server.location import DeviceOffline, DeviceOnline, LocationConfig, LocationService, Network
from imsdk_server.metrics import Metrics
from imsdk_server.notify import (
    NotificationRejected,
    NotifyConfig,
    NotifyService,
    NotifyStorageUnavailable,
    Outcome,
    Policy,
    SQLNotificationStore,
    StoredNotification,
)

pytestmark = pytest.mark.anyio

CONFIG = NotifyConfig(
    node_id=1,
    policies={"friend_request": Policy.KEEP_LATEST, "badge": Policy.KEEP_LATEST, "typing": Policy.DROP},
    tombstone_ttl=60.0,
)


@dataclass
class RecordingSink:
    """Plays the access servers: records each frame; servers in ``down`` refuse, those in ``broken`` raise."""

    frames: list[tuple[int, Header, pb.Notification]] = field(default_factory=list)
    down: set[int] = field(default_factory=set)
    broken: set[int] = field(default_factory=set)
    changed: anyio.Event = field(default_factory=anyio.Event)

    async def send_frame(self, access_id: int, header: Header, body: bytes) -> bool:
        if access_id in self.down:
            return False
        if access_id in self.broken:
            raise OSError("broken sink")
        self.frames.append((access_id, header, pb.Notification.FromString(body)))
        self.changed.set()
        self.changed = anyio.Event()
        return True

    async def wait_for(self, count: int) -> None:
        with anyio.fail_after(5):
            while len(self.frames) < count:
                await self.changed.wait()

    def to(self, uid: str, device: str) -> list[pb.Notification]:
        return [n for _, h, n in self.frames if (h.receiver_uid, h.receiver_device) == (uid, device)]


@dataclass
class World:
    service: NotifyService
    location: LocationService
    store: SQLNotificationStore
    sink: RecordingSink
    metrics: Metrics
    clock: list[float]

    async def online(self, uid: str, device: str, server: int, session: int = 1) -> None:
        """A device connects; returns once its login delivery has read the store."""
        self.location.device_online(DeviceOnline(uid, device, server, session, Network.WIFI))
        with anyio.fail_after(5):
            await anyio.sleep(0.001)
            while self.service.core.loads_inflight:  # noqa: ASYNC110 - polls a core counter, no event to wait on
                await anyio.sleep(0.001)

    def offline(self, uid: str, device: str, server: int, session: int = 1) -> None:
        self.location.device_offline(DeviceOffline(uid, device, server, session))


@asynccontextmanager
async def world(tmp_path: Path) -> AsyncIterator[World]:
    metrics = Metrics()
    location = LocationService(
        LocationConfig(grace=0.05, burst_window=0.05), metrics=metrics.child("location")
    )
    store = SQLNotificationStore(SQLiteDatabase(str(tmp_path / "notify.db")), metrics=metrics)
    await store.setup()
    sink = RecordingSink()
    clock = [1_700_000_000.0]
    service = NotifyService(
        CONFIG, store=store, sink=sink, presence=location, metrics=metrics, clock=lambda: clock[0]
    )
    async with anyio.create_task_group() as tg:
        await tg.start(location.run)
        await tg.start(lambda task_status: service.run(location=location, task_status=task_status))
        try:
            yield World(service, location, store, sink, metrics, clock)
        finally:
            tg.cancel_scope.cancel()
    await store.aclose()


async def test_online_users_get_notifications_at_once(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.online("alice", "phone", 11)
        await w.online("alice", "pad", 12)
        result = await w.service.notify("alice", "typing", b"bob is typing")
        assert result.outcome is Outcome.DELIVERED
        assert {(a, h.receiver_device) for a, h, _ in w.sink.frames} == {(11, "phone"), (12, "pad")}
        assert all(
            n.payload == b"bob is typing" and n.notify_id == result.notify_id for _, _, n in w.sink.frames
        )
        assert all(h.msg_id == result.notify_id for _, h, _ in w.sink.frames)
        # A stored type is stored and pushed at once too.
        result = await w.service.notify("alice", "friend_request", b"carol")
        assert result.outcome is Outcome.PUSHED  # pending until a device acks it
        stored = await w.store.get("alice", "friend_request")
        assert stored is not None
        assert stored.pending
        assert len(w.sink.frames) == 4


async def test_offline_merge_login_delivery_and_ack(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        # Offline: discardable types are dropped, stored types merge to the latest per type.
        assert (await w.service.notify("bob", "typing")).outcome is Outcome.DROPPED
        first = await w.service.notify("bob", "friend_request", b"from carol")
        second = await w.service.notify("bob", "friend_request", b"from dave")
        assert (first.outcome, second.outcome) == (Outcome.STORED, Outcome.STORED)
        assert second.notify_id > first.notify_id
        late = await w.service.notify("bob", "friend_request", b"stale", notify_id=first.notify_id - 1)
        assert late.outcome is Outcome.SUPERSEDED
        badge = await w.service.notify("bob", "badge", b"3", merge_key="group-1")
        assert w.sink.frames == []

        # Login: the latest of each key arrives, in version order, on the device that came online.
        await w.online("bob", "phone", 21)
        await w.sink.wait_for(2)
        got = w.sink.to("bob", "phone")
        assert [(n.type, n.payload, n.merge_key) for n in got] == [
            ("friend_request", b"from dave", ""),
            ("badge", b"3", "group-1"),
        ]
        assert [n.notify_id for n in got] == [second.notify_id, badge.notify_id]

        # The device acks through its access server; the rows leave the pending set.
        ack = Header(
            biz=Biz.NOTIFY, func=NotifyFunc.ACK, access_id=21, sender_uid="bob", sender_device="phone"
        )
        body = pb.NotifyAck(notify_ids=[second.notify_id, badge.notify_id]).SerializeToString()
        assert await w.service.handle_frame(ack, body) == []
        assert await w.store.pending("bob") == []
        assert w.metrics.value("notify_store_acked_total") == 2

        # A later login delivers nothing again; a stale write after the ack is still superseded.
        w.offline("bob", "phone", 21)
        assert (await w.service.notify("bob", "friend_request", notify_id=first.notify_id)).outcome is (
            Outcome.SUPERSEDED
        )
        await w.online("bob", "phone", 22, session=2)
        with anyio.move_on_after(0.2):
            await w.sink.wait_for(3)
        assert len(w.sink.frames) == 2


async def test_unacked_notifications_come_back_at_the_next_login(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.service.notify("eve", "friend_request", b"x")
        await w.online("eve", "phone", 31)
        await w.sink.wait_for(1)
        w.offline("eve", "phone", 31)
        await anyio.sleep(0.1)  # past the location service's grace window
        await w.online("eve", "phone", 32, session=2)
        await w.sink.wait_for(2)
        assert [a for a, _, _ in w.sink.frames] == [31, 32]


async def test_business_frames_are_answered(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.online("alice", "phone", 11)
        header = Header(biz=Biz.NOTIFY, func=NotifyFunc.NOTIFY, seq=4, msg_id=8, receiver_uid="alice")
        body = pb.Notification(type="friend_request", payload=b"hi", notify_id=1234).SerializeToString()
        ((reply, reply_body),) = await w.service.handle_frame(header, body)
        assert reply.flags == Flags.RESPONSE
        assert list(pb.NotifyAck.FromString(reply_body).notify_ids) == [1234]
        assert [n.notify_id for n in w.sink.to("alice", "phone")] == [1234]
        # A resend is a duplicate: answered, not pushed again.
        ((reply, _),) = await w.service.handle_frame(header, body)
        assert reply.error == 0
        assert len(w.sink.frames) == 1
        # A client may not send notifications.
        forged = header.replace(access_id=11, sender_uid="alice", sender_device="phone")
        assert await w.service.handle_frame(forged, body) == []
        assert w.metrics.value("notify_errors_total", code="FORBIDDEN") == 1


async def test_database_down(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.online("alice", "phone", 11)
        await w.store.aclose()
        with pytest.raises(NotifyStorageUnavailable) as info:
            await w.service.notify("alice", "friend_request", b"x")
        assert info.value.code is ErrorCode.STORAGE_UNAVAILABLE
        assert w.sink.frames == []  # store first: nothing pushed without the commit
        # Discardable types do not need the store: still served.
        assert (await w.service.notify("alice", "typing")).outcome is Outcome.DELIVERED
        # A login load and an ack that fail are counted; the service keeps running.
        await w.service.device_online("alice", "pad", 12)
        ack = Header(
            biz=Biz.NOTIFY, func=NotifyFunc.ACK, access_id=11, sender_uid="alice", sender_device="phone"
        )
        await w.service.handle_frame(ack, pb.NotifyAck(notify_ids=[5]).SerializeToString())
        assert w.metrics.value("notify_store_errors_total") == 3
        with pytest.raises(NotifyStorageUnavailable):
            await w.service.purge()


async def test_unreachable_access_server_and_bad_input(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.online("alice", "phone", 11)
        await w.online("alice", "pad", 13)
        w.sink.down.add(11)
        w.sink.broken.add(13)
        result = await w.service.notify("alice", "friend_request", b"x")
        assert result.outcome is Outcome.PUSHED  # handed on; both pushes were lost
        assert w.metrics.value("notify_frames_dropped_total") == 2
        stored = await w.store.get("alice", "friend_request")
        assert stored is not None
        assert stored.pending  # still pending: it comes at the next login
        with pytest.raises(NotificationRejected):
            await w.service.notify("alice", "t" * 65)
        many = await w.service.notify_many(["x", "y", "x", ""], "badge", b"1")
        assert set(many) == {"x", "y", ""}
        assert isinstance(many[""], NotificationRejected)
        ok = [r for r in many.values() if not isinstance(r, Exception)]
        assert [r.outcome for r in ok] == [Outcome.STORED, Outcome.STORED]
        assert ok[0].notify_id == ok[1].notify_id


async def test_purge_removes_old_tombstones(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        result = await w.service.notify("zed", "badge", b"1")
        await w.store.ack("zed", [result.notify_id], now_ms=int(w.clock[0] * 1000))
        assert await w.service.purge() == 0  # younger than tombstone_ttl
        w.clock[0] += 61
        assert await w.service.purge() == 1
        assert await w.store.get("zed", "badge") is None


class WatchedStore(SQLNotificationStore):
    """The real SQLite store, counting how many login reads run at once; ``fail_next`` makes the next read
    raise an error the service does not expect (a bug elsewhere, not a storage fault)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.reading = 0
        self.most_reading = 0
        self.fail_next = False

    async def pending(self, uid: str, *, after_id: int = 0, limit: int = 200) -> list[StoredNotification]:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("unexpected")
        self.reading += 1
        self.most_reading = max(self.most_reading, self.reading)
        try:
            await anyio.sleep(0.01)
            return await super().pending(uid, after_id=after_id, limit=limit)
        finally:
            self.reading -= 1


async def test_login_loads_are_bounded_and_an_unexpected_error_does_not_stop_the_service(
    tmp_path: Path,
) -> None:
    metrics = Metrics()
    location = LocationService(
        LocationConfig(grace=0.05, burst_window=0.05), metrics=metrics.child("location")
    )
    store = WatchedStore(SQLiteDatabase(str(tmp_path / "notify.db")), metrics=metrics)
    await store.setup()
    sink = RecordingSink()
    config = NotifyConfig(policies={"badge": Policy.KEEP_LATEST}, login_workers=4)
    service = NotifyService(config, store=store, sink=sink, presence=location, metrics=metrics)
    async with anyio.create_task_group() as tg:
        await tg.start(location.run)
        await tg.start(lambda task_status: service.run(location=location, task_status=task_status))
        for i in range(40):
            await service.notify(f"u{i}", "badge", b"1")
        store.fail_next = True
        location.device_online(DeviceOnline("u0", "phone", 11, 1, Network.WIFI))
        await anyio.sleep(0.05)
        for i in range(1, 40):
            location.device_online(DeviceOnline(f"u{i}", "phone", 11, 1, Network.WIFI))
        await sink.wait_for(39)
        tg.cancel_scope.cancel()
    await store.aclose()
    assert sorted(h.receiver_uid for _, h, _ in sink.frames) == sorted(f"u{i}" for i in range(1, 40))
    assert store.most_reading <= 4
    assert metrics.value("notify_store_errors_total") == 1
    assert service.core.loads_inflight == 0
