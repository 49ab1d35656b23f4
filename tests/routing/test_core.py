"""The router core, driven by hand: inputs and times in, actions checked exactly."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imsdk_proto import messages as pb
from imsdk_proto._header import Header
from imsdk_proto.codes import Biz, ChatFunc, ErrorCode, Flags, SyncFunc
from imsdk_proto.messages import SendStatus
from imsdk_server.metrics import Metrics
from imsdk_server.routing import AppendResult, StoredRecord, conversation_id
from imsdk_server.routing._config import RouterConfig
from imsdk_server.routing._core import (
    Action,
    AppendMessage,
    DeviceLocation,
    LoadPending,
    LoadRange,
    QueryPresence,
    RouterCore,
    SendFrame,
    StoreAck,
    stamp_body,
)

ROUTER = 7
NO_FLAGS = Flags(0)
T0 = 1_700_000_000.0
CONV_AB = conversation_id("alice", "bob")


def chat(
    func: int = ChatFunc.TEXT,
    body: bytes | None = None,
    *,
    seq: int = 1,
    msg_id: int = 1001,
    receiver: str = "bob",
    flags: Flags = NO_FLAGS,
    msg_server_id: int = ROUTER,
    sender: str = "alice",
    device: str = "phone",
    access_id: int = 3,
    session: int = 55,
) -> tuple[Header, bytes]:
    header = Header(
        biz=Biz.CHAT,
        func=func,
        seq=seq,
        msg_id=msg_id,
        access_id=access_id,
        msg_server_id=msg_server_id,
        flags=flags,
        sender_uid=sender,
        sender_device=device,
        receiver_uid=receiver,
        session=session,
    )
    if body is None:
        body = pb.ChatText(text=f"hello {msg_id}").SerializeToString()
    return header, body


def sync(
    func: int, message: Any, *, uid: str = "bob", device: str = "phone", access_id: int = 4
) -> tuple[Header, bytes]:
    header = Header(
        biz=Biz.SYNC, func=func, seq=9, msg_id=99, access_id=access_id, msg_server_id=ROUTER,
        sender_uid=uid, sender_device=device, session=66,
    )  # fmt: skip
    return header, message.SerializeToString()


A = TypeVar("A", bound=Action)


def only(actions: Sequence[Action], kind: type[A]) -> list[A]:
    """The actions of one type, in order (the others are left out)."""
    return [a for a in actions if isinstance(a, kind)]


def one(actions: Sequence[Action], kind: type[A]) -> A:
    """The one action of type ``kind`` among ``actions`` (others may be there too)."""
    found = only(actions, kind)
    assert len(found) == 1, actions
    return found[0]


def is_a(action: Action, kind: type[A]) -> A:
    """``action``, checked to be a ``kind``."""
    assert isinstance(action, kind), action
    return action


def single(actions: Sequence[Action], kind: type[A]) -> A:
    """The only action, checked to be a ``kind`` (like ``(action,) = actions`` with a type check)."""
    assert len(actions) == 1, actions
    return is_a(actions[0], kind)


def every(actions: Sequence[Action], kind: type[A]) -> list[A]:
    """All of ``actions``, each checked to be a ``kind``."""
    return [is_a(a, kind) for a in actions]


def token_of(actions: Sequence[Action]) -> int:
    """The token of the presence query that the first action is."""
    return is_a(actions[0], QueryPresence).token


def error_of(frame: SendFrame) -> ErrorCode:
    assert frame.header.flags & Flags.RESPONSE
    assert frame.header.flags & Flags.ERROR
    report = pb.ErrorReport.FromString(frame.body)
    assert report.code == frame.header.error
    return ErrorCode(frame.header.error)


def ack_of(frame: SendFrame) -> pb.SendAck:
    assert frame.header.code == (Biz.CHAT, ChatFunc.SEND_ACK)
    assert frame.header.flags == Flags.RESPONSE
    return pb.SendAck.FromString(frame.body)


@pytest.fixture
def core() -> RouterCore:
    return RouterCore(RouterConfig(server_id=ROUTER), metrics=Metrics())


BOB_PHONE = DeviceLocation("bob", "phone", 9)
BOB_PAD = DeviceLocation("bob", "pad", 10)


# -- the offline class --------------------------------------------------------------------------------------


def test_offline_message_is_stored_then_acked_then_pushed(core: RouterCore) -> None:
    header, body = chat()
    query = single(core.frame_received(header, body, T0), QueryPresence)
    assert query == QueryPresence(query.token, "bob")
    append = single(
        core.presence_answered(query.token, True, [BOB_PHONE, BOB_PAD], T0 + 0.001), AppendMessage
    )
    assert isinstance(append, AppendMessage)
    m = append.message
    assert (m.conversation, m.sender_uid, m.sender_device, m.client_msg_id, m.receiver_uid) == (
        CONV_AB, "alice", "phone", 1001, "bob",
    )  # fmt: skip
    assert (m.content_type, m.body, m.created_ms) == (ChatFunc.TEXT, body, int(T0 * 1000))
    out = core.append_committed(append.token, AppendResult(500, 12, 1234), T0 + 0.01)
    ack, *pushes = every(out, SendFrame)
    assert isinstance(ack, SendFrame)
    assert ack.access_id == 3
    assert (ack.header.receiver_uid, ack.header.receiver_device, ack.header.seq, ack.header.msg_id) == (
        "alice", "phone", 1, 1001,
    )  # fmt: skip
    assert ack_of(ack) == pb.SendAck(
        msg_id=1001,
        server_msg_id=500,
        conv_seq=12,
        timestamp_ms=1234,
        status=SendStatus.SEND_STATUS_DELIVERED,
    )
    assert sorted((p.access_id, p.header.receiver_device) for p in pushes) == [(9, "phone"), (10, "pad")]
    for push in pushes:
        assert push.header.code == (Biz.CHAT, ChatFunc.TEXT)
        assert (push.header.sender_uid, push.header.receiver_uid, push.header.msg_id) == (
            "alice",
            "bob",
            1001,
        )
        assert push.header.msg_server_id == ROUTER
        text = pb.ChatText.FromString(push.body)
        assert (text.text, text.server_msg_id, text.conv_seq, text.sent_at_ms) == (
            "hello 1001",
            500,
            12,
            1234,
        )
    assert core.inflight == 0


def test_offline_receiver_gets_nothing_sender_gets_stored(core: RouterCore) -> None:
    query = single(core.frame_received(*chat(), T0), QueryPresence)
    append = single(core.presence_answered(query.token, True, [], T0), AppendMessage)
    ack = single(core.append_committed(append.token, AppendResult(1, 1, 5), T0), SendFrame)
    assert ack_of(ack).status == SendStatus.SEND_STATUS_STORED


def test_resend_is_acked_with_original_ids_and_not_pushed_again(core: RouterCore) -> None:
    query = single(core.frame_received(*chat(flags=Flags.RETRY), T0), QueryPresence)
    append = single(core.presence_answered(query.token, True, [BOB_PHONE], T0), AppendMessage)
    ack = single(core.append_committed(append.token, AppendResult(40, 3, 777, duplicate=True), T0), SendFrame)
    assert ack_of(ack) == pb.SendAck(
        msg_id=1001, server_msg_id=40, conv_seq=3, timestamp_ms=777, status=SendStatus.SEND_STATUS_DUPLICATE
    )


def test_database_down_means_error_and_no_ack(core: RouterCore) -> None:
    query = single(core.frame_received(*chat(), T0), QueryPresence)
    append = single(core.presence_answered(query.token, True, [BOB_PHONE], T0), AppendMessage)
    frame = single(core.append_failed(append.token, ErrorCode.STORAGE_UNAVAILABLE, T0), SendFrame)
    assert error_of(frame) == ErrorCode.STORAGE_UNAVAILABLE
    assert frame.header.code == (Biz.CHAT, ChatFunc.SEND_ACK)
    assert (frame.header.seq, frame.header.msg_id) == (1, 1001)
    assert core.append_committed(append.token, AppendResult(1, 1, 1), T0) == []  # a late answer is ignored


def test_device_online_while_storing_is_pushed_too(core: RouterCore) -> None:
    query = single(core.frame_received(*chat(), T0), QueryPresence)
    append = single(core.presence_answered(query.token, True, [], T0), AppendMessage)
    core.device_online("bob", "pad", 12, T0)
    _, push = every(core.append_committed(append.token, AppendResult(1, 1, 1), T0), SendFrame)
    assert (push.access_id, push.header.receiver_device) == (12, "pad")


# -- the instant class --------------------------------------------------------------------------------------


def test_instant_message_goes_to_every_online_device(core: RouterCore) -> None:
    query = single(core.frame_received(*chat(flags=Flags.NO_STORE), T0), QueryPresence)
    out = core.presence_answered(query.token, True, [BOB_PHONE, BOB_PAD], T0 + 0.5)
    assert only(out, AppendMessage) == []
    sent = every(out, SendFrame)
    pushes = [f for f in sent if f.header.func == ChatFunc.TEXT]
    assert sorted(p.access_id for p in pushes) == [9, 10]
    assert all(p.header.flags == Flags.NO_STORE for p in pushes)
    assert pb.ChatText.FromString(pushes[0].body).sent_at_ms == int(T0 * 1000)
    (ack,) = [f for f in sent if f.header.func == ChatFunc.SEND_ACK]
    assert ack_of(ack).status == SendStatus.SEND_STATUS_DELIVERED
    # the same message again is not forwarded twice
    dup = single(core.frame_received(*chat(flags=Flags.NO_STORE | Flags.RETRY), T0 + 1), SendFrame)
    assert ack_of(dup).status == SendStatus.SEND_STATUS_DUPLICATE


def test_a_device_online_only_by_an_earlier_notice_is_not_a_target(core: RouterCore) -> None:
    """Bob's phone went online (a notice), then its line dropped: the location still publishes it as online
    for its grace window, so no offline notice has come, but the presence answer no longer has it. An
    instant message to it would be lost while the sender is told ``DELIVERED``: it is ``RECEIVER_OFFLINE``,
    and a stored message is stored without a push. A notice that arrives after the query still counts."""
    single(core.device_online("bob", "phone", 9, T0), LoadPending)
    query = single(core.frame_received(*chat(flags=Flags.NO_STORE), T0 + 1), QueryPresence)
    frame = single(core.presence_answered(query.token, True, [], T0 + 1), SendFrame)
    assert error_of(frame) == ErrorCode.RECEIVER_OFFLINE
    query = single(core.frame_received(*chat(seq=2, msg_id=1002), T0 + 2), QueryPresence)
    append = single(core.presence_answered(query.token, True, [], T0 + 2), AppendMessage)
    (ack,) = every(core.append_committed(append.token, AppendResult(1, 1, 1), T0 + 2), SendFrame)
    assert ack_of(ack).status == SendStatus.SEND_STATUS_STORED
    query = single(
        core.frame_received(*chat(seq=3, msg_id=1003, flags=Flags.NO_STORE), T0 + 3), QueryPresence
    )
    single(core.device_online("bob", "pad", 12, T0 + 3), LoadPending)
    pushes = [
        f
        for f in every(core.presence_answered(query.token, True, [], T0 + 3), SendFrame)
        if f.header.func == ChatFunc.TEXT
    ]
    assert [(p.access_id, p.header.receiver_device) for p in pushes] == [(12, "pad")]


def test_instant_message_to_offline_receiver_is_dropped(core: RouterCore) -> None:
    query = single(core.frame_received(*chat(flags=Flags.NO_STORE), T0), QueryPresence)
    frame = single(core.presence_answered(query.token, True, [], T0), SendFrame)
    assert error_of(frame) == ErrorCode.RECEIVER_OFFLINE
    assert core.inflight == 0


# -- refusals, table-driven ---------------------------------------------------------------------------------

_IMAGE_OK = pb.ChatImage(image=pb.MediaRef(sha256=b"\x01" * 32, mime="image/png", size=10))

REFUSALS: list[tuple[str, dict[str, Any], bytes | None, ErrorCode]] = [
    ("no message-server id", {"msg_server_id": 0}, None, ErrorCode.WRONG_MESSAGE_SERVER),
    ("another router's id", {"msg_server_id": 8}, None, ErrorCode.WRONG_MESSAGE_SERVER),
    ("no receiver", {"receiver": ""}, None, ErrorCode.UNKNOWN_RECEIVER),
    ("garbage body", {}, b"\xff\xff\xff", ErrorCode.MALFORMED_BODY),
    ("empty text", {}, pb.ChatText().SerializeToString(), ErrorCode.MALFORMED_BODY),
    ("oversize text", {}, pb.ChatText(text="x" * 4001).SerializeToString(), ErrorCode.PAYLOAD_TOO_LARGE),
    ("oversize body", {}, b"\x0a\x80\x80\x01" + b"x" * 16384, ErrorCode.PAYLOAD_TOO_LARGE),
    ("image without media", {"func": ChatFunc.IMAGE},
     pb.ChatImage().SerializeToString(), ErrorCode.MALFORMED_BODY),
    ("voice without duration", {"func": ChatFunc.VOICE},
     pb.ChatVoice(voice=_IMAGE_OK.image).SerializeToString(), ErrorCode.MALFORMED_BODY),
    ("latitude out of range", {"func": ChatFunc.LOCATION},
     pb.ChatLocation(lat=91, lng=0).SerializeToString(), ErrorCode.MALFORMED_BODY),
    ("longitude out of range", {"func": ChatFunc.LOCATION},
     pb.ChatLocation(lat=0, lng=-180.5).SerializeToString(), ErrorCode.MALFORMED_BODY),
    ("a send ack from a client", {"func": ChatFunc.SEND_ACK}, b"", ErrorCode.UNEXPECTED_MESSAGE),
    ("a response", {"flags": Flags.RESPONSE}, None, ErrorCode.UNEXPECTED_MESSAGE),
    ("no stamped device", {"device": ""}, None, ErrorCode.FORGED_SENDER),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "body", "code"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_bad_frames_get_one_error_and_nothing_else(
    core: RouterCore, changes: dict[str, Any], body: bytes | None, code: ErrorCode
) -> None:
    frame = single(core.frame_received(*chat(body=body, **changes), T0), SendFrame)
    assert error_of(frame) == code
    assert (frame.access_id, frame.header.receiver_uid, frame.header.seq) == (3, "alice", 1)
    assert frame.header.msg_server_id == ROUTER
    assert core.inflight == 0


def test_valid_media_and_location_messages_are_accepted(core: RouterCore) -> None:
    voice = pb.ChatVoice(voice=_IMAGE_OK.image, duration_ms=1500)
    place = pb.ChatLocation(lat=-33.9, lng=151.2, accuracy_m=5, label="harbour")
    for func, body in ((ChatFunc.IMAGE, _IMAGE_OK), (ChatFunc.VOICE, voice), (ChatFunc.LOCATION, place)):
        query = single(
            core.frame_received(*chat(func, body.SerializeToString(), msg_id=func), T0), QueryPresence
        )
        assert isinstance(query, QueryPresence)


def test_frame_without_access_id_is_dropped_silently(core: RouterCore) -> None:
    assert core.frame_received(*chat(access_id=0), T0) == []


def test_unknown_receiver(core: RouterCore) -> None:
    query = single(core.frame_received(*chat(receiver="nobody"), T0), QueryPresence)
    frame = single(core.presence_answered(query.token, False, [], T0), SendFrame)
    assert error_of(frame) == ErrorCode.UNKNOWN_RECEIVER


def test_too_many_in_flight(core: RouterCore) -> None:
    small = RouterCore(RouterConfig(server_id=ROUTER, max_inflight_per_sender=2))
    assert isinstance(small.frame_received(*chat(msg_id=1), T0)[0], QueryPresence)
    assert isinstance(small.frame_received(*chat(msg_id=2), T0)[0], QueryPresence)
    frame = single(small.frame_received(*chat(msg_id=3), T0), SendFrame)
    assert error_of(frame) == ErrorCode.RATE_LIMITED
    # another session of the same user is not affected
    assert isinstance(small.frame_received(*chat(msg_id=4, session=56), T0)[0], QueryPresence)


# -- order and time -----------------------------------------------------------------------------------------


def test_sender_order_survives_presence_answers_out_of_order(core: RouterCore) -> None:
    tokens = [token_of(core.frame_received(*chat(seq=i, msg_id=100 + i), T0)) for i in range(1, 4)]
    assert core.presence_answered(tokens[2], True, [], T0) == []
    assert core.presence_answered(tokens[1], True, [], T0) == []
    out = core.presence_answered(tokens[0], True, [], T0)
    assert [a.message.client_msg_id for a in every(out, AppendMessage)] == [101, 102, 103]


def test_instant_after_stored_message_keeps_its_place(core: RouterCore) -> None:
    t1 = token_of(core.frame_received(*chat(msg_id=1), T0))
    t2 = token_of(core.frame_received(*chat(msg_id=2, flags=Flags.NO_STORE), T0))
    assert core.presence_answered(t2, True, [BOB_PHONE], T0) == []  # waits for message 1
    out = core.presence_answered(t1, True, [BOB_PHONE], T0)
    assert isinstance(out[0], AppendMessage)
    assert [f.header.msg_id for f in only(out, SendFrame)] == [2, 2]


def test_presence_timeout(core: RouterCore) -> None:
    t1 = token_of(core.frame_received(*chat(msg_id=1), T0))
    t2 = token_of(core.frame_received(*chat(msg_id=2), T0 + 1))
    assert core.presence_answered(t2, True, [], T0 + 2) == []
    assert core.next_deadline() == T0 + 5.0
    assert core.handle_timer(T0 + 4.999) == []
    out = core.handle_timer(T0 + 5.0)
    assert error_of(is_a(out[0], SendFrame)) == ErrorCode.BACKEND_TIMEOUT
    assert is_a(out[0], SendFrame).header.msg_id == 1
    assert isinstance(out[1], AppendMessage)
    assert out[1].message.client_msg_id == 2
    assert core.next_deadline() is None
    assert core.presence_answered(t1, True, [], T0 + 6) == []


def test_deadlines_follow_the_monotonic_now_and_timestamps_the_wall_clock(core: RouterCore) -> None:
    mono = 12.5  # seconds since some boot: nothing like a date
    query = single(core.frame_received(*chat(msg_id=1), mono, wall=T0), QueryPresence)
    assert isinstance(query, QueryPresence)
    assert core.next_deadline() == mono + 5.0  # not T0 + 5: the wall clock plays no part in it
    assert core.handle_timer(mono + 4.999) == []
    append = single(core.presence_answered(query.token, True, [], mono + 1), AppendMessage)
    assert isinstance(append, AppendMessage)
    assert append.message.created_ms == int(T0 * 1000)
    # the wall clock stepped back an hour: the next message is stamped so, its deadline is unmoved
    query = single(core.frame_received(*chat(msg_id=2), mono + 2, wall=T0 - 3600), QueryPresence)
    assert isinstance(query, QueryPresence)
    assert core.next_deadline() == mono + 7.0
    append = single(core.presence_answered(query.token, True, [], mono + 3), AppendMessage)
    assert isinstance(append, AppendMessage)
    assert append.message.created_ms == int((T0 - 3600) * 1000)


# -- receipts -----------------------------------------------------------------------------------------------


def test_read_receipt_reaches_the_peers_online_devices(core: RouterCore) -> None:
    receipt = pb.ReadReceipt(peer_uid="alice", up_to_conv_seq=12, time_ms=5)
    header, body = chat(ChatFunc.READ, receipt.SerializeToString(), sender="bob", receiver="", msg_id=7)
    query = single(core.frame_received(header, body, T0), QueryPresence)
    assert query.uid == "alice"
    frame = single(
        core.presence_answered(query.token, True, [DeviceLocation("alice", "laptop", 2)], T0), SendFrame
    )
    assert (frame.access_id, frame.header.receiver_uid, frame.header.receiver_device) == (
        2,
        "alice",
        "laptop",
    )
    assert frame.header.sender_uid == "bob"
    assert pb.ReadReceipt.FromString(frame.body) == receipt


# -- catch-up and pulls -------------------------------------------------------------------------------------


def record(conv: str, seq: int, text: str = "x", sender: str = "alice") -> StoredRecord:
    body = pb.ChatText(text=text).SerializeToString()
    return StoredRecord(1000 + seq, conv, seq, sender, "phone", 5000 + seq, "bob", ChatFunc.TEXT, body, 42)


def frames(actions: Sequence[Action], func: int) -> list[SendFrame]:
    return [a for a in actions if isinstance(a, SendFrame) and a.header.func == func]


def test_login_pushes_pending_pages_in_order_then_done() -> None:
    core = RouterCore(RouterConfig(server_id=ROUTER, pending_page=4, batch_max_messages=3))
    load = single(core.device_online("bob", "phone", 9, T0), LoadPending)
    assert load == LoadPending(load.token, "bob", "phone", None, 4)
    conv_c = conversation_id("bob", "carol")
    page1 = [record(CONV_AB, 1), record(CONV_AB, 2), record(CONV_AB, 3), record(CONV_AB, 4)]
    out = core.records_loaded(load.token, page1, T0)
    nxt = one(out, LoadPending)
    assert nxt.after == (CONV_AB, 4)
    assert [len(pb.SyncBatch.FromString(f.body).messages) for f in frames(out, SyncFunc.BATCH)] == [3, 1]
    assert frames(out, SyncFunc.DONE) == []
    page2 = [record(CONV_AB, 5), record(conv_c, 1, sender="carol")]
    out2 = core.records_loaded(nxt.token, page2, T0)
    batches = [pb.SyncBatch.FromString(f.body) for f in frames(out2, SyncFunc.BATCH)]
    assert [(b.conversation, [m.conv_seq for m in b.messages]) for b in batches] == [
        (CONV_AB, [5]),
        (conv_c, [1]),
    ]
    stored = batches[0].messages[0]
    assert (stored.server_msg_id, stored.msg_id, stored.sender_uid, stored.sent_at_ms) == (
        1005,
        5005,
        "alice",
        42,
    )
    assert (stored.text.text, stored.text.conv_seq, stored.text.server_msg_id) == ("x", 5, 1005)
    (done,) = frames(out2, SyncFunc.DONE)
    assert out2[-1] is done
    assert pb.SyncDone.FromString(done.body) == pb.SyncDone()
    assert (done.access_id, done.header.receiver_uid, done.header.receiver_device) == (9, "bob", "phone")


def test_batches_respect_the_byte_limit() -> None:
    core = RouterCore(RouterConfig(server_id=ROUTER, batch_max_bytes=3000))
    load = single(core.device_online("bob", "phone", 9, T0), LoadPending)
    out = core.records_loaded(load.token, [record(CONV_AB, i, "y" * 1000) for i in range(1, 7)], T0)
    sizes = [len(pb.SyncBatch.FromString(f.body).messages) for f in frames(out, SyncFunc.BATCH)]
    assert sizes == [2, 2, 2]


def test_offline_notice_cancels_catch_up(core: RouterCore) -> None:
    load = single(core.device_online("bob", "phone", 9, T0), LoadPending)
    core.device_offline("bob", "phone", T0)
    assert core.records_loaded(load.token, [record(CONV_AB, 1)], T0) == []
    assert core.online_devices("bob") == {}
    # a newer login supersedes an older catch-up
    first = single(core.device_online("bob", "phone", 9, T0), LoadPending)
    second = single(core.device_online("bob", "phone", 11, T0), LoadPending)
    assert core.records_loaded(first.token, [], T0) == []
    done = single(core.records_loaded(second.token, [], T0), SendFrame)
    assert done.header.func == SyncFunc.DONE
    assert done.access_id == 11


def test_pull_of_a_range_answers_batch_and_done(core: RouterCore) -> None:
    load = single(
        core.frame_received(
            *sync(SyncFunc.PULL, pb.SyncPull(conversation=CONV_AB, from_seq=3, to_seq=4)), T0
        ),
        LoadRange,
    )
    assert load == LoadRange(load.token, CONV_AB, 3, 4, 500)
    batch, done = core.records_loaded(load.token, [record(CONV_AB, 3), record(CONV_AB, 4)], T0)
    assert isinstance(batch, SendFrame)
    assert isinstance(done, SendFrame)
    assert batch.header.flags == Flags.RESPONSE
    assert (batch.header.seq, batch.header.msg_id, batch.access_id) == (9, 99, 4)
    parsed = pb.SyncBatch.FromString(batch.body)
    assert [m.conv_seq for m in parsed.messages] == [3, 4]
    assert parsed.more is False
    assert pb.SyncDone.FromString(done.body) == pb.SyncDone(conversation=CONV_AB, last_seq=4)


def test_pull_limit_is_capped_and_more_is_set(core: RouterCore) -> None:
    load = single(
        core.frame_received(*sync(SyncFunc.PULL, pb.SyncPull(conversation=CONV_AB, limit=2)), T0), LoadRange
    )
    assert load.limit == 2
    batch, _ = core.records_loaded(load.token, [record(CONV_AB, 1), record(CONV_AB, 2)], T0)
    assert pb.SyncBatch.FromString(batch.body).more is True  # type: ignore[union-attr]
    big = single(
        core.frame_received(*sync(SyncFunc.PULL, pb.SyncPull(conversation=CONV_AB, limit=10_000)), T0),
        LoadRange,
    )
    assert big.limit == 500


def test_pull_everything_is_a_catch_up_answered_as_responses(core: RouterCore) -> None:
    load = single(core.frame_received(*sync(SyncFunc.PULL, pb.SyncPull()), T0), LoadPending)
    assert isinstance(load, LoadPending)
    done = single(core.records_loaded(load.token, [], T0), SendFrame)
    assert done.header.flags == Flags.RESPONSE


def test_pull_failure_is_answered(core: RouterCore) -> None:
    load = single(core.frame_received(*sync(SyncFunc.PULL, pb.SyncPull(conversation=CONV_AB)), T0), LoadRange)
    frame = single(core.load_failed(load.token, ErrorCode.STORAGE_UNAVAILABLE, T0), SendFrame)
    assert error_of(frame) == ErrorCode.STORAGE_UNAVAILABLE
    login = single(core.device_online("bob", "phone", 9, T0), LoadPending)
    assert core.load_failed(login.token, ErrorCode.STORAGE_UNAVAILABLE, T0) == []


@pytest.mark.parametrize(
    "conv", [conversation_id("alice", "carol"), "p2p:garbage", ""], ids=["others", "garbage", "empty"]
)
def test_acks_and_pulls_of_foreign_conversations_are_forbidden(core: RouterCore, conv: str) -> None:
    frame = single(
        core.frame_received(
            *sync(SyncFunc.ACK, pb.SyncAck(cursors=[pb.ConversationCursor(conversation=conv, seq=3)])), T0
        ),
        SendFrame,
    )
    assert error_of(frame) == ErrorCode.FORBIDDEN
    if conv:
        frame = single(
            core.frame_received(*sync(SyncFunc.PULL, pb.SyncPull(conversation=conv)), T0), SendFrame
        )
        assert error_of(frame) == ErrorCode.FORBIDDEN


def test_cumulative_ack_becomes_store_acks(core: RouterCore) -> None:
    conv_c = conversation_id("bob", "carol")
    cursors = [
        pb.ConversationCursor(conversation=CONV_AB, seq=7),
        pb.ConversationCursor(conversation=conv_c, seq=2),
    ]
    out = core.frame_received(*sync(SyncFunc.ACK, pb.SyncAck(cursors=cursors)), T0)
    assert out == [StoreAck("bob", "phone", CONV_AB, 7), StoreAck("bob", "phone", conv_c, 2)]


# -- helpers and invariants ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("sid", "seq", "ts"), [(1, 1, 1), (2**64 - 1, 2**40, 1_700_000_000_000), (0, 0, 0)])
def test_stamp_body_overrides_fields_13_to_15(sid: int, seq: int, ts: int) -> None:
    forged = pb.ChatText(text="hi", server_msg_id=999, conv_seq=999, sent_at_ms=999).SerializeToString()
    plain = pb.ChatText(text="hi").SerializeToString()
    for body in (forged, plain):
        got = pb.ChatText.FromString(stamp_body(body, sid, seq, ts))
        if sid:
            assert (got.text, got.server_msg_id, got.conv_seq, got.sent_at_ms) == ("hi", sid, seq, ts)
    assert stamp_body(plain, 0, 0, 0) == plain


@settings(max_examples=300, deadline=None)
@given(
    biz=st.sampled_from([Biz.CHAT, Biz.SYNC, Biz.PRESENCE]),
    func=st.integers(0, 9),
    flags=st.sampled_from([0, Flags.NO_STORE, Flags.RETRY]),
    body=st.binary(max_size=64),
)
def test_garbage_never_raises_and_is_answered_or_queued(biz: int, func: int, flags: int, body: bytes) -> None:
    core = RouterCore(RouterConfig(server_id=ROUTER))
    header = Header(
        biz=biz, func=func, seq=1, msg_id=2, access_id=3, msg_server_id=ROUTER, flags=Flags(flags),
        sender_uid="a", sender_device="d", receiver_uid="b", session=1,
    )  # fmt: skip
    out = core.frame_received(header, body, T0)
    if (biz, func) != (Biz.SYNC, SyncFunc.ACK):  # an ack naming no conversation asks for nothing
        assert out, "every frame gets an answer or starts work"
    for action in out:
        if isinstance(action, SendFrame):
            assert action.header.flags & Flags.ERROR
            assert ErrorCode(action.header.error) != ErrorCode.INTERNAL


def test_core_modules_import_no_io_library() -> None:
    """The core and everything it imports from the project stay free of anyio, httpx, redis and pymysql."""
    root = Path(__file__).resolve().parents[2]
    todo, seen, banned = (
        ["imsdk_server.routing._core"],
        set(),
        {"anyio", "httpx", "redis", "pymysql", "sqlite3"},
    )
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = root / (name.replace(".", "/") + ".py")
        if not path.exists():
            path = root / name.replace(".", "/") / "__init__.py"
            if not path.exists():
                continue
        for node in ast.walk(ast.parse(path.read_text())):
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module]
            for mod in mods:
                assert mod.split(".")[0] not in banned, f"{name} imports {mod}"
                if mod.startswith(("imsdk_server.", "imsdk_proto")) and not mod.endswith(
                    "._generated.imsdk_pb2"
                ):
                    todo.append(mod)
    assert "imsdk_server.routing._store" in seen
