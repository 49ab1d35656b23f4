"""The sans-IO connection core on virtual time: every deadline is exact, no clock is read."""

from __future__ import annotations

from typing import Any

import pytest

from imsdk_proto._frame import Frame, encode_frame, encode_raw
from imsdk_proto._header import Header
from imsdk_proto.codes import Biz, ChatFunc, Codec, ErrorCode, Flags, LinkFunc, SystemFunc
from imsdk_proto.messages import ChatText, ErrorReport, Handshake, HandshakeAck, Kick, LinkReady, Pong
from imsdk_server.access import (
    TRANSITIONS,
    AccessConfig,
    AccessConnection,
    Authenticate,
    Closed,
    CoreContext,
    Forward,
    Input,
    State,
)
from imsdk_server.metrics import Metrics
from tests.access._helpers import chat, decode_all, handshake, ping, raw_frame

T0 = 1000.0


def make(now: float = T0, **config: object) -> tuple[AccessConnection, CoreContext]:
    ctx = CoreContext(AccessConfig(server_id=7, **config), Metrics(), wall_offset=1_700_000_000.0)  # type: ignore[arg-type]
    return AccessConnection(ctx, now), ctx


def opened(
    now: float = T0, codec: Codec = Codec.PROTOBUF, **config: object
) -> tuple[AccessConnection, CoreContext]:
    core, ctx = make(now, **config)
    actions = core.receive_data(handshake("tok", codec=codec), now)
    assert actions == (Authenticate("tok", "phone", 1, "1.2.3", 3),)
    assert core.authenticated("alice", "phone", session=42, seq_base=5 << 32, now=now)
    core.data_to_send()
    core.send_done()
    return core, ctx


def state_of(core: AccessConnection) -> State:
    """The core's state, read afresh (a type checker would keep what an earlier assertion said)."""
    return core.state


def sent(core: AccessConnection) -> list[Frame]:
    data = core.data_to_send()
    core.send_done()
    return decode_all(data)


def kick_code(core: AccessConnection) -> ErrorCode:
    frames = sent(core)
    assert frames[-1].header.code == (Biz.SYSTEM, SystemFunc.KICK)
    body = frames[-1].body_as(Kick)
    assert body.code == frames[-1].header.error
    return ErrorCode(body.code)


# ---------------------------------------------------------------------------------------- handshake


def test_handshake_reply_carries_session_sequence_base_and_times() -> None:
    core, ctx = make()
    assert state_of(core) is State.AWAIT_HANDSHAKE
    actions = core.receive_data(handshake("tok"), T0 + 1)
    assert state_of(core) is State.AUTHENTICATING
    assert isinstance(actions[0], Authenticate)
    assert core.authenticated("alice", "phone", 42, 5 << 32, T0 + 2)
    assert state_of(core) is State.OPEN
    (frame,) = sent(core)
    assert frame.header.code == (Biz.SYSTEM, SystemFunc.HANDSHAKE_ACK)
    ack = frame.body_as(HandshakeAck)
    assert (ack.session, ack.seq_base, ack.access_id, ack.uid) == (42, 5 << 32, 7, "alice")
    assert ack.heartbeat_interval_ms == 60_000
    assert ack.server_time_ms == int((T0 + 2 + 1_700_000_000.0) * 1000)
    assert ctx.metrics.value("access_handshakes_total", result="ok") == 1
    assert ack.msg_server_id == 0  # no message-server hint unless the driver gives one


def test_handshake_reply_carries_the_message_server_hint() -> None:
    core, _ = make()
    core.receive_data(handshake("tok"), T0 + 1)
    assert core.authenticated("alice", "phone", 42, 5 << 32, T0 + 2, msg_server_id=61)
    (frame,) = sent(core)
    assert frame.body_as(HandshakeAck).msg_server_id == 61


@pytest.mark.parametrize("chunking", ["whole", "bytewise", "with_trailing_ping"])
def test_handshake_in_any_chunking(chunking: str) -> None:
    core, _ = make()
    data = handshake("tok")
    actions: list[object] = []
    if chunking == "whole":
        actions += core.receive_data(data, T0)
    elif chunking == "bytewise":
        for i in range(len(data)):
            actions += core.receive_data(data[i : i + 1], T0)
    else:
        actions += core.receive_data(data + ping(), T0)
    if chunking == "with_trailing_ping":
        # A client must wait for the reply before sending anything else.
        assert actions[-1] == Closed(ErrorCode.UNEXPECTED_MESSAGE, False)
    else:
        assert actions == [Authenticate("tok", "phone", 1, "1.2.3", 3)]


# (name, bytes sent first, expected close code)
FIRST_FRAME_CASES = [
    ("garbage", b"\xff\x00garbage", ErrorCode.UNSUPPORTED_VERSION),
    ("unknown codec", b"\x1f\x01\x01ab", ErrorCode.UNKNOWN_CODEC),
    ("zero header", b"\x12\x00\x00", ErrorCode.BAD_PREAMBLE),
    ("bad header", b"\x12\x02\x00\xff\xff", ErrorCode.MALFORMED_HEADER),
    ("chat first", chat(), ErrorCode.HANDSHAKE_REQUIRED),
    ("ping first", ping(), ErrorCode.HANDSHAKE_REQUIRED),
    ("oversize", b"\x12\x84\x80\x04\x00", ErrorCode.FRAME_TOO_LARGE),
    ("handshake without token", handshake(""), ErrorCode.MALFORMED_BODY),
    (
        "handshake naming another codec",
        encode_frame(Header(Biz.SYSTEM, SystemFunc.HANDSHAKE), Handshake(token="t", device_id="d", codec=1)),
        ErrorCode.CODEC_CHANGED,
    ),
]


@pytest.mark.parametrize(("name", "data", "code"), FIRST_FRAME_CASES, ids=[c[0] for c in FIRST_FRAME_CASES])
def test_bad_first_bytes_close_with_the_protocol_code(name: str, data: bytes, code: ErrorCode) -> None:
    core, ctx = make()
    actions = core.receive_data(data, T0)
    assert actions == (Closed(code, False),)
    assert core.state is State.CLOSED
    assert kick_code(core) == code
    assert ctx.metrics.value("access_closes_total", reason=code.name) == 1
    # Whatever follows is ignored.
    assert core.receive_data(handshake("tok"), T0 + 1) == ()


def test_handshake_deadline_is_exact() -> None:
    core, ctx = make(handshake_timeout=10.0)
    assert core.next_deadline() == T0 + 10
    assert core.handle_timer(T0 + 9.999) == ()
    assert core.state is State.AWAIT_HANDSHAKE
    assert core.handle_timer(T0 + 10) == (Closed(ErrorCode.HANDSHAKE_TIMEOUT, False),)
    assert kick_code(core) == ErrorCode.HANDSHAKE_TIMEOUT
    assert core.next_deadline() is None
    assert ctx.metrics.value("access_handshakes_total", result="HANDSHAKE_TIMEOUT") == 1


def test_handshake_deadline_covers_a_slow_token_check() -> None:
    core, _ = make()
    core.receive_data(handshake("tok"), T0 + 1)
    assert core.next_deadline() == T0 + 10
    assert core.handle_timer(T0 + 10) == (Closed(ErrorCode.HANDSHAKE_TIMEOUT, False),)
    # The verifier answers too late: nothing happens.
    assert core.authenticated("alice", "phone", 1, 0, T0 + 11) is False
    assert core.state is State.CLOSED


def test_auth_failure_closes_with_the_auth_code() -> None:
    core, ctx = make()
    core.receive_data(handshake("bad"), T0)
    assert core.auth_failed(ErrorCode.TOKEN_EXPIRED, T0) == (Closed(ErrorCode.TOKEN_EXPIRED, False),)
    assert kick_code(core) == ErrorCode.TOKEN_EXPIRED
    assert ctx.metrics.value("access_handshakes_total", result="TOKEN_EXPIRED") == 1


# ---------------------------------------------------------------------------------------- heartbeats, idle


def test_idle_line_closes_after_exactly_five_minutes() -> None:
    core, _ = opened()
    assert core.next_deadline() == T0 + 300
    assert core.handle_timer(T0 + 299.999) == ()
    assert core.handle_timer(T0 + 300) == (Closed(ErrorCode.IDLE_TIMEOUT, True),)
    assert kick_code(core) == ErrorCode.IDLE_TIMEOUT


def test_any_frame_moves_the_idle_deadline() -> None:
    core, _ = opened()
    core.receive_data(ping(), T0 + 200)
    assert core.next_deadline() == T0 + 500
    assert core.handle_timer(T0 + 300) == ()
    core.receive_data(chat(), T0 + 450)
    assert core.next_deadline() == T0 + 750
    assert core.handle_timer(T0 + 750) == (Closed(ErrorCode.IDLE_TIMEOUT, True),)


def test_ping_is_answered_with_pong() -> None:
    core, ctx = opened()
    assert core.receive_data(ping(time_ms=555, seq=9), T0 + 5) == ()
    (frame,) = sent(core)
    assert frame.header.code == (Biz.SYSTEM, SystemFunc.PONG)
    assert frame.header.seq == 9
    assert frame.header.flags & Flags.RESPONSE
    pong = frame.body_as(Pong)
    assert pong.time_ms == 555
    assert pong.server_time_ms == int((T0 + 5 + 1_700_000_000.0) * 1000)
    assert ctx.metrics.value("access_frames_in_total", biz="SYSTEM") == 2


def test_heartbeat_timeout_ignores_business_frames() -> None:
    core, _ = opened(heartbeat_timeout=150.0)
    assert core.next_deadline() == T0 + 150
    core.receive_data(chat(), T0 + 100)
    assert core.next_deadline() == T0 + 150
    core.receive_data(ping(), T0 + 120)
    assert core.next_deadline() == T0 + 270
    core.receive_data(chat(), T0 + 260)
    assert core.handle_timer(T0 + 270) == (Closed(ErrorCode.HEARTBEAT_TIMEOUT, True),)
    assert kick_code(core) == ErrorCode.HEARTBEAT_TIMEOUT


# ---------------------------------------------------------------------------------------- upstream


@pytest.mark.parametrize("codec", [Codec.PROTOBUF, Codec.BSON_JSON])
def test_upstream_frames_are_stamped_and_forwarded_as_v2(codec: Codec) -> None:
    core, ctx = opened(codec=codec)
    forged = chat(
        "hello",
        codec=codec,
        seq=(5 << 32) + 1,
        msg_id=77,
        access_id=99,
        msg_server_id=3,
        sender_uid="mallory",
        sender_device="evil",
        receiver_uid="bob",
    )
    (action,) = core.receive_data(forged, T0 + 1)
    assert isinstance(action, Forward)
    h = action.header
    assert (h.access_id, h.sender_uid, h.sender_device, h.session) == (7, "alice", "phone", 42)
    assert (h.seq, h.msg_id, h.msg_server_id, h.receiver_uid) == ((5 << 32) + 1, 77, 3, "bob")
    (out,) = decode_all(action.encode())
    assert out.codec is Codec.PROTOBUF
    assert out.header == h
    assert out.body_as(ChatText).text == "hello"
    assert ctx.metrics.value("access_frames_in_total", biz="CHAT") == 1


@pytest.mark.parametrize(
    ("fields", "patched"),
    [
        ({}, True),
        ({"sender_uid": "mallory"}, False),
        ({"sender_device": "evil"}, False),
        ({"access_id": 99}, False),
        ({"session": 5}, False),
    ],
    ids=["honest", "names a sender", "names a device", "names an access server", "names a session"],
)
def test_a_stamped_v2_frame_is_sent_as_its_own_bytes_plus_the_stamp(
    fields: dict[str, Any], patched: bool
) -> None:
    core, _ = opened(codec=Codec.PROTOBUF)
    header = Header(Biz.CHAT, ChatFunc.TEXT, seq=(5 << 32) + 1, msg_id=77, receiver_uid="bob", **fields)
    data = encode_frame(header, ChatText(text="hi"))
    (action,) = core.receive_data(data, T0 + 1)
    assert isinstance(action, Forward)
    frame = action.to_frame()
    canonical = encode_raw(action.header, frame.raw_body)
    if patched:  # the client's header bytes, then the stamp: no second header encode on the link
        assert frame is action.frame
        assert frame.header_bytes is not None
        assert frame.header_bytes.startswith(data[3 : 3 + data[1]])
        assert action.encode() != canonical
    else:  # a client that named a sender itself gets its header re-encoded, not carried on
        assert frame.header_bytes is None
        assert action.encode() == canonical
    (out,) = decode_all(action.encode())
    assert out.header == action.header
    assert (out.header.access_id, out.header.sender_uid, out.header.sender_device, out.header.session) == (
        7,
        "alice",
        "phone",
        42,
    )
    (again,) = decode_all(canonical)
    assert again.header == out.header


def test_frame_in_another_codec_closes_the_line() -> None:
    core, _ = opened(codec=Codec.PROTOBUF)
    assert core.receive_data(chat(codec=Codec.BSON_JSON), T0 + 1) == (Closed(ErrorCode.CODEC_CHANGED, True),)
    assert kick_code(core) == ErrorCode.CODEC_CHANGED


def test_oversize_frame_closes_before_its_body_arrives() -> None:
    core, _ = opened(max_frame_size=1024)
    big = chat("x" * 2000)
    assert core.receive_data(big[:8], T0 + 1) == (Closed(ErrorCode.FRAME_TOO_LARGE, True),)
    assert kick_code(core) == ErrorCode.FRAME_TOO_LARGE


def test_second_handshake_is_a_violation() -> None:
    core, _ = opened()
    assert core.receive_data(handshake("again"), T0 + 1) == (Closed(ErrorCode.UNEXPECTED_MESSAGE, True),)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (raw_frame(Biz.LINK, LinkFunc.READY, LinkReady()), ErrorCode.FORBIDDEN),
        (raw_frame(Biz.SYSTEM, SystemFunc.KICK), ErrorCode.UNEXPECTED_MESSAGE),
    ],
    ids=["link control", "server-only system frame"],
)
def test_frames_a_client_may_not_send_get_an_error_and_the_line_stays(data: bytes, code: ErrorCode) -> None:
    core, ctx = opened()
    assert core.receive_data(data, T0 + 1) == ()
    (frame,) = sent(core)
    assert frame.header.code == (Biz.SYSTEM, SystemFunc.ERROR)
    assert frame.header.error == code
    assert frame.body_as(ErrorReport).code == code
    assert core.state is State.OPEN
    assert ctx.metrics.value("access_errors_total", code=code.name) == 1


def test_unknown_business_code_is_forwarded_for_routing_to_decide() -> None:
    core, _ = opened()
    data = encode_raw(Header(99, 1, seq=3, msg_id=8), b"\x01\x02")
    (action,) = core.receive_data(data, T0 + 1)
    assert isinstance(action, Forward)
    core.reject(action.header, ErrorCode.NO_BACKEND, T0 + 1)
    (frame,) = sent(core)
    assert (frame.header.seq, frame.header.msg_id, frame.header.error) == (3, 8, ErrorCode.NO_BACKEND)
    assert frame.header.flags & Flags.ERROR
    assert frame.header.flags & Flags.RESPONSE
    assert core.state is State.OPEN


# ---------------------------------------------------------------------------------------- downstream


def test_backlogged_at_a_quarter_of_the_bound_in_frames() -> None:
    core, _ = opened(send_queue_max_frames=8)
    assert not core.backlogged()
    frame = raw_frame(Biz.CHAT, ChatFunc.TEXT, ChatText(text="x"))
    assert core.send(frame, T0, Biz.CHAT) == ()
    assert not core.backlogged()
    assert core.send(frame, T0, Biz.CHAT) == ()
    assert core.backlogged()  # 2 frames = a quarter of 8
    core.data_to_send()
    assert not core.backlogged()  # what is being written no longer counts as collected


def test_backlogged_at_a_quarter_of_the_bound_in_bytes() -> None:
    core, _ = opened(send_queue_max_bytes=1024, max_frame_size=256)
    frame = raw_frame(Biz.CHAT, ChatFunc.TEXT, ChatText(text="x" * 40))
    fits = (256 - 1) // len(frame)  # frames that stay below 256 bytes, a quarter of 1024
    for _ in range(fits):
        assert core.send(frame, T0, Biz.CHAT) == ()
    assert not core.backlogged()
    assert core.send(frame, T0, Biz.CHAT) == ()
    assert core.backlogged()
    core.data_to_send()
    assert not core.backlogged()


def test_send_queue_is_bounded_in_frames() -> None:
    core, ctx = opened(send_queue_max_frames=3)
    frame = raw_frame(Biz.CHAT, ChatFunc.TEXT, ChatText(text="x"))
    for _ in range(3):
        assert core.send(frame, T0, Biz.CHAT) == ()
    assert core.queued_frames == 3
    assert ctx.queued_frames == 3
    assert core.send(frame, T0, Biz.CHAT) == (Closed(ErrorCode.SLOW_CONSUMER, True),)
    assert core.state is State.CLOSED
    assert core.queued_frames == 0
    assert ctx.queued_frames == 0
    assert core.data_to_send() == b""  # a consumer that cannot keep up gets nothing more
    assert ctx.metrics.value("access_closes_total", reason="SLOW_CONSUMER") == 1


def test_send_queue_counts_bytes_being_written() -> None:
    core, ctx = opened(send_queue_max_bytes=65536, max_frame_size=1024)
    frame = b"x" * 1000
    for _ in range(60):
        core.send(frame, T0)
    chunk = core.data_to_send()  # the writer holds it; the socket is blocked
    assert len(chunk) == 60_000
    assert core.queued_bytes == 60_000
    for _ in range(5):
        assert core.send(frame, T0) == ()
    assert core.send(frame, T0) == (Closed(ErrorCode.SLOW_CONSUMER, True),)
    core.release()
    assert ctx.queued_bytes == 0


def test_written_chunks_leave_the_queue() -> None:
    core, ctx = opened(send_queue_max_frames=2)
    for _ in range(10):
        core.send(b"abc", T0)
        assert core.data_to_send() == b"abc"
        core.send_done()
    assert core.queued_frames == 0
    assert ctx.queued_bytes == 0
    assert ctx.metrics.value("access_frames_out_total", biz="SYSTEM") == 1  # the handshake reply


def test_replaced_connection_is_kicked() -> None:
    core, _ = opened()
    assert core.close(ErrorCode.SESSION_REPLACED, T0 + 1) == (Closed(ErrorCode.SESSION_REPLACED, True),)
    assert kick_code(core) == ErrorCode.SESSION_REPLACED
    assert core.send(b"late", T0 + 2) == ()
    assert core.close(ErrorCode.SESSION_REPLACED, T0 + 2) == ()


def test_peer_close_reports_ok_and_sends_nothing() -> None:
    core, ctx = opened()
    assert core.connection_lost(T0 + 1) == (Closed(ErrorCode.OK, True),)
    assert core.data_to_send() == b""
    assert ctx.metrics.value("access_closes_total", reason="peer_closed") == 1


# ---------------------------------------------------------------------------------------- the table itself


def test_every_pair_outside_the_table_closes_the_line() -> None:
    """Drive each state into each input by the public API and compare with the table."""
    frames = {
        Input.HANDSHAKE: handshake("tok"),
        Input.HEARTBEAT: ping(),
        Input.FRAME: chat(),
    }

    def in_state(state: State) -> AccessConnection:
        core, _ = make()
        if state is State.AUTHENTICATING:
            core.receive_data(handshake("tok"), T0)
        elif state is State.OPEN:
            core, _ = opened()
        return core

    for state in (State.AWAIT_HANDSHAKE, State.AUTHENTICATING, State.OPEN):
        for inp, data in frames.items():
            core = in_state(state)
            core.receive_data(data, T0 + 1)
            expected = TRANSITIONS.get((state, inp), State.CLOSED)
            assert core.state is expected, (state, inp)


def test_core_imports_no_io_library() -> None:
    import ast
    import inspect

    from imsdk_server.access import _core

    tree = ast.parse(inspect.getsource(_core))
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not names & {"anyio", "asyncio", "trio", "httpx", "redis", "pymysql", "socket", "time"}


def test_decoder_is_released_on_close() -> None:
    core, _ = opened()
    core.connection_lost(T0)
    assert core.receive_data(b"\x12", T0) == ()
