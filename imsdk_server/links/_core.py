"""The link state machine: hello, ready, not-ready, ack, close, and the failure detector of the link.

Sans-IO: events in (what the peer sent, what the local side wants, the current time), actions out (control
frames to send, state changes, a close with its reason code). The core knows link *control* only as
:class:`~imsdk_proto.codes.LinkFunc` values and hello identities; it never encodes a frame, so the driver
owns the codec and the core is testable with plain values.

The transition table :data:`TRANSITIONS` is the single source of truth; ``docs/links.md`` draws it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from imsdk_proto.codes import ErrorCode, LinkFunc
from imsdk_server.links._detector import (
    DetectorAction,
    DetectorConfig,
    FailureDetector,
    LateAfterDown,
    PeerAlive,
    PeerDown,
    PeerSuspect,
    SendHeartbeat,
    SendProbe,
)
from imsdk_server.links._errors import IllegalTransition, LinkClosed, LinkNotReady

__all__ = [
    "MAY_RECEIVE",
    "MAY_SEND",
    "TRANSITIONS",
    "CloseLink",
    "LinkAction",
    "LinkConfig",
    "LinkCore",
    "LinkEvent",
    "LinkIdentity",
    "LinkState",
    "SendControl",
    "StateChanged",
    "next_state",
]


class LinkState(Enum):
    """States of one link; see ``docs/links.md`` for what each allows."""

    IDLE = "idle"
    HELLO_SENT = "hello_sent"
    LINKED = "linked"
    READY_LOCAL = "ready_local"
    READY_REMOTE = "ready_remote"
    READY = "ready"
    DRAINING = "draining"
    PEER_DRAINING = "peer_draining"
    BOTH_DRAINING = "both_draining"
    DRAINED = "drained"
    FINISHED = "finished"
    CLOSED = "closed"


class LinkEvent(Enum):
    """Inputs of the transition table. ``PEER_*`` come from the peer, ``LOCAL_*`` from this server."""

    START = "start"
    PEER_HELLO = "peer_hello"
    LOCAL_READY = "local_ready"
    PEER_READY = "peer_ready"
    LOCAL_NOT_READY = "local_not_ready"
    PEER_NOT_READY = "peer_not_ready"
    PEER_ACK = "peer_ack"
    PEER_DATA = "peer_data"
    LOCAL_DATA = "local_data"
    PEER_CONTROL = "peer_control"
    """A heartbeat, probe or probe-ack."""
    CLOSE = "close"


S = LinkState
E = LinkEvent


def _build() -> dict[tuple[LinkState, LinkEvent], LinkState]:
    t: dict[tuple[LinkState, LinkEvent], LinkState] = {
        (S.IDLE, E.START): S.HELLO_SENT,
        (S.HELLO_SENT, E.PEER_HELLO): S.LINKED,
        (S.LINKED, E.LOCAL_READY): S.READY_LOCAL,
        (S.LINKED, E.PEER_READY): S.READY_REMOTE,
        (S.READY_LOCAL, E.PEER_READY): S.READY,
        (S.READY_REMOTE, E.LOCAL_READY): S.READY,
        (S.DRAINING, E.PEER_NOT_READY): S.BOTH_DRAINING,
        (S.PEER_DRAINING, E.LOCAL_NOT_READY): S.BOTH_DRAINING,
        (S.DRAINING, E.PEER_ACK): S.DRAINED,
        (S.BOTH_DRAINING, E.PEER_ACK): S.FINISHED,
        (S.DRAINED, E.PEER_NOT_READY): S.FINISHED,
    }
    for s in (S.LINKED, S.READY_LOCAL, S.READY_REMOTE, S.READY):
        t[(s, E.LOCAL_NOT_READY)] = S.DRAINING
        t[(s, E.PEER_NOT_READY)] = S.PEER_DRAINING
    for s in MAY_RECEIVE:
        t[(s, E.PEER_DATA)] = s
    for s in MAY_SEND:
        t[(s, E.LOCAL_DATA)] = s
    for s in _LINKED_STATES:
        t[(s, E.PEER_CONTROL)] = s
    for s in LinkState:
        if s is not S.CLOSED:
            t[(s, E.CLOSE)] = S.CLOSED
    return t


#: States in which the peer's traffic is accepted.
MAY_RECEIVE: frozenset[LinkState] = frozenset({S.READY, S.DRAINING, S.PEER_DRAINING, S.BOTH_DRAINING})
#: States in which local traffic may be sent.
MAY_SEND: frozenset[LinkState] = frozenset({S.READY, S.DRAINING, S.DRAINED})
_LINKED_STATES = frozenset(
    {
        S.LINKED,
        S.READY_LOCAL,
        S.READY_REMOTE,
        S.READY,
        S.DRAINING,
        S.PEER_DRAINING,
        S.BOTH_DRAINING,
        S.DRAINED,
        S.FINISHED,
    }
)
_DRAINING_LOCAL = frozenset({S.DRAINING, S.BOTH_DRAINING, S.DRAINED, S.FINISHED})

#: The link state table: ``(state, event) -> next state``. Pairs not listed are illegal.
TRANSITIONS: dict[tuple[LinkState, LinkEvent], LinkState] = _build()


def next_state(state: LinkState, event: LinkEvent) -> LinkState:
    """Look ``(state, event)`` up in :data:`TRANSITIONS`; raise :class:`IllegalTransition` if absent."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(f"link: {event.value} is illegal in state {state.value}") from None


@dataclass(frozen=True, slots=True)
class LinkIdentity:
    """Who is at one end of a link: what its hello says."""

    role: int
    """What the server does: a :data:`imsdk_proto.messages.ServerRole` value (0 = unspecified, refused)."""
    server_id: int
    """The server's id, unique in its domain (the number stamped into frame headers)."""
    name: str = ""
    """A human-readable name (host, instance) for logs and dashboards."""
    domain: str = ""
    """The deployment domain the server belongs to."""
    version: str = ""
    """The software version the server runs (informational)."""
    bizs: tuple[int, ...] = ()
    """Business codes this server handles (what an access server may route to it)."""


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """Timing and limits of a link. Durations are in seconds."""

    heartbeat_interval: float = 3.0
    """A heartbeat is sent when nothing else was sent for this long."""
    grace: float = 1.5
    """Silence tolerated on top of ``heartbeat_interval`` before the peer becomes suspect."""
    probe_timeout: float = 1.0
    """How long each probe of a suspect peer waits for an answer."""
    probes: int = 3
    """Probes sent to a suspect peer before it is declared down."""
    hello_timeout: float = 5.0
    """The peer's hello must arrive within this time of the connection opening."""
    max_frame_size: int = 1 << 20
    """Largest frame accepted, checked from the preamble before the frame is buffered."""
    send_buffer_bytes: int = 1 << 20
    """Bound of the send buffer: ``send`` waits for room beyond it, ``send_nowait`` raises ``LinkBusy``."""
    accept_roles: frozenset[int] = field(default_factory=frozenset)
    """Roles allowed to link to us; empty means any role."""
    cross_domain: bool = False
    """Accept peers from other domains (cross-domain gateways)."""
    close_grace: float = 1.0
    """How long a closing link may spend flushing its send buffer before the socket is cut."""

    @property
    def detector(self) -> DetectorConfig:
        """The failure-detector part of this configuration."""
        return DetectorConfig(self.heartbeat_interval, self.grace, self.probe_timeout, self.probes)


@dataclass(frozen=True, slots=True)
class SendControl:
    """Send a link control frame. ``number`` is the probe number for probes and probe-acks."""

    func: LinkFunc
    number: int = 0
    hello: LinkIdentity | None = None


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The link moved from ``old`` to ``new``."""

    old: LinkState
    new: LinkState


@dataclass(frozen=True, slots=True)
class CloseLink:
    """Close the transport: flush what is queued (best effort) then close. The core is already CLOSED."""

    code: ErrorCode
    reason: str


LinkAction = SendControl | StateChanged | CloseLink | PeerSuspect | PeerAlive | PeerDown | LateAfterDown

_PEER_EVENTS: dict[LinkFunc, LinkEvent] = {
    LinkFunc.HELLO: E.PEER_HELLO,
    LinkFunc.READY: E.PEER_READY,
    LinkFunc.NOT_READY: E.PEER_NOT_READY,
    LinkFunc.NOT_READY_ACK: E.PEER_ACK,
    LinkFunc.HEARTBEAT: E.PEER_CONTROL,
    LinkFunc.PROBE: E.PEER_CONTROL,
    LinkFunc.PROBE_ACK: E.PEER_CONTROL,
}


class LinkCore:
    """One link's state. Every method returns the actions to carry out, in order.

    ``expect_server_id`` is set when we dialed a server found in the registry: its hello must match.
    ``ready`` says whether the local side is ready at once (it then sends ready as soon as both hellos are
    exchanged); otherwise call :meth:`mark_ready` later.
    """

    __slots__ = (
        "_detector",
        "_hello_deadline",
        "_ready_wanted",
        "_recv_ok",
        "_send_ok",
        "close_code",
        "close_reason",
        "config",
        "expect_server_id",
        "local",
        "peer",
        "state",
    )

    def __init__(
        self,
        local: LinkIdentity,
        config: LinkConfig,
        now: float,
        *,
        expect_server_id: int | None = None,
        ready: bool = False,
    ) -> None:
        self.local = local
        self.config = config
        self.expect_server_id = expect_server_id
        self.state = S.IDLE
        self._send_ok = False  # state in MAY_SEND / MAY_RECEIVE, kept as flags for the per-frame paths
        self._recv_ok = False
        self.peer: LinkIdentity | None = None
        self.close_code: ErrorCode | None = None
        self.close_reason = ""
        self._ready_wanted = ready
        self._hello_deadline = now + config.hello_timeout
        self._detector: FailureDetector | None = None

    # -- queries -------------------------------------------------------------------------------------------

    @property
    def may_send(self) -> bool:
        """Whether local traffic may be sent now."""
        return self._send_ok

    @property
    def detector(self) -> FailureDetector | None:
        """The failure detector, once both hellos are exchanged."""
        return self._detector

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must next be called, or ``None``."""
        state = self.state
        if state is S.IDLE or state is S.HELLO_SENT:
            return self._hello_deadline
        if self._detector is None or state is S.CLOSED:
            return None
        return self._detector.next_deadline()

    # -- local events --------------------------------------------------------------------------------------

    def start(self, now: float) -> list[LinkAction]:
        """The transport is up: send our hello."""
        out = self._move(E.START)
        out.append(SendControl(LinkFunc.HELLO, hello=self.local))
        return out

    def mark_ready(self, now: float) -> list[LinkAction]:
        """The local side accepts traffic. Before the hellos are exchanged this is remembered."""
        self._ready_wanted = True
        state = self.state
        if state in (S.LINKED, S.READY_REMOTE):
            return self._send_ready(now)
        if state in (S.IDLE, S.HELLO_SENT, S.READY_LOCAL, S.READY):
            return []
        raise IllegalTransition(f"link: cannot become ready again in state {state.value}")

    def drain(self, now: float) -> list[LinkAction]:
        """The local side deregisters: send not-ready. Idempotent; a link still in its hello is closed."""
        state = self.state
        if state in _DRAINING_LOCAL or state is S.CLOSED:
            return []
        if state is S.IDLE or state is S.HELLO_SENT:
            return self.close(now, ErrorCode.SERVER_SHUTTING_DOWN, "deregistering before the link was up")
        out = self._move(E.LOCAL_NOT_READY)
        out.append(SendControl(LinkFunc.NOT_READY))
        self._sent(now)
        return out

    def on_send(self, now: float) -> None:
        """Local traffic is about to be sent: raise unless the link allows it (nothing then goes out)."""
        if not self._send_ok:
            state = self.state
            if state is S.CLOSED:
                raise LinkClosed(f"link closed: {self.close_reason}", self.close_code)
            raise LinkNotReady(f"link is {state.value}, not ready for traffic")
        if self._detector is not None:
            self._detector.sent(now)

    def close(self, now: float, code: ErrorCode, reason: str) -> list[LinkAction]:
        """Close the link (local decision, transport lost, peer down). Idempotent."""
        if self.state is S.CLOSED:
            return []
        out = self._move(E.CLOSE)
        self.close_code = code
        self.close_reason = reason
        if self._detector is not None:
            self._detector.stop()
        out.append(CloseLink(code, reason))
        return out

    def handle_timer(self, now: float) -> list[LinkAction]:
        """Act on every deadline passed at ``now`` (early or repeated calls are harmless)."""
        state = self.state
        if state is S.IDLE or state is S.HELLO_SENT:
            if now >= self._hello_deadline:
                return self.close(now, ErrorCode.HANDSHAKE_TIMEOUT, "no hello from the peer in time")
            return []
        if self._detector is None or state is S.CLOSED:
            return []
        return self._detector_actions(self._detector.handle_timer(now), now)

    # -- peer events ---------------------------------------------------------------------------------------

    def receive_data(self, now: float) -> list[LinkAction]:
        """A traffic frame arrived. An empty list means: deliver it. Otherwise the link is closing."""
        if self._recv_ok:
            det = self._detector
            assert det is not None
            heard = det.heard(now)
            return self._detector_actions(heard, now) if heard else []
        state = self.state
        if state is S.CLOSED:
            return self._late(now)
        return self._violation(now, f"traffic from the peer in state {state.value}")

    def receive_control(
        self, func: LinkFunc, now: float, *, hello: LinkIdentity | None = None, number: int = 0
    ) -> list[LinkAction]:
        """A link control frame arrived. Violations close the link (the returned actions say so)."""
        state = self.state
        if state is S.CLOSED:
            return self._late(now)
        event = _PEER_EVENTS[func]
        if (state, event) not in TRANSITIONS:
            return self._violation(now, f"{func.name} from the peer in state {state.value}")
        out: list[LinkAction] = []
        if self._detector is not None:
            out += self._detector_actions(self._detector.heard(now), now)
        if func is LinkFunc.HELLO:
            assert hello is not None
            problem = self._validate(hello)
            if problem:
                return self.close(now, ErrorCode.FORBIDDEN, problem)
            self.peer = hello
            out += self._move(event)
            self._detector = FailureDetector(self.config.detector, now)
            if self._ready_wanted:
                out += self._send_ready(now)
            return out
        if event is E.PEER_CONTROL:
            if func is LinkFunc.PROBE:
                out.append(SendControl(LinkFunc.PROBE_ACK, number))
                self._sent(now)
            return out
        out += self._move(event)
        if event is E.PEER_NOT_READY:
            # Queued behind every frame already sent, so it reaches the peer after all of them.
            out.append(SendControl(LinkFunc.NOT_READY_ACK))
            self._sent(now)
        return out

    def reader_busy(self, now: float) -> None:
        """The local reader is still inside the application's handler: the peer's frames wait unread, so
        the failure detector does not count the silence against the peer (see
        :meth:`FailureDetector.deaf`). Call it before :meth:`handle_timer` while a handler runs."""
        if self._detector is not None and self.state is not S.CLOSED:
            self._detector.deaf(now)

    def connection_lost(self, now: float, code: ErrorCode, reason: str) -> list[LinkAction]:
        """The transport ended (EOF, reset) or its bytes did not decode."""
        return self.close(now, code, reason)

    # -- internals -----------------------------------------------------------------------------------------

    def _move(self, event: LinkEvent) -> list[LinkAction]:
        old = self.state
        new = next_state(old, event)
        self.state = new
        self._send_ok = new in MAY_SEND
        self._recv_ok = new in MAY_RECEIVE
        return [StateChanged(old, new)] if new is not old else []

    def _send_ready(self, now: float) -> list[LinkAction]:
        out = self._move(E.LOCAL_READY)
        out.append(SendControl(LinkFunc.READY))
        self._sent(now)
        return out

    def _sent(self, now: float) -> None:
        if self._detector is not None:
            self._detector.sent(now)

    def _violation(self, now: float, what: str) -> list[LinkAction]:
        return self.close(now, ErrorCode.UNEXPECTED_MESSAGE, what)

    def _late(self, now: float) -> list[LinkAction]:
        if self._detector is None:
            return []
        return [a for a in self._detector.heard(now) if isinstance(a, LateAfterDown)]

    def _validate(self, hello: LinkIdentity) -> str:
        local = self.local
        if not hello.role:
            return "hello without a role"
        if hello.server_id == local.server_id and hello.role == local.role:
            return f"hello from our own server id {hello.server_id}"
        if self.config.accept_roles and hello.role not in self.config.accept_roles:
            return f"role {hello.role} may not link to us"
        if not self.config.cross_domain and hello.domain != local.domain:
            return f"peer domain {hello.domain!r} is not ours ({local.domain!r})"
        if self.expect_server_id is not None and hello.server_id != self.expect_server_id:
            return f"expected server {self.expect_server_id}, peer says {hello.server_id}"
        return ""

    def _detector_actions(self, actions: list[DetectorAction], now: float) -> list[LinkAction]:
        out: list[LinkAction] = []
        for action in actions:
            if isinstance(action, SendHeartbeat):
                out.append(SendControl(LinkFunc.HEARTBEAT))
            elif isinstance(action, SendProbe):
                out.append(SendControl(LinkFunc.PROBE, action.number))
            elif isinstance(action, PeerDown):
                out.append(action)
                out += self.close(now, ErrorCode.HEARTBEAT_TIMEOUT, "peer down: every probe timed out")
            else:
                out.append(action)
        return out
