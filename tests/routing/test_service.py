"""The router service in-process: SQLite behind the memory cache, the embedded location service, and access
servers seen through a :class:`LocalDownstream` that keeps what each one is handed."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest

from imsdk_proto import messages as pb
from imsdk_proto._frame import Frame
from imsdk_proto._header import Header
from imsdk_proto.codes import Biz, ChatFunc, Codec, ErrorCode, Flags, SyncFunc
from imsdk_proto.messages import SendStatus
from imsdk_server.auth import SQLUserStore
from imsdk_server.backends.cache import MemoryCache
from imsdk_server.backends.sql import SQLiteDatabase
from imsdk_server.location import DeviceOffline, DeviceOnline, LocationService, Network
from imsdk_server.metrics import Metrics
from imsdk_server.routing import (
    CachedMessageStore,
    LocalDownstream,
    LocationPresence,
    RouterConfig,
    RouterService,
    SQLMessageStore,
    UserDirectory,
    conversation_id,
)

pytestmark = pytest.mark.anyio

ROUTER = 7
ALICE_AT = 3
BOB_AT = 4
CONV = conversation_id("alice", "bob")
NO_FLAGS = Flags(0)


@dataclass
class Inbox:
    """What one access server was handed, in order."""

    frames: list[Frame] = field(default_factory=list)
    changed: anyio.Event = field(default_factory=anyio.Event)

    def deliver(self, frame: Frame) -> None:
        self.frames.append(frame)
        self.changed.set()

    async def wait(self, n: int, within: float = 5.0) -> list[Frame]:
        """The first ``n`` frames (waits for them)."""
        with anyio.fail_after(within):
            while len(self.frames) < n:
                self.changed = anyio.Event()
                await self.changed.wait()
        return self.frames[:n]

    async def until(self, biz: int, func: int, within: float = 5.0) -> list[Frame]:
        """Every frame up to and including the first ``(biz, func)`` one; removes them."""
        with anyio.fail_after(within):
            while True:
                for i, frame in enumerate(self.frames):
                    if frame.header.code == (biz, func):
                        out, self.frames = self.frames[: i + 1], self.frames[i + 1 :]
                        return out
                self.changed = anyio.Event()
                await self.changed.wait()

    def take(self) -> list[Frame]:
        out, self.frames = self.frames, []
        return out


@dataclass
class Setup:
    service: RouterService
    location: LocationService
    store: CachedMessageStore
    inboxes: dict[int, Inbox]
    metrics: Metrics

    def send(self, frame: Frame) -> None:
        self.service.frame_received(frame)

    def online(self, uid: str, device: str, access_id: int, session: int = 1) -> None:
        self.location.device_online(DeviceOnline(uid, device, access_id, session, Network.WIFI))

    def offline(self, uid: str, device: str, access_id: int, session: int = 1) -> None:
        self.location.device_offline(DeviceOffline(uid, device, access_id, session))


def text(
    msg_id: int,
    words: str = "",
    *,
    seq: int = 0,
    sender: str = "alice",
    receiver: str = "bob",
    flags: Flags = NO_FLAGS,
    msg_server_id: int = ROUTER,
    access_id: int = ALICE_AT,
) -> Frame:
    header = Header(
        Biz.CHAT,
        ChatFunc.TEXT,
        seq=seq or msg_id,
        msg_id=msg_id,
        access_id=access_id,
        msg_server_id=msg_server_id,
        flags=flags,
        sender_uid=sender,
        sender_device="phone",
        receiver_uid=receiver,
        session=55,
    )
    return Frame(header, Codec.PROTOBUF, pb.ChatText(text=words or f"m{msg_id}").SerializeToString())


def sync_ack(seq: int, *, uid: str = "bob", access_id: int = BOB_AT) -> Frame:
    header = Header(
        Biz.SYNC, SyncFunc.ACK, seq=1, access_id=access_id, msg_server_id=ROUTER,
        sender_uid=uid, sender_device="phone", session=66,
    )  # fmt: skip
    body = pb.SyncAck(cursors=[pb.ConversationCursor(conversation=CONV, seq=seq)])
    return Frame(header, Codec.PROTOBUF, body.SerializeToString())


def ack_of(frame: Frame) -> pb.SendAck:
    assert frame.header.code == (Biz.CHAT, ChatFunc.SEND_ACK), frame
    assert frame.header.flags == Flags.RESPONSE, frame
    return pb.SendAck.FromString(frame.raw_body)


def error_of(frame: Frame) -> ErrorCode:
    assert frame.header.flags & Flags.ERROR, frame
    assert pb.ErrorReport.FromString(frame.raw_body).code == frame.header.error
    return ErrorCode(frame.header.error)


def texts_of(batches: list[Frame]) -> list[tuple[int, str]]:
    out = []
    for frame in batches:
        assert frame.header.code == (Biz.SYNC, SyncFunc.BATCH)
        for m in pb.SyncBatch.FromString(frame.raw_body).messages:
            out.append((m.conv_seq, m.text.text))
    return out


@asynccontextmanager
async def running(
    tmp_path: Path,
    *,
    busy_timeout: float = 5.0,
    users: UserDirectory | None = None,
    **options: object,
) -> AsyncIterator[Setup]:
    metrics = Metrics()
    db = SQLiteDatabase(str(tmp_path / "messages.db"), busy_timeout=busy_timeout)
    store = CachedMessageStore(SQLMessageStore(db, metrics=metrics), MemoryCache(), metrics=metrics)
    await store.setup()
    location = LocationService(metrics=Metrics())
    inboxes = {ALICE_AT: Inbox(), BOB_AT: Inbox(), 5: Inbox()}
    downstream = LocalDownstream({k: v.deliver for k, v in inboxes.items()})
    service = RouterService(
        RouterConfig(server_id=ROUTER, **options),  # type: ignore[arg-type]
        store,
        LocationPresence(location, users=users),
        downstream,
        metrics=metrics,
        max_delay=0.001,
        retry_interval=0.05,
    )
    async with anyio.create_task_group() as tg:
        await tg.start(location.run)
        await tg.start(service.run)
        try:
            yield Setup(service, location, store, inboxes, metrics)
        finally:
            tg.cancel_scope.cancel()
    await store.aclose()


async def wait_until(predicate: object, within: float = 5.0) -> None:
    assert callable(predicate)
    with anyio.fail_after(within):
        while not await predicate():  # noqa: ASYNC110 - polls the store, which has no event
            await anyio.sleep(0.01)


# -- the offline class --------------------------------------------------------------------------------------


async def test_offline_messages_are_stored_and_pushed_at_login_in_order(tmp_path: Path) -> None:
    async with running(tmp_path) as s:
        for i in range(1, 6):
            s.send(text(i))
        acks = [ack_of(f) for f in await s.inboxes[ALICE_AT].wait(5)]
        assert [a.msg_id for a in acks] == [1, 2, 3, 4, 5]
        assert [a.conv_seq for a in acks] == [1, 2, 3, 4, 5]
        assert {a.status for a in acks} == {SendStatus.SEND_STATUS_STORED}
        assert not s.inboxes[BOB_AT].frames  # nobody to push to
        # bob logs in: his pending messages come in order, then the sync-done marker
        s.online("bob", "phone", BOB_AT)
        got = await s.inboxes[BOB_AT].until(Biz.SYNC, SyncFunc.DONE)
        *batches, done = got
        assert texts_of(batches) == [(i, f"m{i}") for i in range(1, 6)]
        assert all(f.header.receiver_uid == "bob" and f.header.receiver_device == "phone" for f in got)
        assert pb.SyncDone.FromString(done.raw_body).conversation == ""
        # he acks everything; when he logs in again (through another access server: a quick reconnect to
        # the same one produces no notice, and the client pulls) only the marker comes
        s.send(sync_ack(5))
        await wait_until(lambda: _acked(s, 5))
        s.offline("bob", "phone", BOB_AT)
        s.online("bob", "phone", 5, session=2)
        assert [f.header.code for f in await s.inboxes[5].until(Biz.SYNC, SyncFunc.DONE)] == [
            (Biz.SYNC, SyncFunc.DONE)
        ]
        # while he is online, a new message is acked DELIVERED and pushed, stamped with its sequence
        s.send(text(6))
        (ack,) = [ack_of(f) for f in await s.inboxes[ALICE_AT].wait(6)][5:]
        assert (ack.conv_seq, ack.status) == (6, SendStatus.SEND_STATUS_DELIVERED)
        (push,) = await s.inboxes[5].wait(1)
        body = pb.ChatText.FromString(push.raw_body)
        assert (body.text, body.conv_seq, body.server_msg_id) == ("m6", 6, ack.server_msg_id)
        assert not s.inboxes[BOB_AT].frames
        assert s.metrics.value("routing_messages_stored_total") == 6
        assert s.metrics.value("routing_messages_pushed_total") == 1
        hist = s.metrics.histogram("routing_store_latency_seconds")
        assert hist.count == 6
        assert s.metrics.histogram("writer_batch_size").count >= 1


async def _acked(s: Setup, seq: int) -> bool:
    return await s.store.acked("bob", "phone", CONV) == seq


async def test_a_resend_returns_the_same_ids_and_is_not_pushed_again(tmp_path: Path) -> None:
    async with running(tmp_path) as s:
        s.online("bob", "phone", BOB_AT)
        await s.inboxes[BOB_AT].until(Biz.SYNC, SyncFunc.DONE)
        s.send(text(42, "once"))
        (first,) = [ack_of(f) for f in await s.inboxes[ALICE_AT].wait(1)]
        s.send(text(42, "once", flags=Flags.RETRY, seq=43))
        s.send(text(42, "once", flags=Flags.RETRY, seq=44))
        acks = [ack_of(f) for f in await s.inboxes[ALICE_AT].wait(3)]
        assert [(a.server_msg_id, a.conv_seq) for a in acks] == [(first.server_msg_id, first.conv_seq)] * 3
        assert [a.status for a in acks] == [
            SendStatus.SEND_STATUS_DELIVERED,
            SendStatus.SEND_STATUS_DUPLICATE,
            SendStatus.SEND_STATUS_DUPLICATE,
        ]
        assert len(await s.inboxes[BOB_AT].wait(1)) == 1
        await anyio.sleep(0.05)
        assert len(s.inboxes[BOB_AT].frames) == 1  # pushed once
        assert await s.store.last_seq(CONV) == 1


# -- the instant class --------------------------------------------------------------------------------------


async def test_instant_message_to_an_offline_user_is_refused_and_not_stored(tmp_path: Path) -> None:
    async with running(tmp_path) as s:
        s.send(text(1, flags=Flags.NO_STORE))
        (reply,) = await s.inboxes[ALICE_AT].wait(1)
        assert error_of(reply) is ErrorCode.RECEIVER_OFFLINE
        assert (reply.header.seq, reply.header.msg_id, reply.header.receiver_uid) == (1, 1, "alice")
        assert await s.store.last_seq(CONV) == 0
        assert s.metrics.value("routing_messages_dropped_total") == 1
        # online: pushed, acked DELIVERED, still not stored
        s.online("bob", "phone", BOB_AT)
        await s.inboxes[BOB_AT].until(Biz.SYNC, SyncFunc.DONE)
        s.send(text(2, flags=Flags.NO_STORE))
        ack = ack_of((await s.inboxes[ALICE_AT].wait(2))[1])
        assert (ack.msg_id, ack.status, ack.conv_seq) == (2, SendStatus.SEND_STATUS_DELIVERED, 0)
        (push,) = await s.inboxes[BOB_AT].wait(1)
        assert push.header.flags & Flags.NO_STORE
        assert await s.store.last_seq(CONV) == 0


# -- bad input and faults -----------------------------------------------------------------------------------


async def test_database_down_no_ack_and_nothing_lost_after_recovery(tmp_path: Path) -> None:
    async with running(tmp_path, busy_timeout=0.05) as s:
        s.send(text(1))
        assert ack_of((await s.inboxes[ALICE_AT].wait(1))[0]).conv_seq == 1
        # another process holds the database's write lock: every commit fails
        blocker = sqlite3.connect(str(tmp_path / "messages.db"), isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            for i in range(2, 6):
                s.send(text(i))
            replies = (await s.inboxes[ALICE_AT].wait(5))[1:]
            assert [error_of(f) for f in replies] == [ErrorCode.STORAGE_UNAVAILABLE] * 4
            assert [f.header.msg_id for f in replies] == [2, 3, 4, 5]
            assert s.metrics.value("routing_errors_total", code="STORAGE_UNAVAILABLE") == 4
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        # the sender's SDK resends what was not acked; the router kept serving
        s.inboxes[ALICE_AT].take()
        for i in range(2, 6):
            s.send(text(i, flags=Flags.RETRY))
        acks = [ack_of(f) for f in await s.inboxes[ALICE_AT].wait(4)]
        assert [(a.msg_id, a.conv_seq, a.status) for a in acks] == [
            (i, i, SendStatus.SEND_STATUS_STORED) for i in range(2, 6)
        ]
        s.online("bob", "phone", BOB_AT)
        *batches, _ = await s.inboxes[BOB_AT].until(Biz.SYNC, SyncFunc.DONE)
        assert texts_of(batches) == [(i, f"m{i}") for i in range(1, 6)]


async def test_a_failed_ack_write_is_retried(tmp_path: Path) -> None:
    async with running(tmp_path, busy_timeout=0.05) as s:
        for i in range(1, 4):
            s.send(text(i))
        await s.inboxes[ALICE_AT].wait(3)
        blocker = sqlite3.connect(str(tmp_path / "messages.db"), isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            s.send(sync_ack(3))
            with anyio.fail_after(5):
                while s.metrics.value("routing_ack_errors_total") < 1:  # noqa: ASYNC110
                    await anyio.sleep(0.01)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        await wait_until(lambda: _acked(s, 3))


async def test_unknown_receiver_and_wrong_router(tmp_path: Path) -> None:
    users = await SQLUserStore.open(":memory:")
    for uid in ("alice", "bob"):
        await users.create_user(uid, "x", uid, now=0.0)
    try:
        async with running(tmp_path, users=users) as s:
            s.send(text(1, receiver="nobody"))
            s.send(text(2, msg_server_id=0))
            s.send(text(3, msg_server_id=99))
            s.send(text(4))
            # refusals at the door come at once; admitted messages keep their order behind the look-up
            replies = {f.header.msg_id: f for f in await s.inboxes[ALICE_AT].wait(4)}
            r1, r2, r3, r4 = (replies[i] for i in (1, 2, 3, 4))
            assert [f.header.msg_id for f in s.inboxes[ALICE_AT].frames][-2:] == [1, 4]
            assert error_of(r1) is ErrorCode.UNKNOWN_RECEIVER
            assert r1.header.msg_id == 1
            for reply in (r2, r3):
                assert error_of(reply) is ErrorCode.WRONG_MESSAGE_SERVER
                assert reply.header.msg_server_id == ROUTER
            assert ack_of(r4).conv_seq == 1
            assert s.metrics.value("routing_redirects_total") == 2
            assert await s.store.last_seq(conversation_id("alice", "nobody")) == 0
    finally:
        await users.aclose()


async def test_frames_for_an_access_server_that_is_gone_are_counted(tmp_path: Path) -> None:
    async with running(tmp_path) as s:
        s.send(text(1, access_id=77))  # no access server 77 here: the ack cannot go anywhere
        s.send(text(2))
        (ack,) = await s.inboxes[ALICE_AT].wait(1)
        assert ack_of(ack).msg_id == 2
        with anyio.fail_after(5):
            while s.metrics.value("routing_undeliverable_total") < 1:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        assert await s.store.last_seq(CONV) == 2  # stored all the same: a resend would get DUPLICATE


async def test_idle_after_work_and_catch_up_cancelled_by_offline(tmp_path: Path) -> None:
    async with running(tmp_path, pending_page=2, batch_max_messages=2) as s:
        for i in range(1, 8):
            s.send(text(i))
        await s.inboxes[ALICE_AT].wait(7)
        s.online("bob", "phone", BOB_AT)
        *batches, _ = await s.inboxes[BOB_AT].until(Biz.SYNC, SyncFunc.DONE)
        assert texts_of(batches) == [(i, f"m{i}") for i in range(1, 8)]  # paged, still in order
        with anyio.fail_after(5):
            await s.service.wait_idle()
        assert s.service.idle


def test_service_surface_is_exported() -> None:
    import imsdk_server.routing as routing
    from imsdk_server.routing import _service

    assert set(_service.__all__) <= set(routing.__all__)
    for name in _service.__all__:
        assert getattr(routing, name) is getattr(_service, name)
    assert isinstance(LocalDownstream(), routing.Downstream)
