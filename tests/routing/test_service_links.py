"""The router server over real loopback links: clients → access server → link → router → link → access
server → clients, with online notices from the access server's events through the embedded queue and the
location service, and the router's entry in the embedded registry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from imsdk_proto import messages as pb
from imsdk_proto._frame import Frame, encode_frame
from imsdk_proto._header import Header
from imsdk_proto.codes import Biz, ChatFunc, ErrorCode, Flags, SyncFunc
from imsdk_proto.messages import SendStatus
from imsdk_server.access import AccessConfig, AccessServer, LinkRoutes
from imsdk_server.backends.queue import MemoryQueueHub
from imsdk_server.backends.registry import MemoryRegistry, MemoryRegistryHub, ServerState
from imsdk_server.backends.sql import SQLiteDatabase
from imsdk_server.links import LinkConfig, LinkHub, LinkIdentity
from imsdk_server.location import LocationService
from imsdk_server.metrics import Metrics
from imsdk_server.routing import (
    ACCESS_ROLE,
    LocationPresence,
    RouterConfig,
    RouterServer,
    SQLMessageStore,
    conversation_id,
)
from tests.access.conftest import Client, Tokens, wait_for

pytestmark = pytest.mark.anyio

ROUTER = 7
NO_FLAGS = Flags(0)
ACCESS = 3
LINKS = LinkConfig(heartbeat_interval=1.0, grace=0.5, probe_timeout=0.5, close_grace=0.5)


@dataclass
class Net:
    router: RouterServer
    access: AccessServer
    access_hub: LinkHub
    registry: MemoryRegistry
    store: SQLMessageStore
    tokens: Tokens

    async def client(self, uid: str) -> Client:
        """A logged-in client, once its login catch-up has ended (nothing pending: just the marker)."""
        client = await Client.connect(self.access.address)
        await client.login(self.tokens.issue(uid, "phone"))
        done = await client.frame()
        assert done.header.code == (Biz.SYNC, SyncFunc.DONE), done
        return client


def text(
    msg_id: int, receiver: str = "bob", *, msg_server_id: int = ROUTER, flags: Flags = NO_FLAGS
) -> bytes:
    header = Header(
        Biz.CHAT, ChatFunc.TEXT, seq=msg_id, msg_id=msg_id, msg_server_id=msg_server_id, flags=flags,
        receiver_uid=receiver,
    )  # fmt: skip
    return encode_frame(header, pb.ChatText(text=f"m{msg_id}"))


@asynccontextmanager
async def network(tmp_path: Path) -> AsyncIterator[Net]:
    tokens = Tokens()
    queues = MemoryQueueHub()
    registries = MemoryRegistryHub()
    registry = await registries.connect()
    store = SQLMessageStore(SQLiteDatabase(str(tmp_path / "m.db")))
    await store.setup()
    location = LocationService(queue=await queues.connect(block=0.05), metrics=Metrics())
    router = RouterServer(
        RouterConfig(server_id=ROUTER),
        store,
        LocationPresence(location),
        registry=registry,
        link_config=LINKS,
        max_delay=0.001,
        drain_timeout=5.0,
    )
    access = AccessServer(AccessConfig(server_id=ACCESS), tokens.verifier, queue=await queues.connect())
    routes = LinkRoutes(access.routes)
    access_hub = LinkHub(
        LinkIdentity(ACCESS_ROLE, ACCESS, domain="default"),
        config=LINKS,
        handler=access.on_link_frame,
        on_state=routes.on_state,
    )
    try:
        async with anyio.create_task_group() as tg, access_hub:
            await tg.start(location.run)
            await tg.start(access.serve)
            host, port = await tg.start(router.serve)
            link = await access_hub.connect(host, port, expect_server_id=ROUTER)
            await link.wait_ready()
            try:
                yield Net(router, access, access_hub, registry, store, tokens)
            finally:
                router.stop()
                with anyio.fail_after(10):
                    await wait_for(lambda: router.address is not None and not router.hub.links)
                tg.cancel_scope.cancel()
    finally:
        await store.aclose()
        await registry.aclose()


async def replies(client: Client, n: int) -> list[Frame]:
    return [await client.frame() for _ in range(n)]


async def test_chat_over_real_links_with_stickiness_catch_up_and_registry(tmp_path: Path) -> None:
    async with network(tmp_path) as net:
        (entry,) = await net.registry.list_servers("default", "router")
        assert (entry.server_id, entry.state) == (ROUTER, ServerState.READY)
        assert entry.port == net.router.address[1]  # type: ignore[index]
        alice = await net.client("alice")
        # no router id yet: refused with this router's id, which the client stamps from then on
        await alice.send(text(1, msg_server_id=0))
        (refused,) = await replies(alice, 1)
        assert refused.header.error == ErrorCode.WRONG_MESSAGE_SERVER
        assert refused.header.msg_server_id == ROUTER
        for i in range(1, 4):
            await alice.send(text(i))
        acks = [f.body_as(pb.SendAck) for f in await replies(alice, 3)]
        assert [(a.msg_id, a.conv_seq, a.status) for a in acks] == [
            (i, i, SendStatus.SEND_STATUS_STORED) for i in (1, 2, 3)
        ]
        # an instant message to bob, who is offline
        await alice.send(text(9, flags=Flags.NO_STORE))
        (offline,) = await replies(alice, 1)
        assert offline.header.error == ErrorCode.RECEIVER_OFFLINE
        # bob logs in: the online event reaches the location service, whose notice starts the catch-up
        bob = await Client.connect(net.access.address)
        await bob.login(net.tokens.issue("bob", "phone"))
        frames = [await bob.frame()]
        while frames[-1].header.code != (Biz.SYNC, SyncFunc.DONE):
            frames.append(await bob.frame())
        got = [(m.conv_seq, m.text.text) for f in frames[:-1] for m in f.body_as(pb.SyncBatch).messages]
        assert got == [(1, "m1"), (2, "m2"), (3, "m3")]
        # online now: a new message is pushed at once and acked DELIVERED; bob acks it cumulatively
        await alice.send(text(4))
        (ack,) = await replies(alice, 1)
        assert ack.body_as(pb.SendAck).status == SendStatus.SEND_STATUS_DELIVERED
        push = await bob.frame()
        assert (push.header.sender_uid, push.body_as(pb.ChatText).conv_seq) == ("alice", 4)
        conv = conversation_id("alice", "bob")
        cursor = pb.ConversationCursor(conversation=conv, seq=4)
        await bob.send(
            encode_frame(Header(Biz.SYNC, SyncFunc.ACK, msg_server_id=ROUTER), pb.SyncAck(cursors=[cursor]))
        )
        with anyio.fail_after(5):
            while await net.store.acked("bob", "phone", conv) != 4:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        await alice.aclose()
        await bob.aclose()


async def test_shutdown_deregisters_and_drains_without_losing_an_answer(tmp_path: Path) -> None:
    async with network(tmp_path) as net:
        alice = await net.client("alice")
        n = 50
        for i in range(1, n + 1):
            await alice.send(text(i))
        net.router.stop()
        answers: dict[int, Frame] = {}
        with anyio.fail_after(10):
            while len(answers) < n:
                frame = await alice.frame()
                assert frame.header.msg_id not in answers, "answered twice"
                answers[frame.header.msg_id] = frame
        acked = [i for i, f in answers.items() if not f.header.flags & Flags.ERROR]
        refused = {ErrorCode(f.header.error) for f in answers.values() if f.header.flags & Flags.ERROR}
        # every message is answered: stored and acked, or refused because the router was leaving
        assert refused <= {ErrorCode.BACKEND_NOT_READY, ErrorCode.NO_BACKEND}
        assert acked, "messages already handed over before the not-ready were finished"
        stored = await net.store.pull(conversation_id("alice", "bob"), 1, 0, 1000)
        assert sorted(r.client_msg_id for r in stored) == sorted(acked)
        await wait_for(lambda: not net.router.hub.links)
        assert await net.registry.list_servers("default", "router") == ()
        # the router is gone: the access server refuses at once, nothing waits in a void
        await alice.send(text(n + 1))
        (late,) = await replies(alice, 1)
        assert late.header.error == ErrorCode.NO_BACKEND
        await alice.aclose()


async def test_stop_drains_through_the_hub_and_reports_it(tmp_path: Path) -> None:
    async with network(tmp_path) as net:
        alice = await net.client("alice")
        for i in range(1, 11):
            await alice.send(text(i))
        net.router.stop()
        answers = await replies(alice, 10)
        assert sorted(f.header.msg_id for f in answers) == list(range(1, 11))
        await wait_for(lambda: net.router.drain_report is not None)
        report = net.router.drain_report
        assert report is not None
        # one deregistration, by the hub: the access server acked the not-ready, the service went idle
        assert report.acked == [(ACCESS_ROLE, ACCESS)]
        assert (report.timed_out, report.lost, report.registry_error) == ([], [], "")
        assert report.complete
        assert net.router.metrics.histogram("links_drain_seconds").count == 1
        assert net.router.metrics.value("routing_registry_errors_total") == 0
        await alice.aclose()


async def test_a_registry_that_fails_at_shutdown_is_reported_and_the_drain_goes_on(tmp_path: Path) -> None:
    async with network(tmp_path) as net:
        alice = await net.client("alice")
        await alice.send(text(1))
        (ack,) = await replies(alice, 1)
        assert ack.body_as(pb.SendAck).conv_seq == 1
        await net.registry.aclose()  # the registry session is gone: NOT_READY and deregister both fail
        net.router.stop()
        await wait_for(lambda: net.router.drain_report is not None)
        report = net.router.drain_report
        assert report is not None
        assert report.registry_error
        assert report.acked == [(ACCESS_ROLE, ACCESS)]
        assert not report.complete
        assert net.router.metrics.value("routing_registry_errors_total") == 2
        await wait_for(lambda: not net.router.hub.links)
        await alice.aclose()
