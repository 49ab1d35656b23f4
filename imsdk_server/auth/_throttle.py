"""Login throttling: failures counted per key in fixed windows. Pure: time is an argument, no I/O."""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["LoginThrottle", "ThrottleRule"]


@dataclass(frozen=True)
class ThrottleRule:
    """At most ``limit`` failures per ``window`` seconds; over it, wait until the window ends."""

    limit: int
    window: float


class _Window:
    __slots__ = ("count", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.count = 0


class LoginThrottle:
    """Counts failures per key (``"uid:alice"``, ``"addr:10.0.0.1"``...) and says how long a key must wait.

    Memory is bounded: past ``max_keys`` the least recently touched keys are forgotten.
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        self._max = max_keys
        self._windows: OrderedDict[str, _Window] = OrderedDict()

    def _window(self, key: str, rule: ThrottleRule, now: float) -> _Window | None:
        w = self._windows.get(key)
        if w is not None and now >= w.start + rule.window:
            del self._windows[key]
            return None
        return w

    def retry_after(self, key: str, rule: ThrottleRule, now: float) -> int | None:
        """Whole seconds ``key`` must wait, or ``None`` if it may try now."""
        w = self._window(key, rule, now)
        if w is None or w.count < rule.limit:
            return None
        return max(1, math.ceil(w.start + rule.window - now))

    def record_failure(self, key: str, rule: ThrottleRule, now: float) -> None:
        """Count one failure for ``key``."""
        w = self._window(key, rule, now)
        if w is None:
            w = self._windows[key] = _Window(now)
        w.count += 1
        self._windows.move_to_end(key)
        while len(self._windows) > self._max:
            self._windows.popitem(last=False)

    def forgive(self, key: str, rule: ThrottleRule, now: float) -> None:
        """Take back one failure counted for ``key`` in its current window: an attempt counted up front,
        before a slow check, that turned out not to be a failure."""
        w = self._window(key, rule, now)
        if w is None:
            return
        w.count -= 1
        if w.count <= 0:
            del self._windows[key]

    def reset(self, key: str) -> None:
        """Forget ``key``'s failures (after a successful login)."""
        self._windows.pop(key, None)

    def __len__(self) -> int:
        return len(self._windows)
