"""The session core's state table and its single steps, on virtual time with exact deadlines."""

from __future__ import annotations

import random

import pytest

from imsdk_client._core.backoff import BackoffConfig
from imsdk_client._core.events import (
    ConnectionState,
    MessageReceived,
    Network,
    NetworkChanged,
    SendAcked,
    SendFailed,
    StateChanged,
)
from imsdk_client._core.session import (
    TRANSITIONS,
    CloseConnection,
    FetchAccessPoints,
    Input,
    OpenConnection,
    RefreshToken,
    SessionConfig,
    SessionStateError,
)
from imsdk_proto._frame import FrameDecoder
from imsdk_proto.codes import Biz, ChatFunc, ErrorCode, Flags, SyncFunc, SystemFunc
from imsdk_proto.messages import ChatText, Handshake, NetworkType, SyncPull
from tests.client._session_harness import (
    CONV,
    PEER,
    A,
    B,
    C,
    Harness,
    done,
    handshake_ack,
    kick,
    push,
    send_ack,
)

S = ConnectionState


def delays(seed: int, n: int, config: BackoffConfig | None = None) -> list[float]:
    """The back-off delays a session seeded with ``seed`` draws (message ids draw from the same source)."""
    cfg = config or BackoffConfig()
    rng = random.Random(seed)
    return [rng.random() * cfg.ceiling(i + 1) for i in range(n)]


# ---------------------------------------------------------------------------------------------- the table


def test_closed_is_final_and_reachable_from_every_other_state() -> None:
    for state in S:
        for inp in (Input.CLOSE, Input.FATAL):
            assert TRANSITIONS.get((state, inp)) == (None if state is S.CLOSED else S.CLOSED)
    assert not [k for k in TRANSITIONS if k[0] is S.CLOSED]


@pytest.mark.parametrize(
    ("state", "inp", "new"),
    [
        (S.DISCONNECTED, Input.DIAL_CONNECT, S.CONNECTING),
        (S.BACKOFF, Input.DIAL_FETCH, S.FETCHING),
        (S.FETCHING, Input.DIAL_REFRESH, S.REFRESHING_TOKEN),
        (S.CONNECTING, Input.TRANSPORT_OPEN, S.HANDSHAKING),
        (S.HANDSHAKING, Input.HANDSHAKE_OK, S.CATCHING_UP),
        (S.HANDSHAKING, Input.AUTH_REJECTED, S.REFRESHING_TOKEN),
        (S.CATCHING_UP, Input.CAUGHT_UP, S.READY),
        (S.READY, Input.LOST, S.BACKOFF),
        (S.READY, Input.LOST_NO_NETWORK, S.NO_NETWORK),
        (S.BACKOFF, Input.NETWORK_DOWN, S.NO_NETWORK),
        (S.NO_NETWORK, Input.DIAL_CONNECT, S.CONNECTING),
        (S.FETCHING, Input.FAILED, S.BACKOFF),
    ],
)
def test_legal_moves(state: ConnectionState, inp: Input, new: ConnectionState) -> None:
    assert TRANSITIONS[(state, inp)] is new


@pytest.mark.parametrize(
    ("state", "inp"),
    [
        (S.READY, Input.HANDSHAKE_OK),
        (S.BACKOFF, Input.TRANSPORT_OPEN),
        (S.READY, Input.DIAL_CONNECT),  # a live session must be dropped before dialling
        (S.CONNECTING, Input.CAUGHT_UP),
        (S.READY, Input.NETWORK_DOWN),  # "none" leaves a live line alone
    ],
)
def test_illegal_moves_are_not_in_the_table(state: ConnectionState, inp: Input) -> None:
    assert (state, inp) not in TRANSITIONS


def test_an_illegal_report_from_the_driver_raises() -> None:
    h = Harness.create()
    h.start()
    h.connect()
    with pytest.raises(SessionStateError, match="transport_open"):
        h.do(h.session.connected, h.conn, A, h.now)  # reported twice
    with pytest.raises(SessionStateError, match="start"):
        h.start()


def test_news_about_abandoned_connections_is_ignored() -> None:
    h = Harness.create()
    h.start()
    old = h.opened().conn_id
    h.at(10.0).timer()  # connect timeout: attempt 1 given up
    assert h.state == "backoff"
    assert h.do(h.session.connected, old, A, h.now) == [CloseConnection(old)]
    assert h.do(h.session.data_received, old, handshake_ack(), h.now) == []
    assert h.do(h.session.connection_lost, old, "reset", h.now) == []
    assert h.state == "backoff"


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="device_id"):
        SessionConfig(device_id="")
    with pytest.raises(ValueError, match="positive"):
        SessionConfig(device_id="d", connect_timeout=0)


# ---------------------------------------------------------------------------------------------- connecting


def test_first_connect_races_every_access_point_with_the_handshake() -> None:
    h = Harness.create(network="4g", client_version="1.2")
    actions = h.start()
    assert h.states() == ["connecting"]
    open_ = h.opened()
    assert open_.endpoints == (A, B, C)
    decoder = FrameDecoder()
    decoder.feed(open_.handshake)
    frame = decoder.next_frame()
    assert frame is not None
    hs = frame.body_as(Handshake)
    assert (hs.token, hs.device_id, hs.client_version) == ("t1", "phone", "1.2")
    assert hs.network == NetworkType.NETWORK_TYPE_4G
    assert not hs.HasField("resume")
    assert actions[-1] is open_
    assert h.session.next_deadline() == 10.0


def test_handshake_then_catch_up_then_ready() -> None:
    h = Harness.create()
    h.start()
    h.at(0.2).connect(B)  # B won the race
    assert h.state == "handshaking"
    h.at(0.3).recv(handshake_ack(session=11, base=4000, msg_server=7))
    assert h.state == "catching_up"
    pull = h.sent_frames(Biz.SYNC, SyncFunc.PULL)
    assert len(pull) == 1
    assert pull[0].header.seq == 4000  # numbering starts at the base
    assert pull[0].body_as(SyncPull).conversation == ""
    assert h.session.home == B
    assert h.session.msg_server_id == 7
    assert h.session.next_deadline() == pytest.approx(30.3)  # catch-up timeout
    h.at(0.5).recv(done(reply_to=pull[0]))
    assert h.states() == ["ready"]
    assert h.session.next_deadline() == pytest.approx(60.3)  # heartbeat: the server's 60 s interval


def test_catch_up_counts_as_done_after_its_timeout() -> None:
    h = Harness.create()
    h.start()
    h.connect()
    h.recv(handshake_ack())
    h.at(29.99).timer()
    assert h.state == "catching_up"
    h.at(30.0).timer()
    assert h.state == "ready"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_connect_timeout_then_backoff_at_the_seeded_delay(seed: int) -> None:
    h = Harness.create(seed=seed)
    h.start()
    first = h.opened().conn_id
    h.at(9.999).timer()
    assert h.state == "connecting"
    h.at(10.0).timer()
    assert h.closed() == [first]
    assert h.state == "backoff"
    expected = 10.0 + delays(seed, 1)[0]
    assert h.session.next_deadline() == expected
    h.at(expected).timer()
    # The race list is used up: a fresh list is fetched.
    assert FetchAccessPoints() in h.actions
    assert h.state == "fetching"
    h.do(h.session.endpoints_fetched, [C, A], h.now)
    assert h.opened().endpoints == (C, A)


def test_heartbeat_ping_pong_and_dead_line() -> None:
    h = Harness.create()
    h.start()
    h.connect_ready()
    assert h.session.next_deadline() == 60.0
    h.at(60.0).timer()
    ping = h.sent_frames(Biz.SYSTEM, SystemFunc.PING)
    assert len(ping) == 1
    assert h.session.next_deadline() == 70.0
    h.at(70.0).timer()
    # No pong: the line is dead; the home server is dialled again at once.
    assert h.closed() == [1]
    assert h.opened().endpoints == (A,)
    assert h.states() == ["backoff", "connecting"]
    assert h.events(StateChanged)[0].code is ErrorCode.HEARTBEAT_TIMEOUT


def test_server_ping_is_answered() -> None:
    h = Harness.create()
    h.start()
    h.connect_ready()
    from imsdk_proto._header import Header
    from imsdk_proto.messages import Ping
    from tests.client._session_harness import frame_bytes

    h.at(5.0).recv(frame_bytes(Header(Biz.SYSTEM, SystemFunc.PING, seq=3, msg_id=4), Ping(time_ms=9)))
    pong = h.sent_frames(Biz.SYSTEM, SystemFunc.PONG)
    assert [(f.header.seq, f.header.msg_id) for f in pong] == [(3, 4)]


# ---------------------------------------------------------------------------------------------- sending


def test_messages_wait_for_a_session_then_go_in_order_with_the_router_hint() -> None:
    h = Harness.create()
    h.start()
    ids = [h.send(f"m{i}") for i in range(3)]
    assert h.actions == []  # no session yet
    h.connect()
    h.recv(handshake_ack(base=100, msg_server=7))
    sent = h.sent_frames(Biz.CHAT, ChatFunc.TEXT)
    assert [f.header.msg_id for f in sent] == ids
    assert [f.header.seq for f in sent] == [101, 102, 103]  # 100 went to the catch-up pull
    assert {f.header.msg_server_id for f in sent} == {7}
    assert all(f.header.flags == Flags.ACK_WANTED for f in sent)
    h.recv(send_ack(sent[0], 5))
    acked = h.events(SendAcked)
    assert acked == [SendAcked(ids[0], 505, 5, 1, 1, CONV)]
    assert len(h.session.outbox) == 2


def test_unanswered_message_is_resent_after_the_ack_timeout_with_the_same_id() -> None:
    h = Harness.create()
    h.start()
    h.connect_ready()
    msg_id, _ = h.session.send_message(ChatText(text="x"), PEER, 1.0)
    h.at(10.999).timer()
    assert h.sent_frames(Biz.CHAT) == []
    h.at(11.0).timer()
    [again] = h.sent_frames(Biz.CHAT, ChatFunc.TEXT)
    assert again.header.msg_id == msg_id
    assert again.header.flags & Flags.RETRY


@pytest.mark.parametrize(
    ("code", "kept"),
    [
        (ErrorCode.STORAGE_UNAVAILABLE, True),
        (ErrorCode.BACKEND_TIMEOUT, True),
        (ErrorCode.RATE_LIMITED, True),
        (ErrorCode.RECEIVER_OFFLINE, False),
        (ErrorCode.UNKNOWN_RECEIVER, False),
        (ErrorCode.PAYLOAD_TOO_LARGE, False),
    ],
)
def test_transient_refusals_keep_the_message_final_ones_report_it(code: ErrorCode, kept: bool) -> None:
    h = Harness.create()
    h.start()
    h.connect_ready()
    msg_id = h.at(1.0).send("x", instant=True)
    [sent] = h.sent_frames(Biz.CHAT)
    assert sent.header.flags & Flags.NO_STORE
    from tests.client._session_harness import refusal

    h.at(1.5).recv(refusal(sent, code, retry_after_ms=2500))
    if kept:
        assert msg_id in h.session.outbox
        assert h.session.next_deadline() == 4.0
        h.at(4.0).timer()
        [again] = h.sent_frames(Biz.CHAT)
        assert again.header.msg_id == msg_id
        assert again.header.flags & Flags.RETRY
    else:
        assert h.events(SendFailed) == [SendFailed(msg_id, code, "")]
        assert msg_id not in h.session.outbox


# ---------------------------------------------------------------------------------------------- network


def test_network_none_pauses_attempts_and_a_network_back_dials_at_once() -> None:
    h = Harness.create()
    h.start()
    h.at(10.0).timer()  # attempt 1 timed out: backoff
    assert h.state == "backoff"
    h.at(10.1).do(h.session.network_changed, "none", h.now)
    assert h.events(NetworkChanged) == [NetworkChanged(Network.WIFI, Network.NONE)]
    assert h.state == "no_network"
    assert h.session.next_deadline() is None
    h.at(500.0).do(h.session.network_changed, Network.G4, h.now)
    assert h.states() == ["fetching"]  # list used up, fetched first
    h.do(h.session.endpoints_fetched, [B], h.now)
    assert h.opened().endpoints == (B,)


def test_network_none_leaves_a_live_line_alone_and_same_type_back_checks_it_with_a_ping() -> None:
    h = Harness.create()
    h.start()
    h.connect_ready()
    h.at(5.0).do(h.session.network_changed, "none", h.now)
    assert h.state == "ready"
    assert h.closed() == []
    h.at(6.0).do(h.session.network_changed, "wifi", h.now)
    assert h.state == "ready"
    assert len(h.sent_frames(Biz.SYSTEM, SystemFunc.PING)) == 1
    assert h.session.next_deadline() == 16.0  # pong deadline


def test_lost_while_there_is_no_network_waits() -> None:
    h = Harness.create()
    h.start()
    h.connect_ready()
    h.do(h.session.network_changed, "none", h.now)
    h.at(3.0).lost()
    assert h.state == "no_network"
    assert not [a for a in h.actions if isinstance(a, OpenConnection)]
    h.at(20.0).do(h.session.network_changed, "3g", h.now)
    assert h.opened().endpoints == (A,)


def test_unknown_network_name_is_refused() -> None:
    h = Harness.create()
    with pytest.raises(ValueError, match="unknown network type"):
        h.session.network_changed("lte", 0.0)


# ---------------------------------------------------------------------------------------------- kicks, close


def test_session_replaced_is_final_and_fails_the_outbox() -> None:
    h = Harness.create()
    h.start()
    h.connect_ready()
    msg_id, _ = h.session.send_message(ChatText(text="x"), PEER, 1.0)
    h.at(2.0).recv(kick(ErrorCode.SESSION_REPLACED))
    assert h.state == "closed"
    assert h.events(SendFailed) == [
        SendFailed(msg_id, ErrorCode.SESSION_REPLACED, "this device logged in elsewhere")
    ]
    assert h.session.next_deadline() is None
    with pytest.raises(SessionStateError, match="closed"):
        h.session.send_message(ChatText(text="y"), PEER, 3.0)


def test_app_close_closes_the_connection() -> None:
    h = Harness.create()
    h.start()
    h.connect_ready()
    h.do(h.session.close, 1.0)
    assert h.closed() == [1]
    assert h.states() == ["closed"]
    assert h.do(h.session.close, 2.0) == []


def test_pushes_are_delivered_after_the_catch_up_in_order() -> None:
    h = Harness.create()
    h.start()
    h.connect()
    h.recv(handshake_ack())
    h.recv(push(8))  # live push overtakes the catch-up batch of an unknown conversation
    assert h.events(MessageReceived) == []
    from tests.client._session_harness import batch

    h.recv(batch([6, 7]), done())
    got = [e.conv_seq for e in h.events(MessageReceived)]
    assert got == [6, 7, 8]
    assert h.state == "ready"


def test_refresh_before_dialling_when_the_token_is_about_to_expire() -> None:
    h = Harness.create()
    h.start(expires_in=30.0)  # within the 60 s margin already
    assert h.actions == [
        h.actions[0],
        RefreshToken(),
    ]
    assert h.states() == ["refreshing_token"]
    h.do(h.session.token_refreshed, "t2", 3600.0, h.now)
    open_ = h.opened()
    decoder = FrameDecoder()
    decoder.feed(open_.handshake)
    frame = decoder.next_frame()
    assert frame is not None
    assert frame.body_as(Handshake).token == "t2"


def test_token_refresh_refused_for_good_closes() -> None:
    h = Harness.create()
    h.start(expires_in=10.0)
    h.do(h.session.token_refresh_failed, "bad password", h.now, final=True)
    assert h.state == "closed"


def test_token_refresh_failing_for_now_backs_off() -> None:
    h = Harness.create(seed=4)
    h.start(expires_in=10.0)
    h.do(h.session.token_refresh_failed, "auth server down", h.now, final=False)
    assert h.state == "backoff"
    assert h.session.next_deadline() == delays(4, 1)[0]
    h.at(delays(4, 1)[0]).timer()
    assert h.actions[-1] == RefreshToken()


def test_handshake_refused_for_the_token_refreshes_and_retries_the_same_server() -> None:
    h = Harness.create()
    h.start()
    h.connect(B)
    h.recv(kick(ErrorCode.TOKEN_EXPIRED))
    assert h.state == "refreshing_token"
    assert RefreshToken() in h.actions
    h.do(h.session.token_refreshed, "t2", 3600.0, h.now)
    assert h.opened().endpoints == (B,)
    h.connect(B)
    h.recv(kick(ErrorCode.TOKEN_REVOKED))  # refused again with a fresh token: give up
    assert h.state == "closed"


def test_the_core_is_sans_io() -> None:
    """No module of the session core imports a network, clock or async library."""
    import ast
    import pathlib

    import imsdk_client._core as core

    forbidden = {"anyio", "asyncio", "trio", "httpx", "socket", "time", "ssl", "selectors", "threading"}
    root = pathlib.Path(core.__file__).parent
    for name in ("session", "heartbeat", "backoff", "sequencing", "reorder", "events"):
        tree = ast.parse((root / f"{name}.py").read_text())
        imported: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
        assert not imported & forbidden, (name, imported & forbidden)
