"""Where a location server keeps a copy of its presence: an in-process dict, or Redis hashes.

The core's memory is the authority; the store is the copy other processes can read and a restarted location
server can load. Both implementations pass :mod:`imsdk_server.location.conformance`.

Redis layout (every key under the store's prefix, one prefix per location server):

- ``<prefix>u:<uid>``: a hash, one field per device id, value the presence as compact JSON
  ``{"s": server, "x": session, "n": network, "p": platform, "v": client version, "t": since}``;
- ``<prefix>marker``: present while the store holds this server's data; a flushed or restarted Redis loses it,
  which tells the service to rewrite everything from memory.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol, runtime_checkable

from imsdk_server.location._core import DeviceKey, Network, Presence
from imsdk_server.location._errors import InvalidPresenceEvent, PresenceStoreUnavailable

__all__ = ["MemoryPresenceStore", "PresenceStore", "RedisPresenceStore", "decode_presence", "encode_presence"]


@runtime_checkable
class PresenceStore(Protocol):
    """A copy of the actual presence of every connected device, keyed by uid then device id."""

    async def apply(self, changes: Mapping[DeviceKey, Presence | None]) -> None:
        """Write each device's presence (remove it for ``None``) as one batch; unknown removals are fine."""
        ...

    async def devices(self, uid: str) -> list[Presence]:
        """Every stored device of ``uid``, sorted by device id."""
        ...

    async def devices_many(self, uids: Sequence[str]) -> dict[str, list[Presence]]:
        """:meth:`devices` for many users at once; every uid asked for is a key."""
        ...

    async def load_all(self) -> list[Presence]:
        """Everything stored (to restore a restarted location server)."""
        ...

    async def replace_all(self, presences: Iterable[Presence]) -> None:
        """Make the store hold exactly ``presences``, and mark it as holding our data."""
        ...

    async def intact(self) -> bool:
        """Whether the store still holds what we wrote (False after a flush, or before any replace_all)."""
        ...

    async def aclose(self) -> None:
        """Release connections. The data stays."""
        ...


def encode_presence(p: Presence) -> bytes:
    """The stored form of one device's presence (the uid and device id are the key, not the value)."""
    return json.dumps(
        {
            "s": p.server,
            "x": p.session,
            "n": p.network.value,
            "p": p.platform,
            "v": p.client_version,
            "t": p.since,
        },
        separators=(",", ":"),
    ).encode()


def decode_presence(uid: str, device: str, raw: bytes | str) -> Presence:
    """The inverse of :func:`encode_presence`; :class:`InvalidPresenceEvent` for anything else."""
    try:
        d = json.loads(raw)
        network = Network(d["n"])
        return Presence(
            uid, device, int(d["s"]), int(d["x"]), network, str(d["p"]), str(d["v"]), float(d["t"])
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidPresenceEvent(f"stored presence of {uid}/{device} does not decode: {exc}") from None


class MemoryPresenceStore:
    """The embedded store: a dict in this process."""

    def __init__(self) -> None:
        self._data: dict[str, dict[str, Presence]] = {}
        self._marked = False

    async def apply(self, changes: Mapping[DeviceKey, Presence | None]) -> None:
        for (uid, device), p in changes.items():
            if p is None:
                devs = self._data.get(uid)
                if devs is not None:
                    devs.pop(device, None)
                    if not devs:
                        del self._data[uid]
            else:
                self._data.setdefault(uid, {})[device] = p

    async def devices(self, uid: str) -> list[Presence]:
        return [p for _, p in sorted(self._data.get(uid, {}).items())]

    async def devices_many(self, uids: Sequence[str]) -> dict[str, list[Presence]]:
        return {uid: await self.devices(uid) for uid in uids}

    async def load_all(self) -> list[Presence]:
        return [p for devs in self._data.values() for p in devs.values()]

    async def replace_all(self, presences: Iterable[Presence]) -> None:
        self._data = {}
        await self.apply({p.key: p for p in presences})
        self._marked = True

    async def intact(self) -> bool:
        return self._marked

    def wipe(self) -> None:
        """Lose everything, marker included (what a Redis flush does); for tests and drills."""
        self._data = {}
        self._marked = False

    async def aclose(self) -> None:
        return None


_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "*?[]\\"})


class RedisPresenceStore:
    """The real store: one Redis hash per uid under ``prefix``, through ``redis.asyncio`` (asyncio backend).

    Redis and socket errors become :class:`PresenceStoreUnavailable`.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "imsdk:location:",
        client: Any | None = None,
        timeout: float = 2.0,
    ) -> None:
        if client is None:
            import redis.asyncio

            client = redis.asyncio.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._redis: Any = client
        self._prefix = prefix
        self._marker = prefix + "marker"

    def _k(self, uid: str) -> str:
        return f"{self._prefix}u:{uid}"

    @asynccontextmanager
    async def _mapped(self) -> AsyncIterator[None]:
        import redis

        try:
            yield
        except (redis.RedisError, OSError) as exc:
            raise PresenceStoreUnavailable(f"Redis failed: {exc}") from exc

    async def apply(self, changes: Mapping[DeviceKey, Presence | None]) -> None:
        if not changes:
            return
        async with self._mapped():
            pipe = self._redis.pipeline(transaction=False)
            for (uid, device), p in changes.items():
                if p is None:
                    pipe.hdel(self._k(uid), device)
                else:
                    pipe.hset(self._k(uid), device, encode_presence(p))
            await pipe.execute()

    async def devices(self, uid: str) -> list[Presence]:
        async with self._mapped():
            raw = await self._redis.hgetall(self._k(uid))
        return _decode_hash(uid, raw)

    async def devices_many(self, uids: Sequence[str]) -> dict[str, list[Presence]]:
        if not uids:
            return {}
        async with self._mapped():
            pipe = self._redis.pipeline(transaction=False)
            for uid in uids:
                pipe.hgetall(self._k(uid))
            rows = await pipe.execute()
        return {uid: _decode_hash(uid, raw) for uid, raw in zip(uids, rows, strict=True)}

    async def _uid_keys(self) -> list[bytes]:
        pattern = f"{self._prefix}u:".translate(_GLOB_SPECIAL) + "*"
        return [k async for k in self._redis.scan_iter(match=pattern, count=1000)]

    async def load_all(self) -> list[Presence]:
        out: list[Presence] = []
        skip = len(self._prefix) + 2
        async with self._mapped():
            keys = await self._uid_keys()
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                pipe = self._redis.pipeline(transaction=False)
                for key in chunk:
                    pipe.hgetall(key)
                for key, raw in zip(chunk, await pipe.execute(), strict=True):
                    out.extend(_decode_hash(_text(key)[skip:], raw))
        return out

    async def replace_all(self, presences: Iterable[Presence]) -> None:
        items = list(presences)
        async with self._mapped():
            keys = await self._uid_keys()
            pipe = self._redis.pipeline(transaction=False)
            for start in range(0, len(keys), 500):
                pipe.unlink(*keys[start : start + 500])
            for p in items:
                pipe.hset(self._k(p.uid), p.device, encode_presence(p))
            pipe.set(self._marker, b"1")
            await pipe.execute()

    async def intact(self) -> bool:
        async with self._mapped():
            return bool(await self._redis.exists(self._marker))

    async def aclose(self) -> None:
        async with self._mapped():
            await self._redis.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _decode_hash(uid: str, raw: Mapping[bytes | str, bytes | str]) -> list[Presence]:
    """A user's stored devices; an entry that does not decode (written by something else) is skipped."""
    out: list[Presence] = []
    for dev, val in raw.items():
        try:
            out.append(decode_presence(uid, _text(dev), val))
        except InvalidPresenceEvent:
            continue
    return sorted(out, key=lambda p: p.device)
