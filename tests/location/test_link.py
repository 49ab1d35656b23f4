"""Presence over real loopback links: a location hub with the link service, a business hub with the client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import pytest

from imsdk_proto import Frame
from imsdk_server.links import Link, LinkHub, LinkIdentity
from imsdk_server.location import (
    CHAT,
    VOIP,
    DeviceOnline,
    LocationConfig,
    LocationService,
    Network,
    NoticeKind,
    PresenceClient,
    PresenceLinkConfig,
    PresenceLinkServer,
    PresenceNotice,
    PresenceRequestFailed,
    PresenceSubscription,
    PresenceUnavailable,
    ServerStatus,
    Subscriber,
    SubscriberOverflow,
)
from imsdk_server.metrics import Metrics

from ._helpers import off, on

pytestmark = pytest.mark.anyio

LOCATION = LinkIdentity(role=4, server_id=1, name="location-1")
BUSINESS = LinkIdentity(role=8, server_id=31, name="voip-1")
CONFIG = LocationConfig(grace=0.2, burst_window=0.2, burst_threshold=1000, recovery_window=5.0)


@dataclass
class Pair:
    service: LocationService
    server: PresenceLinkServer
    client: PresenceClient
    link: Link
    location_hub: LinkHub
    business_hub: LinkHub
    address: tuple[str, int]
    metrics: Metrics


@asynccontextmanager
async def linked(
    link_config: PresenceLinkConfig | None = None, *, request_timeout: float = 5.0, buffer: int = 1024
) -> AsyncIterator[Pair]:
    """A location service served on a real hub, and a business hub whose link carries a PresenceClient."""
    metrics = Metrics()
    service = LocationService(CONFIG, metrics=metrics)
    server = PresenceLinkServer(service, config=link_config)
    clients: list[PresenceClient] = []

    async def business_handler(link: Link, frame: Frame) -> None:
        for client in clients:
            await client.on_frame(link, frame)

    async with anyio.create_task_group() as tg:
        await tg.start(service.run)
        await tg.start(server.run)
        async with (
            LinkHub(LOCATION, handler=server.on_frame, metrics=metrics) as location_hub,
            LinkHub(BUSINESS, handler=business_handler) as business_hub,
        ):
            address = await location_hub.listen()
            link = await business_hub.connect(*address, expect_server_id=LOCATION.server_id)
            with anyio.fail_after(5):
                await link.wait_ready()
            async with PresenceClient(link, name="voip-1", timeout=request_timeout, buffer=buffer) as client:
                clients.append(client)
                yield Pair(service, server, client, link, location_hub, business_hub, address, metrics)
        tg.cancel_scope.cancel()


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Wait (at most about 5 s) for a condition that a background task makes true."""
    for _ in range(500):
        if condition():
            return
        await anyio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def next_notice(sub: PresenceSubscription) -> PresenceNotice:
    with anyio.fail_after(5):
        return await sub.receive()


def line(n: PresenceNotice) -> str:
    """A compact form of a notice: ``online alice/d@7 4g``, ``offline alice/d network``, ``down 7``."""
    if n.kind is NoticeKind.SERVER_DOWN:
        return f"server_down {n.server}"
    where = f"@{n.presence.server} {n.presence.network.value}" if n.presence is not None else ""
    extra = f" {n.reason}" if n.reason else (f" from {n.server}" if n.kind is NoticeKind.MOVED else "")
    return f"{n.kind.value} {n.uid}/{n.device}{where}{extra}"


# ------------------------------------------------------------------------------------------- queries


async def test_query_one_and_many_uids() -> None:
    async with linked() as p:
        p.service.device_online(on("alice", 7, "4g", device="phone"))
        p.service.device_online(on("alice", 8, "wifi", device="pad"))
        p.service.device_online(on("bob", 7, "2g"))
        alone = await p.client.query(["alice"])
        assert sorted((d.device, d.server, d.network) for d in alone["alice"]) == [
            ("pad", 8, Network.WIFI),
            ("phone", 7, Network.G4),
        ]
        assert alone["alice"][0].platform == "android"
        assert alone["alice"][0].client_version == "1.0"
        many = await p.client.query(["alice", "bob", "carol", "alice"])
        assert sorted(many) == ["alice", "bob", "carol"]
        assert [d.network for d in many["bob"]] == [Network.G2]
        assert many["carol"] == []
        # A VoIP query does not count bob's 2G line; it names the whole class of every network it accepts.
        voip = await p.client.query(["alice", "bob"], VOIP)
        assert len(voip["alice"]) == 2
        assert voip["bob"] == []
        assert p.metrics.value("location_link_queries") == 3
        assert p.metrics.value("location_link_queried_uids") == 6  # the client asks for each uid once


async def test_query_reflects_a_drop_at_once() -> None:
    async with linked() as p:
        p.service.device_online(on("alice", 7))
        assert len((await p.client.query(["alice"]))["alice"]) == 1
        p.service.device_offline(off("alice", 7))  # the notice waits for the grace window; a query does not
        assert (await p.client.query(["alice"]))["alice"] == []


# ------------------------------------------------------------------------------------------- subscriptions


async def test_voip_filter_sees_a_2g_drop_and_the_chat_filter_does_not() -> None:
    async with linked() as p:
        voip = await p.client.subscribe(VOIP)
        chat = await p.client.subscribe(CHAT)
        assert p.server.subscription_count == 2
        p.service.device_online(on("alice", 7, "4g"))
        assert line(await next_notice(voip)) == "online alice/d@7 4g"
        assert line(await next_notice(chat)) == "online alice/d@7 4g"
        p.service.device_online(on("alice", 7, "2g"))  # same session, network switch to 2G
        assert line(await next_notice(voip)) == "offline alice/d@7 2g network"
        p.service.device_online(on("alice", 7, "4g"))
        assert line(await next_notice(voip)) == "online alice/d@7 4g"
        p.service.device_online(on("alice", 7, "wifi"))  # another class both accept: only VoIP asked
        assert line(await next_notice(voip)) == "network_changed alice/d@7 wifi"
        # The chat subscriber heard nothing of the switches: its next notice is bob's arrival.
        p.service.device_online(on("bob", 9, "3g"))
        assert line(await next_notice(chat)) == "online bob/d@9 3g"
        assert line(await next_notice(voip)) == "online bob/d@9 3g"
        # Moves and (delayed) offline notices travel too.
        p.service.device_online(on("bob", 10, "3g", session=2))
        assert line(await next_notice(chat)) == "moved bob/d@10 3g from 9"
        p.service.device_offline(off("bob", 10, session=2))
        assert line(await next_notice(chat)) == "offline bob/d disconnected"
        notice = await next_notice(voip)
        assert (notice.kind, notice.server, notice.presence) == (NoticeKind.MOVED, 9, notice.presence)
        gone = await next_notice(voip)
        assert (gone.kind, gone.reason, gone.server) == (NoticeKind.OFFLINE, "disconnected", 10)
        await voip.aclose()
        await chat.aclose()
        await eventually(lambda: p.server.subscription_count == 0, "unsubscribed")
        assert p.metrics.value("location_link_subscriptions_ended", reason="unsubscribed") == 2


async def test_subscription_to_chosen_uids() -> None:
    async with linked() as p:
        sub = await p.client.subscribe(CHAT, uids=["carol"])
        p.service.device_online(on("alice", 7))
        p.service.device_online(on("carol", 7))
        assert line(await next_notice(sub)) == "online carol/d@7 4g"


async def test_access_server_down_is_one_notice_over_the_link() -> None:
    async with linked() as p:
        sub = await p.client.subscribe(CHAT)
        for i in range(50):
            p.service.device_online(on(f"u{i}", 7))
        for _ in range(50):
            assert (await next_notice(sub)).kind is NoticeKind.ONLINE
        p.service.server_status(7, ServerStatus.SUSPECT)
        p.service.server_status(7, ServerStatus.DOWN)
        assert line(await next_notice(sub)) == "server_down 7"
        # One user back elsewhere (within the recovery window) arrives batched; nothing else came between.
        p.service.device_online(on("u1", 8, session=2))
        back = await next_notice(sub)
        assert line(back) == "online u1/d@8 4g"
        assert p.metrics.value("location_link_events_out") == 52


async def test_batch_items_share_their_notice_number() -> None:
    async with linked() as p:
        sub = await p.client.subscribe(CHAT)
        for i in range(3):
            p.service.device_online(on(f"u{i}", 7))
        numbers = [(await next_notice(sub)).number for _ in range(3)]
        assert numbers == [1, 2, 3]
        p.service.server_status(7, ServerStatus.SUSPECT)  # hold: the moves are held ...
        for i in range(3):
            p.service.device_online(on(f"u{i}", 8, session=2))
        p.service.server_status(7, ServerStatus.ALIVE)  # ... and released as one batch
        batch = [await next_notice(sub) for _ in range(3)]
        assert {n.number for n in batch} == {4}
        assert sorted(line(n) for n in batch) == [f"moved u{i}/d@8 4g from 7" for i in range(3)]


# ------------------------------------------------------------------------------------------- cleanup


async def test_a_subscriber_link_that_dies_is_cleaned_up() -> None:
    async with linked() as p:
        subs = [await p.client.subscribe(VOIP), await p.client.subscribe(CHAT, uids=["alice"])]
        assert p.server.subscription_count == 2
        assert p.server.links_watched == 1
        assert p.metrics.value("location_subscribers") == 2
        p.link.close()  # the business server's link ends
        for sub in subs:
            with pytest.raises(PresenceUnavailable):
                await next_notice(sub)
        await eventually(lambda: p.server.subscription_count == 0, "cleaned up")
        assert p.server.links_watched == 0
        assert p.metrics.value("location_subscribers") == 0
        assert p.metrics.value("location_link_subscriptions") == 0
        assert p.metrics.value("location_link_subscriptions_ended", reason="link_closed") == 2
        # The service keeps serving: events after the loss reach nobody and break nothing.
        p.service.device_online(on("alice", 7))
        assert p.service.is_online("alice")


async def test_a_slow_subscriber_is_dropped_and_told() -> None:
    async with linked(buffer=2) as p:
        sub = await p.client.subscribe(CHAT)
        for i in range(5):  # the client buffers 2 and nobody reads: the subscription overflows here
            p.service.device_online(on(f"u{i}", 7))
        await eventually(lambda: p.client.subscription_count == 0, "the client dropped it")
        got = [await next_notice(sub), await next_notice(sub)]  # what was buffered is still read ...
        assert [n.uid for n in got] == ["u0", "u1"]
        with pytest.raises(SubscriberOverflow):  # ... then the subscription ends, typed
            await next_notice(sub)
        await eventually(lambda: p.server.subscription_count == 0, "unsubscribed by the client")
        assert p.metrics.value("location_link_subscriptions_ended", reason="unsubscribed") == 1


async def test_a_failing_service_subscription_ends_it_for_the_peer() -> None:
    """The location service replaces or ends a subscription: the peer hears why, the server forgets it."""
    async with linked() as p:
        sub = await p.client.subscribe(CHAT)
        internal: list[Subscriber] = [s.subscriber for s in p.server._subs[p.location_hub.links[0]].values()]
        assert len(internal) == 1
        internal[0].close()  # e.g. the service dropped it

        with pytest.raises(PresenceRequestFailed) as caught:
            await next_notice(sub)
        assert caught.value.code.name == "SERVER_SHUTTING_DOWN"
        assert p.server.subscription_count == 0


# ------------------------------------------------------------------------------------------- the service hook


async def test_subscriber_close_forgets_at_once_and_keeps_buffered_notices() -> None:
    service = LocationService(CONFIG, metrics=Metrics())
    sub = service.subscribe("x")
    service.device_online(DeviceOnline("alice", "d", 7, 1, Network.G4))
    sub.close()
    assert service.core.metrics.value("location_subscribers") == 0
    assert (await sub.receive()).kind is NoticeKind.ONLINE
    with pytest.raises(StopAsyncIteration):
        await sub.receive()
