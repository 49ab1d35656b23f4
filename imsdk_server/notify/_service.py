"""The notification server on anyio: the core, the store, the location service and the access servers.

:class:`NotifyService` owns a :class:`~imsdk_server.notify.NotifyCore` and is its only driver. Each input (a
Python :meth:`NotifyService.notify`, a frame, a location notice) runs the core synchronously with ``now`` from
the wall clock, then carries out the actions: store calls are awaited and their answers fed back to the core,
frames are handed to a :class:`FrameSink` (the access servers), and answers are returned to the caller. The
core is never awaited half-way, so no lock is needed.

Presence comes from the location service: :class:`PresenceLookup` (``devices(uid)``, which
:class:`~imsdk_server.location.LocationService` provides) answers "where is this user now", and
:meth:`NotifyService.run` follows the location service's notices and, in a consumer group of its own, the
access servers' online and offline events, to deliver stored notifications to every new session. The
events are needed because the notices leave out what a business server need not hear: a quick reconnect
produces no notice at all, yet it is a new session whose connection got none of the pushes of the old one.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio
from anyio.abc import TaskGroup, TaskStatus

from imsdk_proto import messages as pb
from imsdk_proto._header import Header
from imsdk_proto.codes import ErrorCode
from imsdk_server.backends.queue import Queue, QueueError
from imsdk_server.backends.sql import SQLError
from imsdk_server.location import (
    CHAT,
    BatchNotice,
    DeviceNotice,
    InvalidPresenceEvent,
    LocationService,
    Notice,
    NoticeKind,
    Presence,
    ServerDownNotice,
    SubscriberOverflow,
    decode_offline,
    decode_online,
)
from imsdk_server.metrics import Metrics
from imsdk_server.notify._config import NotifyConfig, Policy
from imsdk_server.notify._core import (
    Action,
    DeviceLocation,
    LoadPending,
    NotifyCore,
    Outcome,
    Reply,
    Report,
    SendFrame,
    StoreAck,
    StoreNotification,
)
from imsdk_server.notify._errors import NotifyError, NotifyStorageUnavailable
from imsdk_server.notify._store import NotificationStore, NotificationStoreError

__all__ = ["FrameSink", "NotifyResult", "NotifyService", "PresenceLookup"]

log = logging.getLogger("imsdk_server.notify")

_POLICY_WIRE = {
    None: pb.StorePolicy.STORE_POLICY_UNSPECIFIED,
    Policy.DROP: pb.StorePolicy.STORE_POLICY_DROP,
    Policy.KEEP_LATEST: pb.StorePolicy.STORE_POLICY_KEEP_LATEST,
}


class FrameSink(Protocol):
    """Where pushes go: "send this frame to ``(header.receiver_uid, header.receiver_device)`` through access
    server ``access_id``"."""

    async def send_frame(self, access_id: int, header: Header, body: bytes) -> bool:
        """Hand the frame on; ``False`` when that access server cannot be reached (the push is lost)."""
        ...


class PresenceLookup(Protocol):
    """Which devices of a user are online now (what :class:`~imsdk_server.location.LocationService`
    answers)."""

    def devices(self, uid: str) -> list[Presence]:
        """Every connected device of ``uid``."""
        ...


@dataclass(frozen=True, slots=True)
class NotifyResult:
    """What :meth:`NotifyService.notify` did."""

    notify_id: int
    outcome: Outcome


class NotifyService:
    """A notification server: :meth:`notify` from Python, :meth:`handle_frame` for ``NOTIFY`` frames,
    :meth:`run` for the location notices and the tombstone purge."""

    def __init__(
        self,
        config: NotifyConfig | None = None,
        *,
        store: NotificationStore,
        sink: FrameSink,
        presence: PresenceLookup | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or NotifyConfig()
        self.metrics = metrics or Metrics()
        self.core = NotifyCore(self.config, metrics=self.metrics)
        self.store = store
        self.sink = sink
        self.presence = presence
        self._clock = clock
        m = self.metrics.child("notify")
        self._m_store_errors = m.counter("store_errors_total")
        self._m_frames_dropped = m.counter("frames_dropped_total")
        self._m_purged = m.counter("purged_total")
        self._m_overflows = m.counter("presence_overflows_total")
        self._m_queue_errors = m.counter("queue_errors_total")
        self._m_events = {
            kind: m.counter("session_events_total", kind=kind) for kind in ("online", "offline", "invalid")
        }
        self._ready = anyio.Event()
        self._login_limiter = anyio.CapacityLimiter(self.config.login_workers)

    # --------------------------------------------------------------------------------- running

    async def run(
        self,
        *,
        location: LocationService | None = None,
        queue: Queue | None = None,
        consumer: str | None = None,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Purge tombstones periodically; with a ``location`` service, follow its notices; with a ``queue``
        (by default the one the location service reads), read the access servers' online and offline events
        in the consumer group :attr:`NotifyConfig.session_group` as ``consumer`` (by default named after the
        process). Both start login deliveries. ``task_status.started()`` once subscribed and reading."""
        if queue is None and location is not None:
            queue = location.queue
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._purge_loop)
            if location is not None:
                await tg.start(self._follow, location, tg)
            if queue is not None and self.config.session_group:
                name = consumer or f"{self.config.subscriber_id}-{self.config.node_id}-{os.getpid()}"
                for topic in (self.config.online_topic, self.config.offline_topic):
                    await tg.start(self._follow_sessions, queue, topic, name, tg)
            self._ready.set()
            task_status.started()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    async def _follow(
        self,
        location: LocationService,
        tg: TaskGroup,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        started = False
        while True:
            subscriber = location.subscribe(self.config.subscriber_id, classes=CHAT)
            if not started:
                started = True
                task_status.started()
            try:
                async for notice in subscriber:
                    actions = self._notice_actions(notice)
                    if actions:
                        tg.start_soon(self._login_work, actions)
            except SubscriberOverflow:
                self._m_overflows.inc()
                continue
            return  # the location service ended the subscription: it is closing

    async def _follow_sessions(
        self,
        queue: Queue,
        topic: str,
        consumer: str,
        tg: TaskGroup,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Read one topic of the access servers' presence events. A new group starts at the newest event:
        sessions that started before are served by the location notices (or were served already)."""
        started = False
        while True:
            try:
                async with queue.consume(
                    topic, self.config.session_group, consumer, start="latest"
                ) as stream:
                    if not started:
                        started = True
                        task_status.started()
                    async for delivery in stream:
                        actions = self.session_event(topic, delivery.payload)
                        if actions:
                            tg.start_soon(self._login_work, actions)
                        await queue.ack(delivery.topic, delivery.group, delivery.id)
            except QueueError:
                self._m_queue_errors.inc()
                if not started:
                    started = True
                    task_status.started()
                await anyio.sleep(self.config.queue_retry_interval)

    def session_event(self, topic: str, payload: bytes) -> list[Action]:
        """Apply one access-server event (an ``OnlineEvent`` or ``OfflineEvent`` payload of ``topic``) to the
        core; returns the login delivery to run. A payload that does not decode, or names no device, is
        counted and ignored."""
        now = self._clock()
        try:
            if topic == self.config.online_topic:
                on = decode_online(payload)
                if on.uid and on.device and on.server:
                    self._m_events["online"].inc()
                    return self.core.device_online(on.uid, on.device, on.server, now, session=on.session)
            elif topic == self.config.offline_topic:
                off = decode_offline(payload)
                if off.uid and off.device and off.server:
                    self._m_events["offline"].inc()
                    return self.core.device_offline(
                        off.uid, off.device, now, access_id=off.server, session=off.session
                    )
        except InvalidPresenceEvent:
            pass
        self._m_events["invalid"].inc()
        return []

    async def _login_work(self, actions: Sequence[Action]) -> None:
        async with self._login_limiter:
            await self._execute(actions)

    def _notice_actions(self, notice: Notice) -> list[Action]:
        now = self._clock()
        core = self.core
        if isinstance(notice, BatchNotice):
            out: list[Action] = []
            for item in notice.items:
                out += self._notice_actions(item)
            return out
        if isinstance(notice, ServerDownNotice):
            for uid, device in notice.devices:
                core.device_offline(uid, device, now, access_id=notice.server)
            return []
        assert isinstance(notice, DeviceNotice)
        if notice.kind in (NoticeKind.ONLINE, NoticeKind.MOVED) and notice.presence is not None:
            p = notice.presence
            return core.device_online(notice.uid, notice.device, p.server, now, session=p.session)
        if notice.kind is NoticeKind.OFFLINE:
            prev = notice.previous
            if prev is None:
                return core.device_offline(notice.uid, notice.device, now)
            return core.device_offline(
                notice.uid, notice.device, now, access_id=prev.server, session=prev.session
            )
        return []

    async def _purge_loop(self) -> None:
        while True:
            await anyio.sleep(self.config.purge_interval)
            try:
                await self.purge()
            except NotifyStorageUnavailable:
                pass  # counted; the next round tries again

    async def purge(self) -> int:
        """Delete tombstones older than ``tombstone_ttl``; returns how many."""
        cutoff = int((self._clock() - self.config.tombstone_ttl) * 1000)
        try:
            purged = await self.store.purge(cutoff)
        except (SQLError, NotificationStoreError) as exc:
            self._m_store_errors.inc()
            raise NotifyStorageUnavailable(f"purge failed: {exc}") from exc
        self._m_purged.inc(purged)
        return purged

    # --------------------------------------------------------------------------------- inputs

    def _devices(self, uid: str) -> list[DeviceLocation]:
        if self.presence is None or not uid:
            return []
        return [DeviceLocation(p.uid, p.device, p.server, p.session) for p in self.presence.devices(uid)]

    async def notify(
        self,
        uid: str,
        type: str,
        payload: bytes = b"",
        *,
        merge_key: str = "",
        policy: Policy | None = None,
        notify_id: int = 0,
    ) -> NotifyResult:
        """Notify ``uid``. ``policy`` overrides the configured one for ``type``; ``notify_id`` 0 lets the
        server choose. Raises :class:`~imsdk_server.notify.NotificationRejected` for bad input and
        :class:`~imsdk_server.notify.NotifyStorageUnavailable` when a stored type could not be committed
        (retry with the returned-or-given id)."""
        note = pb.Notification(
            type=type, payload=payload, merge_key=merge_key, store=_POLICY_WIRE[policy], notify_id=notify_id
        )
        token, actions = self.core.submit(uid, note, self._devices(uid), self._clock())
        for answer in await self._execute(actions):
            if isinstance(answer, Report) and answer.token == token:
                if answer.outcome is None:
                    error = answer.error or ErrorCode.INTERNAL
                    raise NotifyStorageUnavailable(
                        f"notification {answer.notify_id} was not stored ({error.name}); resend it",
                        code=error,
                    )
                return NotifyResult(answer.notify_id, answer.outcome)
        raise AssertionError("the core did not answer a submission")  # pragma: no cover

    async def notify_many(
        self, uids: Iterable[str], type: str, payload: bytes = b"", **options: object
    ) -> dict[str, NotifyResult | NotifyError]:
        """:meth:`notify` each user (one id shared by all when ``notify_id`` is 0: it is assigned once)."""
        if not options.get("notify_id"):
            options["notify_id"] = self.core.next_notify_id(self._clock())
        results: dict[str, NotifyResult | NotifyError] = {}
        for uid in dict.fromkeys(uids):
            try:
                results[uid] = await self.notify(uid, type, payload, **options)  # type: ignore[arg-type]
            except NotifyError as exc:
                results[uid] = exc
        return results

    async def handle_frame(self, header: Header, body: bytes) -> list[tuple[Header, bytes]]:
        """A ``NOTIFY`` frame. Frames for clients go out through the sink; the returned frames are the
        responses for the business server that sent it (send them back on its link)."""
        answers = await self._execute(
            self.core.frame_received(header, body, self._devices(header.receiver_uid), self._clock())
        )
        return [(a.header, a.body) for a in answers if isinstance(a, Reply)]

    async def device_online(self, uid: str, device: str, access_id: int, *, session: int = 0) -> None:
        """A session start given directly (instead of through :meth:`run`'s location subscription or
        queue); returns once its login delivery has been handed on."""
        await self._execute(self.core.device_online(uid, device, access_id, self._clock(), session=session))

    async def device_offline(self, uid: str, device: str, *, access_id: int = 0, session: int = 0) -> None:
        """A session end given directly."""
        await self._execute(
            self.core.device_offline(uid, device, self._clock(), access_id=access_id, session=session)
        )

    # --------------------------------------------------------------------------------- actions

    async def _execute(self, actions: Sequence[Action]) -> list[Report | Reply]:
        """Carry out ``actions`` and everything the core asks for in answer; return the answers."""
        answers: list[Report | Reply] = []
        todo: deque[Action] = deque(actions)
        core = self.core
        while todo:
            action = todo.popleft()
            if isinstance(action, SendFrame):
                await self._send(action)
            elif isinstance(action, StoreNotification):
                try:
                    result = await self.store.upsert(action.notification)
                except Exception as exc:
                    todo.extend(core.store_failed(action.token, self._store_error(exc), self._clock()))
                else:
                    todo.extend(core.stored(action.token, result, self._clock()))
            elif isinstance(action, LoadPending):
                try:
                    records = await self.store.pending(
                        action.uid, after_id=action.after_id, limit=action.limit
                    )
                except Exception as exc:
                    todo.extend(core.load_failed(action.token, self._store_error(exc), self._clock()))
                else:
                    todo.extend(core.loaded(action.token, records, self._clock()))
            elif isinstance(action, StoreAck):
                try:
                    await self.store.ack(action.uid, action.notify_ids, int(self._clock() * 1000))
                except Exception as exc:
                    self._store_error(exc)  # the rows stay pending: delivered again at the next login
            else:
                answers.append(action)
        return answers

    def _store_error(self, exc: Exception) -> ErrorCode:
        """Count a failed store call and give the code the core answers with. Storage faults carry their
        own code; anything else is a bug below us, logged and answered ``INTERNAL``, so that the core's
        submission or load still gets its answer and the service keeps serving."""
        self._m_store_errors.inc()
        if isinstance(exc, (SQLError, NotificationStoreError)):
            return exc.code
        log.exception("notify: the store raised an unexpected error", exc_info=exc)
        return ErrorCode.INTERNAL

    async def _send(self, action: SendFrame) -> None:
        try:
            delivered = await self.sink.send_frame(action.access_id, action.header, action.body)
        except Exception:  # a sink is outside code; one broken access server must not stop the others
            delivered = False
        if not delivered:
            self._m_frames_dropped.inc()
