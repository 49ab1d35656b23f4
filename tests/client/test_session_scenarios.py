"""Scenarios of the session core on virtual time: a network switch in the middle of a burst, duplicate and
reordered deliveries, a gap filled by a pull, a router change, an access server dropping the client, a token
about to expire, an access server shutting down."""

from __future__ import annotations

import random

from imsdk_client._core.backoff import BackoffConfig
from imsdk_client._core.events import MessageReceived, NetworkChanged, SendAcked
from imsdk_client._core.session import CloseConnection, FetchAccessPoints, RefreshToken
from imsdk_proto._frame import Frame, FrameDecoder
from imsdk_proto.codes import Biz, ChatFunc, ErrorCode, Flags, SyncFunc
from imsdk_proto.messages import Handshake, NetworkType, SyncAck, SyncPull
from tests.client._session_harness import (
    CONV,
    PEER,
    A,
    B,
    C,
    D,
    Harness,
    batch,
    done,
    handshake_ack,
    kick,
    push,
    refusal,
    send_ack,
)


def delays(seed: int, n: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.random() * BackoffConfig().ceiling(i + 1) for i in range(n)]


def handshake_of(h: Harness) -> Handshake:
    decoder = FrameDecoder()
    decoder.feed(h.opened().handshake)
    frame = decoder.next_frame()
    assert frame is not None
    return frame.body_as(Handshake)


def test_network_switch_in_the_middle_of_a_burst_loses_nothing_shows_nothing_twice_keeps_order() -> None:
    h = Harness.create(seed=11)
    h.start()
    h.connect(A)
    h.recv(handshake_ack(session=1, base=1000, msg_server=7))
    [catch_up] = h.sent_frames(Biz.SYNC, SyncFunc.PULL)
    h.recv(batch([10], reply_to=catch_up), done(reply_to=catch_up))  # the peer's earlier message
    assert h.state == "ready"

    # A burst of five messages out, while the peer's messages come in.
    h.at(1.0)
    ids = [h.send(f"m{i}") for i in range(1, 6)]
    for msg_id in ids:
        entry = h.session.outbox.get(msg_id)
        assert entry is not None
        assert entry.attempts == 1
    # The router stores m1..m3 as 11, 12, 13 but only the acks of m1 and m2 reach the client.
    sent = {f.header.msg_id: f for f in _all_sent(h, Biz.CHAT, ChatFunc.TEXT)}
    first_frames = [sent[i] for i in ids]
    assert [f.header.seq for f in first_frames] == [1001, 1002, 1003, 1004, 1005]
    h.at(1.02).recv(send_ack(first_frames[0], 11), send_ack(first_frames[1], 12))
    h.at(1.03).recv(push(14), push(16))  # 15 is lost with the old connection
    # 14 waits: 13 is our own m3, whose ack was lost, so the client cannot tell it from a gap yet.
    assert [e.conv_seq for e in h.all_events(MessageReceived)] == [10]
    assert h.session.reorder.held(CONV) == [14, 16]

    # The phone moves from wifi to 4G: the old socket is as good as dead.
    h.at(1.1).do(h.session.network_changed, "4g", h.now)
    assert h.events(NetworkChanged)[0].new.value == "4g"
    assert h.closed() == [1]
    assert h.opened().endpoints == (A,)  # the same access server first, at once
    hs = handshake_of(h)
    assert hs.network == NetworkType.NETWORK_TYPE_4G
    assert hs.resume.session == 1
    assert hs.resume.acked_up_seq == 1002
    assert {(c.conversation, c.seq) for c in hs.resume.cursors} == {(CONV, 12)}

    h.at(1.3).connect(A)
    h.recv(handshake_ack(session=2, base=5000, msg_server=7))
    resent = h.sent_frames(Biz.CHAT, ChatFunc.TEXT)
    assert [f.header.msg_id for f in resent] == ids[2:]  # the same ids, in order
    assert [f.header.seq for f in resent] == [5001, 5002, 5003]  # numbered from the new base
    assert all(f.header.flags & Flags.RETRY for f in resent)
    assert {f.header.msg_server_id for f in resent} == {7}
    [pull] = h.sent_frames(Biz.SYNC, SyncFunc.PULL)

    # The router: m3 was stored before the switch (DUPLICATE, original sequence), m4 and m5 are new.
    h.at(1.35).recv(send_ack(resent[0], 13, duplicate=True), send_ack(resent[1], 17), send_ack(resent[2], 18))
    # The catch-up carries the peer's pending 14, 15, 16 again (nothing was acked yet): 15 fills the gap.
    h.at(1.4).recv(batch([14, 15, 16], reply_to=pull), done(reply_to=pull))
    assert h.state == "ready"

    received = [e.conv_seq for e in h.all_events(MessageReceived)]
    assert received == [10, 14, 15, 16]  # nothing lost, nothing twice, in order
    acked = h.all_events(SendAcked)
    assert [a.msg_id for a in acked] == ids
    assert [a.conv_seq for a in acked] == [11, 12, 13, 17, 18]
    assert len(h.session.outbox) == 0
    assert h.session.reorder.cursors() == {CONV: 18}
    h.at(1.9).timer()
    [ack] = h.sent_frames(Biz.SYNC, SyncFunc.ACK)
    assert [(c.conversation, c.seq) for c in ack.body_as(SyncAck).cursors] == [(CONV, 18)]


def _all_sent(h: Harness, biz: int, func: int) -> list[Frame]:
    from imsdk_client._core.session import SendBytes

    frames: list[Frame] = []
    for action in h.log:
        if isinstance(action, SendBytes):
            decoder = FrameDecoder()
            decoder.feed(action.data)
            frames += [f for f in decoder if f.header.biz == biz and f.header.func == func]
    return frames


def test_duplicate_and_reordered_pushes_are_shown_once_in_order() -> None:
    h = Harness.create()
    h.start()
    h.connect_ready()  # the conversation is unknown: its first message sets the start
    h.at(1.0).recv(push(3))
    h.at(1.1).recv(push(5), push(4), push(5), push(3), push(6), push(4))
    assert [e.conv_seq for e in h.all_events(MessageReceived)] == [3, 4, 5, 6]
    assert h.session.reorder.duplicates == 3


def test_a_gap_is_pulled_after_exactly_the_gap_timeout_and_filled() -> None:
    h = Harness.create()
    h.start()
    h.connect_ready()
    h.at(1.0).recv(push(1))
    h.at(1.2).recv(push(4))
    assert [e.conv_seq for e in h.all_events(MessageReceived)] == [1]
    assert h.session.next_deadline() == 1.5  # the ack of cursor 1
    h.at(1.5).timer()
    assert h.session.next_deadline() == 3.2
    h.at(3.19).timer()
    assert h.sent_frames(Biz.SYNC, SyncFunc.PULL) == []
    h.at(3.2).timer()
    [pull] = h.sent_frames(Biz.SYNC, SyncFunc.PULL)
    body = pull.body_as(SyncPull)
    assert (body.conversation, body.from_seq, body.to_seq) == (CONV, 2, 3)
    h.at(3.3).recv(batch([2, 3], reply_to=pull), done(CONV, 3, reply_to=pull))
    assert [e.conv_seq for e in h.all_events(MessageReceived)] == [1, 2, 3, 4]


def test_the_router_changing_id_gets_each_refused_message_resent_once_in_order() -> None:
    h = Harness.create()
    h.start()
    h.connect_ready(msg_server=0)  # no hint in the handshake reply
    h.at(1.0)
    ids = [h.send(f"m{i}") for i in range(3)]
    first = _all_sent(h, Biz.CHAT, ChatFunc.TEXT)
    assert {f.header.msg_server_id for f in first} == {0}
    h.at(1.1).recv(*(refusal(f, ErrorCode.WRONG_MESSAGE_SERVER, server=9) for f in first))
    again = h.sent_frames(Biz.CHAT, ChatFunc.TEXT)
    assert [f.header.msg_id for f in again] == ids
    assert {f.header.msg_server_id for f in again} == {9}
    assert all(f.header.flags & Flags.RETRY for f in again)
    assert h.session.msg_server_id == 9
    # Later the router leaves; the access server hands the session to router 12.
    h.at(2.0).recv(*(send_ack(f, 20 + i, server=9) for i, f in enumerate(again)))
    later = h.at(3.0).send("m3")
    [f3] = h.sent_frames(Biz.CHAT, ChatFunc.TEXT)
    h.at(3.1).recv(refusal(f3, ErrorCode.WRONG_MESSAGE_SERVER, server=12))
    [f3b] = h.sent_frames(Biz.CHAT, ChatFunc.TEXT)
    assert (f3b.header.msg_id, f3b.header.msg_server_id) == (later, 12)
    # A stale refusal of the same message (sent with 9 before) does not resend it twice.
    h.at(3.2).recv(refusal(f3, ErrorCode.WRONG_MESSAGE_SERVER, server=12))
    assert h.sent_frames(Biz.CHAT) == []


def test_access_server_drops_us_same_one_first_then_the_others_then_a_fresh_list() -> None:
    seed = 21
    h = Harness.create(seed=seed)
    h.start()
    h.connect_ready(B)  # B won the first race
    h.at(100.0).lost("connection reset by peer")
    assert h.states() == ["backoff", "connecting"]
    assert h.opened().endpoints == (B,)  # at once, the home server alone
    d1, d2 = delays(seed, 2)
    h.do(h.session.connect_failed, h.conn, "refused", h.now)
    assert h.session.next_deadline() == 100.0 + d1
    h.at(100.0 + d1).timer()
    assert h.opened().endpoints == (A, C)  # then the others, raced
    h.do(h.session.connect_failed, h.conn, "refused", h.now)
    assert h.session.next_deadline() == 100.0 + d1 + d2
    h.at(100.0 + d1 + d2).timer()
    assert h.actions[-1] == FetchAccessPoints()  # then a fresh list
    h.do(h.session.endpoints_fetched, [D, A], h.now)
    assert h.opened().endpoints == (D, A)
    h.connect_ready(D, session=2)
    assert h.session.home == D


def test_token_near_expiry_is_refreshed_before_reconnecting() -> None:
    h = Harness.create()
    h.start(expires_in=1000.0)
    h.connect_ready()
    h.at(950.0).lost()  # 50 s left: within the 60 s margin
    assert h.states() == ["backoff", "refreshing_token"]
    assert h.actions[-1] == RefreshToken()
    h.do(h.session.token_refreshed, "t2", 5000.0, h.now)
    assert h.opened().endpoints == (A,)
    assert handshake_of(h).token == "t2"


def test_access_server_shutting_down_sends_us_elsewhere_after_its_delay() -> None:
    h = Harness.create()
    h.start()
    h.connect_ready(A)
    h.at(10.0).recv(kick(ErrorCode.SERVER_SHUTTING_DOWN, reconnect_after_ms=1500))
    assert h.state == "backoff"
    assert CloseConnection(1) in h.actions
    assert h.session.next_deadline() == 11.5
    h.at(11.5).timer()
    assert h.opened().endpoints == (B, C)  # the home server is skipped


def test_requests_lost_with_the_connection_fail_and_receipts_wait_for_the_next_session() -> None:
    from imsdk_client._core.events import RequestFailed
    from imsdk_proto.codes import ProfileFunc
    from imsdk_proto.messages import FriendListRequest

    h = Harness.create()
    h.start()
    h.connect_ready()
    msg_id, _ = h.session.request(Biz.PROFILE, ProfileFunc.FRIEND_LIST_REQ, FriendListRequest(), 1.0)
    h.at(2.0).lost()
    assert h.events(RequestFailed) == [RequestFailed(msg_id, None, "the connection was lost")]
    h.do(h.session.connection_lost, 99, "x", h.now)  # unknown id: ignored
    h.do(h.session.send_receipt, "read", PEER, [501], 1, h.now)
    assert h.sent_frames() == []
    h.connect(A)
    h.recv(handshake_ack(session=2, base=70))
    reads = h.sent_frames(Biz.CHAT, ChatFunc.READ)
    assert len(reads) == 1
