"""The message router on anyio: the sans-IO :class:`~imsdk_server.routing.RouterCore` run for real.

:class:`RouterService` is the core's only driver. Every input (an upstream frame, a presence answer, a commit,
a store read, an online notice, the timer) runs the core synchronously with ``now`` from the clock and then
*executes* the actions it returned, none of which waits. ``now`` comes from a monotonic clock (deadlines);
the wall clock only stamps new messages:

* :class:`~imsdk_server.routing.SendFrame` goes into the outbox of its access server; one task per access
  server hands the frames, in order, to the :class:`Downstream` (a slow access server delays only its own);
* :class:`~imsdk_server.routing.QueryPresence` is answered at once when the :class:`PresenceSource` can
  (the in-process location service), else batched for the presence task;
* :class:`~imsdk_server.routing.CheckMedia` runs as a task asking the
  :class:`~imsdk_server.media.MediaCatalog` (only image and voice messages, only when one is given);
* :class:`~imsdk_server.routing.AppendMessage` is submitted to the
  :class:`~imsdk_server.routing.GroupCommitWriter`, whose callback feeds the commit back in;
* :class:`~imsdk_server.routing.LoadPending` / :class:`~imsdk_server.routing.LoadRange` run as a task each;
* :class:`~imsdk_server.routing.StoreAck` is coalesced (highest sequence per device and conversation) for the
  ack task.

One timer task is re-armed from :meth:`RouterCore.next_deadline`. The core is never awaited half-way, so no
lock is needed. :class:`RouterServer` adds the server around it: a :class:`~imsdk_server.links.LinkHub`
that access servers link to, the registry entry, and the lifecycle (register → ready; deregister →
not-ready → drain → stop). The protocol is in ``docs/delivery.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import ssl
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import anyio
from anyio.abc import TaskGroup, TaskStatus

from imsdk_proto._frame import Frame
from imsdk_proto.codes import Biz, Codec, ErrorCode
from imsdk_proto.errors import CodedError
from imsdk_proto.messages import ServerRole
from imsdk_server.backends.registry import Registry, RegistryError, ServerInfo, ServerState
from imsdk_server.backends.sql import SQLError
from imsdk_server.links import DrainReport, LinkBusy, LinkConfig, LinkHub, LinkIdentity, LinkNotReady
from imsdk_server.location import (
    BatchNotice,
    DeviceNotice,
    LocationService,
    Notice,
    NoticeKind,
    ServerDownNotice,
    SubscriberOverflow,
)
from imsdk_server.media import MediaCatalog, MediaError
from imsdk_server.metrics import Metrics
from imsdk_server.routing._config import RouterConfig
from imsdk_server.routing._core import (
    Action,
    AppendMessage,
    CheckMedia,
    DeviceLocation,
    LoadPending,
    LoadRange,
    QueryPresence,
    RouterCore,
    SendFrame,
    StoreAck,
)
from imsdk_server.routing._store import AppendResult, MessageStore, MessageStoreError
from imsdk_server.routing._writer import GroupCommitWriter

__all__ = [
    "ACCESS_ROLE",
    "ROUTER_ROLE",
    "Downstream",
    "DownstreamUnavailable",
    "LinkDownstream",
    "LocalDownstream",
    "LocationPresence",
    "NoticeStream",
    "PresenceAnswer",
    "PresenceSource",
    "RouterServer",
    "RouterService",
    "UserDirectory",
]

log = logging.getLogger("imsdk_server.routing")

#: The link role of access servers (``ServerRole.SERVER_ROLE_ACCESS``).
ACCESS_ROLE = int(ServerRole.SERVER_ROLE_ACCESS)
#: The link role a router's hello names (``ServerRole.SERVER_ROLE_INSTANT_ROUTER``).
ROUTER_ROLE = int(ServerRole.SERVER_ROLE_INSTANT_ROUTER)

_STORE_ERRORS = (SQLError, MessageStoreError)
_PRESENCE_CHUNK = 1000


# -- interfaces ----------------------------------------------------------------------------------------------


class DownstreamUnavailable(CodedError):
    """A frame could not be handed to its access server (no link to it, or not ready)."""

    code = ErrorCode.BACKEND_NOT_READY


@runtime_checkable
class Downstream(Protocol):
    """Where the router's frames go: the access server ``access_id`` delivers ``frame`` (v2, raw body) by
    its header's receiver. Raises when it cannot take the frame; the router counts it and moves on (a lost
    push stays pending, a lost ack makes the sender resend)."""

    async def send(self, access_id: int, frame: Frame) -> None: ...


@runtime_checkable
class _NowaitDownstream(Protocol):
    """A :class:`Downstream` that can also take a frame without waiting (the link's send buffer has room):
    ``True`` when it took the frame, ``False`` when :meth:`send` would have had to wait (the frame then goes
    through the access server's outbox); raises like ``send`` when it refuses the frame."""

    def send_nowait(self, access_id: int, frame: Frame) -> bool: ...


@dataclass(frozen=True, slots=True)
class PresenceAnswer:
    """What the location service says about one uid."""

    known: bool
    """Whether the uid exists (``False``: the sender gets ``UNKNOWN_RECEIVER``)."""
    devices: tuple[DeviceLocation, ...] = ()
    """Its devices online now."""


class NoticeStream(Protocol):
    """Online and offline notices for the router: an async iterator ended by :meth:`aclose`."""

    def __aiter__(self) -> AsyncIterator[Notice]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class PresenceSource(Protocol):
    """The router's view of the location service."""

    def lookup_now(self, uids: Sequence[str]) -> Mapping[str, PresenceAnswer] | None:
        """Answers without waiting, or ``None`` when the answer needs I/O (then :meth:`lookup` is used)."""
        ...

    async def lookup(self, uids: Sequence[str]) -> Mapping[str, PresenceAnswer]:
        """Answers for ``uids``; a uid left out stays unanswered (its sender gets ``BACKEND_TIMEOUT``)."""
        ...

    def subscribe(self, subscriber: str) -> NoticeStream:
        """Start hearing online/offline notices of every user (any network)."""
        ...


class UserDirectory(Protocol):
    """Anything that knows which uids exist (the auth service's ``UserStore`` fits)."""

    async def get_user(self, uid: str) -> object | None: ...


# -- presence: the in-process location service ---------------------------------------------------------------


class LocationPresence:
    """A :class:`PresenceSource` on an in-process :class:`~imsdk_server.location.LocationService`.

    Online devices come from the location service. Without ``users`` every uid counts as known; with a
    :class:`UserDirectory`, a uid is known once the directory has it. Existing uids are remembered (up to
    ``known_cache`` of them), so after the first message to a user its look-ups need no I/O; unknown uids are
    asked again every time (they may register).
    """

    def __init__(
        self, location: LocationService, *, users: UserDirectory | None = None, known_cache: int = 100_000
    ) -> None:
        self.location = location
        self._users = users
        self._known: OrderedDict[str, None] = OrderedDict()
        self._known_cache = known_cache

    def _devices(self, uid: str) -> tuple[DeviceLocation, ...]:
        return tuple(DeviceLocation(p.uid, p.device, p.server) for p in self.location.devices(uid))

    def lookup_now(self, uids: Sequence[str]) -> Mapping[str, PresenceAnswer] | None:
        if self._users is not None and any(uid not in self._known for uid in uids):
            return None
        return {uid: PresenceAnswer(True, self._devices(uid)) for uid in uids}

    async def lookup(self, uids: Sequence[str]) -> Mapping[str, PresenceAnswer]:
        out: dict[str, PresenceAnswer] = {}
        for uid in uids:
            known = True
            if self._users is not None and uid not in self._known:
                known = await self._users.get_user(uid) is not None
                if known:
                    self._known[uid] = None
                    while len(self._known) > self._known_cache:
                        self._known.popitem(last=False)
            out[uid] = PresenceAnswer(known, self._devices(uid) if known else ())
        return out

    def subscribe(self, subscriber: str) -> NoticeStream:
        return self.location.subscribe(subscriber)


# -- downstream: links, or in-process access servers ---------------------------------------------------------


class LinkDownstream:
    """A :class:`Downstream` over a :class:`~imsdk_server.links.LinkHub`: the frame goes on the link to the
    access server whose server id is ``access_id`` (the links raise ``LinkNotReady``/``LinkClosed`` when it
    has none that takes traffic)."""

    def __init__(self, hub: LinkHub, *, role: int = ACCESS_ROLE) -> None:
        self.hub = hub
        self.role = role

    async def send(self, access_id: int, frame: Frame) -> None:
        await self.hub.send_to(self.role, access_id, frame)

    def send_nowait(self, access_id: int, frame: Frame) -> bool:
        """Queue ``frame`` on the link without waiting; ``False`` when its send buffer is full."""
        link = self.hub.link_to(self.role, access_id)
        if link is None:
            raise LinkNotReady(f"no link to server {access_id} (role {self.role})")
        try:
            link.send_nowait(frame)
        except LinkBusy:
            return False
        return True


Deliver = Callable[[Frame], object]
"""Hands one frame to an in-process access server (e.g. ``AccessServer.deliver``); may be a coroutine."""


class LocalDownstream:
    """A :class:`Downstream` to access servers in the same process: ``access_id`` → a deliver function."""

    def __init__(self, targets: Mapping[int, Deliver] | None = None) -> None:
        self._targets: dict[int, Deliver] = dict(targets or {})

    def attach(self, access_id: int, deliver: Deliver) -> None:
        self._targets[access_id] = deliver

    def detach(self, access_id: int) -> None:
        self._targets.pop(access_id, None)

    async def send(self, access_id: int, frame: Frame) -> None:
        deliver = self._targets.get(access_id)
        if deliver is None:
            raise DownstreamUnavailable(f"no access server {access_id} in this process")
        result = deliver(frame)
        if inspect.isawaitable(result):
            await result


# -- the service ---------------------------------------------------------------------------------------------


class _Outbox:
    __slots__ = ("frames", "sending", "wake")

    def __init__(self) -> None:
        self.frames: deque[Frame] = deque()
        self.wake = anyio.Event()
        self.sending = False


class RouterService:
    """Runs a :class:`~imsdk_server.routing.RouterCore` against a store, a presence source and the access
    servers. Start :meth:`run` in a task group (``await tg.start(service.run)``); feed upstream frames to
    :meth:`frame_received` (or give :meth:`on_link_frame` to a link hub).

    ``store`` should be set up already (:meth:`~imsdk_server.routing.MessageStore.setup`). ``clock`` gives
    wall-clock seconds, used only to stamp new messages; ``monotonic`` gives the seconds every deadline is
    measured on (default: the event loop's clock, which the timer sleeps on; a wall clock stepped backwards
    or forwards must not stall or fire a presence timeout). ``max_batch`` and ``max_delay`` configure the
    group-commit writer; ``outbox_limit`` bounds the frames queued for one access server (beyond it frames
    are dropped and counted: pushes stay pending, senders resend).

    ``media`` is the :class:`~imsdk_server.media.MediaCatalog` image and voice messages are checked against
    before they are stored or forwarded: a reference to a blob that does not exist is refused
    (``NOT_FOUND``), one whose type, size or dimensions are not the blob's too (``MALFORMED_BODY``), and a
    catalog that cannot answer makes the message ``STORAGE_UNAVAILABLE`` (the client resends). Without one
    the references are not checked.
    """

    def __init__(
        self,
        config: RouterConfig,
        store: MessageStore,
        presence: PresenceSource,
        downstream: Downstream,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = anyio.current_time,
        max_batch: int = 500,
        max_delay: float = 0.002,
        outbox_limit: int = 100_000,
        retry_interval: float = 1.0,
        media: MediaCatalog | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics if metrics is not None else Metrics()
        self.store = store
        self.presence = presence
        self.downstream = downstream
        self.media = media
        self.core = RouterCore(config, metrics=self.metrics, verify_media=media is not None)
        self.writer = GroupCommitWriter(store, max_batch=max_batch, max_delay=max_delay, metrics=self.metrics)
        self._clock = clock
        self._monotonic = monotonic
        self._now = monotonic
        self._nowait = downstream.send_nowait if isinstance(downstream, _NowaitDownstream) else None
        self._outbox_limit = outbox_limit
        self._retry = retry_interval
        self._tg: TaskGroup | None = None
        self._outboxes: dict[int, _Outbox] = {}
        self._queries: list[QueryPresence] = []
        self._query_wake = anyio.Event()
        self._acks: dict[tuple[str, str, str], int] = {}
        self._ack_wake = anyio.Event()
        self._acks_writing = False
        self._loads = 0
        self._media_checks = 0
        self._timer_wake = anyio.Event()
        self._armed = math.inf
        m = self.metrics.child("routing")
        self._m = m
        self._m_store_latency = m.histogram("store_latency_seconds")
        self._m_undeliverable = m.counter("undeliverable_total")
        self._m_outbox_dropped = m.counter("outbox_dropped_total")
        self._m_presence_errors = m.counter("presence_errors_total")
        self._m_ack_errors = m.counter("ack_errors_total")
        self._m_notices = m.counter("online_notices_total")
        self._m_overflows = m.counter("notice_overflows_total")
        self._m_internal = m.counter("internal_errors_total")
        self._m_media_errors = m.counter("media_check_errors_total")
        m.gauge("outbox_frames", lambda: float(sum(len(b.frames) for b in self._outboxes.values())))
        m.gauge("writer_queue", lambda: float(self.writer.queued))

    # -- running ---------------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._tg is not None

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; ``task_status.started()`` once online notices are subscribed."""
        self._now = self._monotonic
        if self._now is anyio.current_time:
            # anyio.current_time on asyncio is the running loop's time(), reached through two calls: bind
            # the loop's method once (the same clock; several calls per message add up).
            with contextlib.suppress(RuntimeError):  # no asyncio loop (another backend): keep anyio's clock
                self._now = asyncio.get_running_loop().time
        notices = self.presence.subscribe(f"router-{self.config.server_id}")
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self.writer.run)
                tg.start_soon(self._timer_loop)
                tg.start_soon(self._presence_loop)
                tg.start_soon(self._ack_loop)
                tg.start_soon(self._notice_loop, notices)
                task_status.started()
        finally:
            self._tg = None
            with anyio.CancelScope(shield=True):
                await notices.aclose()

    @property
    def idle(self) -> bool:
        """Nothing in flight: no message waiting for presence or the store, no store read, no frame or ack
        waiting to go out."""
        return (
            self.core.inflight == 0
            and self._loads == 0
            and self._media_checks == 0
            and self.writer.queued == 0
            and not self._acks
            and not self._acks_writing
            and all(not b.frames and not b.sending for b in self._outboxes.values())
        )

    async def wait_idle(self) -> None:
        """Wait until :attr:`idle` (the drain of a deregistration; bound it with a cancel scope). Polls: it
        runs once per shutdown, and idleness has many sources."""
        while True:
            if self.idle:
                return
            await anyio.sleep(0.005)

    # -- inputs ----------------------------------------------------------------------------------------------

    def frame_received(self, frame: Frame) -> None:
        """An upstream frame from an access server (stamped with the sender and ``access_id``)."""
        if self._tg is None:
            raise RuntimeError("the router service is not running")
        body = frame.raw_body if frame.codec is Codec.PROTOBUF else frame.to_codec(Codec.PROTOBUF).raw_body
        self._execute(self.core.frame_received(frame.header, body, self._now(), wall=self._clock()))

    def on_link_frame(self, link: Any, frame: Frame) -> None:
        """A :class:`~imsdk_server.links.LinkHub` frame handler (a plain function: handled inside the read).
        An access server may only speak for itself: a frame whose ``access_id`` is not its link peer's
        server id is dropped (``FORGED_SENDER``)."""
        peer = getattr(link, "peer", None)
        if peer is not None and frame.header.access_id != peer.server_id:
            self._m.counter("errors_total", code=ErrorCode.FORGED_SENDER.name).inc()
            return
        self.frame_received(frame)

    def _notice(self, notice: Notice) -> None:
        now = self._now()
        core = self.core
        if isinstance(notice, BatchNotice):
            for item in notice.items:
                self._notice(item)
        elif isinstance(notice, ServerDownNotice):
            for uid, device in notice.devices:
                core.device_offline(uid, device, now)
        elif isinstance(notice, DeviceNotice):
            self._m_notices.inc()
            if notice.kind in (NoticeKind.ONLINE, NoticeKind.MOVED) and notice.presence is not None:
                self._execute(core.device_online(notice.uid, notice.device, notice.presence.server, now))
            elif notice.kind is NoticeKind.OFFLINE:
                core.device_offline(notice.uid, notice.device, now)

    # -- executing actions -----------------------------------------------------------------------------------

    def _execute(self, actions: list[Action]) -> None:
        queries: list[QueryPresence] | None = None
        for action in actions:
            kind = type(action)
            if kind is SendFrame:
                self._send(action)  # type: ignore[arg-type]
            elif kind is QueryPresence:
                if queries is None:
                    queries = []
                queries.append(action)  # type: ignore[arg-type]
            elif isinstance(action, AppendMessage):
                self._append(action)
            elif isinstance(action, CheckMedia):
                assert self._tg is not None
                self._media_checks += 1
                self._tg.start_soon(self._check_media, action)
            elif isinstance(action, LoadPending | LoadRange):
                assert self._tg is not None
                self._loads += 1
                self._tg.start_soon(self._load, action)
            elif isinstance(action, StoreAck):
                key = (action.uid, action.device, action.conversation)
                if action.up_to_seq > self._acks.get(key, 0):
                    self._acks[key] = action.up_to_seq
                    self._ack_wake.set()
        if queries is not None:
            answers = self.presence.lookup_now([q.uid for q in queries])
            if answers is None:
                self._queries += queries
                self._query_wake.set()
            else:
                self._answer(queries, answers)
            # Only a new presence query brings the core's deadline closer (answers and commits move
            # it later; the timer re-arms itself when it wakes early): only then may the timer need waking.
            deadline = self.core.next_deadline()
            if deadline is not None and deadline < self._armed:
                self._timer_wake.set()

    def _answer(self, queries: Sequence[QueryPresence], answers: Mapping[str, PresenceAnswer]) -> None:
        now = self._now()
        for query in queries:
            answer = answers.get(query.uid)
            if answer is not None:
                self._execute(self.core.presence_answered(query.token, answer.known, answer.devices, now))

    def _send(self, action: SendFrame) -> None:
        access_id = action.access_id
        box = self._outboxes.get(access_id)
        if box is None:
            assert self._tg is not None
            box = self._outboxes[access_id] = _Outbox()
            self._tg.start_soon(self._outbox_loop, access_id, box)
        frame = Frame(action.header, Codec.PROTOBUF, action.body)
        nowait = self._nowait
        if nowait is not None and not box.frames and not box.sending:
            # Nothing of this access server's is waiting: hand the frame over at once, no task switch.
            try:
                if nowait(access_id, frame):
                    return
            except Exception as exc:  # a link that is gone or refuses: count, go on
                self._m_undeliverable.inc()
                log.debug("router: access server %d refused a frame: %r", access_id, exc)
                return
        if len(box.frames) >= self._outbox_limit:
            self._m_outbox_dropped.inc()
            return
        box.frames.append(frame)
        box.wake.set()

    def _append(self, action: AppendMessage) -> None:
        token = action.token
        started = time.perf_counter()

        def done(result: AppendResult | Exception) -> None:
            self._m_store_latency.observe(time.perf_counter() - started)
            now = self._now()
            try:
                if isinstance(result, AppendResult):
                    self._execute(self.core.append_committed(token, result, now))
                else:
                    code = result.code if isinstance(result, CodedError) else ErrorCode.INTERNAL
                    self._execute(self.core.append_failed(token, code, now))
            except Exception:  # never let one message take the writer down
                self._m_internal.inc()
                log.exception("router: handling the commit of token %d failed", token)

        try:
            self.writer.submit(action.message, done)
        except MessageStoreError as exc:
            self._execute(self.core.append_failed(token, exc.code, self._now()))

    # -- tasks -----------------------------------------------------------------------------------------------

    async def _outbox_loop(self, access_id: int, box: _Outbox) -> None:
        frames = box.frames
        while True:
            while frames:
                box.sending = True
                try:
                    await self.downstream.send(access_id, frames.popleft())
                except Exception as exc:  # a link that is gone or refuses: count, go on
                    self._m_undeliverable.inc()
                    log.debug("router: access server %d refused a frame: %r", access_id, exc)
                finally:
                    box.sending = False
            box.wake = anyio.Event()
            if not frames:
                await box.wake.wait()

    async def _timer_loop(self) -> None:
        core = self.core
        while True:
            deadline = core.next_deadline()
            now = self._now()
            if deadline is not None and deadline <= now:
                self._execute(core.handle_timer(now))
                continue
            self._timer_wake = anyio.Event()
            self._armed = math.inf if deadline is None else deadline
            with anyio.move_on_after(self._armed - now):
                await self._timer_wake.wait()

    async def _presence_loop(self) -> None:
        while True:
            await self._query_wake.wait()
            self._query_wake = anyio.Event()
            while self._queries:
                batch, self._queries = self._queries[:_PRESENCE_CHUNK], self._queries[_PRESENCE_CHUNK:]
                try:
                    answers = await self.presence.lookup(list(dict.fromkeys(q.uid for q in batch)))
                except Exception as exc:  # unanswered queries time out in the core: BACKEND_TIMEOUT
                    self._m_presence_errors.inc()
                    log.warning("router: presence look-up failed: %r", exc)
                    continue
                self._answer(batch, answers)

    async def _load(self, action: LoadPending | LoadRange) -> None:
        try:
            try:
                if isinstance(action, LoadPending):
                    records = await self.store.pending(action.uid, action.device, action.after, action.limit)
                else:
                    records = await self.store.pull(
                        action.conversation, action.from_seq, action.to_seq, action.limit
                    )
            except _STORE_ERRORS as exc:
                self._execute(self.core.load_failed(action.token, exc.code, self._now()))
            else:
                self._execute(self.core.records_loaded(action.token, records, self._now()))
        finally:
            self._loads -= 1

    async def _check_media(self, action: CheckMedia) -> None:
        catalog = self.media
        assert catalog is not None  # the core asks only when it was given one
        try:
            try:
                info = await catalog.lookup(action.media_id)
            except Exception as exc:  # the catalog cannot tell: refuse, retryable; never store unverified
                self._m_media_errors.inc()
                code = exc.code if isinstance(exc, MediaError) else ErrorCode.STORAGE_UNAVAILABLE
                if not isinstance(exc, MediaError):
                    log.warning("router: media look-up failed: %r", exc)
                outcome = self.core.media_check_failed(action.token, action.media_id, code, self._now())
            else:
                outcome = self.core.media_checked(action.token, action.media_id, info, self._now())
            self._execute(outcome)
        finally:
            self._media_checks -= 1

    async def _ack_loop(self) -> None:
        while True:
            await self._ack_wake.wait()
            self._ack_wake = anyio.Event()
            batch, self._acks = self._acks, {}
            self._acks_writing = True
            failed = False
            try:
                # every ack that came in since the last write, in one transaction
                await self.store.ack_many([(*key, seq) for key, seq in batch.items()])
            except _STORE_ERRORS:
                self._m_ack_errors.inc()
                failed = True
                for key, seq in batch.items():
                    if seq > self._acks.get(key, 0):
                        self._acks[key] = seq
            finally:
                self._acks_writing = False
            if failed:  # keep what failed, try again later (an ack only ever grows)
                await anyio.sleep(self._retry)
                self._ack_wake.set()

    async def _notice_loop(self, notices: NoticeStream) -> None:
        name = f"router-{self.config.server_id}"
        while True:
            try:
                async for notice in notices:
                    try:
                        self._notice(notice)
                    except Exception:
                        self._m_internal.inc()
                        log.exception("router: handling notice %r failed", notice)
            except SubscriberOverflow:
                # We fell behind; missed online notices only cost catch-ups the clients pull themselves.
                self._m_overflows.inc()
            await notices.aclose()
            await anyio.sleep(self._retry)
            notices = self.presence.subscribe(name)


# -- the server: links, registry, lifecycle ------------------------------------------------------------------


class RouterServer:
    """One router process: a :class:`RouterService` behind a :class:`~imsdk_server.links.LinkHub`, listed in
    the registry.

    :meth:`serve` listens for links from access servers, registers role ``"router"`` with
    ``config.server_id`` (state ``REGISTERED``), starts the service, says ready on every link and sets the
    entry ``READY``. :meth:`stop` (or cancelling) shuts down in the lifecycle's order: the entry goes
    ``NOT_READY`` and is deregistered, every link gets not-ready, the router waits until every access server
    acked (everything it sent has been handled) and until nothing is in flight (commits answered, pushes
    handed to the links), then closes the links.
    """

    def __init__(
        self,
        config: RouterConfig,
        store: MessageStore,
        presence: PresenceSource,
        *,
        registry: Registry | None = None,
        domain: str = "default",
        name: str = "",
        host: str = "127.0.0.1",
        port: int = 0,
        link_config: LinkConfig | None = None,
        ssl_context: ssl.SSLContext | None = None,
        metrics: Metrics | None = None,
        drain_timeout: float = 10.0,
        **service_options: Any,
    ) -> None:
        self.config = config
        self.metrics = metrics if metrics is not None else Metrics()
        self.registry = registry
        self.domain = domain
        self.name = name or f"router-{config.server_id}"
        self.host = host
        self.port = port
        self.drain_timeout = drain_timeout
        identity = LinkIdentity(
            ROUTER_ROLE, config.server_id, self.name, domain, bizs=(int(Biz.CHAT), int(Biz.SYNC))
        )
        self.service: RouterService
        self.hub = LinkHub(
            identity,
            config=link_config,
            handler=self._on_frame,
            metrics=self.metrics,
            ssl_context=ssl_context,
            ready=False,
        )
        self.service = RouterService(
            config, store, presence, LinkDownstream(self.hub), metrics=self.metrics, **service_options
        )
        self.info: ServerInfo | None = None
        self.address: tuple[str, int] | None = None
        self.drain_report: DrainReport | None = None
        """How the last shutdown's drain went (``None`` until :meth:`serve` has stopped)."""
        self._stop = anyio.Event()
        self._m_registry_errors = self.metrics.child("routing").counter("registry_errors_total")

    def _on_frame(self, link: Any, frame: Frame) -> None:
        self.service.on_link_frame(link, frame)

    def stop(self) -> None:
        """Begin the orderly shutdown; :meth:`serve` returns when it is done."""
        self._stop.set()

    async def serve(self, *, task_status: TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run until :meth:`stop`; reports the link address to ``task_status`` once ``READY``."""
        async with self.hub:
            self.address = await self.hub.listen(self.host, self.port)
            await self._register()
            async with anyio.create_task_group() as tg:
                await tg.start(self.service.run)
                self.hub.mark_ready()
                await self._set_state(ServerState.READY)
                task_status.started(self.address)
                try:
                    await self._stop.wait()
                finally:
                    with anyio.CancelScope(shield=True):
                        await self._shutdown()
                    tg.cancel_scope.cancel()

    async def _register(self) -> None:
        if self.registry is None:
            return
        assert self.address is not None
        self.info = ServerInfo(
            role="router",
            server_id=self.config.server_id,
            name=self.name,
            domain=self.domain,
            host=self.address[0],
            port=self.address[1],
        )
        await self.registry.register(self.info)

    async def _set_state(self, state: ServerState) -> None:
        if self.registry is None or self.info is None:
            return
        try:
            self.info = await self.registry.set_state(self.info.key, state)
        except RegistryError as exc:
            self._m_registry_errors.inc()
            log.warning("router: registry state %s not set: %r", state.value, exc)

    async def _shutdown(self) -> None:
        """deregister → not-ready → drain → stop: the entry goes ``NOT_READY``, then
        :meth:`LinkHub.deregister <imsdk_server.links.LinkHub.deregister>` removes it, drains every link and
        waits for the service to go idle; its report is kept in :attr:`drain_report`."""
        with anyio.move_on_after(self.drain_timeout):
            await self._set_state(ServerState.NOT_READY)
        registry, key = (self.registry, self.info.key) if self.info is not None else (None, None)
        report = await self.hub.deregister(
            registry, key=key, idle=self.service.wait_idle, drain_timeout=self.drain_timeout
        )
        if report.registry_error:
            self._m_registry_errors.inc()
        self.drain_report = report
