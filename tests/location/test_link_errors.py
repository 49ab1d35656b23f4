"""Bad presence requests over a real link get error responses, the link stays up; client errors are typed."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from imsdk_proto import Frame, Header, encode_frame, encode_raw
from imsdk_proto.codes import Biz, ErrorCode, Flags, PresenceFunc
from imsdk_proto.messages import (
    ErrorReport,
    PresenceQuery,
    PresenceReply,
    PresenceSubscribe,
    PresenceUnsubscribe,
)
from imsdk_server.links import LinkHub
from imsdk_server.location import (
    VOIP,
    LocationService,
    PresenceClient,
    PresenceLinkConfig,
    PresenceLinkServer,
    PresenceRequestFailed,
    PresenceTimeout,
    PresenceUnavailable,
    classes_from_wire,
    classes_to_wire,
)
from imsdk_server.metrics import Metrics
from tests.links._peers import RawPeer

from ._helpers import on
from .test_link import BUSINESS, CONFIG, LOCATION, eventually, linked

pytestmark = pytest.mark.anyio

P = Biz.PRESENCE


def raw(func: int, seq: int, body: bytes = b"") -> bytes:
    return encode_raw(Header(P, func, seq=seq), body)


def framed(func: int, seq: int, body: object) -> bytes:
    return encode_frame(Header(P, func, seq=seq), body)  # type: ignore[arg-type]


def query(seq: int, *uids: str, networks: tuple[Any, ...] = ()) -> bytes:
    return encode_frame(
        Header(P, PresenceFunc.QUERY, seq=seq), PresenceQuery(uids=list(uids), networks=networks)
    )


# (what, request bytes, expected error code)
BAD_REQUESTS: list[tuple[str, bytes, ErrorCode]] = [
    ("undecodable body", raw(PresenceFunc.QUERY, 11, b"\x0a\xff\xff"), ErrorCode.MALFORMED_BODY),
    ("no uids", query(12), ErrorCode.MALFORMED_BODY),
    ("empty uid", query(13, "alice", ""), ErrorCode.MALFORMED_BODY),
    ("too many uids", query(14, *(f"u{i}" for i in range(6))), ErrorCode.PAYLOAD_TOO_LARGE),
    ("unspecified network", query(15, "alice", networks=(0,)), ErrorCode.MALFORMED_BODY),
    ("unknown network", query(16, "alice", networks=(99,)), ErrorCode.MALFORMED_BODY),
    ("a reply as a request", framed(PresenceFunc.REPLY, 17, PresenceReply()), ErrorCode.UNEXPECTED_MESSAGE),
    ("unknown function", raw(99, 18), ErrorCode.UNKNOWN_CODE),
    (
        "unsubscribe unknown",
        encode_frame(Header(P, PresenceFunc.UNSUBSCRIBE, seq=19), PresenceUnsubscribe(subscriber="nobody")),
        ErrorCode.NOT_FOUND,
    ),
    (
        "unsubscribe single uids",
        framed(PresenceFunc.UNSUBSCRIBE, 20, PresenceUnsubscribe(uids=["a"], subscriber="x")),
        ErrorCode.UNEXPECTED_MESSAGE,
    ),
    (
        "subscribe with an empty uid",
        framed(PresenceFunc.SUBSCRIBE, 21, PresenceSubscribe(uids=["a", ""], subscriber="x")),
        ErrorCode.MALFORMED_BODY,
    ),
    ("not a presence frame", encode_raw(Header(Biz.CHAT, 1, seq=22), b""), ErrorCode.NO_BACKEND),
]  # fmt: skip


async def test_bad_requests_are_answered_with_errors_and_the_link_stays_up() -> None:
    metrics = Metrics()
    service = LocationService(CONFIG, metrics=metrics)
    server = PresenceLinkServer(service, config=PresenceLinkConfig(max_query_uids=5))
    async with anyio.create_task_group() as tg:
        await tg.start(service.run)
        await tg.start(server.run)
        async with LinkHub(LOCATION, handler=server.on_frame, metrics=metrics) as hub:
            peer = await RawPeer.connect(await hub.listen())
            await peer.link_up(BUSINESS)
            service.device_online(on("alice", 7))
            with anyio.fail_after(5):
                for i, (what, data, code) in enumerate(BAD_REQUESTS):
                    await peer.send(data)
                    answer = await peer.recv()
                    assert answer is not None, what
                    assert answer.header.seq == 11 + i, what  # the request's seq: matched by the peer
                    assert (
                        answer.header.flags & (Flags.RESPONSE | Flags.ERROR) == Flags.RESPONSE | Flags.ERROR
                    ), what
                    assert (ErrorCode(answer.header.error), answer.body_as(ErrorReport).code) == (
                        code,
                        code,
                    ), what
                # Everything sent in one write: still one answer each, in order, and a good query still works.
                await peer.send(BAD_REQUESTS[0][1] + query(40, "alice"))
                first, second = await peer.recv(), await peer.recv()
            assert first is not None
            assert second is not None
            assert first.header.error == ErrorCode.MALFORMED_BODY
            assert second.header.seq == 40
            assert not second.header.is_error
            assert [d.uid for d in second.body_as(PresenceReply).devices] == ["alice"]
            assert len(hub.ready_links()) == 1
            assert metrics.value("location_link_errors", code="MALFORMED_BODY") == 7
            await peer.aclose()
        tg.cancel_scope.cancel()


async def test_a_raw_peer_that_vanishes_leaves_no_subscription() -> None:
    metrics = Metrics()
    service = LocationService(CONFIG, metrics=metrics)
    server = PresenceLinkServer(service)
    async with anyio.create_task_group() as tg:
        await tg.start(service.run)
        await tg.start(server.run)
        async with LinkHub(LOCATION, handler=server.on_frame, metrics=metrics) as hub:
            peer = await RawPeer.connect(await hub.listen())
            await peer.link_up(BUSINESS)
            sub = PresenceSubscribe(networks=classes_to_wire(VOIP), subscriber="voip")
            await peer.send(encode_frame(Header(P, PresenceFunc.SUBSCRIBE, seq=5), sub))
            with anyio.fail_after(5):
                ack = await peer.recv()
                assert ack is not None
                assert ack.header.seq == 5
                assert ack.header.is_response
                service.device_online(on("alice", 7, "2g"))  # not online for VoIP: no event
                service.device_online(on("bob", 7, "wifi"))
                event = await peer.recv()
            assert event is not None
            assert event.header.func == PresenceFunc.EVENT
            assert event.header.seq == 5
            assert event.body.presence.uid == "bob"  # type: ignore[union-attr]
            assert server.subscription_count == 1
            await anyio.aclose_forcefully(peer.stream)  # no close frame: a reset from the peer's side
            await eventually(
                lambda: not server.subscription_count and not metrics.value("location_subscribers"), "cleanup"
            )
            assert server.links_watched == 0
            assert metrics.value("location_link_subscriptions_ended", reason="link_closed") == 1
        tg.cancel_scope.cancel()


async def test_too_many_subscriptions_on_one_link() -> None:
    async with linked(PresenceLinkConfig(max_subscriptions_per_link=2)) as p:
        await p.client.subscribe()
        await p.client.subscribe(VOIP)
        with pytest.raises(PresenceRequestFailed) as caught:
            await p.client.subscribe()
        assert caught.value.code is ErrorCode.TOO_MANY_SUBSCRIPTIONS
        assert p.client.subscription_count == 2
        assert p.server.subscription_count == 2


async def test_client_errors_are_typed() -> None:
    async with linked(PresenceLinkConfig(max_query_uids=2)) as p:
        with pytest.raises(PresenceRequestFailed) as caught:
            await p.client.query(["a", "b", "c"])
        assert caught.value.code is ErrorCode.PAYLOAD_TOO_LARGE
        assert (await p.client.query(["a", "b"])) == {"a": [], "b": []}  # the link is still fine
        await p.link.aclose()
        with pytest.raises(PresenceUnavailable):
            await p.client.query(["a"])
        with pytest.raises(PresenceUnavailable):
            await p.client.subscribe()


async def test_a_silent_location_server_times_out() -> None:
    """A peer whose hub has no presence service drops the request: the client times out, typed."""
    async with LinkHub(LOCATION) as silent, LinkHub(BUSINESS, handler=None) as business:
        link = await business.connect(*(await silent.listen()))
        with anyio.fail_after(5):
            await link.wait_ready()
        async with PresenceClient(link, timeout=0.2) as client:
            with pytest.raises(PresenceTimeout) as caught:
                await client.query(["alice"])
            assert caught.value.code is ErrorCode.BACKEND_TIMEOUT
            assert client.metrics.value("presence_client_timeouts") == 1


def test_network_filters_round_trip_as_classes() -> None:
    assert classes_to_wire(VOIP) == [1, 2, 3, 4]
    assert classes_from_wire([1, 2, 3, 4]) == VOIP
    assert classes_from_wire([3]) == classes_from_wire([2, 3, 4])  # one network names its whole class
    assert classes_to_wire(classes_from_wire([])) == []


def test_client_frames_of_other_businesses_are_not_taken() -> None:
    client = PresenceClient.__new__(PresenceClient)
    assert PresenceClient.feed(client, Frame(Header(Biz.CHAT, 1))) is False
