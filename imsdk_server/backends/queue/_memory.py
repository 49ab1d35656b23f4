"""The embedded queue: topics, consumer groups and pending lists in one process, with the Redis semantics.

Clients of one :class:`MemoryQueueHub` share its topics, as clients of one Redis share its streams. Time
comes from the hub's ``clock`` callable (default :func:`time.monotonic`), so reclaim-after-idle is tested by
advancing a :class:`ManualClock` and calling :meth:`MemoryQueueHub.recheck`, with no sleeping. Runs on any
anyio backend.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import anyio

from imsdk_server.backends.queue._base import (
    DEFAULT_MAX_PAYLOAD,
    Delivery,
    GroupStart,
    InvalidQueueArgument,
    QueueClosed,
    validate_consume_args,
    validate_queue_name,
)
from imsdk_server.metrics import Metrics

__all__ = ["ManualClock", "MemoryQueue", "MemoryQueueHub"]

_ID = re.compile(r"(\d{1,19})-(\d{1,19})")


class ManualClock:
    """A clock that moves only when told to; pass it as ``MemoryQueue(clock=...)`` in tests."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self.now += seconds


@dataclass
class _Pending:
    owner: str
    delivered_at: float
    attempt: int


@dataclass
class _Group:
    next_seq: int
    pending: dict[int, _Pending] = field(default_factory=dict)


@dataclass
class _Topic:
    messages: OrderedDict[int, bytes] = field(default_factory=OrderedDict)
    next_seq: int = 1
    groups: dict[str, _Group] = field(default_factory=dict)
    wakeup: anyio.Event | None = None

    def wake(self) -> None:
        if self.wakeup is not None:
            self.wakeup.set()
            self.wakeup = None


def parse_message_id(message_id: str) -> int:
    """The sequence number inside one of our ids; :class:`InvalidQueueArgument` for anything else."""
    m = _ID.fullmatch(message_id) if isinstance(message_id, str) else None
    if m is None:
        raise InvalidQueueArgument(f"bad message id {message_id!r}")
    return int(m.group(1))


class MemoryQueueHub:
    """The shared in-process store of topics and groups; open clients with :meth:`connect`.

    ``maxlen`` bounds every topic (oldest messages are dropped first). ``clock`` gives the time used for
    idle reclaim (default :func:`time.monotonic`; a :class:`ManualClock` in tests).
    """

    def __init__(
        self,
        *,
        maxlen: int = 100_000,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
    ) -> None:
        if maxlen < 1:
            raise InvalidQueueArgument("maxlen must be >= 1")
        self._maxlen = maxlen
        self._max_payload = max_payload
        self._clock = clock
        self._metrics = metrics if metrics is not None else Metrics()
        self._topics: dict[str, _Topic] = {}

    async def connect(self, *, claim_idle: float = 30.0, block: float = 1.0) -> MemoryQueue:
        """A new client of this hub (closing it ends only its own consumer streams)."""
        return MemoryQueue(self, claim_idle=claim_idle, block=block)

    def recheck(self) -> None:
        """Wake every waiting consumer to look for reclaimable entries now (after moving a manual clock)."""
        for t in self._topics.values():
            t.wake()

    def _topic(self, topic: str) -> _Topic:
        t = self._topics.get(topic)
        if t is None:
            t = self._topics[topic] = _Topic()
        return t

    def _group(self, topic: str, group: str, start: GroupStart) -> _Group:
        t = self._topic(topic)
        g = t.groups.get(group)
        if g is None:
            first = next(iter(t.messages), t.next_seq) if start == "earliest" else t.next_seq
            g = t.groups[group] = _Group(next_seq=first)
            pending = g.pending
            self._metrics.gauge("queue_pending", lambda: float(len(pending)), topic=topic, group=group)
        return g


class MemoryQueue:
    """A client of a :class:`MemoryQueueHub`; a :class:`~imsdk_server.backends.queue.Queue`.

    ``MemoryQueue()`` makes a client with a private hub. ``claim_idle`` is how long a delivery may stay
    unacknowledged before this client's consumers reclaim it; ``block`` is how long (real seconds) an idle
    consumer waits before looking for reclaimable entries again.
    """

    def __init__(
        self,
        hub: MemoryQueueHub | None = None,
        *,
        claim_idle: float = 30.0,
        block: float = 1.0,
        metrics: Metrics | None = None,
    ) -> None:
        if claim_idle < 0 or block <= 0:
            raise InvalidQueueArgument("claim_idle must be >= 0 and block > 0")
        self._hub = hub if hub is not None else MemoryQueueHub(metrics=metrics)
        self._claim_idle = claim_idle
        self._block = block
        self._metrics = self._hub._metrics
        self._closed = False

    @property
    def hub(self) -> MemoryQueueHub:
        return self._hub

    def _check_open(self) -> None:
        if self._closed:
            raise QueueClosed("the queue is closed")

    async def publish(self, topic: str, payload: bytes) -> str:
        validate_queue_name("topic", topic)
        if not isinstance(payload, bytes | bytearray):
            raise InvalidQueueArgument(f"payloads are bytes, not {type(payload).__name__}")
        if len(payload) > self._hub._max_payload:
            raise InvalidQueueArgument(f"payload of {len(payload)} bytes exceeds {self._hub._max_payload}")
        self._check_open()
        t = self._hub._topic(topic)
        seq = t.next_seq
        t.next_seq += 1
        t.messages[seq] = bytes(payload)
        while len(t.messages) > self._hub._maxlen:
            t.messages.popitem(last=False)
        self._metrics.counter("queue_published", topic=topic).inc()
        t.wake()
        return f"{seq}-0"

    def _read(self, stream: _MemoryConsumer, batch: int) -> list[Delivery]:
        """One read cycle: reclaim idle entries of the group; if there are none, take new messages."""
        self._check_open()
        topic, group, consumer = stream.topic, stream.group, stream.consumer
        t = self._hub._topic(topic)
        g = self._hub._group(topic, group, stream.start)
        now = self._hub._clock()
        out: list[Delivery] = []
        # Scan the pending list at most every claim_idle/4 seconds (it can be long), but finish a scan that
        # stopped early because the batch was full.
        scan = now >= stream.next_scan
        if scan:
            stream.next_scan = now + self._claim_idle / 4
        for seq, p in list(g.pending.items()) if scan else ():
            if len(out) >= batch:
                stream.next_scan = now
                break
            if now - p.delivered_at < self._claim_idle:
                continue
            payload = t.messages.get(seq)
            if payload is None:  # trimmed away while pending
                del g.pending[seq]
                continue
            p.owner, p.delivered_at, p.attempt = consumer, now, p.attempt + 1
            out.append(Delivery(f"{seq}-0", payload, p.attempt, topic, group))
        if out:
            self._metrics.counter("queue_reclaimed", topic=topic, group=group).inc(len(out))
        else:
            while len(out) < batch and g.next_seq < t.next_seq:
                seq = g.next_seq
                g.next_seq += 1
                payload = t.messages.get(seq)
                if payload is None:
                    continue
                g.pending[seq] = _Pending(consumer, now, 1)
                out.append(Delivery(f"{seq}-0", payload, 1, topic, group))
        if out:
            self._metrics.counter("queue_consumed", topic=topic, group=group).inc(len(out))
        return out

    def consume(
        self, topic: str, group: str, consumer: str, *, batch: int = 64, start: GroupStart = "earliest"
    ) -> _MemoryConsumer:
        validate_consume_args(topic, group, consumer, batch, start)
        return _MemoryConsumer(self, topic, group, consumer, batch, start)

    def _existing_group(self, topic: str, group: str) -> _Group | None:
        validate_queue_name("topic", topic)
        validate_queue_name("group", group)
        self._check_open()
        t = self._hub._topics.get(topic)
        return t.groups.get(group) if t is not None else None

    async def ack(self, topic: str, group: str, message_id: str) -> bool:
        seq = parse_message_id(message_id)
        g = self._existing_group(topic, group)
        if g is None or g.pending.pop(seq, None) is None:
            return False
        self._metrics.counter("queue_acked", topic=topic, group=group).inc()
        return True

    async def pending(self, topic: str, group: str) -> int:
        g = self._existing_group(topic, group)
        return 0 if g is None else len(g.pending)

    def recheck(self) -> None:
        """Wake every waiting consumer of the hub (see :meth:`MemoryQueueHub.recheck`)."""
        self._hub.recheck()

    async def aclose(self) -> None:
        """End this client's consumer streams; their unacked deliveries stay pending in the hub."""
        if self._closed:
            return
        self._closed = True
        self._hub.recheck()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _MemoryConsumer:
    """A consumer stream of :class:`MemoryQueue` (a :class:`~imsdk_server.backends.queue.ConsumerStream`)."""

    def __init__(
        self, queue: MemoryQueue, topic: str, group: str, consumer: str, batch: int, start: GroupStart
    ):
        self._queue = queue
        self.topic = topic
        self.group = group
        self.consumer = consumer
        self._batch = batch
        self.start = start
        self._buffer: deque[Delivery] = deque()
        self._closed = False
        self.next_scan = float("-inf")

    async def __aenter__(self) -> Self:
        self._queue._check_open()
        self._queue.hub._group(self.topic, self.group, self.start)  # the group exists from now on
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
            got = self._queue._read(self, self._batch)
            if got:
                self._buffer.extend(got)
                continue
            t = self._queue.hub._topic(self.topic)
            if t.wakeup is None:
                t.wakeup = anyio.Event()
            with anyio.move_on_after(self._queue._block):
                await t.wakeup.wait()

    async def aclose(self) -> None:
        """Stop; deliveries handed out but not acked stay pending (and are reclaimed later)."""
        self._closed = True
        self._buffer.clear()
