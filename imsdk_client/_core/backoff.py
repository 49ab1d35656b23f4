"""Exponential back-off with full jitter, capped.

Attempt *n* (1-based) waits a uniformly random time in ``[0, min(cap, base * multiplier ** (n - 1))]``. The
jitter spreads the reconnects of a crowd of clients that lost the same access server at the same instant, so
the server that comes back (or its neighbours) is not hit by all of them at once. The random source is
injected: tests pass a seeded :class:`random.Random` and assert exact delays.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff", "BackoffConfig"]


@dataclass(frozen=True, slots=True)
class BackoffConfig:
    """How long to wait between failed attempts."""

    base: float = 0.5
    """Upper bound of the first attempt's delay, in seconds."""
    cap: float = 60.0
    """No delay ever exceeds this, however many attempts failed."""
    multiplier: float = 2.0
    """The upper bound grows by this factor per failed attempt."""

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base or self.multiplier < 1:
            raise ValueError("backoff needs 0 < base <= cap and multiplier >= 1")

    def ceiling(self, attempt: int) -> float:
        """The upper bound of attempt ``attempt``'s delay (1-based)."""
        if attempt < 1:
            raise ValueError("attempts are counted from 1")
        # Stop multiplying once past the cap, so huge attempt counts cannot overflow a float.
        bound = self.base
        for _ in range(attempt - 1):
            bound *= self.multiplier
            if bound >= self.cap:
                return self.cap
        return min(bound, self.cap)


class Backoff:
    """Counts consecutive failures and draws the delay before the next attempt."""

    __slots__ = ("_rng", "attempts", "config")

    def __init__(self, config: BackoffConfig | None = None, rng: random.Random | None = None) -> None:
        self.config = config or BackoffConfig()
        self._rng = rng or random.Random()
        self.attempts = 0
        """Failed attempts since the last :meth:`reset`."""

    def next_delay(self) -> float:
        """Count one more failure and return how long to wait before the next attempt."""
        self.attempts += 1
        return self._rng.random() * self.config.ceiling(self.attempts)

    def reset(self) -> None:
        """A connection worked: the next failure starts from the first delay again."""
        self.attempts = 0
