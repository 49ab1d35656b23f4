"""The cache interface every implementation provides, and its error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from imsdk_server.backends.sql import StorageUnavailable

__all__ = ["Cache", "CacheFull", "CacheUnavailable"]


class CacheUnavailable(StorageUnavailable):
    """The cache cannot be reached or failed; carries ``STORAGE_UNAVAILABLE`` like every store error."""


class CacheFull(CacheUnavailable):
    """A cache that never evicts live entries is full and refused a new key; nothing stored was dropped.

    Retry later (entries free up as they expire) or raise the cache's bound.
    """


@runtime_checkable
class Cache(Protocol):
    """A small key-value cache with expiry, used for v1 tokens, revocation sets and message caches.

    Keys are text, values are bytes. ``ttl`` is in seconds (``None``: no expiry). *Timed sets* hold members
    that each expire at their own absolute Unix time; they back revocation lists, where an entry is only
    needed until the token it names could no longer verify anyway. Every method raises
    :class:`CacheUnavailable` when the backing service fails.
    """

    async def get(self, key: str) -> bytes | None:
        """The value of ``key``, or ``None`` if absent or expired."""
        ...

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Store ``value`` under ``key``, replacing any value and expiry."""
        ...

    async def add(self, key: str, value: bytes, *, ttl: float | None = None) -> bool:
        """Store ``value`` only if ``key`` is absent; returns whether it was stored."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove ``key`` (a value or a timed set); returns whether it existed."""
        ...

    async def incr(self, key: str, *, ttl: float) -> int:
        """Add one to the counter at ``key`` and return the new value; a new counter expires after ``ttl``."""
        ...

    async def timed_add(self, key: str, member: str, *, expires_at: float) -> None:
        """Put ``member`` into the timed set ``key`` until ``expires_at`` (Unix seconds; later time wins)."""
        ...

    async def timed_contains(self, key: str, member: str) -> bool:
        """Whether ``member`` is in the timed set ``key`` and not yet expired."""
        ...

    async def timed_members(self, key: str) -> Mapping[str, float]:
        """Every live member of the timed set ``key`` with its expiry time; expired members are dropped."""
        ...

    async def aclose(self) -> None:
        """Release connections; the cache is not used afterwards."""
        ...
