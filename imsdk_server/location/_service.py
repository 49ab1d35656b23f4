"""The location server on anyio: queue in, store and subscribers out, one timer for the core.

:class:`LocationService` owns a :class:`~imsdk_server.location.PresenceCore` and is its only driver. Every
input (a queue delivery, a detector verdict, a subscription) runs the core synchronously with ``now`` from the
clock and then *dispatches* what the core produced: store writes are coalesced for the store writer task,
notices go into each subscriber's bounded buffer at once, and the timer task is woken to re-arm on the core's
new deadline. The core is never awaited half-way, so no lock is needed.

Runs on anyio's asyncio backend (the Redis store and queue need it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Self

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from imsdk_server.backends.queue import Queue, QueueError
from imsdk_server.location._config import LocationConfig
from imsdk_server.location._core import (
    CHAT,
    Deliver,
    DeviceKey,
    DeviceOffline,
    DeviceOnline,
    NetworkClass,
    Notice,
    Presence,
    PresenceCore,
    ServerStatus,
    StorePut,
    StoreRemove,
    Subscription,
)
from imsdk_server.location._errors import InvalidPresenceEvent, PresenceStoreUnavailable, SubscriberOverflow
from imsdk_server.location._events import decode_offline, decode_online
from imsdk_server.location._store import MemoryPresenceStore, PresenceStore
from imsdk_server.metrics import Metrics

__all__ = ["LocationService", "Subscriber"]


class Subscriber:
    """One business server's notices: an async iterator, ended by :meth:`aclose` (or the service closing).

    If the subscriber lets more than ``subscriber_buffer`` notices pile up, its subscription ends: the
    notices already buffered are still delivered, then iteration raises :class:`SubscriberOverflow`.
    """

    def __init__(
        self,
        service: LocationService,
        subscription: Subscription,
        send: MemoryObjectSendStream[Notice],
        receive: MemoryObjectReceiveStream[Notice],
    ) -> None:
        self.subscription = subscription
        self._service = service
        self._send = send
        self._receive = receive
        self.overflowed = False

    @property
    def id(self) -> str:
        return self.subscription.subscriber

    def _offer(self, notice: Notice) -> bool:
        """Buffer a notice without waiting; False (and the subscription ends) when the buffer is full."""
        try:
            self._send.send_nowait(notice)
        except anyio.WouldBlock:
            self.overflowed = True
            self._send.close()
            return False
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return False
        return True

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Notice:
        try:
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            if self.overflowed:
                raise SubscriberOverflow(f"subscriber {self.id!r} fell behind and was dropped") from None
            raise StopAsyncIteration from None

    async def receive(self) -> Notice:
        """The next notice (raises :class:`StopAsyncIteration` when the subscription ended normally)."""
        return await self.__anext__()

    def pending(self) -> int:
        """Notices buffered and not yet read."""
        return self._receive.statistics().current_buffer_used

    async def aclose(self) -> None:
        """End the subscription."""
        self._service._drop_subscriber(self)
        self._send.close()
        self._receive.close()

    def close(self) -> None:
        """End the subscription at once, from code that cannot await (e.g. a link's close callback).

        The service forgets it immediately; notices already buffered are still readable, then iteration ends.
        """
        self._service._drop_subscriber(self)
        self._send.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class LocationService:
    """A location server: feed it events (from the queue, or directly), subscribe, query.

    ``clock`` gives the core's ``now`` (monotonic seconds); ``store`` defaults to the in-process dict; with a
    ``queue``, :meth:`run` consumes the online and offline topics in the consumer group named after
    ``config.server_id``.
    """

    def __init__(
        self,
        config: LocationConfig | None = None,
        *,
        store: PresenceStore | None = None,
        queue: Queue | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        consumer: str | None = None,
    ) -> None:
        self.config = config or LocationConfig()
        self.store: PresenceStore = store if store is not None else MemoryPresenceStore()
        self.queue = queue
        self.core = PresenceCore(self.config, metrics=metrics)
        self.metrics = self.core.metrics
        self._clock = clock
        self._consumer = consumer or f"{self.config.server_id}-a"
        self._subscribers: dict[str, Subscriber] = {}
        self._store_pending: dict[DeviceKey, Presence | None] = {}
        self._store_dirty = False
        self._store_wake = anyio.Event()
        self._timer_wake = anyio.Event()
        self._ready = anyio.Event()
        self._m_store_errors = self.metrics.counter("store_errors")
        self._m_store_rewrites = self.metrics.counter("store_rewrites")
        self._m_store_writes = self.metrics.counter("store_writes")
        self._m_overflows = self.metrics.counter("subscriber_overflows")
        self._m_queue_errors = self.metrics.counter("queue_errors")

    # --------------------------------------------------------------------------------- running

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Restore from the store, then serve until cancelled. ``task_status.started()`` once ready."""
        await self._restore()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._timer_loop)
                tg.start_soon(self._store_loop)
                tg.start_soon(self._store_check_loop)
                if self.queue is not None:
                    for topic in (self.config.online_topic, self.config.offline_topic):
                        await tg.start(self._consume_loop, topic)
                self._ready.set()
                task_status.started()
        finally:
            for sub in list(self._subscribers.values()):
                sub._send.close()
            self._subscribers.clear()

    async def _restore(self) -> None:
        try:
            if await self.store.intact():
                self.core.restore(await self.store.load_all(), self._clock())
            else:
                self._store_dirty = True
        except PresenceStoreUnavailable:
            self._m_store_errors.inc()
            self._store_dirty = True
        if self._store_dirty:
            self._store_wake.set()

    async def _timer_loop(self) -> None:
        core = self.core
        while True:
            deadline = core.next_deadline()
            now = self._clock()
            if deadline is not None and deadline <= now:
                core.handle_timer(now)
                self._dispatch()
                continue
            wake = self._timer_wake = anyio.Event()
            with anyio.move_on_after(math.inf if deadline is None else deadline - now):
                await wake.wait()

    async def _store_loop(self) -> None:
        while True:
            await self._store_wake.wait()
            self._store_wake = anyio.Event()
            try:
                if self._store_dirty:
                    self._store_pending = {}
                    await self.store.replace_all(list(self.core.snapshot()))
                    self._store_dirty = False
                    self._m_store_rewrites.inc()
                while self._store_pending:
                    batch, self._store_pending = self._store_pending, {}
                    await self.store.apply(batch)
                    self._m_store_writes.inc(len(batch))
            except PresenceStoreUnavailable:
                # The core keeps the truth: once the store answers again, rewrite it whole.
                self._m_store_errors.inc()
                self._store_dirty = True
                self._store_pending = {}
                await anyio.sleep(self.config.store_retry_interval)
                self._store_wake.set()

    async def _store_check_loop(self) -> None:
        while True:
            await anyio.sleep(self.config.store_check_interval)
            await self.check_store()

    async def check_store(self) -> bool:
        """Whether the store still holds our data; if not, schedule a full rewrite from memory."""
        try:
            intact = await self.store.intact()
        except PresenceStoreUnavailable:
            self._m_store_errors.inc()
            intact = False
        if not intact and not self._store_dirty:
            self._store_dirty = True
            self._store_wake.set()
        return intact

    async def flush_store(self) -> None:
        """Wait until every store write made so far has been attempted (for tests and orderly shutdown)."""
        while self._store_pending or self._store_dirty:
            self._store_wake.set()
            await anyio.sleep(0.005)

    async def _consume_loop(
        self, topic: str, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        queue = self.queue
        assert queue is not None
        started = False
        while True:
            try:
                async with queue.consume(topic, self.config.server_id, self._consumer) as stream:
                    if not started:
                        started = True
                        task_status.started()
                    async for delivery in stream:
                        self.handle_payload(topic, delivery.payload)
                        await queue.ack(delivery.topic, delivery.group, delivery.id)
            except QueueError:
                self._m_queue_errors.inc()
                if not started:
                    started = True
                    task_status.started()
                await anyio.sleep(self.config.store_retry_interval)

    # --------------------------------------------------------------------------------- inputs

    def handle_payload(self, topic: str, payload: bytes) -> bool:
        """Decode and apply one queue payload; False (counted, nothing else) for a malformed one."""
        event: DeviceOnline | DeviceOffline
        try:
            if topic == self.config.online_topic:
                event = decode_online(payload)
            elif topic == self.config.offline_topic:
                event = decode_offline(payload)
            else:
                raise InvalidPresenceEvent(f"not a presence topic: {topic!r}")
        except InvalidPresenceEvent:
            self.metrics.counter("events", kind="invalid").inc()
            return False
        try:  # the core counts what it rejects itself
            if isinstance(event, DeviceOnline):
                self.device_online(event)
            else:
                self.device_offline(event)
        except InvalidPresenceEvent:
            return False
        return True

    def device_online(self, event: DeviceOnline) -> None:
        self.core.device_online(event, self._clock())
        self._dispatch()

    def device_offline(self, event: DeviceOffline) -> None:
        self.core.device_offline(event, self._clock())
        self._dispatch()

    def server_status(self, server: int, status: ServerStatus | str) -> None:
        """The failure detector's verdict: a :class:`ServerStatus`, or the links' ``Health`` value string.

        ``"stopped"`` (the link ended for another reason, e.g. an orderly deregistration) changes nothing:
        that server's users produce ordinary offline events.
        """
        if isinstance(status, str):
            if status == "stopped":
                return
            try:
                status = ServerStatus(status)
            except ValueError:
                raise InvalidPresenceEvent(f"not a server status: {status!r}") from None
        self.core.server_status(server, status, self._clock())
        self._dispatch()

    def sync_server(self, server: int, online: Iterable[DeviceOnline]) -> None:
        """An access server's full online list replaces what we believe about it (rebuilds lost presence)."""
        self.core.sync_server(server, online, self._clock())
        self._dispatch()

    # --------------------------------------------------------------------------------- subscriptions

    def subscribe(
        self,
        subscriber: str,
        *,
        uids: Iterable[str] | None = None,
        classes: frozenset[NetworkClass] = CHAT,
        network_changes: bool = False,
    ) -> Subscriber:
        """Start hearing notices; a second subscription under the same id replaces (and ends) the first."""
        sub = Subscription(subscriber, None if uids is None else frozenset(uids), classes, network_changes)
        old = self._subscribers.pop(subscriber, None)
        if old is not None:
            old._send.close()
        send, receive = anyio.create_memory_object_stream[Notice](self.config.subscriber_buffer)
        handle = Subscriber(self, sub, send, receive)
        self._subscribers[subscriber] = handle
        self.core.subscribe(sub)
        return handle

    def _drop_subscriber(self, handle: Subscriber) -> None:
        if self._subscribers.get(handle.id) is handle:
            del self._subscribers[handle.id]
            self.core.unsubscribe(handle.id)

    # --------------------------------------------------------------------------------- queries

    def devices(self, uid: str) -> list[Presence]:
        """Every connected device of ``uid``."""
        return self.core.devices(uid)

    def devices_many(self, uids: Iterable[str]) -> dict[str, list[Presence]]:
        return self.core.devices_many(uids)

    def is_online(self, uid: str, classes: frozenset[NetworkClass] = CHAT) -> bool:
        return self.core.is_online(uid, classes)

    async def wait_ready(self) -> None:
        await self._ready.wait()

    # --------------------------------------------------------------------------------- dispatch

    def _dispatch(self) -> None:
        wrote = False
        for action in self.core.pop_actions():
            if isinstance(action, Deliver):
                handle = self._subscribers.get(action.subscriber)
                if handle is not None and not handle._offer(action.notice):
                    self._m_overflows.inc()
                    self._drop_subscriber(handle)
            elif isinstance(action, StorePut):
                self._store_pending[action.presence.key] = action.presence
                wrote = True
            elif isinstance(action, StoreRemove):
                self._store_pending[(action.uid, action.device)] = None
                wrote = True
        if wrote:
            self._store_wake.set()
        self._timer_wake.set()
