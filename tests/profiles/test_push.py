"""Profile pushes with the real auth service (SQLite store) and a real location service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import pytest

from imsdk_proto import Frame, FrameDecoder
from imsdk_proto.codes import Biz, Codec, ProfileFunc
from imsdk_proto.messages import FriendEvent, FriendEventKind, ProfileUpdated
from imsdk_server.auth import AuthService
from imsdk_server.links import Link, LinkHub, LinkIdentity
from imsdk_server.location import (
    DeviceOnline,
    LocationConfig,
    LocationService,
    Network,
    PresenceClient,
    PresenceLinkServer,
)
from imsdk_server.metrics import Metrics
from imsdk_server.profiles import (
    Downstream,
    LinkDownstream,
    LocalPresence,
    PresenceLookup,
    ProfilePush,
    wire_profile,
)
from tests.auth._helpers import Clock, make_service

pytestmark = pytest.mark.anyio


def decode(data: bytes) -> Frame:
    decoder = FrameDecoder(1 << 16, codec=Codec.PROTOBUF)
    decoder.feed(data)
    frame = decoder.next_frame()
    assert frame is not None
    assert decoder.next_frame() is None
    return frame


@dataclass
class Recorder:
    """The access servers' side of the downstream: what each device was handed. ``gate`` (if set) holds
    every send until ``gate_count`` sends are in flight together, so a push that sends one frame after the
    other never finishes (the test then fails on its deadline)."""

    sent: list[tuple[int, str, str, Frame]] = field(default_factory=list)
    fail_for: set[str] = field(default_factory=set)
    gate_count: int = 0
    _in_flight: int = 0
    _gate: anyio.Event = field(default_factory=anyio.Event)

    async def send(self, access_id: int, uid: str, device: str, frame: bytes) -> None:
        if device in self.fail_for:
            raise ConnectionError(f"access server {access_id} is gone")
        if self.gate_count:
            self._in_flight += 1
            if self._in_flight >= self.gate_count:
                self._gate.set()
            await self._gate.wait()
        self.sent.append((access_id, uid, device, decode(frame)))


def online(service: LocationService, uid: str, device: str, server: int, net: str = "4g") -> None:
    service.device_online(DeviceOnline(uid, device, server, 1, Network(net), "ios", "2.0", 1000.0))


@asynccontextmanager
async def world() -> AsyncIterator[tuple[AuthService, LocationService]]:
    """alice's friends: bob (phone on 7, pad on 8), carol (offline), erin (laptop on 9); dave is nobody's
    friend but online."""
    auth = await make_service(Clock())
    for uid in ("alice", "bob", "carol", "dave", "erin"):
        await auth.register(uid, "correct horse battery", uid.title())
    for friend in ("bob", "carol", "erin"):
        await auth.add_friend("alice", friend)
    location = LocationService(LocationConfig(), metrics=Metrics())
    async with anyio.create_task_group() as tg:
        await tg.start(location.run)
        online(location, "bob", "phone", 7)
        online(location, "bob", "pad", 8, "wifi")
        online(location, "erin", "laptop", 9, "2g")  # 2G is online for chat-class pushes
        online(location, "dave", "phone", 7)
        online(location, "alice", "phone", 7)
        try:
            yield auth, location
        finally:
            tg.cancel_scope.cancel()
            await auth.aclose()


async def test_a_profile_update_reaches_every_online_friend_device_at_once() -> None:
    async with world() as (auth, location):
        recorder = Recorder(gate_count=3)  # bob's two devices and erin's laptop, all in flight together
        push = ProfilePush(LocalPresence(location), recorder, metrics=Metrics())
        push.attach(auth.events)
        with anyio.fail_after(5):  # run() returns once the queued change is pushed to every device
            async with anyio.create_task_group() as tg:
                await tg.start(push.run)
                profile = await auth.update_profile("alice", signature="gone fishing")
                await push.aclose()
        got = sorted((a, u, d) for a, u, d, _ in recorder.sent)
        assert got == [(7, "bob", "phone"), (8, "bob", "pad"), (9, "erin", "laptop")]
        for _access_id, uid, device, frame in recorder.sent:
            h = frame.header
            assert (h.biz, h.func) == (Biz.PROFILE, ProfileFunc.UPDATED)
            assert (h.receiver_uid, h.receiver_device, h.sender_uid) == (uid, device, "alice")
            body = frame.body_as(ProfileUpdated)
            assert body.profile == wire_profile(profile)
            assert body.profile.signature == "gone fishing"
            assert body.profile.nickname == "Alice"
        m = push.metrics
        assert m.value("profiles_frames_sent") == 3
        assert m.value("profiles_recipients_offline") == 1  # carol: she reads it on her next profile read
        assert m.value("profiles_changes", kind="profile") == 1


async def test_a_failing_access_server_does_not_stop_the_others() -> None:
    async with world() as (auth, location):
        recorder = Recorder(fail_for={"phone"})
        push = ProfilePush(LocalPresence(location), recorder, metrics=Metrics())
        profile = await auth.update_profile("alice", nickname="Al")
        from imsdk_server.auth import ProfileChanged

        sent = await push.push_profile(ProfileChanged(profile, tuple(await auth.list_friends("alice"))))
        assert sent == 2
        assert sorted(d for _, _, d, _ in recorder.sent) == ["laptop", "pad"]
        assert push.metrics.value("profiles_send_errors") == 1


async def test_friend_changes_reach_both_users_devices() -> None:
    async with world() as (_auth, location):
        recorder = Recorder()
        push = ProfilePush(LocalPresence(location), recorder, metrics=Metrics())
        async with anyio.create_task_group() as tg:
            await tg.start(push.run)
            push.friend_changed("added", "alice", "dave", 1_800_000_000.5)
            await push.aclose()
        got = sorted((u, d) for _, u, d, _ in recorder.sent)
        assert got == [("alice", "phone"), ("dave", "phone")]
        event = recorder.sent[0][3].body_as(FriendEvent)
        assert (event.kind, event.uid, event.friend_uid) == (
            FriendEventKind.FRIEND_EVENT_KIND_ADDED,
            "alice",
            "dave",
        )
        assert event.time_ms == 1_800_000_000_500
        assert recorder.sent[0][3].header.func == ProfileFunc.FRIEND_EVENT


async def test_a_full_queue_drops_and_counts_without_blocking_the_auth_service() -> None:
    async with world() as (auth, location):
        from imsdk_server.profiles import ProfilePushConfig

        push = ProfilePush(LocalPresence(location), Recorder(), config=ProfilePushConfig(queue_size=1))
        push.attach(auth.events)
        await auth.update_profile("alice", signature="one")  # queued (nobody runs the push yet)
        await auth.update_profile("alice", signature="two")  # the queue is full: dropped, the update succeeds
        assert push.metrics.value("profiles_changes_dropped") == 1
        assert (await auth.get_profile("alice")).signature == "two"  # type: ignore[union-attr]


def test_avatar_media_ids_travel_as_media_refs() -> None:
    from imsdk_server.auth import Profile

    digest = "ab" * 32
    assert wire_profile(Profile("a", "A", "", digest, 1.5)).avatar.sha256 == bytes.fromhex(digest)
    assert not wire_profile(Profile("a", "A", "", "https://x/y.png", 1.5)).HasField("avatar")
    assert wire_profile(Profile("a", "A", "", "", 1.5)).version == 1500


async def test_over_links_presence_client_and_access_link() -> None:
    """The push service as its own server: presence over a link to the location hub, frames over a link
    to an access server's hub."""
    location = LocationService(LocationConfig(), metrics=Metrics())
    presence_server = PresenceLinkServer(location)
    access_frames: list[Frame] = []
    arrived = anyio.Event()

    async def access_handler(link: Link, frame: Frame) -> None:
        access_frames.append(frame)
        arrived.set()

    clients: list[PresenceClient] = []

    async def push_handler(link: Link, frame: Frame) -> None:
        for c in clients:
            await c.on_frame(link, frame)

    auth = await make_service(Clock())
    for uid in ("alice", "bob"):
        await auth.register(uid, "correct horse battery", uid.title())
    await auth.add_friend("alice", "bob")
    async with anyio.create_task_group() as tg:
        await tg.start(location.run)
        await tg.start(presence_server.run)
        async with (
            LinkHub(LinkIdentity(4, 1), handler=presence_server.on_frame) as location_hub,
            LinkHub(LinkIdentity(1, 7), handler=access_handler) as access_hub,
            LinkHub(LinkIdentity(8, 40), handler=push_handler) as push_hub,
        ):
            to_location = await push_hub.connect(*(await location_hub.listen()))
            to_access = await push_hub.connect(*(await access_hub.listen()))
            with anyio.fail_after(5):
                await to_location.wait_ready()
                await to_access.wait_ready()
            async with PresenceClient(to_location, name="profiles") as client:
                clients.append(client)
                lookup: PresenceLookup = client
                downstream: Downstream = LinkDownstream(push_hub)
                push = ProfilePush(lookup, downstream, metrics=Metrics())
                push.attach(auth.events)
                online(location, "bob", "phone", 7)
                async with anyio.create_task_group() as push_tg:
                    await push_tg.start(push.run)
                    await auth.update_profile("alice", signature="on a link")
                    await push.aclose()
                with anyio.fail_after(5):
                    await arrived.wait()
        tg.cancel_scope.cancel()
    await auth.aclose()
    [frame] = access_frames
    assert (frame.header.receiver_uid, frame.header.receiver_device) == ("bob", "phone")
    assert frame.body_as(ProfileUpdated).profile.signature == "on a link"
