"""The access-point race as a sans-IO plan: events and the current time in, actions out.

The client gets (usually) three access points and tries them all at once; the first attempt to finish its
handshake wins and every other attempt is abandoned. Each attempt has a deadline covering connect and
handshake. When every attempt has failed the plan says so, and the caller fetches a fresh list.

The plan never touches a socket or a clock. A driver feeds it what happened (:meth:`RacePlan.connected`,
:meth:`RacePlan.handshake_done`, :meth:`RacePlan.failed`, :meth:`RacePlan.handle_timer`) and carries out the
actions it returns (:class:`Connect`, :class:`Abandon`, :class:`Won`, :class:`Exhausted`). Every attempt's
state moves only along :data:`TRANSITIONS`; any other move is a bug in the driver and raises
:class:`RaceStateError`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "TRANSITIONS",
    "Abandon",
    "Action",
    "AttemptFailure",
    "AttemptState",
    "Connect",
    "Endpoint",
    "Exhausted",
    "RaceEvent",
    "RacePlan",
    "RaceStateError",
    "Won",
]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One access point, as the access manager hands it out."""

    host: str
    port: int
    server_id: int = 0
    region: str = ""
    isp: str = ""

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class AttemptState(enum.Enum):
    """Where one attempt stands."""

    WAITING = "waiting"
    """Not started yet."""
    CONNECTING = "connecting"
    """TCP (and TLS) connect in progress."""
    HANDSHAKING = "handshaking"
    """Connected; the handshake is in progress."""
    WON = "won"
    """The first to finish its handshake: the connection the client keeps."""
    FAILED = "failed"
    """Refused, reset, timed out or handshake rejected."""
    ABANDONED = "abandoned"
    """Another attempt won first; this one is cancelled and whatever it opened is closed."""


class RaceEvent(enum.Enum):
    """What can happen to an attempt."""

    START = "start"
    CONNECTED = "connected"
    HANDSHAKE_DONE = "handshake_done"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    LOST = "lost"
    """Another attempt won."""


_S = AttemptState
_E = RaceEvent

#: Every legal move of one attempt. Moves into a final state with an event that arrives late (the attempt
#: finished in the same instant another one won, or it timed out) keep the final state: the plan then asks
#: the driver to close whatever the attempt opened.
TRANSITIONS: Mapping[tuple[AttemptState, RaceEvent], AttemptState] = {
    (_S.WAITING, _E.START): _S.CONNECTING,
    (_S.WAITING, _E.LOST): _S.ABANDONED,
    (_S.CONNECTING, _E.CONNECTED): _S.HANDSHAKING,
    (_S.CONNECTING, _E.FAILED): _S.FAILED,
    (_S.CONNECTING, _E.TIMED_OUT): _S.FAILED,
    (_S.CONNECTING, _E.LOST): _S.ABANDONED,
    (_S.HANDSHAKING, _E.HANDSHAKE_DONE): _S.WON,
    (_S.HANDSHAKING, _E.FAILED): _S.FAILED,
    (_S.HANDSHAKING, _E.TIMED_OUT): _S.FAILED,
    (_S.HANDSHAKING, _E.LOST): _S.ABANDONED,
    # Late news about an attempt that is already over.
    (_S.FAILED, _E.CONNECTED): _S.FAILED,
    (_S.FAILED, _E.HANDSHAKE_DONE): _S.FAILED,
    (_S.FAILED, _E.FAILED): _S.FAILED,
    (_S.ABANDONED, _E.CONNECTED): _S.ABANDONED,
    (_S.ABANDONED, _E.HANDSHAKE_DONE): _S.ABANDONED,
    (_S.ABANDONED, _E.FAILED): _S.ABANDONED,
}

_LIVE = frozenset({_S.CONNECTING, _S.HANDSHAKING})


class RaceStateError(RuntimeError):
    """The driver reported an event that the attempt's state does not allow (a driver bug)."""


@dataclass(frozen=True, slots=True)
class AttemptFailure:
    """Why one attempt failed."""

    endpoint: Endpoint
    reason: str
    """``"timeout"``, or a short description of the error (``"ConnectionRefusedError: ..."``)."""


@dataclass(frozen=True, slots=True)
class Connect:
    """Start attempt ``index``: connect to ``endpoint``, then run the handshake."""

    index: int
    endpoint: Endpoint


@dataclass(frozen=True, slots=True)
class Abandon:
    """Cancel attempt ``index`` and close whatever it opened (it lost, or ran out of time)."""

    index: int


@dataclass(frozen=True, slots=True)
class Won:
    """Attempt ``index`` won: keep its connection."""

    index: int
    endpoint: Endpoint


@dataclass(frozen=True, slots=True)
class Exhausted:
    """Every attempt failed: fetch a fresh list of access points."""

    failures: tuple[AttemptFailure, ...]


Action = Connect | Abandon | Won | Exhausted


class RacePlan:
    """One race over a list of endpoints (duplicates removed, order kept).

    ``attempt_timeout`` bounds connect plus handshake of each attempt, counted from :meth:`start`.
    """

    def __init__(self, endpoints: Sequence[Endpoint], *, attempt_timeout: float) -> None:
        if attempt_timeout <= 0:
            raise ValueError("attempt_timeout must be positive")
        unique: list[Endpoint] = []
        seen: set[tuple[str, int]] = set()
        for endpoint in endpoints:
            if (endpoint.host, endpoint.port) not in seen:
                seen.add((endpoint.host, endpoint.port))
                unique.append(endpoint)
        if not unique:
            raise ValueError("a race needs at least one endpoint")
        self.endpoints: tuple[Endpoint, ...] = tuple(unique)
        self.attempt_timeout = attempt_timeout
        self._states = [AttemptState.WAITING] * len(unique)
        self._deadlines: list[float | None] = [None] * len(unique)
        self._failures: dict[int, AttemptFailure] = {}
        self._winner: int | None = None
        self._exhausted = False

    # -- state

    def state(self, index: int) -> AttemptState:
        return self._states[index]

    @property
    def winner(self) -> int | None:
        """Index of the winning attempt, once there is one."""
        return self._winner

    @property
    def failures(self) -> tuple[AttemptFailure, ...]:
        """The failed attempts so far, in endpoint order."""
        return tuple(self._failures[i] for i in sorted(self._failures))

    @property
    def done(self) -> bool:
        """True once an attempt won or every attempt failed."""
        return self._winner is not None or self._exhausted

    def next_deadline(self) -> float | None:
        """The earliest deadline of a live attempt; the driver arms one timer for it. ``None`` when none."""
        live = [d for i, d in enumerate(self._deadlines) if d is not None and self._states[i] in _LIVE]
        return min(live) if live else None

    # -- events

    def start(self, now: float) -> list[Action]:
        """Start every attempt at once."""
        actions: list[Action] = []
        for index, endpoint in enumerate(self.endpoints):
            self._move(index, RaceEvent.START)
            self._deadlines[index] = now + self.attempt_timeout
            actions.append(Connect(index, endpoint))
        return actions

    def connected(self, index: int, now: float) -> list[Action]:
        """Attempt ``index`` has its transport; its handshake starts."""
        if self._move(index, RaceEvent.CONNECTED) in _LIVE:
            return []
        return [Abandon(index)]

    def handshake_done(self, index: int, now: float) -> list[Action]:
        """Attempt ``index`` completed its handshake: it wins unless another one already did."""
        if self._move(index, RaceEvent.HANDSHAKE_DONE) is not AttemptState.WON:
            return [Abandon(index)]
        self._winner = index
        actions: list[Action] = [Won(index, self.endpoints[index])]
        for other, state in enumerate(self._states):
            if other != index and state in (_LIVE | {AttemptState.WAITING}):
                self._move(other, RaceEvent.LOST)
                actions.append(Abandon(other))
        return actions

    def failed(self, index: int, reason: str, now: float) -> list[Action]:
        """Attempt ``index`` failed (refused, reset, handshake rejected)."""
        before = self._states[index]
        self._move(index, RaceEvent.FAILED)
        if before not in _LIVE:
            return []
        self._failures[index] = AttemptFailure(self.endpoints[index], reason)
        return self._check_exhausted()

    def handle_timer(self, now: float) -> list[Action]:
        """Fail every live attempt whose deadline has passed."""
        actions: list[Action] = []
        for index, deadline in enumerate(self._deadlines):
            if deadline is not None and deadline <= now and self._states[index] in _LIVE:
                self._move(index, RaceEvent.TIMED_OUT)
                self._failures[index] = AttemptFailure(self.endpoints[index], "timeout")
                actions.append(Abandon(index))
        return actions + self._check_exhausted() if actions else []

    # -- internals

    def _move(self, index: int, event: RaceEvent) -> AttemptState:
        state = self._states[index]
        new = TRANSITIONS.get((state, event))
        if new is None:
            raise RaceStateError(
                f"attempt {index} ({self.endpoints[index]}): {event.value} while {state.value}"
            )
        self._states[index] = new
        return new

    def _check_exhausted(self) -> list[Action]:
        if self._exhausted or self._winner is not None:
            return []
        if all(s is AttemptState.FAILED for s in self._states):
            self._exhausted = True
            return [Exhausted(self.failures)]
        return []
