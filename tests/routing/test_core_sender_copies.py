"""Multi-device sync in the router core: a committed message is also sent, as a one-message ``SYNC/BATCH``,
to the sender's *other* online devices, so each files it under the conversation with the peer."""

from __future__ import annotations

import pytest

from imsdk_proto import messages as pb
from imsdk_proto.codes import Biz, ChatFunc, Flags, SyncFunc
from imsdk_server.metrics import Metrics
from imsdk_server.routing import AppendResult, conversation_id
from imsdk_server.routing._config import RouterConfig
from imsdk_server.routing._core import AppendMessage, DeviceLocation, QueryPresence, RouterCore, SendFrame
from tests.routing.test_core import ROUTER, T0, ack_of, chat, every, single

BOB_PHONE = DeviceLocation("bob", "phone", 9)
CONV = conversation_id("alice", "bob")


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def core(metrics: Metrics) -> RouterCore:
    core = RouterCore(RouterConfig(server_id=ROUTER), metrics=metrics)
    # alice is online on her phone (access server 3, where she sends from) and her pad (access server 11)
    for uid, device, access_id in (("alice", "phone", 3), ("alice", "pad", 11), ("bob", "phone", 9)):
        core.device_online(uid, device, access_id, T0)
    return core


def committed(core: RouterCore, result: AppendResult, **options: object) -> list[SendFrame]:
    query = single(core.frame_received(*chat(**options), T0), QueryPresence)  # type: ignore[arg-type]
    append = single(core.presence_answered(query.token, True, [BOB_PHONE], T0), AppendMessage)
    return every(core.append_committed(append.token, result, T0), SendFrame)


def test_the_senders_other_device_gets_the_stored_message_once(core: RouterCore, metrics: Metrics) -> None:
    ack, push, copy = committed(core, AppendResult(500, 12, 1234))
    assert ack_of(ack).conv_seq == 12
    assert (push.access_id, push.header.receiver_uid, push.header.receiver_device) == (9, "bob", "phone")
    # the copy: to alice's pad only, on its access server, as a batch naming the conversation
    assert copy.access_id == 11
    h = copy.header
    assert (h.biz, h.func) == (Biz.SYNC, SyncFunc.BATCH)
    assert (h.receiver_uid, h.receiver_device, h.msg_server_id, h.flags) == ("alice", "pad", ROUTER, Flags(0))
    batch = pb.SyncBatch.FromString(copy.body)
    assert (batch.conversation, batch.more) == (CONV, False)
    (m,) = batch.messages
    assert (m.conversation, m.sender_uid, m.sender_device, m.msg_id) == (CONV, "alice", "phone", 1001)
    assert (m.server_msg_id, m.conv_seq, m.sent_at_ms) == (500, 12, 1234)
    assert m.WhichOneof("content") == "text"
    assert (m.text.text, m.text.server_msg_id, m.text.conv_seq, m.text.sent_at_ms) == (
        "hello 1001",
        500,
        12,
        1234,
    )
    assert metrics.value("routing_sender_copies_total") == 1
    assert metrics.value("routing_messages_pushed_total") == 1  # the copy is not a delivery to the receiver


def test_every_other_device_gets_one_and_the_sending_one_none(core: RouterCore) -> None:
    core.device_online("alice", "laptop", 12, T0)
    _, _, *copies = committed(core, AppendResult(1, 1, 5))
    assert sorted((c.access_id, c.header.receiver_device) for c in copies) == [(11, "pad"), (12, "laptop")]


def test_the_copy_goes_even_when_the_receiver_is_offline(core: RouterCore) -> None:
    query = single(core.frame_received(*chat(receiver="carol"), T0), QueryPresence)
    append = single(core.presence_answered(query.token, True, [], T0), AppendMessage)
    ack, copy = every(core.append_committed(append.token, AppendResult(2, 1, 5), T0), SendFrame)
    assert ack_of(ack).status == pb.SendStatus.SEND_STATUS_STORED
    assert pb.SyncBatch.FromString(copy.body).conversation == conversation_id("alice", "carol")


def test_a_duplicate_is_not_copied_again(core: RouterCore) -> None:
    query = single(core.frame_received(*chat(flags=Flags.RETRY), T0), QueryPresence)
    append = single(core.presence_answered(query.token, True, [BOB_PHONE], T0), AppendMessage)
    ack = single(core.append_committed(append.token, AppendResult(1, 1, 5, duplicate=True), T0), SendFrame)
    assert ack_of(ack).status == pb.SendStatus.SEND_STATUS_DUPLICATE


def test_no_copy_to_a_device_that_went_offline_or_a_user_with_one_device(core: RouterCore) -> None:
    core.device_offline("alice", "pad", T0)
    ack, push = committed(core, AppendResult(1, 1, 5))
    assert ack_of(ack).conv_seq == 1
    assert push.header.receiver_uid == "bob"
    alone = RouterCore(RouterConfig(server_id=ROUTER), metrics=Metrics())
    query = single(alone.frame_received(*chat(), T0), QueryPresence)
    append = single(alone.presence_answered(query.token, True, [BOB_PHONE], T0), AppendMessage)
    assert len(alone.append_committed(append.token, AppendResult(1, 1, 5), T0)) == 2  # the ack and the push


def test_a_sender_whose_only_online_device_is_another_one_gets_the_copy_there() -> None:
    """The sending device's online notice may not have reached the router yet: the pad still gets it."""
    core = RouterCore(RouterConfig(server_id=ROUTER), metrics=Metrics())
    core.device_online("alice", "pad", 11, T0)
    query = single(core.frame_received(*chat(), T0), QueryPresence)
    append = single(core.presence_answered(query.token, True, [], T0), AppendMessage)
    _, copy = every(core.append_committed(append.token, AppendResult(1, 1, 5), T0), SendFrame)
    assert copy.header.receiver_device == "pad"


def test_instant_messages_are_not_copied(core: RouterCore) -> None:
    query = single(core.frame_received(*chat(flags=Flags.NO_STORE), T0), QueryPresence)
    push, ack = every(core.presence_answered(query.token, True, [BOB_PHONE], T0), SendFrame)
    assert push.header.receiver_uid == "bob"
    assert ack_of(ack).status == pb.SendStatus.SEND_STATUS_DELIVERED


@pytest.mark.parametrize(
    ("func", "body", "field"),
    [
        (
            ChatFunc.IMAGE,
            pb.ChatImage(image=pb.MediaRef(sha256=bytes(32), mime="image/png", size=9)),
            "image",
        ),
        (ChatFunc.LOCATION, pb.ChatLocation(lat=1.5, lng=2.5, label="here"), "location"),
    ],
    ids=["image", "location"],
)
def test_every_content_kind_is_copied_whole(core: RouterCore, func: int, body: object, field: str) -> None:
    assert hasattr(body, "SerializeToString")
    raw = body.SerializeToString()
    _, _, copy = committed(core, AppendResult(3, 4, 5), func=func, body=raw)
    (m,) = pb.SyncBatch.FromString(copy.body).messages
    assert m.WhichOneof("content") == field
    content = getattr(m, field)
    assert content.conv_seq == 4
    content.ClearField("server_msg_id")
    content.ClearField("conv_seq")
    content.ClearField("sent_at_ms")
    assert content == body
