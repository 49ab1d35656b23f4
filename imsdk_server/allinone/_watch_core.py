"""What a presence view believes about each access server, from what happens on the links to them. Sans-IO.

The location core recognises jitter (``docs/location.md``, "Access-server states") from verdicts about each
access server. :class:`AccessWatchCore` derives them from the events of the links to the access servers
(time is an argument; one deadline), by the table :data:`WATCH_TRANSITIONS`:

* the detector's ``SUSPECT``, ``ALIVE`` and ``DOWN`` of the current link pass through (three probes before
  ``DOWN``, as the links decide it);
* a link that ends after the access server said not-ready (its orderly deregistration) is ``STOPPED``: its
  users went offline through ordinary offline events, nothing more is said;
* a link that ends any other way (EOF or reset without a drain: the process crashed, or the connection broke)
  cannot be probed, so it is ``SUSPECT`` at once and the watch dials again; linked again within the probe
  window (``probes × probe_timeout``) it is ``ALIVE`` (jitter), otherwise ``DOWN``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from imsdk_proto.codes import ErrorCode
from imsdk_proto.errors import CodedError

__all__ = [
    "WATCH_TRANSITIONS",
    "AccessWatchCore",
    "Verdict",
    "WatchInput",
    "WatchState",
    "WatchTransitionError",
]


class Verdict(enum.Enum):
    """A verdict about an access server: the values of the links' ``Health``, which
    ``LocationService.server_status`` takes."""

    ALIVE = "alive"
    SUSPECT = "suspect"
    DOWN = "down"
    STOPPED = "stopped"


class WatchState(enum.Enum):
    """What the watch believes about one access server."""

    NEW = "new"
    """Never linked yet."""
    UP = "up"
    """Linked, heard recently."""
    SUSPECT = "suspect"
    """Linked, silent: the link's detector is probing it."""
    LOST = "lost"
    """Its link ended without a drain; waiting (the probe window) for it to link again."""
    DOWN = "down"
    """Declared down (every probe timed out, or it did not link again within the probe window)."""
    LEFT = "left"
    """It deregistered in order (said not-ready, then closed)."""


class WatchInput(enum.Enum):
    """What can happen to one access server."""

    LINKED = "linked"
    """A link to it exchanged hellos."""
    ALIVE = "alive"
    """The link's detector heard it again after a suspicion."""
    SUSPECT = "suspect"
    """The link's detector found it silent."""
    DOWN = "down"
    """The link's detector's three probes all timed out."""
    LOST = "lost"
    """The link ended without a drain (EOF, reset, a close without not-ready)."""
    LEFT = "left"
    """The link ended after the peer's not-ready: an orderly deregistration."""
    EXPIRED = "expired"
    """The probe window after ``LOST`` ended without a new link."""


@dataclass(frozen=True, slots=True)
class _Rule:
    next: WatchState
    verdict: Verdict | None = None
    arm: bool = False


_W = WatchState
_I = WatchInput
_A, _S, _D, _X = Verdict.ALIVE, Verdict.SUSPECT, Verdict.DOWN, Verdict.STOPPED

#: ``(state, input) -> (next state, verdict sent, arm the probe window)``. Pairs not listed are illegal.
WATCH_TRANSITIONS: Mapping[tuple[WatchState, WatchInput], _Rule] = {
    (_W.NEW, _I.LINKED): _Rule(_W.UP),
    (_W.UP, _I.LINKED): _Rule(_W.UP),
    (_W.UP, _I.ALIVE): _Rule(_W.UP),
    (_W.UP, _I.SUSPECT): _Rule(_W.SUSPECT, _S),
    (_W.UP, _I.DOWN): _Rule(_W.DOWN, _D),
    (_W.UP, _I.LOST): _Rule(_W.LOST, _S, arm=True),
    (_W.UP, _I.LEFT): _Rule(_W.LEFT, _X),
    (_W.SUSPECT, _I.LINKED): _Rule(_W.UP, _A),
    (_W.SUSPECT, _I.ALIVE): _Rule(_W.UP, _A),
    (_W.SUSPECT, _I.SUSPECT): _Rule(_W.SUSPECT),
    (_W.SUSPECT, _I.DOWN): _Rule(_W.DOWN, _D),
    (_W.SUSPECT, _I.LOST): _Rule(_W.LOST, arm=True),
    # A drain while suspect: it is alive after all (the hold ends), and then it left in order.
    (_W.SUSPECT, _I.LEFT): _Rule(_W.LEFT, _A),
    (_W.LOST, _I.LINKED): _Rule(_W.UP, _A),
    (_W.LOST, _I.EXPIRED): _Rule(_W.DOWN, _D),
    (_W.DOWN, _I.LINKED): _Rule(_W.UP, _A),
    (_W.DOWN, _I.ALIVE): _Rule(_W.DOWN),
    (_W.DOWN, _I.SUSPECT): _Rule(_W.DOWN),
    (_W.DOWN, _I.DOWN): _Rule(_W.DOWN),
    (_W.DOWN, _I.LOST): _Rule(_W.DOWN),
    (_W.DOWN, _I.LEFT): _Rule(_W.DOWN),
    # A server that comes back after an orderly stop is simply new: its users log in again.
    (_W.LEFT, _I.LINKED): _Rule(_W.UP),
}


class WatchTransitionError(CodedError):
    """A ``(state, input)`` pair absent from :data:`WATCH_TRANSITIONS` (a bug in the driver): ``INTERNAL``."""

    code = ErrorCode.INTERNAL


class AccessWatchCore:
    """The verdicts about every access server, from what happens on the links to them. Sans-IO.

    ``window`` is how long a server whose link ended without a drain may take to link again before it is
    ``DOWN`` (the detector's ``probes × probe_timeout``). Feed :meth:`handle`, call :meth:`handle_timer`
    at :meth:`next_deadline`, take the verdicts with :meth:`pop_verdicts`.
    """

    def __init__(self, window: float) -> None:
        if window <= 0:
            raise ValueError("window must be positive")
        self.window = window
        self._states: dict[int, WatchState] = {}
        self._deadlines: dict[int, float] = {}
        self._verdicts: list[tuple[int, Verdict]] = []

    def state(self, server: int) -> WatchState:
        return self._states.get(server, WatchState.NEW)

    def handle(self, server: int, inp: WatchInput, now: float) -> None:
        state = self.state(server)
        rule = WATCH_TRANSITIONS.get((state, inp))
        if rule is None:
            raise WatchTransitionError(
                f"access server {server}: no transition for ({state.name}, {inp.name})"
            )
        self._states[server] = rule.next
        if rule.arm:
            self._deadlines[server] = now + self.window
        elif rule.next is not WatchState.LOST:
            self._deadlines.pop(server, None)
        if rule.verdict is not None:
            self._verdicts.append((server, rule.verdict))

    def next_deadline(self) -> float | None:
        return min(self._deadlines.values(), default=None)

    def handle_timer(self, now: float) -> None:
        for server, when in sorted(self._deadlines.items(), key=lambda item: item[1]):
            if when <= now:
                self.handle(server, WatchInput.EXPIRED, now)

    def forget(self, server: int) -> None:
        """Drop a server that left the registry for good (``LEFT`` or ``DOWN``; others are kept)."""
        if self.state(server) in (WatchState.LEFT, WatchState.DOWN, WatchState.NEW):
            self._states.pop(server, None)

    def pop_verdicts(self) -> list[tuple[int, Verdict]]:
        out, self._verdicts = self._verdicts, []
        return out
