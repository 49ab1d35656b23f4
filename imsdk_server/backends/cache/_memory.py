"""The embedded cache: an in-process LRU with per-key expiry."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

__all__ = ["MemoryCache"]

_NEVER = float("inf")


class MemoryCache:
    """An in-process :class:`~imsdk_server.backends.cache.Cache`; the least recently used go first.

    ``max_entries`` bounds memory (a timed set counts as one entry). ``clock`` gives Unix seconds; tests pass
    a controllable one. Expired entries are removed when touched and when the LRU evicts.
    """

    def __init__(self, max_entries: int = 100_000, *, clock: Callable[[], float] = time.time) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max = max_entries
        self._clock = clock
        self._values: OrderedDict[str, tuple[bytes | dict[str, float], float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._values)

    def _expiry(self, ttl: float | None) -> float:
        return _NEVER if ttl is None else self._clock() + ttl

    def _live(self, key: str) -> bytes | dict[str, float] | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires <= self._clock():
            del self._values[key]
            return None
        self._values.move_to_end(key)
        return value

    def _put(self, key: str, value: bytes | dict[str, float], expires: float) -> None:
        self._values[key] = (value, expires)
        self._values.move_to_end(key)
        while len(self._values) > self._max:
            self._values.popitem(last=False)

    async def get(self, key: str) -> bytes | None:
        value = self._live(key)
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        self._put(key, bytes(value), self._expiry(ttl))

    async def add(self, key: str, value: bytes, *, ttl: float | None = None) -> bool:
        if self._live(key) is not None:
            return False
        self._put(key, bytes(value), self._expiry(ttl))
        return True

    async def delete(self, key: str) -> bool:
        existed = self._live(key) is not None
        self._values.pop(key, None)
        return existed

    async def incr(self, key: str, *, ttl: float) -> int:
        entry = self._values.get(key)
        value = self._live(key)
        if isinstance(value, bytes) and entry is not None:
            count = int(value) + 1
            self._put(key, str(count).encode(), entry[1])
        else:
            count = 1
            self._put(key, b"1", self._expiry(ttl))
        return count

    def _timed(self, key: str) -> dict[str, float] | None:
        value = self._live(key)
        if not isinstance(value, dict):
            return None
        now = self._clock()
        for member in [m for m, exp in value.items() if exp <= now]:
            del value[member]
        return value

    async def timed_add(self, key: str, member: str, *, expires_at: float) -> None:
        members = self._timed(key)
        if members is None:
            members = {}
        members[member] = max(expires_at, members.get(member, expires_at))
        self._put(key, members, max(members.values()))

    async def timed_contains(self, key: str, member: str) -> bool:
        members = self._timed(key)
        return members is not None and member in members

    async def timed_members(self, key: str) -> Mapping[str, float]:
        members = self._timed(key)
        return dict(members) if members else {}

    async def aclose(self) -> None:
        self._values.clear()
