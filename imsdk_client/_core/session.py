"""The client session as a sans-IO state machine: events and the current time in, actions out.

The driver reports what happened — the app's calls (:meth:`Session.start`, :meth:`Session.send_message`,
:meth:`Session.network_changed`, :meth:`Session.close`), the network's news (:meth:`Session.connected`,
:meth:`Session.data_received`, :meth:`Session.connection_lost`, :meth:`Session.connect_failed`), the answers
of the HTTP services (:meth:`Session.endpoints_fetched`, :meth:`Session.token_refreshed`, …) and the timer
(:meth:`Session.handle_timer` at :meth:`Session.next_deadline`). Each call returns the actions to carry out:
:class:`OpenConnection`, :class:`SendBytes`, :class:`CloseConnection`, :class:`FetchAccessPoints`,
:class:`RefreshToken` and :class:`Deliver` (an event for the app, state changes included).

The connection state moves only along :data:`TRANSITIONS`; any other move raises :class:`SessionStateError`.
News about a connection the session already gave up carries that connection's id and is ignored. The design,
with a timeline, is in ``docs/client.md``.
"""

from __future__ import annotations

import enum
import random
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

from google.protobuf.message import Message

from imsdk_client._core.backoff import Backoff, BackoffConfig
from imsdk_client._core.events import (
    ChatContent,
    ConnectionState,
    Event,
    FriendChanged,
    MessageReceived,
    Network,
    NetworkChanged,
    NotificationReceived,
    PresenceChanged,
    ProfileUpdated,
    PushReceived,
    ReceiptReceived,
    ReplyReceived,
    RequestFailed,
    SendAcked,
    SendFailed,
    StateChanged,
)
from imsdk_client._core.heartbeat import Heartbeat, HeartbeatConfig, HeartbeatDue
from imsdk_client._core.race import Endpoint
from imsdk_client._core.reorder import Item, ReorderBuffer, ReorderConfig, ReorderOutput, conversation_id
from imsdk_client._core.sequencing import Outbox, OutboxEntry, SeqCounter
from imsdk_proto._frame import DEFAULT_MAX_FRAME_SIZE, Frame, FrameDecoder, encode_frame
from imsdk_proto._header import Header
from imsdk_proto.codes import (
    Biz,
    ChatFunc,
    Codec,
    ErrorCode,
    Flags,
    NotifyFunc,
    PresenceFunc,
    ProfileFunc,
    PushFunc,
    SyncFunc,
    SystemFunc,
)
from imsdk_proto.errors import ProtocolError
from imsdk_proto.messages import (
    ChatImage,
    ChatLocation,
    ChatText,
    ChatVoice,
    ConversationCursor,
    DeliveryReceipt,
    ErrorReport,
    FriendEvent,
    Handshake,
    HandshakeAck,
    Kick,
    NetworkType,
    Notification,
    NotifyAck,
    Ping,
    Platform,
    Pong,
    PresenceEvent,
    Push,
    ReadReceipt,
    Resume,
    SendAck,
    StoredMessage,
    SyncAck,
    SyncBatch,
    SyncDone,
    SyncPull,
)
from imsdk_proto.messages import ProfileUpdated as ProfileUpdatedBody

__all__ = [
    "TRANSIENT_ERRORS",
    "TRANSITIONS",
    "Action",
    "CloseConnection",
    "Deliver",
    "FetchAccessPoints",
    "Input",
    "OpenConnection",
    "RefreshToken",
    "SendBytes",
    "Session",
    "SessionConfig",
    "SessionStateError",
]

State = ConnectionState


class Input(enum.Enum):
    """What moves the connection state (the columns of :data:`TRANSITIONS`)."""

    DIAL_CONNECT = "dial_connect"
    DIAL_FETCH = "dial_fetch"
    DIAL_REFRESH = "dial_refresh"
    NETWORK_DOWN = "network_down"
    TRANSPORT_OPEN = "transport_open"
    HANDSHAKE_OK = "handshake_ok"
    AUTH_REJECTED = "auth_rejected"
    CAUGHT_UP = "caught_up"
    LOST = "lost"
    LOST_NO_NETWORK = "lost_no_network"
    FAILED = "failed"
    CLOSE = "close"
    FATAL = "fatal"


_S = State
_I = Input
_DOWN = (_S.DISCONNECTED, _S.BACKOFF, _S.NO_NETWORK, _S.FETCHING, _S.REFRESHING_TOKEN)
_LIVE = (_S.CONNECTING, _S.HANDSHAKING, _S.CATCHING_UP, _S.READY)
_OPEN = (_S.CATCHING_UP, _S.READY)


def _table() -> dict[tuple[State, Input], State]:
    table: dict[tuple[State, Input], State] = {}
    for state in _DOWN:
        table[(state, _I.DIAL_CONNECT)] = _S.CONNECTING
        table[(state, _I.DIAL_FETCH)] = _S.FETCHING
        table[(state, _I.DIAL_REFRESH)] = _S.REFRESHING_TOKEN
        table[(state, _I.NETWORK_DOWN)] = _S.NO_NETWORK
    table[(_S.CONNECTING, _I.NETWORK_DOWN)] = _S.NO_NETWORK
    table[(_S.HANDSHAKING, _I.NETWORK_DOWN)] = _S.NO_NETWORK
    table[(_S.CONNECTING, _I.TRANSPORT_OPEN)] = _S.HANDSHAKING
    table[(_S.HANDSHAKING, _I.HANDSHAKE_OK)] = _S.CATCHING_UP
    table[(_S.HANDSHAKING, _I.AUTH_REJECTED)] = _S.REFRESHING_TOKEN
    table[(_S.CATCHING_UP, _I.CAUGHT_UP)] = _S.READY
    for state in _LIVE:
        table[(state, _I.LOST)] = _S.BACKOFF
        table[(state, _I.LOST_NO_NETWORK)] = _S.NO_NETWORK
    table[(_S.FETCHING, _I.FAILED)] = _S.BACKOFF
    table[(_S.REFRESHING_TOKEN, _I.FAILED)] = _S.BACKOFF
    for state in State:
        if state is not _S.CLOSED:
            table[(state, _I.CLOSE)] = _S.CLOSED
            table[(state, _I.FATAL)] = _S.CLOSED
    return table


#: Every legal move of the connection state: ``(state, input) → next state``.
TRANSITIONS: Mapping[tuple[State, Input], State] = _table()

#: Refusals after which a message is kept and resent (after ``retry_after_ms``, or ``retry_delay``).
TRANSIENT_ERRORS = frozenset(
    {
        ErrorCode.STORAGE_UNAVAILABLE,
        ErrorCode.BACKEND_TIMEOUT,
        ErrorCode.BACKEND_NOT_READY,
        ErrorCode.NO_BACKEND,
        ErrorCode.RATE_LIMITED,
        ErrorCode.INTERNAL,
        ErrorCode.LINK_NOT_READY,
    }
)
_TOKEN_ERRORS = frozenset({ErrorCode.TOKEN_EXPIRED, ErrorCode.TOKEN_INVALID, ErrorCode.TOKEN_REVOKED})
_CONTENT_FUNCS: dict[type[Message], int] = {
    ChatText: ChatFunc.TEXT,
    ChatImage: ChatFunc.IMAGE,
    ChatVoice: ChatFunc.VOICE,
    ChatLocation: ChatFunc.LOCATION,
}
_CONTENT_CODES = frozenset(_CONTENT_FUNCS.values())


class SessionStateError(RuntimeError):
    """The driver reported something the session's state does not allow (a driver bug)."""


# ---------------------------------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class OpenConnection:
    """Open connection ``conn_id``: race ``endpoints`` (one endpoint: just connect), write ``handshake`` as
    the first bytes of the winner, then report :meth:`Session.connected` with the winning endpoint."""

    conn_id: int
    endpoints: tuple[Endpoint, ...]
    handshake: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class SendBytes:
    """Write ``data`` on connection ``conn_id``."""

    conn_id: int
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class CloseConnection:
    """Close connection ``conn_id`` (or cancel its attempt); report nothing more about it."""

    conn_id: int


@dataclass(frozen=True, slots=True)
class FetchAccessPoints:
    """Ask the access manager for a fresh list; answer with :meth:`Session.endpoints_fetched`."""


@dataclass(frozen=True, slots=True)
class RefreshToken:
    """Get a fresh token; answer with :meth:`Session.token_refreshed` (or ``token_refresh_failed``)."""


@dataclass(frozen=True, slots=True)
class Deliver:
    """Hand ``event`` to the app."""

    event: Event


Action = OpenConnection | SendBytes | CloseConnection | FetchAccessPoints | RefreshToken | Deliver


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """What the session needs to know about the device, and its timing."""

    device_id: str
    """This device's id (one user may have several devices online)."""
    platform: int = 0
    """A ``Platform`` number."""
    client_version: str = ""
    codec: Codec = Codec.PROTOBUF
    """The codec the connection speaks (v2 protobuf by default)."""
    region: str = ""
    isp: str = ""
    connect_timeout: float = 10.0
    """Connect plus handshake must finish within this many seconds."""
    catch_up_timeout: float = 30.0
    """The catch-up counts as done after this long even without its done marker."""
    pull_on_connect: bool = True
    """Ask for the pending messages after every handshake (the router also starts a catch-up on its own)."""
    token_refresh_margin: float = 60.0
    """Refresh the token before dialling when it expires within this many seconds."""
    ack_timeout: float = 10.0
    """Resend a message (same id, RETRY) that got no answer for this long on a live connection."""
    retry_delay: float = 1.0
    """Resend delay after a transient refusal that names no ``retry_after_ms``."""
    max_outbox: int = 10_000
    resume_cursors_max: int = 256
    """At most this many conversation cursors travel in the handshake's resume info."""
    notify_dedup_entries: int = 1024
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    backoff: BackoffConfig = field(default_factory=BackoffConfig)
    heartbeat: HeartbeatConfig = field(default_factory=HeartbeatConfig)
    reorder: ReorderConfig = field(default_factory=ReorderConfig)

    def __post_init__(self) -> None:
        if not self.device_id:
            raise ValueError("device_id is required")
        if min(self.connect_timeout, self.catch_up_timeout, self.ack_timeout, self.retry_delay) <= 0:
            raise ValueError("timeouts and delays must be positive")


# ---------------------------------------------------------------------------------------------------- session


class Session:
    """One client's connection logic.

    ``rng`` draws message ids, ``backoff_rng`` the back-off jitter (default: ``rng``); seed them in tests.
    ``cursors`` are conversation cursors the app persisted (see :class:`ReorderBuffer`).
    """

    def __init__(
        self,
        config: SessionConfig,
        *,
        network: Network | str = Network.WIFI,
        rng: random.Random | None = None,
        backoff_rng: random.Random | None = None,
        cursors: Mapping[str, int] | None = None,
    ) -> None:
        self.config = config
        rng = rng or random.Random()
        self._rng = rng
        self.state = State.DISCONNECTED
        self.network = Network.parse(network)
        self.backoff = Backoff(config.backoff, backoff_rng or rng)
        self.heartbeat = Heartbeat(config.heartbeat)
        self.seq = SeqCounter()
        self.outbox = Outbox(ack_timeout=config.ack_timeout, max_entries=config.max_outbox, rng=rng)
        self.reorder = ReorderBuffer(config.reorder, cursors)
        self._actions: list[Action] = []
        # connection
        self._conn_id: int | None = None
        self._next_conn = 1
        self._decoder: FrameDecoder | None = None
        self._attempt: tuple[Endpoint, ...] = ()
        self.endpoint: Endpoint | None = None
        """The access point of the current connection."""
        self.home: Endpoint | None = None
        """The access point of the last working session: tried first on reconnect."""
        self._endpoints: list[Endpoint] = []
        self._plan: list[tuple[Endpoint, ...]] = []
        self._conn_network = self.network
        self._connect_deadline: float | None = None
        self._retry_at: float | None = None
        self._catch_up_deadline: float | None = None
        # token and session
        self._token = ""
        self._token_expiry = 0.0
        self._token_stale = False
        self._auth_rejections = 0
        self.uid = ""
        self.session_id = 0
        self.access_id = 0
        self.msg_server_id = 0
        """The message server (router) this session sticks to; stamped on every chat frame."""
        # requests in flight
        self._requests: dict[int, tuple[int, int]] = {}
        self._deferred: list[tuple[Header, Message | None]] = []
        self._pulls: dict[int, str] = {}
        self._batch_more: dict[str, bool] = {}
        self._catch_up_id = 0
        self._notify_seen: OrderedDict[int, None] = OrderedDict()

    # ------------------------------------------------------------------------------------------ plumbing

    def _take(self) -> list[Action]:
        actions, self._actions = self._actions, []
        return actions

    def _deliver(self, event: Event) -> None:
        self._actions.append(Deliver(event))

    def _move(self, inp: Input, reason: str = "", code: ErrorCode | None = None) -> None:
        new = TRANSITIONS.get((self.state, inp))
        if new is None:
            raise SessionStateError(f"{inp.value} is not allowed in state {self.state.value}")
        old, self.state = self.state, new
        if new is not old:
            self._deliver(StateChanged(old, new, reason, code))

    def _new_msg_id(self) -> int:
        while True:
            msg_id = self._rng.getrandbits(64)
            if msg_id and msg_id not in self.outbox and msg_id not in self._requests:
                return msg_id

    # ------------------------------------------------------------------------------------------ app calls

    def start(
        self, now: float, *, token: str, token_expires_at: float, endpoints: Sequence[Endpoint] = ()
    ) -> list[Action]:
        """Begin: ``token`` expires at ``token_expires_at`` (on the driver's clock); ``endpoints`` is the
        access manager's list if the driver already has one (else the session asks for it)."""
        if self.state is not State.DISCONNECTED:
            raise SessionStateError(f"start while {self.state.value}")
        self._token, self._token_expiry = token, token_expires_at
        if endpoints:
            self._endpoints = list(endpoints)
            self._plan = [tuple(endpoints)]
        self._dial(now, "start")
        return self._take()

    def close(self, now: float) -> list[Action]:
        """The app closes the client: everything unanswered fails, no more attempts."""
        if self.state is not State.CLOSED:
            self._shutdown(Input.CLOSE, "closed by the app", None)
        return self._take()

    def send_message(
        self,
        content: ChatContent,
        receiver_uid: str,
        now: float,
        *,
        instant: bool = False,
        receiver_device: str = "",
        msg_id: int | None = None,
    ) -> tuple[int, list[Action]]:
        """Queue a chat message; sent at once when a session is open. Returns its ``msg_id``.

        Its answer arrives as :class:`SendAcked` or :class:`SendFailed` with that id.
        """
        if self.state is State.CLOSED:
            raise SessionStateError("the session is closed")
        func = _CONTENT_FUNCS.get(type(content))
        if func is None:
            raise TypeError(f"not a chat content: {type(content).__name__}")
        if not receiver_uid:
            raise ValueError("receiver_uid is required")
        entry = self.outbox.add(
            Biz.CHAT,
            func,
            content,
            receiver_uid,
            now,
            receiver_device=receiver_device,
            instant=instant,
            msg_id=msg_id,
        )
        if self.state in _OPEN:
            self._flush_outbox(now)
        return entry.msg_id, self._take()

    def send_receipt(
        self, kind: str, peer_uid: str, server_msg_ids: Iterable[int], up_to_conv_seq: int, now: float
    ) -> list[Action]:
        """Tell ``peer_uid`` that messages were delivered (``kind="delivered"``) or read (``"read"``).

        Receipts are not acknowledged by the server; one made while no session is open waits for the next.
        """
        ids = list(server_msg_ids)
        body: Message
        if kind == "delivered":
            body = DeliveryReceipt(peer_uid=peer_uid, server_msg_ids=ids, up_to_conv_seq=up_to_conv_seq)
            func = ChatFunc.DELIVERED
        elif kind == "read":
            body = ReadReceipt(peer_uid=peer_uid, server_msg_ids=ids, up_to_conv_seq=up_to_conv_seq)
            func = ChatFunc.READ
        else:
            raise ValueError(f"a receipt is 'delivered' or 'read', not {kind!r}")
        self._send_or_defer(Header(Biz.CHAT, func, msg_id=self._new_msg_id()), body, now)
        return self._take()

    def request(self, biz: int, func: int, body: Message | None, now: float) -> tuple[int, list[Action]]:
        """Send a request (a profile read, a friend list…); its answer comes as :class:`ReplyReceived` or
        :class:`RequestFailed` with the returned ``msg_id``. A request lost with its connection fails."""
        msg_id = self._new_msg_id()
        self._requests[msg_id] = (biz, func)
        self._send_or_defer(Header(biz, func, msg_id=msg_id, flags=Flags.ACK_WANTED), body, now)
        return msg_id, self._take()

    def network_changed(self, network: Network | str, now: float) -> list[Action]:
        """The app says the device is now on ``network`` (wifi, 5g, 4g, 3g, 2g or none)."""
        new = Network.parse(network)
        old = self.network
        if new is old:
            return []
        self.network = new
        self._deliver(NetworkChanged(old, new))
        state = self.state
        if new is Network.NONE:
            # A live line is left alone (the heartbeat finds out); attempts stop until a network is back.
            if state in (State.CONNECTING, State.HANDSHAKING):
                self._plan.insert(0, self._attempt)
                self._close_conn()
                self._move(Input.NETWORK_DOWN, "no network")
            elif state is State.BACKOFF:
                self._retry_at = None
                self._move(Input.NETWORK_DOWN, "no network")
            return self._take()
        if state is State.NO_NETWORK:
            self.backoff.reset()
            self._dial(now, f"network back ({new.value})")
        elif state in _OPEN:
            if old is Network.NONE and new is self._conn_network:
                if self.heartbeat.ping_now(now):
                    self._ping(now)
            else:
                self._drop(now, f"network changed to {new.value}", reconnect_now=True)
        elif state in (State.CONNECTING, State.HANDSHAKING):
            self._plan.insert(0, self._attempt)
            self._close_conn()
            self._move(Input.LOST, f"network changed to {new.value}")
            self._dial(now, f"network changed to {new.value}")
        elif state is State.BACKOFF:
            self._retry_at = None
            self._dial(now, f"network changed to {new.value}")
        return self._take()

    # ------------------------------------------------------------------------------------------ driver news

    def endpoints_fetched(self, endpoints: Sequence[Endpoint], now: float) -> list[Action]:
        """The access manager's fresh list."""
        self._endpoints = list(endpoints)
        self._plan = [tuple(endpoints)] if endpoints else []
        if self.state is State.FETCHING:
            if endpoints:
                self._dial(now, "access points fetched")
            else:
                self._fail(now, "the access manager offered no access point")
        return self._take()

    def fetch_failed(self, reason: str, now: float) -> list[Action]:
        """Fetching the list failed (the access manager is down or unreachable)."""
        if self.state is State.FETCHING:
            self._fail(now, f"fetching access points failed: {reason}")
        return self._take()

    def token_refreshed(self, token: str, expires_at: float, now: float) -> list[Action]:
        """A fresh token (expiry on the driver's clock)."""
        self._token, self._token_expiry, self._token_stale = token, expires_at, False
        if self.state is State.REFRESHING_TOKEN:
            self._dial(now, "token refreshed")
        return self._take()

    def token_refresh_failed(self, reason: str, now: float, *, final: bool) -> list[Action]:
        """The refresh failed; ``final`` when logging in again cannot help (credentials refused)."""
        if self.state is State.REFRESHING_TOKEN:
            if final:
                self._shutdown(Input.FATAL, f"token refresh refused: {reason}", ErrorCode.TOKEN_INVALID)
            else:
                self._fail(now, f"token refresh failed: {reason}")
        return self._take()

    def connected(self, conn_id: int, endpoint: Endpoint, now: float) -> list[Action]:
        """Connection ``conn_id`` is open to ``endpoint`` and the handshake bytes were written."""
        if conn_id != self._conn_id:
            self._actions.append(CloseConnection(conn_id))  # an attempt given up meanwhile
            return self._take()
        self.endpoint = endpoint
        self._decoder = FrameDecoder(self.config.max_frame_size)
        self._move(Input.TRANSPORT_OPEN, f"connected to {endpoint}")
        return self._take()

    def connect_failed(self, conn_id: int, reason: str, now: float) -> list[Action]:
        """Attempt ``conn_id`` failed (every endpoint of its race refused, reset or timed out)."""
        if conn_id == self._conn_id and self.state in (State.CONNECTING, State.HANDSHAKING):
            self._close_conn(send_close=False)
            self._fail(now, f"connect failed: {reason}")
        return self._take()

    def connection_lost(self, conn_id: int, reason: str, now: float) -> list[Action]:
        """Connection ``conn_id`` closed or broke."""
        if conn_id == self._conn_id and self.state in _LIVE:
            self._close_conn(send_close=False)
            self._drop(now, f"connection lost: {reason}" if reason else "connection lost")
        return self._take()

    def data_received(self, conn_id: int, data: bytes, now: float) -> list[Action]:
        """Bytes arrived on connection ``conn_id``."""
        decoder = self._decoder
        if conn_id != self._conn_id or decoder is None:
            return self._take()
        try:
            decoder.feed(data)
            while self._decoder is decoder:
                frame = decoder.next_frame()
                if frame is None:
                    break
                self._on_frame(frame, now)
        except ProtocolError as exc:
            if self._decoder is decoder:
                self._drop(now, f"bad bytes from the server: {exc}", code=exc.code)
        return self._take()

    # ------------------------------------------------------------------------------------------ time

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must next run (``None``: nothing is scheduled)."""
        candidates: list[float | None] = [self._retry_at, self._connect_deadline]
        if self.state in _OPEN:
            candidates += [
                self._catch_up_deadline,
                self.heartbeat.next_deadline(),
                self.outbox.next_deadline(),
                self.reorder.next_deadline(),
            ]
        times = [t for t in candidates if t is not None]
        return min(times) if times else None

    def handle_timer(self, now: float) -> list[Action]:
        """Run whatever is due at ``now``."""
        state = self.state
        if state in (State.CONNECTING, State.HANDSHAKING):
            if self._connect_deadline is not None and now >= self._connect_deadline:
                self._close_conn()
                self._fail(now, "connect timed out")
        elif state is State.BACKOFF:
            if self._retry_at is not None and now >= self._retry_at:
                self._retry_at = None
                self._dial(now, "retry")
        elif state in _OPEN:
            if self._catch_up_deadline is not None and now >= self._catch_up_deadline:
                self._caught_up(now, "catch-up timed out")
            due = self.heartbeat.handle_timer(now)
            if due is HeartbeatDue.PING:
                self._ping(now)
            elif due is HeartbeatDue.DEAD:
                self._drop(now, "heartbeat timed out", code=ErrorCode.HEARTBEAT_TIMEOUT)
                return self._take()
            for entry in self.outbox.timed_out(now):
                self._send_entry(entry, now, keep_seq=True)
            self._flush_outbox(now)
            self._apply(self.reorder.handle_timer(now), now)
        return self._take()

    # ------------------------------------------------------------------------------------------ dialling

    def _dial(self, now: float, reason: str) -> None:
        """Get a connection: no network → wait; token due → refresh; no endpoint → fetch; else connect."""
        if self.network is Network.NONE:
            self._move(Input.NETWORK_DOWN, f"{reason}; no network")
            return
        if self._token_stale or self._token_expiry - now <= self.config.token_refresh_margin:
            self._move(Input.DIAL_REFRESH, f"{reason}; token needs a refresh")
            self._actions.append(RefreshToken())
            return
        if not self._plan:
            self._move(Input.DIAL_FETCH, f"{reason}; fetching access points")
            self._actions.append(FetchAccessPoints())
            return
        group = self._plan.pop(0)
        conn_id = self._next_conn
        self._next_conn += 1
        self._conn_id = conn_id
        self._attempt = group
        self._conn_network = self.network
        self._connect_deadline = now + self.config.connect_timeout
        self._move(Input.DIAL_CONNECT, reason)
        self._actions.append(OpenConnection(conn_id, group, self._handshake()))

    def _handshake(self) -> bytes:
        cfg = self.config
        hs = Handshake(
            token=self._token,
            device_id=cfg.device_id,
            platform=cast("Platform", cfg.platform),
            client_version=cfg.client_version,
            network=cast("NetworkType", self.network.wire),
            codec=int(cfg.codec),
            region=cfg.region,
            isp=cfg.isp,
        )
        if self.session_id:
            cursors = sorted(self.reorder.cursors().items())[: cfg.resume_cursors_max]
            hs.resume.CopyFrom(
                Resume(
                    session=self.session_id,
                    acked_up_seq=self.seq.highest_acked,
                    cursors=[ConversationCursor(conversation=c, seq=s) for c, s in cursors],
                )
            )
        header = Header(Biz.SYSTEM, SystemFunc.HANDSHAKE, flags=Flags.ACK_WANTED)
        return encode_frame(header, hs, cfg.codec)

    def _close_conn(self, *, send_close: bool = True) -> None:
        if self._conn_id is not None and send_close:
            self._actions.append(CloseConnection(self._conn_id))
        self._conn_id = None
        self._decoder = None
        self._connect_deadline = None
        self._catch_up_deadline = None
        self.endpoint = None
        self.heartbeat.stop()

    def _plan_reconnect(self, *, skip_home: bool) -> None:
        """Home server alone first, then the others of the list raced, then (empty plan) a fresh list."""
        plan: list[tuple[Endpoint, ...]] = []
        home = self.home
        if home is not None and not skip_home:
            plan.append((home,))
        others = tuple(e for e in self._endpoints if e != home)
        if others:
            plan.append(others)
        self._plan = plan

    def _fail(self, now: float, reason: str, code: ErrorCode | None = None) -> None:
        """An attempt (connect, fetch or refresh) failed: wait the back-off, then try the next thing."""
        if self.network is Network.NONE:
            inp = Input.LOST_NO_NETWORK if self.state in _LIVE else Input.NETWORK_DOWN
            self._move(inp, f"{reason}; no network", code)
            return
        self._move(Input.LOST if self.state in _LIVE else Input.FAILED, reason, code)
        self._retry_at = now + self.backoff.next_delay()

    def _drop(
        self,
        now: float,
        reason: str,
        *,
        code: ErrorCode | None = None,
        reconnect_now: bool = False,
        skip_home: bool = False,
        delay: float | None = None,
    ) -> None:
        """The connection (or the attempt) ends; plan and schedule the reconnect."""
        was_open = self.state in _OPEN
        self._close_conn()
        self._lose_in_flight(now)
        if not was_open:
            self._fail(now, reason, code)
            return
        self._plan_reconnect(skip_home=skip_home)
        self.backoff.reset()
        if self.network is Network.NONE:
            self._move(Input.LOST_NO_NETWORK, f"{reason}; no network", code)
            return
        self._move(Input.LOST, reason, code)
        wait = delay if delay is not None else 0.0
        if wait <= 0 or reconnect_now:
            self._dial(now, "reconnect")
        else:
            self._retry_at = now + wait

    def _lose_in_flight(self, now: float) -> None:
        self.reorder.connection_reset(now)
        self._pulls.clear()
        self._batch_more.clear()
        self._catch_up_id = 0
        for msg_id in list(self._requests):
            del self._requests[msg_id]
            self._deliver(RequestFailed(msg_id, None, "the connection was lost"))

    def _shutdown(self, inp: Input, reason: str, code: ErrorCode | None) -> None:
        self._close_conn()
        self._retry_at = None
        self._plan = []
        for entry in self.outbox.clear():
            self._deliver(SendFailed(entry.msg_id, code, reason))
        for msg_id in list(self._requests):
            self._deliver(RequestFailed(msg_id, code, reason))
        self._requests.clear()
        self._deferred.clear()
        self._move(inp, reason, code)

    # ------------------------------------------------------------------------------------------ sending

    def _write(self, header: Header, body: Message | None, now: float) -> None:
        assert self._conn_id is not None
        self._actions.append(SendBytes(self._conn_id, encode_frame(header, body, self.config.codec)))
        self.heartbeat.sent(now)

    def _send_or_defer(self, header: Header, body: Message | None, now: float) -> None:
        if self.state in _OPEN:
            header.seq = self.seq.next()
            self._write(header, body, now)
        else:
            self._deferred.append((header, body))

    def _send_entry(self, entry: OutboxEntry, now: float, *, keep_seq: bool = False) -> None:
        assert self._conn_id is not None
        seq = entry.seq if keep_seq and entry.seq is not None else self.seq.next()
        data = entry.frame(seq, self.msg_server_id, self.config.codec)
        self.outbox.mark_sent(entry, seq, self.msg_server_id, now)
        self._actions.append(SendBytes(self._conn_id, data))
        self.heartbeat.sent(now)

    def _flush_outbox(self, now: float) -> None:
        for entry in self.outbox.to_send(now):
            self._send_entry(entry, now)

    def _ping(self, now: float) -> None:
        assert self._conn_id is not None
        header = Header(Biz.SYSTEM, SystemFunc.PING)
        data = encode_frame(header, Ping(time_ms=int(now * 1000)), self.config.codec)
        self._actions.append(SendBytes(self._conn_id, data))
        self.heartbeat.ping_sent(now)

    def _send_pull(self, conversation: str, from_seq: int, to_seq: int, limit: int, now: float) -> int:
        msg_id = self._new_msg_id()
        self._pulls[msg_id] = conversation
        pull = SyncPull(conversation=conversation, from_seq=from_seq, to_seq=to_seq, limit=limit)
        header = Header(Biz.SYNC, SyncFunc.PULL, seq=self.seq.next(), msg_id=msg_id, flags=Flags.ACK_WANTED)
        self._write(header, pull, now)
        return msg_id

    def _apply(self, out: ReorderOutput, now: float) -> None:
        for event in out.events:
            self._deliver(event)  # type: ignore[arg-type]
        if self.state not in _OPEN:
            return
        for pull in out.pulls:
            self._send_pull(pull.conversation, pull.from_seq, pull.to_seq, pull.limit, now)
        if out.acks:
            ack = SyncAck(cursors=[ConversationCursor(conversation=c, seq=s) for c, s in out.acks])
            self._write(Header(Biz.SYNC, SyncFunc.ACK, seq=self.seq.next()), ack, now)

    # ------------------------------------------------------------------------------------------ receiving

    def _on_frame(self, frame: Frame, now: float) -> None:
        h = frame.header
        is_pong = h.biz == Biz.SYSTEM and h.func == SystemFunc.PONG
        self.heartbeat.received(now, pong=is_pong)
        if self.state is State.HANDSHAKING:
            self._on_handshake_frame(frame, now)
            return
        if h.biz == Biz.SYSTEM:
            self._on_system(frame, now)
            return
        if h.is_response and h.is_error:
            self._on_refusal(h, frame, now)
            return
        code = h.code
        if code == (Biz.CHAT, ChatFunc.SEND_ACK):
            self._on_send_ack(h, frame.body_as(SendAck), now)
        elif h.biz == Biz.CHAT and h.func in _CONTENT_CODES:
            self._on_chat(h, frame.body, now)
        elif code == (Biz.CHAT, ChatFunc.DELIVERED) or code == (Biz.CHAT, ChatFunc.READ):
            body = frame.body
            assert isinstance(body, DeliveryReceipt | ReadReceipt)
            kind = "delivered" if h.func == ChatFunc.DELIVERED else "read"
            self._deliver(
                ReceiptReceived(
                    kind, body.peer_uid, tuple(body.server_msg_ids), body.up_to_conv_seq, body.time_ms
                )
            )
        elif code == (Biz.SYNC, SyncFunc.BATCH):
            self._on_batch(frame.body_as(SyncBatch), now)
        elif code == (Biz.SYNC, SyncFunc.DONE):
            self._on_done(h, frame.body_as(SyncDone), now)
        elif code == (Biz.NOTIFY, NotifyFunc.NOTIFY):
            self._on_notification(frame.body_as(Notification), now)
        elif code == (Biz.PRESENCE, PresenceFunc.EVENT):
            ev = frame.body_as(PresenceEvent)
            p = ev.presence
            self._deliver(
                PresenceChanged(
                    ev.kind, p.uid, p.device, p.online, p.network, ev.access_id or p.access_id, ev.time_ms
                )
            )
        elif code == (Biz.PROFILE, ProfileFunc.UPDATED):
            self._deliver(ProfileUpdated(frame.body_as(ProfileUpdatedBody).profile))
        elif code == (Biz.PROFILE, ProfileFunc.FRIEND_EVENT):
            fe = frame.body_as(FriendEvent)
            self._deliver(FriendChanged(fe.kind, fe.uid, fe.friend_uid, fe.time_ms))
        elif code == (Biz.PUSH, PushFunc.PUSH):
            push = frame.body_as(Push)
            self._deliver(PushReceived(push.push_id, push.title, push.body, push.payload, push.sent_at_ms))
        elif h.is_response and h.msg_id in self._requests:
            self.seq.acked(h.seq)
            del self._requests[h.msg_id]
            self._deliver(ReplyReceived(h.msg_id, h.biz, h.func, frame.body))
        # Anything else (a code this client does not know yet) is ignored: newer servers may send more.

    def _on_handshake_frame(self, frame: Frame, now: float) -> None:
        h = frame.header
        if h.code == (Biz.SYSTEM, SystemFunc.HANDSHAKE_ACK):
            self._opened(frame.body_as(HandshakeAck), now)
        elif h.code == (Biz.SYSTEM, SystemFunc.KICK) or h.is_error:
            code = ErrorCode.from_wire(h.error)
            if h.func == SystemFunc.KICK and isinstance(frame.body, Kick) and frame.body.code:
                code = ErrorCode.from_wire(frame.body.code)
            if code in _TOKEN_ERRORS:
                self._auth_rejected(now, code)
            else:
                self._close_conn()
                self._fail(now, f"handshake refused: {code.name}", code)
        else:
            self._close_conn()
            self._fail(
                now, f"unexpected frame {h.code} before the handshake reply", ErrorCode.UNEXPECTED_MESSAGE
            )

    def _auth_rejected(self, now: float, code: ErrorCode) -> None:
        self._auth_rejections += 1
        endpoint = self.endpoint
        self._close_conn()
        if self._auth_rejections >= 2:
            self._shutdown(Input.FATAL, "the token was refused again after a refresh", code)
            return
        if endpoint is not None:
            self._plan.insert(0, (endpoint,))
        self._token_stale = True
        self._move(Input.AUTH_REJECTED, f"handshake refused: {code.name}", code)
        self._actions.append(RefreshToken())

    def _opened(self, ack: HandshakeAck, now: float) -> None:
        self._connect_deadline = None
        self.session_id = ack.session
        self.seq.start(ack.seq_base)
        self.uid = ack.uid or self.uid
        self.access_id = ack.access_id
        if ack.msg_server_id:
            self.msg_server_id = ack.msg_server_id
        self.home = self.endpoint
        self._auth_rejections = 0
        self.backoff.reset()
        self._move(Input.HANDSHAKE_OK, f"session {ack.session} open on access server {ack.access_id}")
        self.heartbeat.start(
            now, self.network.value, ack.heartbeat_interval_ms / 1000.0, ack.idle_timeout_ms / 1000.0
        )
        self.reorder.hold_unknown = True
        self._catch_up_deadline = now + self.config.catch_up_timeout
        if self.config.pull_on_connect:
            self._catch_up_id = self._send_pull("", 0, 0, 0, now)
        self.outbox.new_session()
        self._flush_outbox(now)
        deferred, self._deferred = self._deferred, []
        for header, body in deferred:
            header.seq = self.seq.next()
            self._write(header, body, now)

    def _caught_up(self, now: float, reason: str) -> None:
        if self.state is not State.CATCHING_UP:
            return
        self._catch_up_deadline = None
        self._move(Input.CAUGHT_UP, reason)
        self._apply(self.reorder.catch_up_done(now), now)

    def _on_system(self, frame: Frame, now: float) -> None:
        h = frame.header
        if h.func == SystemFunc.PING:
            ping = frame.body_as(Ping)
            reply = Header(Biz.SYSTEM, SystemFunc.PONG, h.seq, h.msg_id, flags=Flags.RESPONSE)
            self._write(reply, Pong(time_ms=ping.time_ms), now)
        elif h.func == SystemFunc.KICK:
            kick = frame.body_as(Kick)
            code = ErrorCode.from_wire(kick.code or h.error)
            if code is ErrorCode.SESSION_REPLACED:
                self._shutdown(Input.FATAL, "this device logged in elsewhere", code)
            elif code is ErrorCode.SERVER_SHUTTING_DOWN:
                self._drop(
                    now,
                    "the access server is shutting down",
                    code=code,
                    skip_home=True,
                    delay=kick.reconnect_after_ms / 1000.0,
                )
            else:
                self._drop(now, f"kicked: {code.name}", code=code, delay=kick.reconnect_after_ms / 1000.0)
        elif h.func == SystemFunc.ERROR and h.is_response:
            self._on_refusal(h, frame, now)
        # PONG was counted by the heartbeat; a late HANDSHAKE_ACK or a bare ERROR (a KICK follows) is ignored.

    def _on_refusal(self, h: Header, frame: Frame, now: float) -> None:
        self.seq.acked(h.seq)
        report = frame.body if isinstance(frame.body, ErrorReport) else ErrorReport()
        code = ErrorCode.from_wire(h.error or report.code)
        msg_id = h.msg_id
        entry = self.outbox.get(msg_id)
        if entry is not None:
            if code is ErrorCode.WRONG_MESSAGE_SERVER and h.msg_server_id:
                self.msg_server_id = h.msg_server_id
                if entry.server_id != self.msg_server_id and self.state in _OPEN:
                    self._send_entry(entry, now)
            elif code in TRANSIENT_ERRORS or code is ErrorCode.WRONG_MESSAGE_SERVER:
                wait = report.retry_after_ms / 1000.0 if report.retry_after_ms else self.config.retry_delay
                self.outbox.retry_later(msg_id, now + wait)
            else:
                self.outbox.pop(msg_id)
                self._deliver(SendFailed(msg_id, code, report.message))
        elif msg_id in self._requests:
            del self._requests[msg_id]
            self._deliver(RequestFailed(msg_id, code, report.message))
        elif msg_id and msg_id == self._catch_up_id:
            self._catch_up_id = 0
            self._caught_up(now, f"catch-up refused: {code.name}")
        elif msg_id in self._pulls:
            del self._pulls[msg_id]  # the reorder buffer's pull timer asks again

    def _on_send_ack(self, h: Header, ack: SendAck, now: float) -> None:
        self.seq.acked(h.seq)
        msg_id = ack.msg_id or h.msg_id
        entry = self.outbox.pop(msg_id)
        if entry is None:
            return  # a second answer to a resend: the first one counted
        conversation = conversation_id(self.uid, entry.receiver_uid) if self.uid else ""
        if ack.conv_seq and conversation:
            self._apply(self.reorder.push(Item(conversation, ack.conv_seq, self.uid, msg_id), now), now)
        self._deliver(
            SendAcked(msg_id, ack.server_msg_id, ack.conv_seq, ack.timestamp_ms, ack.status, conversation)
        )

    def _on_chat(self, h: Header, body: Message | None, now: float) -> None:
        if not isinstance(body, ChatText | ChatImage | ChatVoice | ChatLocation):
            return
        receiver = h.receiver_uid or self.uid
        conversation = conversation_id(h.sender_uid, receiver)
        instant = bool(h.flags & Flags.NO_STORE)
        event = MessageReceived(
            conversation,
            h.sender_uid,
            h.sender_device,
            h.msg_id,
            body.server_msg_id,
            body.conv_seq,
            body.sent_at_ms,
            body,
            instant,
        )
        own = h.sender_uid == self.uid and h.sender_device == self.config.device_id
        item = Item(
            conversation, 0 if instant else body.conv_seq, h.sender_uid, h.msg_id, None if own else event
        )
        self._apply(self.reorder.push(item, now), now)

    def _on_batch(self, batch: SyncBatch, now: float) -> None:
        if batch.conversation:
            self._batch_more[batch.conversation] = batch.more
        for stored in batch.messages:
            self._apply(self.reorder.push(self._stored_item(stored), now), now)

    def _stored_item(self, m: StoredMessage) -> Item:
        kind = m.WhichOneof("content")
        event: Event | None = None
        if kind == "notification":
            event = NotificationReceived(m.notification)
        elif kind is not None:
            content = getattr(m, kind)
            event = MessageReceived(
                m.conversation,
                m.sender_uid,
                m.sender_device,
                m.msg_id,
                m.server_msg_id,
                m.conv_seq,
                m.sent_at_ms,
                content,
            )
        if m.sender_uid == self.uid and m.sender_device == self.config.device_id:
            event = None
        return Item(m.conversation, m.conv_seq, m.sender_uid, m.msg_id, event)

    def _on_done(self, h: Header, done: SyncDone, now: float) -> None:
        if h.msg_id and h.msg_id in self._pulls:
            del self._pulls[h.msg_id]
        if not done.conversation:
            if h.msg_id == self._catch_up_id:
                self._catch_up_id = 0
            self._caught_up(now, "caught up")
            return
        more = self._batch_more.pop(done.conversation, False)
        self._apply(self.reorder.pull_done(done.conversation, now, more=more), now)

    def _on_notification(self, note: Notification, now: float) -> None:
        if note.notify_id:
            self._write(
                Header(Biz.NOTIFY, NotifyFunc.ACK, seq=self.seq.next()),
                NotifyAck(notify_ids=[note.notify_id]),
                now,
            )
            if note.notify_id in self._notify_seen:
                return
            self._notify_seen[note.notify_id] = None
            while len(self._notify_seen) > self.config.notify_dedup_entries:
                self._notify_seen.popitem(last=False)
        self._deliver(NotificationReceived(note))
