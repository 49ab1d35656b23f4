"""The embedded cache: an in-process map with per-key expiry, either an LRU or a store that never evicts."""

from __future__ import annotations

import heapq
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from imsdk_server.backends.cache._base import CacheFull

__all__ = ["MemoryCache"]

_NEVER = float("inf")


class MemoryCache:
    """An in-process :class:`~imsdk_server.backends.cache.Cache`, bounded to ``max_entries`` keys.

    ``max_entries`` bounds memory (a timed set counts as one entry). What happens when a new key arrives at
    the bound depends on ``evict``:

    - ``evict=True`` (the default): the least recently used entry goes. Right for caches in front of a store
      (a miss only costs a read), wrong for anything that exists nowhere else.
    - ``evict=False``: no live entry is ever dropped. Expired entries are reclaimed first; if every entry is
      still live the new key is refused with :class:`~imsdk_server.backends.cache.CacheFull` (a
      ``STORAGE_UNAVAILABLE`` error), and keys already present can always be updated. v1 tokens and the
      revocation set live here: evicting one would log a user out, or un-revoke a token.

    ``clock`` gives Unix seconds; tests pass a controllable one. Expired entries are removed when touched,
    when the LRU evicts, and (without eviction) when the bound is reached.
    """

    def __init__(
        self, max_entries: int = 100_000, *, evict: bool = True, clock: Callable[[], float] = time.time
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max = max_entries
        self._evict = evict
        self._clock = clock
        self._values: OrderedDict[str, tuple[bytes | dict[str, float], float]] = OrderedDict()
        # Without eviction: (expiry, key) of every finite expiry written, oldest first, so that expired
        # entries are found without a scan. Stale pairs (the key was rewritten or deleted) are skipped.
        self._expiries: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._values)

    @property
    def evicts(self) -> bool:
        """Whether a full cache drops its least recently used entry (else it refuses new keys)."""
        return self._evict

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

    def _reclaim(self) -> None:
        """Drop every expired entry (without eviction), oldest expiry first."""
        now = self._clock()
        heap = self._expiries
        while heap and heap[0][0] <= now:
            expires, key = heapq.heappop(heap)
            entry = self._values.get(key)
            if entry is not None and entry[1] == expires:
                del self._values[key]

    def _put(self, key: str, value: bytes | dict[str, float], expires: float) -> None:
        if self._evict:
            self._values[key] = (value, expires)
            self._values.move_to_end(key)
            while len(self._values) > self._max:
                self._values.popitem(last=False)
            return
        if key not in self._values and len(self._values) >= self._max:
            self._reclaim()
            if len(self._values) >= self._max:
                raise CacheFull(f"the in-process cache holds {self._max} live entries; refusing {key!r}")
        self._values[key] = (value, expires)
        self._values.move_to_end(key)
        if expires != _NEVER:
            heapq.heappush(self._expiries, (expires, key))
            if len(self._expiries) > 2 * len(self._values) + 64:
                # Rewrites leave stale pairs behind; rebuild from the live entries now and then.
                self._expiries = [(e, k) for k, (_, e) in self._values.items() if e != _NEVER]
                heapq.heapify(self._expiries)

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
        self._expiries.clear()
