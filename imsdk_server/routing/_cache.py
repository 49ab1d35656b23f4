"""A write-through cache of recent messages in front of any :class:`~imsdk_server.routing.MessageStore`.

After a commit, every new message is written to the cache under ``m:<conversation>:<seq>``. A committed
message never changes, so a cached entry is never stale: it is either the truth or missing. Pulls of a short,
bounded range are answered from the cache when every message of the range is there; anything else goes to
the store and the answer refills the cache. Sequences, pending sets and acks always come from the store, so
losing or flushing the cache (Redis restarted, keys evicted) loses nothing and cannot make a sequence go
backwards: it only sends the next reads to the database. A cache error is counted and otherwise ignored.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence

from imsdk_server.backends.cache import Cache, CacheUnavailable
from imsdk_server.metrics import Metrics
from imsdk_server.routing._store import (
    AckPosition,
    AppendResult,
    MessageStore,
    NewMessage,
    PendingCursor,
    StoredRecord,
)

__all__ = ["CachedMessageStore"]

_LEN = struct.Struct(">I")


def _encode(rec: StoredRecord) -> bytes:
    meta = json.dumps(
        [rec.server_msg_id, rec.conv_seq, rec.sender_uid, rec.sender_device, rec.client_msg_id,
         rec.receiver_uid, rec.content_type, rec.created_ms],
        separators=(",", ":"),
    ).encode()  # fmt: skip
    return _LEN.pack(len(meta)) + meta + rec.body


def _decode(conversation: str, data: bytes) -> StoredRecord | None:
    try:
        (n,) = _LEN.unpack_from(data)
        sid, seq, s_uid, s_dev, cmid, r_uid, ctype, created = json.loads(data[4 : 4 + n])
        return StoredRecord(
            int(sid), conversation, int(seq), str(s_uid), str(s_dev), int(cmid), str(r_uid), int(ctype),
            bytes(data[4 + n :]), int(created),
        )  # fmt: skip
    except (struct.error, ValueError, TypeError):
        return None  # not ours or damaged: treat as a miss


class CachedMessageStore:
    """A :class:`~imsdk_server.routing.MessageStore` that caches recent messages in a
    :class:`~imsdk_server.backends.cache.Cache` (in-process LRU or Redis).

    ``ttl`` bounds how long a message stays cached; ``max_cached_pull`` is the longest bounded range a pull
    may be answered from the cache (a longer one is one database query, which is cheaper than many cache
    round trips).
    """

    def __init__(
        self,
        store: MessageStore,
        cache: Cache,
        *,
        ttl: float = 24 * 3600.0,
        max_cached_pull: int = 50,
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._cache = cache
        self._ttl = ttl
        self._max_cached_pull = max_cached_pull
        m = (metrics or Metrics()).child("message_cache")
        self._m_hits = m.counter("hits_total")
        self._m_misses = m.counter("misses_total")
        self._m_errors = m.counter("errors_total")

    @property
    def store(self) -> MessageStore:
        """The store behind the cache (the truth)."""
        return self._store

    @staticmethod
    def _key(conversation: str, seq: int) -> str:
        return f"m:{conversation}:{seq}"

    async def _put(self, records: Sequence[StoredRecord]) -> None:
        try:
            for rec in records:
                await self._cache.set(self._key(rec.conversation, rec.conv_seq), _encode(rec), ttl=self._ttl)
        except CacheUnavailable:
            self._m_errors.inc()

    async def setup(self) -> None:
        await self._store.setup()

    async def append(self, messages: Sequence[NewMessage]) -> list[AppendResult]:
        results = await self._store.append(messages)
        fresh = [
            StoredRecord(
                r.server_msg_id, m.conversation, r.conv_seq, m.sender_uid, m.sender_device, m.client_msg_id,
                m.receiver_uid, m.content_type, m.body, r.created_ms,
            )
            for m, r in zip(messages, results, strict=True)
            if not r.duplicate
        ]  # fmt: skip
        await self._put(fresh)
        return results

    async def last_seq(self, conversation: str) -> int:
        return await self._store.last_seq(conversation)

    async def pull(self, conversation: str, from_seq: int, to_seq: int, limit: int) -> list[StoredRecord]:
        if limit <= 0:
            return []
        start = max(1, from_seq)
        if to_seq > 0 and start <= to_seq and to_seq - start < min(limit, self._max_cached_pull):
            cached = await self._cached_range(conversation, start, to_seq)
            if cached is not None:
                self._m_hits.inc()
                return cached
        self._m_misses.inc()
        records = await self._store.pull(conversation, from_seq, to_seq, limit)
        await self._put(records)
        return records

    async def _cached_range(self, conversation: str, start: int, end: int) -> list[StoredRecord] | None:
        out: list[StoredRecord] = []
        try:
            for seq in range(start, end + 1):
                data = await self._cache.get(self._key(conversation, seq))
                rec = None if data is None else _decode(conversation, data)
                if rec is None or rec.conv_seq != seq:
                    return None
                out.append(rec)
        except CacheUnavailable:
            self._m_errors.inc()
            return None
        return out

    async def pending(
        self, uid: str, device: str, after: PendingCursor | None, limit: int
    ) -> list[StoredRecord]:
        return await self._store.pending(uid, device, after, limit)

    async def ack(self, uid: str, device: str, conversation: str, up_to_seq: int) -> int:
        return await self._store.ack(uid, device, conversation, up_to_seq)

    async def ack_many(self, acks: Sequence[AckPosition]) -> list[int]:
        return await self._store.ack_many(acks)

    async def acked(self, uid: str, device: str, conversation: str) -> int:
        return await self._store.acked(uid, device, conversation)

    async def aclose(self) -> None:
        await self._store.aclose()
