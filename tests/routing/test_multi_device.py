"""End to end on the all-in-one server with the real client SDK over loopback sockets: multi-device sync
(alice on two devices, bob on one) and media references checked against the media store."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import httpx
import pytest

from imsdk_client import Client, MessageReceived, MessageRejected, SendAcked, conversation_id
from imsdk_proto.codes import ErrorCode
from imsdk_proto.messages import ChatImage, ChatText, MediaRef
from imsdk_server.allinone import AllInOne, AllInOneConfig
from imsdk_server.config import HostPort
from tests.media import _samples as samples

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery"
GUARD = 20.0  # seconds: only stops a broken run from hanging
CONV = conversation_id("alice", "bob")


@pytest.fixture
async def server() -> AsyncIterator[str]:
    config = AllInOneConfig(http=HostPort("127.0.0.1", 0), tcp=HostPort("127.0.0.1", 0))
    async with AllInOne(config) as s:
        assert s.http_address is not None
        url = f"http://127.0.0.1:{s.http_address[1]}"
        async with httpx.AsyncClient(base_url=url) as http:
            for uid in ("alice", "bob"):
                r = await http.post("/v1/users", json={"uid": uid, "password": PASSWORD, "nickname": uid})
                assert r.status_code in (200, 201), r.text
        yield url


async def texts_until(client: Client, last: str) -> list[MessageReceived]:
    """Every message the client receives up to and including the text ``last``."""
    got: list[MessageReceived] = []
    with anyio.fail_after(GUARD):
        async for event in client.events():
            if isinstance(event, MessageReceived):
                got.append(event)
                if isinstance(event.content, ChatText) and event.content.text == last:
                    return got
    raise AssertionError(f"the client closed before {last!r}: {got}")


async def test_a_message_sent_from_one_device_reaches_the_senders_other_device_once_in_order(
    server: str,
) -> None:
    async with (
        Client(server, "alice", password=PASSWORD, device="phone") as phone,
        Client(server, "alice", password=PASSWORD, device="pad") as pad,
        Client(server, "bob", password=PASSWORD, device="phone") as bob,
    ):
        sent = [f"from the phone {i}" for i in range(5)]
        acks = [await phone.send_text("bob", text) for text in sent]
        assert [a.conv_seq for a in acks] == [1, 2, 3, 4, 5]
        # a barrier: bob answers; every device that reads his answer has read all that came before it
        reply = await bob.send_text("alice", "got them")
        assert reply.conv_seq == 6

        on_pad = await texts_until(pad, "got them")
        assert [(m.sender_uid, m.sender_device, m.conv_seq) for m in on_pad] == [
            *(("alice", "phone", seq) for seq in range(1, 6)),
            ("bob", "phone", 6),
        ]
        assert [m.content.text for m in on_pad if isinstance(m.content, ChatText)] == [*sent, "got them"]
        assert {m.conversation for m in on_pad} == {CONV}  # filed under the chat with bob: "sent by me"
        assert [m.msg_id for m in on_pad[:5]] == [a.msg_id for a in acks]
        assert [m.server_msg_id for m in on_pad[:5]] == [a.server_msg_id for a in acks]

        on_bob = await texts_until(bob, sent[-1])
        assert [(m.sender_uid, m.conv_seq) for m in on_bob] == [("alice", seq) for seq in range(1, 6)]

        # the sending phone shows its own messages from its acks, never as received
        on_phone = await texts_until(phone, "got them")
        assert [(m.sender_uid, m.conv_seq) for m in on_phone] == [("bob", 6)]

        # and the pad's own message reaches the phone and bob the same way
        await pad.send_text("bob", "from the pad")
        await bob.send_text("alice", "second barrier")
        on_phone = await texts_until(phone, "second barrier")
        assert [(m.sender_device, m.conv_seq) for m in on_phone] == [("pad", 7), ("phone", 8)]
        on_pad = await texts_until(pad, "second barrier")
        assert [(m.sender_uid, m.conv_seq) for m in on_pad] == [("bob", 8)]
        on_bob = await texts_until(bob, "from the pad")
        assert [(m.sender_device, m.conv_seq) for m in on_bob] == [("pad", 7)]


async def test_an_image_needs_its_blob_in_the_media_store(server: str) -> None:
    async with (
        Client(server, "alice", password=PASSWORD, device="phone") as alice,
        Client(server, "bob", password=PASSWORD, device="phone") as bob,
    ):
        ack = await alice.send_image("bob", samples.png(12, 8), caption="uploaded")
        assert isinstance(ack, SendAcked)
        info = await alice.upload_media(samples.gif(2, 2), "image")
        ghost = MediaRef(sha256=bytes(32), mime="image/png", size=100, width=10, height=10)
        edited = MediaRef(sha256=bytes.fromhex(info.id), mime=info.mime, size=info.size, width=200, height=2)
        with pytest.raises(MessageRejected) as missing:
            await alice.post("bob", ChatImage(image=ghost)).wait()
        assert missing.value.code is ErrorCode.NOT_FOUND
        with pytest.raises(MessageRejected) as mismatch:
            await alice.post("bob", ChatImage(image=edited)).wait()
        assert mismatch.value.code is ErrorCode.MALFORMED_BODY
        last = await alice.send_text("bob", "after the refusals")
        assert last.conv_seq == ack.conv_seq + 1  # nothing refused was stored
        got = await texts_until(bob, "after the refusals")
        assert len(got) == 2
        assert isinstance(got[0].content, ChatImage)
        assert got[0].content.caption == "uploaded"
