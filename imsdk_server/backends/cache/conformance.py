"""The one conformance suite every :class:`~imsdk_server.backends.cache.Cache` implementation must pass.

Each check is a plain async function taking a :class:`Harness`: a fresh, empty cache, ``wait(seconds)``, which
lets that much time pass for the cache (a fake clock for the in-process cache, a real sleep for Redis), and
``now()``, the Unix time the cache sees. Test modules run every function in :data:`CHECKS` against every
implementation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from imsdk_server.backends.cache._base import Cache

__all__ = ["CHECKS", "Harness", "Wait"]

Wait = Callable[[float], Awaitable[None]]
"""Let the given number of seconds pass for the cache under test."""

_TTL = 0.3


@dataclass(frozen=True)
class Harness:
    """What one check gets: the cache under test and its notion of time."""

    cache: Cache
    """A fresh, empty cache."""
    wait: Wait
    """Let time pass for the cache."""
    now: Callable[[], float]
    """The Unix time the cache sees."""


async def check_get_set_delete(h: Harness) -> None:
    """Values round-trip as bytes, overwrite, and delete reports whether the key existed."""
    cache = h.cache
    assert await cache.get("a") is None
    await cache.set("a", b"\x00one\xff")
    assert await cache.get("a") == b"\x00one\xff"
    await cache.set("a", b"two")
    assert await cache.get("a") == b"two"
    assert await cache.delete("a") is True
    assert await cache.delete("a") is False
    assert await cache.get("a") is None


async def check_keys_are_independent(h: Harness) -> None:
    """Similar keys, odd characters and empty values stay apart."""
    cache = h.cache
    keys = ["k", "k:1", "k 1", "ключ", "k\n", "' OR 1=1 --"]
    for i, key in enumerate(keys):
        await cache.set(key, str(i).encode())
    await cache.set("empty", b"")
    for i, key in enumerate(keys):
        assert await cache.get(key) == str(i).encode()
    assert await cache.get("empty") == b""


async def check_ttl_expires(h: Harness) -> None:
    """A value with a TTL is there before it, gone after it; a value without TTL stays."""
    cache = h.cache
    await cache.set("short", b"x", ttl=_TTL)
    await cache.set("forever", b"y")
    assert await cache.get("short") == b"x"
    await h.wait(_TTL * 3)
    assert await cache.get("short") is None
    assert await cache.get("forever") == b"y"
    assert await cache.delete("short") is False


async def check_set_replaces_ttl(h: Harness) -> None:
    """``set`` without a TTL makes an expiring key permanent."""
    cache = h.cache
    await cache.set("k", b"1", ttl=_TTL)
    await cache.set("k", b"2")
    await h.wait(_TTL * 3)
    assert await cache.get("k") == b"2"


async def check_add_only_if_absent(h: Harness) -> None:
    """``add`` stores once; it may store again after the first value expired."""
    cache = h.cache
    assert await cache.add("k", b"first", ttl=_TTL) is True
    assert await cache.add("k", b"second", ttl=_TTL) is False
    assert await cache.get("k") == b"first"
    await h.wait(_TTL * 3)
    assert await cache.add("k", b"third") is True
    assert await cache.get("k") == b"third"


async def check_incr_counts_and_expires(h: Harness) -> None:
    """Counters start at one, count up, and restart after their window."""
    cache = h.cache
    assert [await cache.incr("c", ttl=_TTL) for _ in range(3)] == [1, 2, 3]
    assert await cache.incr("other", ttl=_TTL) == 1
    await h.wait(_TTL * 3)
    assert await cache.incr("c", ttl=_TTL) == 1


async def check_timed_set(h: Harness) -> None:
    """Members live until their own expiry; a later expiry wins; the set reports only live members."""
    cache = h.cache
    now = h.now()
    assert await cache.timed_members("revoked") == {}
    assert await cache.timed_contains("revoked", "a") is False
    await cache.timed_add("revoked", "a", expires_at=now + _TTL)
    await cache.timed_add("revoked", "b", expires_at=now + 3600)
    await cache.timed_add("revoked", "c", expires_at=now + _TTL)
    await cache.timed_add("revoked", "c", expires_at=now + 3600)
    await cache.timed_add("revoked", "b", expires_at=now + _TTL)  # an earlier expiry does not shorten
    assert await cache.timed_contains("revoked", "a") is True
    assert set(await cache.timed_members("revoked")) == {"a", "b", "c"}
    await h.wait(_TTL * 3)
    assert await cache.timed_contains("revoked", "a") is False
    assert await cache.timed_contains("revoked", "b") is True
    members = await cache.timed_members("revoked")
    assert set(members) == {"b", "c"}
    assert abs(members["b"] - (now + 3600)) < 1e-3


async def check_timed_add_already_expired(h: Harness) -> None:
    """A member whose expiry is already past is not reported."""
    cache = h.cache
    now = h.now()
    await cache.timed_add("t", "old", expires_at=now - 10)
    assert await cache.timed_contains("t", "old") is False
    assert await cache.timed_members("t") == {}


async def check_delete_timed_set(h: Harness) -> None:
    """``delete`` removes a timed set whole."""
    cache = h.cache
    now = h.now()
    await cache.timed_add("t", "m", expires_at=now + 3600)
    assert await cache.delete("t") is True
    assert await cache.timed_members("t") == {}


CHECKS: tuple[Callable[[Harness], Awaitable[None]], ...] = (
    check_get_set_delete,
    check_keys_are_independent,
    check_ttl_expires,
    check_set_replaces_ttl,
    check_add_only_if_absent,
    check_incr_counts_and_expires,
    check_timed_set,
    check_timed_add_already_expired,
    check_delete_timed_set,
)
"""Every check, in a stable order."""
