"""The failure detector of one peer: heartbeats, suspicion, three probes, one down decision.

Sans-IO: the caller passes ``now`` (seconds on any monotonic clock) to every method and asks
:meth:`FailureDetector.next_deadline` when to call :meth:`FailureDetector.handle_timer` next. Nothing here
sleeps, reads a clock or touches a socket, so the exact times of probes and of the down decision are
testable on virtual time.

A missed heartbeat does not make the peer down: network jitter makes heartbeats late all the time, and a
server wrongly declared down makes every user behind it look offline and back online (a notification
storm). So silence makes the peer :attr:`Health.SUSPECT`; it is probed up to ``probes`` times, each probe
waiting ``probe_timeout``; any frame heard from it makes it :attr:`Health.ALIVE` again; only when every
probe has timed out is it :attr:`Health.DOWN`, and that decision is final for this detector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from imsdk_server.links._errors import IllegalTransition

__all__ = [
    "TRANSITIONS",
    "DetectorAction",
    "DetectorConfig",
    "DetectorEvent",
    "FailureDetector",
    "Health",
    "LateAfterDown",
    "PeerAlive",
    "PeerDown",
    "PeerSuspect",
    "SendHeartbeat",
    "SendProbe",
    "next_health",
]


class Health(Enum):
    """What the detector believes about the peer."""

    ALIVE = "alive"
    """Heard from recently enough."""
    SUSPECT = "suspect"
    """Silent past the heartbeat deadline; being probed."""
    DOWN = "down"
    """Every probe timed out. Final: a late frame does not bring the peer back."""
    STOPPED = "stopped"
    """The link ended for another reason; the detector no longer keeps time."""


class DetectorEvent(Enum):
    """Inputs of the transition table."""

    HEARD = "heard"
    """Any frame arrived from the peer (traffic, heartbeat, probe, probe-ack)."""
    SILENCE = "silence"
    """Nothing was heard for heartbeat interval + grace."""
    PROBE_TIMEOUT = "probe_timeout"
    """A probe went unanswered for probe_timeout and probes remain."""
    LAST_PROBE_TIMEOUT = "last_probe_timeout"
    """The last probe went unanswered."""
    STOP = "stop"
    """The owner stops watching this peer."""
    DEAF = "deaf"
    """The owner is not reading from the peer (its own handler is busy): frames wait unread, so the
    silence up to now says nothing about the peer."""


#: The detector's state table: ``(health, event) -> next health``. Pairs not listed are illegal.
TRANSITIONS: dict[tuple[Health, DetectorEvent], Health] = {
    (Health.ALIVE, DetectorEvent.HEARD): Health.ALIVE,
    (Health.ALIVE, DetectorEvent.SILENCE): Health.SUSPECT,
    (Health.ALIVE, DetectorEvent.STOP): Health.STOPPED,
    (Health.SUSPECT, DetectorEvent.HEARD): Health.ALIVE,
    (Health.SUSPECT, DetectorEvent.PROBE_TIMEOUT): Health.SUSPECT,
    (Health.SUSPECT, DetectorEvent.LAST_PROBE_TIMEOUT): Health.DOWN,
    (Health.SUSPECT, DetectorEvent.STOP): Health.STOPPED,
    # Our own reader was busy: silence so far is not the peer's. A suspect peer stays suspect (its
    # probes were sent before we stopped reading and keep their deadlines).
    (Health.ALIVE, DetectorEvent.DEAF): Health.ALIVE,
    (Health.SUSPECT, DetectorEvent.DEAF): Health.SUSPECT,
    (Health.DOWN, DetectorEvent.DEAF): Health.DOWN,
    (Health.STOPPED, DetectorEvent.DEAF): Health.STOPPED,
    # Final states: a late frame is noted, never acted on; stopping twice is harmless.
    (Health.DOWN, DetectorEvent.HEARD): Health.DOWN,
    (Health.DOWN, DetectorEvent.STOP): Health.DOWN,
    (Health.STOPPED, DetectorEvent.HEARD): Health.STOPPED,
    (Health.STOPPED, DetectorEvent.STOP): Health.STOPPED,
}


def next_health(health: Health, event: DetectorEvent) -> Health:
    """Look ``(health, event)`` up in :data:`TRANSITIONS`; raise :class:`IllegalTransition` if absent."""
    try:
        return TRANSITIONS[(health, event)]
    except KeyError:
        msg = f"failure detector: {event.value} is illegal in state {health.value}"
        raise IllegalTransition(msg) from None


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """Timing of the failure detector. All durations are in seconds."""

    heartbeat_interval: float = 3.0
    """Send a heartbeat when nothing else was sent for this long; the peer does the same."""
    grace: float = 1.5
    """Silence tolerated on top of ``heartbeat_interval`` before the peer becomes suspect."""
    probe_timeout: float = 1.0
    """How long each probe waits for any frame from the peer."""
    probes: int = 3
    """How many probes are sent before the peer is declared down."""

    def __post_init__(self) -> None:
        if not (self.heartbeat_interval > 0 and self.grace >= 0 and self.probe_timeout > 0):
            raise ValueError("heartbeat_interval and probe_timeout must be > 0, grace >= 0")
        if self.probes < 1:
            raise ValueError("probes must be at least 1")

    @property
    def down_after(self) -> float:
        """Silence after which a peer that answers nothing is declared down: H + G + probes × P."""
        return self.heartbeat_interval + self.grace + self.probes * self.probe_timeout


@dataclass(frozen=True, slots=True)
class SendHeartbeat:
    """Send a heartbeat to the peer now."""


@dataclass(frozen=True, slots=True)
class SendProbe:
    """Send probe number ``number`` (1-based) to the peer now."""

    number: int


@dataclass(frozen=True, slots=True)
class PeerSuspect:
    """The peer fell silent at ``since`` (its last frame) and is being probed."""

    since: float


@dataclass(frozen=True, slots=True)
class PeerAlive:
    """A suspect peer was heard again after ``probes_sent`` probes: jitter, not a failure."""

    probes_sent: int


@dataclass(frozen=True, slots=True)
class PeerDown:
    """Every probe timed out: the peer is unavailable. Emitted exactly once per detector."""

    last_heard: float


@dataclass(frozen=True, slots=True)
class LateAfterDown:
    """A frame arrived after the down decision. It is reported, and the peer stays down."""

    after: float
    """Seconds between the down decision and this frame."""


DetectorAction = SendHeartbeat | SendProbe | PeerSuspect | PeerAlive | PeerDown | LateAfterDown

_HEARTBEAT = SendHeartbeat()
_ALIVE = Health.ALIVE


class FailureDetector:
    """Watches one peer. Feed it what is heard and sent; call :meth:`handle_timer` at :meth:`next_deadline`.

    Every method returns the actions to carry out, in order. The detector starts :attr:`Health.ALIVE` as if
    the peer had just been heard and we had just sent, at ``now``.
    """

    __slots__ = (
        "_down_at",
        "_last_heard",
        "_last_sent",
        "_probe_deadline",
        "config",
        "health",
        "probes_sent",
    )

    def __init__(self, config: DetectorConfig, now: float) -> None:
        self.config = config
        self.health = Health.ALIVE
        self.probes_sent = 0
        self._last_heard = now
        self._last_sent = now
        self._probe_deadline = math.inf
        self._down_at = math.inf

    @property
    def last_heard(self) -> float:
        """When a frame from the peer last arrived."""
        return self._last_heard

    def heard(self, now: float) -> list[DetectorAction]:
        """Any frame arrived from the peer."""
        health = self.health
        if health is Health.ALIVE:  # the hot path: (ALIVE, HEARD) -> ALIVE, nothing to do
            self._last_heard = now
            return []
        self.health = next_health(health, DetectorEvent.HEARD)
        if health is Health.SUSPECT:
            self._last_heard = now
            probes, self.probes_sent = self.probes_sent, 0
            self._probe_deadline = math.inf
            return [PeerAlive(probes)]
        if health is Health.DOWN:
            return [LateAfterDown(now - self._down_at)]
        return []

    def deaf(self, now: float) -> None:
        """We have not been reading from the peer (the application's handler of its last frame has not
        returned): whatever it sent since waits unread, so the silence window of an alive peer restarts at
        ``now``. Without this a handler slower than the down deadline would make us declare a healthy peer
        down and cut the link under frames it has already sent.

        Called once per frame handled, so it only records the time: :data:`TRANSITIONS` maps
        ``(health, DEAF)`` to ``health`` for every health, so there is no state to look up or change."""
        if self.health is _ALIVE and now > self._last_heard:
            self._last_heard = now

    def sent(self, now: float) -> None:
        """Something was sent to the peer, which counts as our heartbeat."""
        self._last_sent = now

    def stop(self) -> None:
        """Stop keeping time (the link closed for another reason). Idempotent; DOWN stays DOWN."""
        self.health = next_health(self.health, DetectorEvent.STOP)

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must next be called, or ``None`` when nothing is pending."""
        health = self.health
        if health is Health.ALIVE:
            return min(self._last_sent, self._last_heard + self.config.grace) + self.config.heartbeat_interval
        if health is Health.SUSPECT:
            return min(self._last_sent + self.config.heartbeat_interval, self._probe_deadline)
        return None

    def handle_timer(self, now: float) -> list[DetectorAction]:
        """Act on every deadline that has passed at ``now`` (calling early or twice is harmless)."""
        cfg = self.config
        out: list[DetectorAction] = []
        if self.health is Health.ALIVE and now >= self._last_heard + cfg.heartbeat_interval + cfg.grace:
            self.health = next_health(self.health, DetectorEvent.SILENCE)
            self.probes_sent = 1
            self._probe_deadline = now + cfg.probe_timeout
            self._last_sent = now
            out += (PeerSuspect(self._last_heard), SendProbe(1))
        if self.health is Health.SUSPECT and now >= self._probe_deadline:
            if self.probes_sent < cfg.probes:
                self.health = next_health(self.health, DetectorEvent.PROBE_TIMEOUT)
                self.probes_sent += 1
                self._probe_deadline = now + cfg.probe_timeout
                self._last_sent = now
                out.append(SendProbe(self.probes_sent))
            else:
                self.health = next_health(self.health, DetectorEvent.LAST_PROBE_TIMEOUT)
                self._probe_deadline = math.inf
                self._down_at = now
                out.append(PeerDown(self._last_heard))
                return out
        if self.health in (Health.ALIVE, Health.SUSPECT) and now >= self._last_sent + cfg.heartbeat_interval:
            self._last_sent = now
            out.append(_HEARTBEAT)
        return out
