"""Frames handed to a downstream that can take them without waiting: order is kept per access server when
the downstream is sometimes full, refusals are counted, and over a real link with a tiny send buffer every
push and every ack arrives, in order."""

from __future__ import annotations

from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from imsdk_proto import messages as pb
from imsdk_proto._frame import Frame, encode_frame
from imsdk_proto._header import Header
from imsdk_proto.codes import Biz, ChatFunc, Codec, Flags, SyncFunc
from imsdk_server.access import AccessConfig, AccessServer, LinkRoutes
from imsdk_server.backends.queue import MemoryQueueHub
from imsdk_server.backends.sql import SQLiteDatabase
from imsdk_server.links import LinkConfig, LinkHub, LinkIdentity
from imsdk_server.location import DeviceOnline, LocationService, Network
from imsdk_server.metrics import Metrics
from imsdk_server.routing import (
    ACCESS_ROLE,
    DownstreamUnavailable,
    LocationPresence,
    RouterConfig,
    RouterServer,
    RouterService,
    SQLMessageStore,
)
from tests.access.conftest import Client, Tokens

pytestmark = pytest.mark.anyio

ROUTER = 7


class Sometimes:
    """A downstream whose ``send_nowait`` takes frames only while ``room`` lasts, refuses access server 99,
    and whose ``send`` always takes them: what reached each access server, in order."""

    def __init__(self) -> None:
        self.got: dict[int, list[int]] = {}
        self.room = 0
        self.waited = 0

    def send_nowait(self, access_id: int, frame: Frame) -> bool:
        if access_id == 99:
            raise DownstreamUnavailable("no such access server")
        if self.room <= 0:
            return False
        self.room -= 1
        self.got.setdefault(access_id, []).append(frame.header.msg_id)
        return True

    async def send(self, access_id: int, frame: Frame) -> None:
        self.waited += 1
        await anyio.lowlevel.checkpoint()
        self.got.setdefault(access_id, []).append(frame.header.msg_id)


def instant(msg_id: int, access_id: int = 3) -> Frame:
    header = Header(
        Biz.CHAT, ChatFunc.TEXT, seq=msg_id, msg_id=msg_id, access_id=access_id, msg_server_id=ROUTER,
        flags=Flags.NO_STORE, sender_uid="alice", sender_device="phone", receiver_uid="bob", session=5,
    )  # fmt: skip
    return Frame(header, Codec.PROTOBUF, pb.ChatText(text=f"m{msg_id}").SerializeToString())


async def test_order_is_kept_when_the_downstream_is_sometimes_full(tmp_path: Path) -> None:
    store = SQLMessageStore(SQLiteDatabase(str(tmp_path / "m.db")))
    await store.setup()
    location = LocationService(metrics=Metrics())
    down = Sometimes()
    metrics = Metrics()
    presence = LocationPresence(location)
    service = RouterService(RouterConfig(server_id=ROUTER), store, presence, down, metrics=metrics)
    async with anyio.create_task_group() as tg:
        await tg.start(location.run)
        location.device_online(DeviceOnline("bob", "phone", 4, 1, Network.WIFI))
        await tg.start(service.run)
        for n in range(1, 61):
            down.room = n % 4  # full every fourth frame or so: later frames must queue behind it
            service.frame_received(instant(n))
            if n % 10 == 0:
                await anyio.lowlevel.checkpoint()
        service.frame_received(instant(61, access_id=99))  # refused at once: counted, not queued
        with anyio.fail_after(5):
            while not service.idle:  # noqa: ASYNC110 - the service has no event for idleness
                await anyio.sleep(0.001)
        tg.cancel_scope.cancel()
    await store.aclose()
    # every push to bob (access server 4) and every ack to alice (3), each in the senders' order
    assert down.got[4] == list(range(1, 62))
    assert down.got[3] == list(range(1, 61))  # the answer to 61 had nowhere to go
    assert down.waited > 0  # some frames did go through the waiting path
    assert metrics.child("routing").counter("undeliverable_total").value == 1


async def test_a_tiny_link_buffer_loses_and_reorders_nothing(tmp_path: Path) -> None:
    tokens = Tokens()
    queues = MemoryQueueHub()
    links = LinkConfig(send_buffer_bytes=300)
    store = SQLMessageStore(SQLiteDatabase(str(tmp_path / "m.db")))
    await store.setup()
    location = LocationService(queue=await queues.connect(block=0.05), metrics=Metrics())
    router = RouterServer(
        RouterConfig(server_id=ROUTER), store, LocationPresence(location), link_config=links
    )
    access = AccessServer(AccessConfig(server_id=3), tokens.verifier, queue=await queues.connect())
    routes = LinkRoutes(access.routes)
    hub = LinkHub(
        LinkIdentity(ACCESS_ROLE, 3, domain="default"), config=links, handler=access.on_link_frame,
        on_state=routes.on_state,
    )  # fmt: skip
    async with anyio.create_task_group() as tg, hub:
        await tg.start(location.run)
        await tg.start(access.serve)
        link = await hub.connect(*await tg.start(router.serve), expect_server_id=ROUTER)
        await link.wait_ready()
        clients = {}
        for uid in ("alice", "bob"):
            client = clients[uid] = await Client.connect(access.address)
            await client.login(tokens.issue(uid, "phone"))
            assert (await client.frame()).header.code == (Biz.SYNC, SyncFunc.DONE)
        n = 300
        burst = b"".join(
            encode_frame(
                Header(
                    Biz.CHAT, ChatFunc.TEXT, seq=i, msg_id=i, msg_server_id=ROUTER, flags=Flags.NO_STORE,
                    receiver_uid="bob",
                ),
                pb.ChatText(text="x" * 100),
            )
            for i in range(1, n + 1)
        )  # fmt: skip
        await clients["alice"].send(burst)
        pushed = [(await clients["bob"].frame()).header.msg_id for _ in range(n)]
        acks = [await clients["alice"].frame() for _ in range(n)]
        assert pushed == list(range(1, n + 1))
        assert [a.header.msg_id for a in acks] == list(range(1, n + 1))
        assert all(a.body_as(pb.SendAck).status == pb.SendStatus.SEND_STATUS_DELIVERED for a in acks)
        for client in clients.values():
            await client.aclose()
        router.stop()
        tg.cancel_scope.cancel()
    await store.aclose()
