"""The sans-IO core of one client connection: bytes and the current time in, actions and bytes out.

Nothing here touches a socket, a clock or a task. The driver (:mod:`imsdk_server.access._server`) feeds
received bytes with :meth:`AccessConnection.receive_data`, calls :meth:`~AccessConnection.handle_timer` when
:meth:`~AccessConnection.next_deadline` has passed, writes what
:meth:`~AccessConnection.data_to_send` returns, and carries out the actions the core returns:

* :class:`Authenticate` -- verify this handshake's token, then call :meth:`~AccessConnection.authenticated`
  or :meth:`~AccessConnection.auth_failed`;
* :class:`Forward` -- hand this stamped upstream frame to the back-end for its code;
* :class:`Closed` -- the line is finished: flush what is queued (the reason frame) and close the socket.

The state table is data (:data:`TRANSITIONS`); a ``(state, input)`` pair not in it is a protocol violation
and closes the line with the code in :data:`VIOLATIONS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from google.protobuf.message import Message

from imsdk_proto._frame import Frame, FrameDecoder, encode_frame
from imsdk_proto._header import Header
from imsdk_proto.codecs.protobuf import encode_stamp
from imsdk_proto.codes import Biz, Codec, ErrorCode, Flags, SystemFunc
from imsdk_proto.errors import ProtocolError
from imsdk_proto.messages import ErrorReport, Handshake, HandshakeAck, Kick, Ping, Pong
from imsdk_server.access._config import AccessConfig
from imsdk_server.metrics import Counter, Gauge, Metrics

__all__ = [
    "TRANSITIONS",
    "VIOLATIONS",
    "AccessConnection",
    "Action",
    "Authenticate",
    "Closed",
    "CoreContext",
    "Forward",
    "Input",
    "State",
]


class State(Enum):
    """Where a connection is in its life."""

    # Hashed by identity, in C: the state table is looked up with (State, Input) on every frame, and
    # Enum.__hash__ (hash of the name) is a Python call. Members compare by identity anyway.
    __hash__ = object.__hash__

    AWAIT_HANDSHAKE = "await_handshake"
    """Accepted; the first frame must be a handshake, before the handshake deadline."""
    AUTHENTICATING = "authenticating"
    """The handshake arrived; its token is being verified. The client must wait for the reply."""
    OPEN = "open"
    """Authenticated: heartbeats are answered, frames flow both ways."""
    CLOSED = "closed"
    """Finished; everything received from now on is ignored."""


class Input(Enum):
    """What can happen to a connection: frames from the client, answers of the driver, deadlines."""

    __hash__ = object.__hash__  # see State

    HANDSHAKE = "handshake"
    HEARTBEAT = "heartbeat"
    FRAME = "frame"
    AUTH_OK = "auth_ok"
    AUTH_FAILED = "auth_failed"
    HANDSHAKE_DEADLINE = "handshake_deadline"
    IDLE_DEADLINE = "idle_deadline"
    HEARTBEAT_DEADLINE = "heartbeat_deadline"
    BAD_BYTES = "bad_bytes"
    SEND_OVERFLOW = "send_overflow"
    REPLACED = "replaced"
    SHUTDOWN = "shutdown"
    PEER_CLOSED = "peer_closed"


_S = State
_I = Input
_LIVE = (_S.AWAIT_HANDSHAKE, _S.AUTHENTICATING, _S.OPEN)

#: The legal transitions. Every input that ends the line leads to CLOSED.
TRANSITIONS: dict[tuple[State, Input], State] = {
    (_S.AWAIT_HANDSHAKE, _I.HANDSHAKE): _S.AUTHENTICATING,
    (_S.AWAIT_HANDSHAKE, _I.HANDSHAKE_DEADLINE): _S.CLOSED,
    (_S.AUTHENTICATING, _I.AUTH_OK): _S.OPEN,
    (_S.AUTHENTICATING, _I.AUTH_FAILED): _S.CLOSED,
    (_S.AUTHENTICATING, _I.HANDSHAKE_DEADLINE): _S.CLOSED,
    (_S.OPEN, _I.HEARTBEAT): _S.OPEN,
    (_S.OPEN, _I.FRAME): _S.OPEN,
    (_S.OPEN, _I.IDLE_DEADLINE): _S.CLOSED,
    (_S.OPEN, _I.HEARTBEAT_DEADLINE): _S.CLOSED,
    (_S.OPEN, _I.SEND_OVERFLOW): _S.CLOSED,
    (_S.OPEN, _I.REPLACED): _S.CLOSED,
    **{(state, _I.BAD_BYTES): _S.CLOSED for state in _LIVE},
    **{(state, _I.SHUTDOWN): _S.CLOSED for state in _LIVE},
    **{(state, _I.PEER_CLOSED): _S.CLOSED for state in _LIVE},
}

#: The close code of an input that is not legal in a state (default: ``UNEXPECTED_MESSAGE``).
VIOLATIONS: dict[tuple[State, Input], ErrorCode] = {
    (_S.AWAIT_HANDSHAKE, _I.HEARTBEAT): ErrorCode.HANDSHAKE_REQUIRED,
    (_S.AWAIT_HANDSHAKE, _I.FRAME): ErrorCode.HANDSHAKE_REQUIRED,
}

#: The close code of each input that ends a line by itself.
CLOSE_CODES: dict[Input, ErrorCode] = {
    _I.HANDSHAKE_DEADLINE: ErrorCode.HANDSHAKE_TIMEOUT,
    _I.IDLE_DEADLINE: ErrorCode.IDLE_TIMEOUT,
    _I.HEARTBEAT_DEADLINE: ErrorCode.HEARTBEAT_TIMEOUT,
    _I.SEND_OVERFLOW: ErrorCode.SLOW_CONSUMER,
    _I.REPLACED: ErrorCode.SESSION_REPLACED,
    _I.SHUTDOWN: ErrorCode.SERVER_SHUTTING_DOWN,
    _I.PEER_CLOSED: ErrorCode.OK,
}

# Business codes a client may never send: server-to-server link control and queue events.
_FORBIDDEN_BIZ = frozenset((Biz.LINK, Biz.EVENT))
_SYSTEM = Biz.SYSTEM
_HANDSHAKE = SystemFunc.HANDSHAKE
_PING = SystemFunc.PING
_PONG = SystemFunc.PONG
_V2 = Codec.PROTOBUF
_INF = float("inf")


@dataclass(frozen=True, slots=True)
class Authenticate:
    """Verify the handshake's token; answer with :meth:`AccessConnection.authenticated` or ``auth_failed``."""

    token: str
    device: str
    platform: int
    client_version: str
    network: int


@dataclass(frozen=True, slots=True)
class Forward:
    """An upstream frame to hand to the back-end serving ``header.code``; its header is already stamped."""

    header: Header
    frame: Frame

    def to_frame(self) -> Frame:
        """The frame as back-ends receive it: v2, the stamped header, the body as raw bytes (a v1 body is
        transcoded). Raises :class:`~imsdk_proto.errors.ProtocolError` when a v1 body cannot be transcoded.

        A v2 frame stamped by :class:`AccessConnection` is itself that frame: its header was stamped in
        place and its ``header_bytes`` patched to match, so the link sends it without a header encode."""
        frame = self.frame
        if frame.codec is not _V2:
            frame = frame.to_codec(_V2)
        elif frame.header is self.header:
            return frame
        return Frame(self.header, _V2, frame.raw_body)

    def encode(self) -> bytes:
        """:meth:`to_frame` as bytes."""
        return self.to_frame().encode()


@dataclass(frozen=True, slots=True)
class Closed:
    """The line is finished with ``code`` (``OK`` when the peer closed it). ``was_open``: it had
    authenticated, so an offline event is due (unless it was replaced)."""

    code: ErrorCode
    was_open: bool


Action = Authenticate | Forward | Closed
_NO_ACTIONS: tuple[Action, ...] = ()


class CoreContext:
    """What every connection of one server shares: the configuration, the clock offset, the metrics.

    Kept in one object so that a connection costs one pointer for it. ``wall_offset`` turns the driver's
    monotonic ``now`` into Unix seconds (``now + wall_offset``) for the server time told to clients.
    """

    def __init__(
        self, config: AccessConfig, metrics: Metrics | None = None, wall_offset: float = 0.0
    ) -> None:
        self.config = config
        self.access_id = config.server_id
        self.wall_offset = wall_offset
        self.handshake_timeout = config.handshake_timeout
        self.idle_timeout = config.idle_timeout
        self.heartbeat_timeout = config.heartbeat_timeout
        self.max_frame_size = config.max_frame_size
        self.max_bytes = config.send_queue_max_bytes
        self.max_frames = config.send_queue_max_frames
        self.heartbeat_interval_ms = int(config.heartbeat_interval * 1000)
        self.idle_timeout_ms = int(config.idle_timeout * 1000)
        self.metrics = metrics if metrics is not None else Metrics()
        self._m = self.metrics.child("access")
        self.queued_bytes = 0
        """Bytes waiting in every connection's send queue (including bytes being written)."""
        self.queued_frames = 0
        """Frames waiting in every connection's send queue."""
        self._m.gauge("send_queue_bytes", fn=lambda: self.queued_bytes)
        self._m.gauge("send_queue_frames", fn=lambda: self.queued_frames)
        self.connections: Gauge = self._m.gauge("connections")
        self._frames_in: dict[int, Counter] = {}
        self._frames_out: dict[int, Counter] = {}
        self._closes: dict[ErrorCode, Counter] = {}
        self._errors: dict[ErrorCode, Counter] = {}
        self._handshakes: dict[ErrorCode, Counter] = {}

    def wall_ms(self, now: float) -> int:
        return int((now + self.wall_offset) * 1000)

    def frame_in(self, biz: int) -> None:
        c = self._frames_in.get(biz)
        if c is None:
            c = self._frames_in[biz] = self._m.counter("frames_in_total", biz=_biz_label(biz))
        c.value += 1

    def frame_out(self, biz: int, n: int = 1) -> None:
        c = self._frames_out.get(biz)
        if c is None:
            c = self._frames_out[biz] = self._m.counter("frames_out_total", biz=_biz_label(biz))
        c.value += n

    def closed(self, code: ErrorCode) -> None:
        c = self._closes.get(code)
        if c is None:
            reason = "peer_closed" if code is ErrorCode.OK else code.name
            c = self._closes[code] = self._m.counter("closes_total", reason=reason)
        c.value += 1

    def error(self, code: ErrorCode) -> None:
        c = self._errors.get(code)
        if c is None:
            c = self._errors[code] = self._m.counter("errors_total", code=code.name)
        c.value += 1

    def handshake(self, code: ErrorCode) -> None:
        c = self._handshakes.get(code)
        if c is None:
            result = "ok" if code is ErrorCode.OK else code.name
            c = self._handshakes[code] = self._m.counter("handshakes_total", result=result)
        c.value += 1


def _biz_label(biz: int) -> str:
    try:
        return Biz(biz).name
    except ValueError:
        return str(biz)


class AccessConnection:
    """One client connection's protocol state. Every method takes the current (monotonic) time ``now``.

    After authentication :attr:`uid`, :attr:`device`, :attr:`session` and :attr:`seq_base` say who is on the
    line. :attr:`queued_bytes` / :attr:`queued_frames` measure the bounded send queue.
    """

    __slots__ = (
        "_accepted_at",
        "_ctx",
        "_decoder",
        "_fly_bytes",
        "_fly_frames",
        "_last_hb",
        "_last_rx",
        "_out",
        "_out_bytes",
        "_stamp",
        "client_version",
        "codec",
        "device",
        "network",
        "platform",
        "seq_base",
        "session",
        "state",
        "uid",
    )

    def __init__(self, ctx: CoreContext, now: float) -> None:
        self._ctx = ctx
        self._decoder: FrameDecoder | None = FrameDecoder(ctx.max_frame_size)
        self.state = State.AWAIT_HANDSHAKE
        self.codec: Codec | None = None
        """The codec fixed by the first frame (``None`` before it)."""
        self._accepted_at = now
        self._last_rx = now
        self._last_hb = now
        self._out: list[bytes] | None = None
        self._out_bytes = 0
        self._fly_bytes = 0
        self._fly_frames = 0
        self.uid = ""
        self.device = ""
        self.session = 0
        self.seq_base = 0
        self.platform = 0
        self.network = 0
        self.client_version = ""
        self._stamp = b""

    # ------------------------------------------------------------------ state table

    def _step(self, inp: Input) -> State | None:
        """Apply ``inp``; the new state, or ``None`` when the pair is illegal (the caller closes)."""
        nxt = TRANSITIONS.get((self.state, inp))
        if nxt is not None:
            self.state = nxt
        return nxt

    def _violation(self, inp: Input, now: float) -> Sequence[Action]:
        code = VIOLATIONS.get((self.state, inp), ErrorCode.UNEXPECTED_MESSAGE)
        return self._close(code, now, kick=True)

    # ------------------------------------------------------------------ input

    def receive_data(self, data: bytes, now: float) -> Sequence[Action]:
        """Bytes received from the client. Returns the actions they cause (often none)."""
        decoder = self._decoder
        if decoder is None or self.state is State.CLOSED:
            return _NO_ACTIONS
        actions: list[Action] | None = None
        try:
            decoder.feed(data)
            while self._decoder is not None:  # set to None when the line closes
                frame = decoder.next_frame()
                if frame is None:
                    break
                result = self._on_frame(frame, now)
                if result:
                    if actions is None:
                        actions = []
                    actions.extend(result)
        except ProtocolError as exc:
            result = self._bad_bytes(exc.code, now)
            if actions is None:
                return result
            actions.extend(result)
        return tuple(actions) if actions is not None else _NO_ACTIONS

    def _bad_bytes(self, code: ErrorCode, now: float) -> Sequence[Action]:
        self._ctx.error(code)
        if self.state in (State.AWAIT_HANDSHAKE, State.AUTHENTICATING):
            self._ctx.handshake(code)
        self._step(Input.BAD_BYTES)
        return self._close(code, now, kick=True, stepped=True)

    def _on_frame(self, frame: Frame, now: float) -> Sequence[Action]:
        self._last_rx = now
        header = frame.header
        biz = header.biz
        self._ctx.frame_in(biz)
        if self.codec is None:
            self.codec = frame.codec
        if biz == _SYSTEM:
            func = header.func
            if func == _HANDSHAKE:
                if self._step(Input.HANDSHAKE) is None:
                    return self._violation(Input.HANDSHAKE, now)
                return self._on_handshake(frame, now)
            if func in (_PING, _PONG):
                if self._step(Input.HEARTBEAT) is None:
                    return self._violation(Input.HEARTBEAT, now)
                self._last_hb = now
                if func == _PING:
                    self._answer_ping(frame, now)
                return _NO_ACTIONS
        if self._step(Input.FRAME) is None:
            return self._violation(Input.FRAME, now)
        if biz == _SYSTEM:
            self.reject(header, ErrorCode.UNEXPECTED_MESSAGE, now)
            return _NO_ACTIONS
        if biz in _FORBIDDEN_BIZ:
            self.reject(header, ErrorCode.FORBIDDEN, now)
            return _NO_ACTIONS
        # Stamp: whatever the client wrote here, the server says who sent it and through which access server.
        # The header's bytes get the stamp appended (protobuf keeps a field's last value), so the link need
        # not encode the header again; a header that named a sender itself is re-encoded, not carried on.
        header_bytes = frame.header_bytes
        if (
            header_bytes is not None
            and frame.codec is _V2
            and not (header.access_id or header.session or header.sender_uid or header.sender_device)
        ):
            frame.header_bytes = header_bytes + self._stamp
        else:
            frame.header_bytes = None
        header.access_id = self._ctx.access_id
        header.sender_uid = self.uid
        header.sender_device = self.device
        header.session = self.session
        return (Forward(header, frame),)

    def _on_handshake(self, frame: Frame, now: float) -> Sequence[Action]:
        try:
            hs = frame.body_as(Handshake)
        except ProtocolError as exc:
            return self._bad_bytes(exc.code, now)
        if hs.codec and hs.codec != frame.codec:
            return self._bad_bytes(ErrorCode.CODEC_CHANGED, now)
        if not hs.device_id or not hs.token:
            return self._bad_bytes(ErrorCode.MALFORMED_BODY, now)
        self.platform = hs.platform
        self.network = hs.network
        self.client_version = hs.client_version
        return (Authenticate(hs.token, hs.device_id, hs.platform, hs.client_version, hs.network),)

    def _answer_ping(self, frame: Frame, now: float) -> None:
        try:
            ping = frame.body_as(Ping)
            sent = ping.time_ms
        except ProtocolError:
            sent = 0
        h = Header(_SYSTEM, _PONG, frame.header.seq, frame.header.msg_id, flags=Flags.RESPONSE)
        self._reply(h, Pong(time_ms=sent, server_time_ms=self._ctx.wall_ms(now)))

    # ------------------------------------------------------------------ answers of the driver

    def authenticated(
        self, uid: str, device: str, session: int, seq_base: int, now: float, msg_server_id: int = 0
    ) -> bool:
        """The token was valid: open the line and queue the handshake reply.

        ``msg_server_id`` (0: none) is the message server the session's chat messages should name from
        the start, told to the client in the reply so that its first message is not refused for a
        missing id. Returns ``False`` (and changes nothing) when the line was closed meanwhile (e.g. the
        deadline).
        """
        if self._step(Input.AUTH_OK) is None:
            return False
        self.uid = uid
        self.device = device
        self.session = session
        self.seq_base = seq_base
        self._stamp = encode_stamp(self._ctx.access_id, uid, device, session)
        self._last_rx = now
        self._last_hb = now
        self._ctx.handshake(ErrorCode.OK)
        ack = HandshakeAck(
            session=session,
            seq_base=seq_base,
            heartbeat_interval_ms=self._ctx.heartbeat_interval_ms,
            access_id=self._ctx.access_id,
            server_time_ms=self._ctx.wall_ms(now),
            uid=uid,
            idle_timeout_ms=self._ctx.idle_timeout_ms,
            max_frame_size=self._ctx.max_frame_size,
            msg_server_id=msg_server_id,
        )
        self._reply(Header(_SYSTEM, SystemFunc.HANDSHAKE_ACK, flags=Flags.RESPONSE), ack)
        return True

    def auth_failed(self, code: ErrorCode, now: float) -> Sequence[Action]:
        """The token was refused with ``code``: the line closes with it."""
        if self._step(Input.AUTH_FAILED) is None:
            return _NO_ACTIONS
        self._ctx.handshake(code)
        return self._close(code, now, kick=True, stepped=True)

    def reject(self, header: Header, code: ErrorCode, now: float) -> None:
        """Answer one upstream frame with an error frame (``code``); the line stays up.

        Used for frames no back-end could take (``NO_BACKEND``, ``BACKEND_NOT_READY``) and frames the
        client may not send. The error frame echoes the frame's ``seq`` and ``msg_id``.
        """
        self._ctx.error(code)
        if self.state is not State.OPEN:
            return
        h = Header(
            _SYSTEM,
            SystemFunc.ERROR,
            header.seq,
            header.msg_id,
            flags=Flags.RESPONSE | Flags.ERROR,
            error=int(code),
        )
        self._reply(h, ErrorReport(code=int(code), message=code.doc))

    def close(self, code: ErrorCode, now: float) -> Sequence[Action]:
        """The server ends the line: ``SESSION_REPLACED`` or ``SERVER_SHUTTING_DOWN``."""
        inp = Input.REPLACED if code is ErrorCode.SESSION_REPLACED else Input.SHUTDOWN
        if self._step(inp) is None:
            return _NO_ACTIONS if self.state is State.CLOSED else self._close(code, now, kick=True)
        return self._close(code, now, kick=True, stepped=True)

    def connection_lost(self, now: float) -> Sequence[Action]:
        """The peer closed the connection or it broke."""
        if self._step(Input.PEER_CLOSED) is None:
            return _NO_ACTIONS
        return self._close(ErrorCode.OK, now, kick=False, stepped=True)

    # ------------------------------------------------------------------ time

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must next be called (``None``: no deadline)."""
        state = self.state
        if state is State.OPEN:
            ctx = self._ctx
            deadline = self._last_rx + ctx.idle_timeout
            if ctx.heartbeat_timeout is not None:
                deadline = min(deadline, self._last_hb + ctx.heartbeat_timeout)
            return deadline
        if state is State.CLOSED:
            return None
        return self._accepted_at + self._ctx.handshake_timeout

    def handle_timer(self, now: float) -> Sequence[Action]:
        """Close the line if one of its deadlines has passed at ``now``."""
        state = self.state
        ctx = self._ctx
        if state is State.OPEN:
            if now >= self._last_rx + ctx.idle_timeout:
                inp = Input.IDLE_DEADLINE
            elif ctx.heartbeat_timeout is not None and now >= self._last_hb + ctx.heartbeat_timeout:
                inp = Input.HEARTBEAT_DEADLINE
            else:
                return _NO_ACTIONS
        elif state is State.CLOSED:
            return _NO_ACTIONS
        elif now >= self._accepted_at + ctx.handshake_timeout:
            inp = Input.HANDSHAKE_DEADLINE
            ctx.handshake(ErrorCode.HANDSHAKE_TIMEOUT)
        else:
            return _NO_ACTIONS
        self._step(inp)
        return self._close(CLOSE_CODES[inp], now, kick=True, stepped=True)

    # ------------------------------------------------------------------ output

    def send(self, data: bytes, now: float, biz: int = 0) -> Sequence[Action]:
        """Queue an encoded downstream frame (already in :attr:`codec`).

        Past the send queue's bound the line closes with ``SLOW_CONSUMER``: nothing is buffered without
        bound. Frames for a line that is not open are dropped.
        """
        if self.state is not State.OPEN:
            return _NO_ACTIONS
        ctx = self._ctx
        out = self._out
        frames = (len(out) if out is not None else 0) + self._fly_frames + 1
        if frames > ctx.max_frames or self._out_bytes + self._fly_bytes + len(data) > ctx.max_bytes:
            self._step(Input.SEND_OVERFLOW)
            self._drop_queue()
            return self._close(ErrorCode.SLOW_CONSUMER, now, kick=False, stepped=True)
        if out is None:
            out = self._out = []
        out.append(data)
        self._out_bytes += len(data)
        ctx.queued_bytes += len(data)
        ctx.queued_frames += 1
        if biz:
            ctx.frame_out(biz)
        return _NO_ACTIONS

    def _reply(self, header: Header, body: Message) -> None:
        """Queue a frame the server itself answers with (not bounded: one per received frame at most)."""
        data = encode_frame(header, body, self.codec or _V2)
        if self._out is None:
            self._out = []
        self._out.append(data)
        self._out_bytes += len(data)
        self._ctx.queued_bytes += len(data)
        self._ctx.queued_frames += 1
        self._ctx.frame_out(_SYSTEM)

    def backlogged(self) -> bool:
        """The frames waiting to be written reach a quarter of the send queue's bound (in frames or bytes).

        A driver that collects frames before writing them (to write a burst at once) writes them now
        instead, so that collecting never brings a consumer that keeps up near the ``SLOW_CONSUMER`` bound.
        """
        out = self._out
        if out is None:
            return False
        ctx = self._ctx
        return len(out) * 4 >= ctx.max_frames or self._out_bytes * 4 >= ctx.max_bytes

    @property
    def queued_bytes(self) -> int:
        """Bytes in the send queue, including the chunk being written."""
        return self._out_bytes + self._fly_bytes

    @property
    def queued_frames(self) -> int:
        """Frames in the send queue, including those being written."""
        return (len(self._out) if self._out is not None else 0) + self._fly_frames

    def data_to_send(self) -> bytes:
        """Everything queued, as one chunk to write (``b""`` when nothing is). The chunk stays counted in the
        queue until :meth:`send_done`."""
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        self._fly_bytes += self._out_bytes
        self._fly_frames += len(out)
        self._out = None
        self._out_bytes = 0
        return data

    def send_done(self) -> None:
        """The chunk from :meth:`data_to_send` was written."""
        self._ctx.queued_bytes -= self._fly_bytes
        self._ctx.queued_frames -= self._fly_frames
        self._fly_bytes = 0
        self._fly_frames = 0

    def _drop_queue(self) -> None:
        out = self._out
        if out:
            self._ctx.queued_bytes -= self._out_bytes
            self._ctx.queued_frames -= len(out)
        self._out = None
        self._out_bytes = 0

    def release(self) -> None:
        """The socket is gone: forget whatever was still queued or being written."""
        self._drop_queue()
        self.send_done()
        self._decoder = None

    # ------------------------------------------------------------------ closing

    def _close(self, code: ErrorCode, now: float, *, kick: bool, stepped: bool = False) -> Sequence[Action]:
        was_open = self.uid != ""
        if not stepped:
            self.state = State.CLOSED
        self._ctx.closed(code)
        if kick:
            body = Kick(code=int(code), message=code.doc)
            self._reply(Header(_SYSTEM, SystemFunc.KICK, error=int(code)), body)
        self._decoder = None
        return (Closed(code, was_open),)
