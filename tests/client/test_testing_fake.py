"""``imsdk_client.testing.FakeServer``: what an app's tests can rely on, on asyncio and trio.

Recorded frames (resends carry the same ids and the retry flag), scripted answers, presence and profile
pushes to friends, notifications, receipts, friends over HTTP, media refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import anyio
import pytest

from imsdk_client import (
    Client,
    MessageReceived,
    MessageRejected,
    NotificationReceived,
    PresenceChanged,
    ProfileUpdated,
    ReceiptReceived,
    RequestRejected,
)
from imsdk_client.testing import FakeConnection, FakeServer
from imsdk_proto import Frame, Header
from imsdk_proto.codes import Biz, ChatFunc, ErrorCode, Flags
from imsdk_proto.messages import ChatText, ErrorReport, SendStatus

pytestmark = pytest.mark.anyio

PASSWORD = "pw"
GUARD = 20.0
T = TypeVar("T")


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    async with FakeServer() as fake:
        for uid in ("alice", "bob"):
            fake.add_user(uid, PASSWORD)
        yield fake


def client(server: FakeServer, uid: str, device: str = "phone") -> Client:
    return Client(server.url, uid, password=PASSWORD, device=device, http_transport=server.http_transport())


async def first(c: Client, kind: type[T], where: Callable[[T], bool] = lambda _: True) -> T:
    with anyio.fail_after(GUARD):
        async for event in c.events():
            if isinstance(event, kind) and where(event):
                return event
    raise AssertionError("the event stream ended")


async def test_resends_after_a_reconnect_carry_the_same_ids_and_the_retry_flag(server: FakeServer) -> None:
    async with client(server, "alice") as alice:
        # the server stores the messages but its answers are lost on the way
        server.connections("alice")[0].muted = True
        pending = [alice.post("bob", ChatText(text=f"x{i}")) for i in range(3)]
        with anyio.fail_after(GUARD):
            await server.wait_for(lambda: len(server.stored("alice", "bob")) == 3)
        alice.set_network("3g")
        acks = [await p.wait() for p in pending]
    sent = server.frames("alice", Biz.CHAT, ChatFunc.TEXT)
    ids = [p.msg_id for p in pending]
    assert [f.header.msg_id for f in sent] == ids + ids
    assert [bool(f.header.flags & Flags.RETRY) for f in sent] == [False] * 3 + [True] * 3
    assert len({f.header.seq for f in sent}) == 6, "each session numbers afresh from its own base"
    assert [a.status for a in acks] == [SendStatus.SEND_STATUS_DUPLICATE] * 3
    assert [a.conv_seq for a in acks] == [1, 2, 3]
    assert len(server.stored("alice", "bob")) == 3


async def test_a_script_answers_frames_its_own_way(server: FakeServer) -> None:
    def refuse_rude_words(conn: FakeConnection, frame: Frame) -> bool:
        body = frame.body
        if isinstance(body, ChatText) and "rude" in body.text:
            h = frame.header
            reply = Header(
                Biz.CHAT,
                ChatFunc.SEND_ACK,
                h.seq,
                h.msg_id,
                flags=Flags.RESPONSE | Flags.ERROR,
                error=int(ErrorCode.FORBIDDEN),
            )
            conn.send_frame(reply, ErrorReport(code=int(ErrorCode.FORBIDDEN), message="mind your words"))
            return True
        return False

    server.script(refuse_rude_words)
    async with client(server, "alice") as alice:
        with pytest.raises(MessageRejected) as info:
            await alice.send_text("bob", "something rude")
        assert info.value.code is ErrorCode.FORBIDDEN
        assert "mind your words" in str(info.value)
        assert (await alice.send_text("bob", "something kind")).conv_seq == 1


async def test_friends_hear_of_presence_and_profile_changes(server: FakeServer) -> None:
    async with client(server, "alice") as alice:
        assert await alice.add_friend("bob") is True
        assert await alice.friends() == ["bob"]
        async with client(server, "bob", "pc") as bob:
            online = await first(alice, PresenceChanged)
            assert (online.uid, online.device, online.online) == ("bob", "pc", True)
            await bob.update_profile(signature="out fishing")
            updated = await first(alice, ProfileUpdated)
            assert (updated.profile.uid, updated.profile.signature) == ("bob", "out fishing")
            assert (await alice.profile("bob")).signature == "out fishing"
        offline = await first(alice, PresenceChanged)
        assert (offline.uid, offline.online) == ("bob", False)
        assert await alice.remove_friend("bob") is True
        assert await alice.friends() == []


async def test_notifications_are_acknowledged_and_shown_once(server: FakeServer) -> None:
    async with client(server, "alice") as alice:
        assert server.notify("alice", "welcome", b"hello") == 1
        got = await first(alice, NotificationReceived)
        assert (got.notification.type, got.notification.payload) == ("welcome", b"hello")
        with anyio.fail_after(GUARD):
            await server.wait_for(lambda: bool(server.frames("alice", Biz.NOTIFY)))


async def test_receipts_reach_the_sender(server: FakeServer) -> None:
    async with client(server, "alice") as alice, client(server, "bob", "pc") as bob:
        ack = await alice.send_text("bob", "read me")
        message = await first(bob, MessageReceived)
        bob.mark_read("alice", message.conv_seq, [message.server_msg_id])
        receipt = await first(alice, ReceiptReceived)
        assert (receipt.kind, receipt.up_to_conv_seq, receipt.server_msg_ids) == (
            "read",
            ack.conv_seq,
            (ack.server_msg_id,),
        )


async def test_media_the_service_does_not_accept_is_refused(server: FakeServer) -> None:
    async with client(server, "alice") as alice:
        with pytest.raises(RequestRejected) as info:
            await alice.send_image("bob", b"not an image at all")
        assert info.value.code is ErrorCode.MALFORMED_BODY
        assert server.stored("alice", "bob") == []


async def test_the_fake_kills_and_restarts_an_access_point(server: FakeServer) -> None:
    ap = server.access_points[0]
    port = ap.port
    ap.kill()
    with anyio.fail_after(GUARD):
        await ap.wait_stopped()
    with pytest.raises(OSError):  # noqa: PT011 - refused; the message differs between backends
        await anyio.connect_tcp("127.0.0.1", port)
    await ap.restart()
    stream = await anyio.connect_tcp("127.0.0.1", port)
    await stream.aclose()
    assert ap.port == port
