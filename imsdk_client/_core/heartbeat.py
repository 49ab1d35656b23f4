"""The heartbeat schedule: when to ping, when a missing pong means the line is dead, and (optionally) the
longest interval that keeps a line alive on each network type.

A ping is due once the line has been quiet for one interval in *either* direction: nothing received (the
path may be dead, or a NAT may be about to forget the mapping) or nothing sent (the access server closes a
line it has heard nothing from for its idle timeout). A busy line sends no pings. After a ping, the line must
show life (a pong, or any frame) within ``pong_timeout``; otherwise it is dead and the session reconnects.

**Adaptive interval** (the idea of Tencent Mars' "smart heartbeat"): mobile networks drop idle NAT mappings
after an operator-specific time, and every ping costs battery. The schedule starts at ``min_interval`` and,
after ``grow_after`` pongs in a row, tries ``step`` seconds more, up to the ceiling (``max_interval``, and
below the server's idle timeout). When a probe at a longer interval fails, the previous interval is the
longest safe one: the schedule goes back to it and stops growing on that network. A failure at an interval
already known to be safe may just be an outage; two in a row step the interval down. What was learnt is kept
per network type, so a switch back to wifi starts at wifi's interval.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Heartbeat", "HeartbeatConfig", "HeartbeatDue"]


@dataclass(frozen=True, slots=True)
class HeartbeatConfig:
    """How the client keeps its line alive."""

    adaptive: bool = True
    """Learn the longest safe interval per network type; ``False`` pings at the server's advised interval."""
    min_interval: float = 30.0
    """Adaptive: the first (and smallest) interval, in seconds."""
    max_interval: float = 285.0
    """Adaptive: never wait longer than this between pings (also kept below the server's idle timeout)."""
    step: float = 30.0
    """Adaptive: how much longer each probe waits."""
    grow_after: int = 2
    """Adaptive: pongs in a row at one interval before trying a longer one."""
    pong_timeout: float = 10.0
    """A ping unanswered (no pong and no other frame) for this long means the line is dead."""

    def __post_init__(self) -> None:
        if not 0 < self.min_interval <= self.max_interval or self.step <= 0 or self.pong_timeout <= 0:
            raise ValueError("heartbeat needs 0 < min_interval <= max_interval, step > 0, pong_timeout > 0")
        if self.grow_after < 1:
            raise ValueError("grow_after must be at least 1")


class HeartbeatDue(enum.Enum):
    """What :meth:`Heartbeat.handle_timer` asks the session to do."""

    PING = "ping"
    """Send a ping now (and call :meth:`Heartbeat.ping_sent`)."""
    DEAD = "dead"
    """No sign of life within the pong timeout: the line is dead."""


@dataclass(slots=True)
class _Learnt:
    interval: float
    frozen: bool = False
    """The longest safe interval was found; stop growing."""
    successes: int = 0
    failures: int = 0


class Heartbeat:
    """Heartbeat state of the current connection plus what was learnt per network type.

    Call :meth:`start` when a session opens, :meth:`stop` when it ends, :meth:`received` and :meth:`sent` for
    every frame, and :meth:`handle_timer` at :meth:`next_deadline`.
    """

    def __init__(self, config: HeartbeatConfig | None = None) -> None:
        self.config = config or HeartbeatConfig()
        self._learnt: dict[str, _Learnt] = {}
        self._network = ""
        self._ceiling = self.config.max_interval
        self._fixed = self.config.min_interval
        self._running = False
        self._last_rx = 0.0
        self._last_tx = 0.0
        self._ping_at: float | None = None
        """When the outstanding ping was sent (``None``: no ping outstanding)."""
        self._idle_probe = False
        """The outstanding ping went out after a whole interval without receiving: it tests the path."""
        self._busy = False
        """A frame other than a pong arrived since the last ping."""

    # -- configuration of a session

    def start(self, now: float, network: str, server_interval: float, idle_timeout: float) -> None:
        """A session opened on ``network``; the handshake reply advised ``server_interval`` and told the
        server's ``idle_timeout`` (0 when unknown)."""
        cfg = self.config
        ceiling = cfg.max_interval if cfg.adaptive else max(server_interval, cfg.min_interval)
        if idle_timeout > 0:
            ceiling = min(ceiling, max(idle_timeout - cfg.pong_timeout, 1.0))
        self._ceiling = ceiling
        self._fixed = min(server_interval, ceiling) if server_interval > 0 else min(cfg.min_interval, ceiling)
        self._network = network
        self._running = True
        self._last_rx = self._last_tx = now
        self._ping_at = None
        self._idle_probe = False
        self._busy = False

    def stop(self) -> None:
        """The session ended: no deadline until the next :meth:`start`."""
        self._running = False
        self._ping_at = None

    @property
    def running(self) -> bool:
        return self._running

    @property
    def interval(self) -> float:
        """The interval in force for the current network."""
        if not self.config.adaptive:
            return self._fixed
        return min(self._state(self._network).interval, self._ceiling)

    def learnt(self, network: str) -> float | None:
        """The interval learnt so far for ``network`` (``None``: never used)."""
        state = self._learnt.get(network)
        return None if state is None else state.interval

    def is_settled(self, network: str) -> bool:
        """Whether the longest safe interval of ``network`` has been found."""
        state = self._learnt.get(network)
        return state is not None and state.frozen

    def _state(self, network: str) -> _Learnt:
        state = self._learnt.get(network)
        if state is None:
            state = self._learnt[network] = _Learnt(min(self.config.min_interval, self._ceiling))
        return state

    # -- traffic

    def received(self, now: float, *, pong: bool = False) -> None:
        """A frame arrived (``pong`` when it answers our ping): the line is alive."""
        if not self._running:
            return
        if self._ping_at is not None:
            if pong and self._idle_probe:
                self._success()
            self._ping_at = None
        if not pong:
            self._busy = True
        self._last_rx = now

    def sent(self, now: float) -> None:
        """A frame other than a ping went out."""
        self._last_tx = now

    def ping_sent(self, now: float) -> None:
        """A ping went out (as asked by :meth:`handle_timer`, or forced by the session)."""
        if not self._running:
            return
        # Only a ping after a quiet inbound interval (nothing but the last pong) tests how long the path
        # survives idle; a ping on a busy line proves nothing about the interval.
        self._idle_probe = not self._busy
        self._busy = False
        self._ping_at = now
        self._last_tx = now

    def ping_now(self, now: float) -> bool:
        """Whether an immediate check ping may go out (a line is up and no ping is outstanding)."""
        return self._running and self._ping_at is None

    # -- time

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must run: the pong deadline, or the next ping."""
        if not self._running:
            return None
        if self._ping_at is not None:
            return self._ping_at + self.config.pong_timeout
        return min(self._last_rx, self._last_tx) + self.interval

    def handle_timer(self, now: float) -> HeartbeatDue | None:
        """What is due at ``now``: a ping, the verdict that the line is dead, or nothing."""
        if not self._running:
            return None
        if self._ping_at is not None:
            if now >= self._ping_at + self.config.pong_timeout:
                self._failure()
                self.stop()
                return HeartbeatDue.DEAD
            return None
        if now >= min(self._last_rx, self._last_tx) + self.interval:
            return HeartbeatDue.PING
        return None

    # -- learning

    def _success(self) -> None:
        if not self.config.adaptive:
            return
        state = self._state(self._network)
        state.failures = 0
        state.successes += 1
        if not state.frozen and state.successes >= self.config.grow_after and state.interval < self._ceiling:
            state.interval = min(state.interval + self.config.step, self._ceiling)
            state.successes = 0

    def _failure(self) -> None:
        if not self.config.adaptive or not self._idle_probe:
            return
        state = self._state(self._network)
        state.successes = 0
        floor = min(self.config.min_interval, self._ceiling)
        if not state.frozen and state.interval > floor:
            # The probe at a longer interval failed: the one before it is the longest safe interval.
            state.interval = max(floor, state.interval - self.config.step)
            state.frozen = True
            state.failures = 0
            return
        state.failures += 1
        if state.failures >= 2:
            state.interval = max(floor, state.interval - self.config.step)
            state.failures = 0
