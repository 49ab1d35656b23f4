"""The Redis Streams queue: one stream per topic, Redis consumer groups, XAUTOCLAIM for dead consumers' work.

Needs Redis 7 or later (XAUTOCLAIM reporting deleted entries) and runs on anyio's asyncio backend only
(``redis.asyncio``). redis-py's exceptions are mapped to the queue's error tree here, at the boundary.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Self

import anyio

from imsdk_server.backends.queue._base import (
    DEFAULT_MAX_PAYLOAD,
    Delivery,
    GroupStart,
    InvalidQueueArgument,
    QueueBackendError,
    QueueClosed,
    QueueError,
    QueueUnavailable,
    validate_consume_args,
    validate_queue_name,
)
from imsdk_server.backends.queue._memory import parse_message_id
from imsdk_server.metrics import Metrics

__all__ = ["RedisQueue"]


def _redis() -> Any:
    try:
        import redis.asyncio
        import redis.exceptions
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise QueueError("the Redis queue needs redis-py: pip install 'imsdk[redis]'") from exc
    return redis


class _NoGroup(Exception):
    """Internal: Redis answered NOGROUP (the stream or the group vanished)."""


class RedisQueue:
    """A :class:`~imsdk_server.backends.queue.Queue` on Redis Streams.

    Build it with :meth:`from_url`. ``prefix`` goes in front of every key (topic ``t`` lives in the stream
    ``<prefix>queue:t``); ``maxlen`` is the approximate length each stream is trimmed to; ``claim_idle`` is
    how long a delivery may stay unacknowledged before another consumer of its group reclaims it; ``block``
    is how long one read waits for new messages before looking for reclaimable entries again.
    """

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "imsdk:",
        maxlen: int = 100_000,
        claim_idle: float = 30.0,
        block: float = 1.0,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        metrics: Metrics | None = None,
    ) -> None:
        if maxlen < 1 or claim_idle < 0 or block <= 0:
            raise InvalidQueueArgument("maxlen must be >= 1, claim_idle >= 0 and block > 0")
        self._redis_mod = _redis()
        self._r: Any = client
        self._prefix = prefix
        self._maxlen = maxlen
        self._claim_ms = int(claim_idle * 1000)
        self._block_ms = max(1, int(block * 1000))
        self._max_payload = max_payload
        self._metrics = metrics if metrics is not None else Metrics()
        self._groups: set[tuple[str, str]] = set()
        self._streams: set[_RedisConsumer] = set()
        self._closed = False

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        connect_timeout: float = 2.0,
        operation_timeout: float = 5.0,
        block: float = 1.0,
        **options: Any,
    ) -> RedisQueue:
        """A queue on the Redis at ``url`` (``redis://host:port/db``); connects lazily, on first use.

        Commands fail with :class:`QueueUnavailable` after ``connect_timeout`` (connecting) or
        ``operation_timeout`` seconds (waiting for a reply, on top of a read's ``block``).
        """
        mod = _redis()
        client = mod.asyncio.Redis.from_url(
            url, socket_connect_timeout=connect_timeout, socket_timeout=block + operation_timeout
        )
        return cls(client, block=block, **options)

    def _key(self, topic: str) -> str:
        return f"{self._prefix}queue:{topic}"

    @contextlib.contextmanager
    def _mapped(self, what: str) -> Iterator[None]:
        """Translate redis-py's failures (whose names shadow built-ins) into the queue's error tree."""
        exc_mod = self._redis_mod.exceptions
        try:
            yield
        except (exc_mod.ConnectionError, exc_mod.TimeoutError, OSError) as exc:
            self._metrics.counter("queue_errors", error="QueueUnavailable").inc()
            raise QueueUnavailable(f"{what}: Redis is unreachable: {exc}") from None
        except exc_mod.ResponseError as exc:
            if str(exc).startswith("NOGROUP"):
                raise _NoGroup(str(exc)) from None
            self._metrics.counter("queue_errors", error="QueueBackendError").inc()
            raise QueueBackendError(f"{what}: {exc}") from None
        except exc_mod.RedisError as exc:
            self._metrics.counter("queue_errors", error="QueueBackendError").inc()
            raise QueueBackendError(f"{what}: {exc}") from None

    def _check_open(self) -> None:
        if self._closed:
            raise QueueClosed("the queue is closed")

    async def publish(self, topic: str, payload: bytes) -> str:
        validate_queue_name("topic", topic)
        if not isinstance(payload, bytes | bytearray):
            raise InvalidQueueArgument(f"payloads are bytes, not {type(payload).__name__}")
        if len(payload) > self._max_payload:
            raise InvalidQueueArgument(f"payload of {len(payload)} bytes exceeds {self._max_payload}")
        self._check_open()
        with self._mapped("publish"):
            raw = await self._r.xadd(
                self._key(topic), {"p": bytes(payload)}, maxlen=self._maxlen, approximate=True
            )
        self._metrics.counter("queue_published", topic=topic).inc()
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    async def _ensure_group(self, topic: str, group: str, start: GroupStart, *, force: bool = False) -> None:
        if not force and (topic, group) in self._groups:
            return
        try:
            with self._mapped("create group"):
                await self._r.xgroup_create(
                    self._key(topic), group, id="0" if start == "earliest" else "$", mkstream=True
                )
        except QueueBackendError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add((topic, group))
        self._metrics.gauge("queue_pending", topic=topic, group=group)

    async def _read(
        self, stream: _RedisConsumer, topic: str, group: str, consumer: str, batch: int, start: GroupStart
    ) -> list[Delivery]:
        """One read cycle: reclaim idle entries of the group; if there are none, wait for new messages."""
        for retry in (False, True):
            try:
                await self._ensure_group(topic, group, start, force=retry)
                got = await self._reclaim(stream, topic, group, consumer, batch)
                if got:
                    return got
                return await self._read_new(topic, group, consumer, batch)
            except _NoGroup:
                if retry:
                    raise QueueBackendError(f"the group {group!r} of {topic!r} keeps vanishing") from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _reclaim(
        self, stream: _RedisConsumer, topic: str, group: str, consumer: str, batch: int
    ) -> list[Delivery]:
        # Scan the pending list at most every claim_idle/4 seconds, but finish a scan already under way.
        now = time.monotonic()
        if stream.claim_cursor == "0-0" and now < stream.next_scan:
            return []
        key = self._key(topic)
        with self._mapped("reclaim"):
            reply = await self._r.xautoclaim(
                key, group, consumer, min_idle_time=self._claim_ms, start_id=stream.claim_cursor, count=batch
            )
        cursor, entries = reply[0], reply[1]
        stream.claim_cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
        if stream.claim_cursor == "0-0":
            stream.next_scan = now + self._claim_ms / 4000
        entries = [(mid, fields) for mid, fields in entries if fields]
        if not entries:
            return []
        ids = [mid.decode() if isinstance(mid, bytes) else str(mid) for mid, _ in entries]
        with self._mapped("reclaim"):
            pipe = self._r.pipeline(transaction=False)
            for mid in ids:
                pipe.xpending_range(key, group, min=mid, max=mid, count=1)
            counts = await pipe.execute()
        out = []
        for mid, (_, fields), info in zip(ids, entries, counts, strict=True):
            attempt = int(info[0]["times_delivered"]) if info else 2
            out.append(Delivery(mid, bytes(fields.get(b"p", b"")), attempt, topic, group))
        self._metrics.counter("queue_reclaimed", topic=topic, group=group).inc(len(out))
        self._metrics.counter("queue_consumed", topic=topic, group=group).inc(len(out))
        return out

    async def _read_new(self, topic: str, group: str, consumer: str, batch: int) -> list[Delivery]:
        key = self._key(topic)
        with self._mapped("read"):
            reply = await self._r.xreadgroup(group, consumer, {key: ">"}, count=batch, block=self._block_ms)
        out = []
        for _, entries in reply or ():
            for mid, fields in entries:
                sid = mid.decode() if isinstance(mid, bytes) else str(mid)
                out.append(Delivery(sid, bytes(fields.get(b"p", b"")), 1, topic, group))
        if out:
            self._metrics.counter("queue_consumed", topic=topic, group=group).inc(len(out))
        else:
            await self.pending(topic, group)  # idle: a good moment to refresh the pending gauge
        return out

    def consume(
        self, topic: str, group: str, consumer: str, *, batch: int = 64, start: GroupStart = "earliest"
    ) -> _RedisConsumer:
        validate_consume_args(topic, group, consumer, batch, start)
        return _RedisConsumer(self, topic, group, consumer, batch, start)

    async def ack(self, topic: str, group: str, message_id: str) -> bool:
        validate_queue_name("topic", topic)
        validate_queue_name("group", group)
        parse_message_id(message_id)
        self._check_open()
        try:
            with self._mapped("ack"):
                n = int(await self._r.xack(self._key(topic), group, message_id))
        except _NoGroup:
            return False
        if n:
            self._metrics.counter("queue_acked", topic=topic, group=group).inc()
        return n > 0

    async def pending(self, topic: str, group: str) -> int:
        validate_queue_name("topic", topic)
        validate_queue_name("group", group)
        self._check_open()
        try:
            with self._mapped("pending"):
                summary = await self._r.xpending(self._key(topic), group)
        except _NoGroup:
            return 0
        count = int(summary["pending"])
        self._metrics.gauge("queue_pending", topic=topic, group=group).set(count)
        return count

    async def aclose(self) -> None:
        """End every consumer stream (interrupting blocked reads) and close the connection pool."""
        if self._closed:
            return
        self._closed = True
        for s in list(self._streams):
            s.interrupt()
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            await self._r.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _RedisConsumer:
    """A consumer stream of :class:`RedisQueue` (see :class:`~imsdk_server.backends.queue.ConsumerStream`)."""

    def __init__(
        self, queue: RedisQueue, topic: str, group: str, consumer: str, batch: int, start: GroupStart
    ):
        self._queue = queue
        self._topic = topic
        self._group = group
        self._consumer = consumer
        self._batch = batch
        self._start = start
        self._buffer: deque[Delivery] = deque()
        self._scope: anyio.CancelScope | None = None
        self._closed = False
        self.claim_cursor = "0-0"
        self.next_scan = float("-inf")

    def interrupt(self) -> None:
        if self._scope is not None:
            self._scope.cancel()

    async def __aenter__(self) -> Self:
        self._queue._check_open()
        await self._queue._ensure_group(self._topic, self._group, self._start)
        self._queue._streams.add(self)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Delivery:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._buffer:
                return self._buffer.popleft()
            self._queue._check_open()
            with anyio.CancelScope() as scope:
                self._scope = scope
                got = await self._queue._read(
                    self, self._topic, self._group, self._consumer, self._batch, self._start
                )
                self._buffer.extend(got)
            self._scope = None

    async def aclose(self) -> None:
        """Stop; deliveries handed out but not acked stay pending (and are reclaimed later)."""
        self._closed = True
        self._buffer.clear()
        self._queue._streams.discard(self)
        self.interrupt()
