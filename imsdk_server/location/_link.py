"""Presence over server links: the ``PRESENCE`` business of ``imsdk_proto`` served by a location server.

A business server (or a message router) dials the location server's :class:`~imsdk_server.links.LinkHub`
and, once the link is ready, sends:

* ``PRESENCE/QUERY`` (:class:`~imsdk_proto.messages.PresenceQuery`) → answered by ``PRESENCE/REPLY``
  (:class:`~imsdk_proto.messages.PresenceReply`, the ``RESPONSE`` flag, the request's ``seq`` and ``msg_id``);
* ``PRESENCE/SUBSCRIBE`` → acknowledged by an empty ``PRESENCE/SUBSCRIBE`` response; from then on the
  subscription's notices arrive as ``PRESENCE/EVENT`` frames whose header ``seq`` is the subscribe request's;
* ``PRESENCE/UNSUBSCRIBE`` → acknowledged by an empty ``PRESENCE/UNSUBSCRIBE`` response.

Bad requests are answered with an error response (``RESPONSE | ERROR``, the code in the header, an
``ErrorReport`` body) and the link stays up. A subscription ends when it is unsubscribed, when its link
closes, or when it falls behind (an ``EVENT`` frame with the ``ERROR`` flag and ``SLOW_CONSUMER`` tells
the peer).

:class:`PresenceLinkServer` is the frame handler to give the hub (:meth:`PresenceLinkServer.on_frame`); the
encoding helpers here are shared with the client side (:mod:`imsdk_server.location._client`). See the section
"Over a link" of ``docs/location.md``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import count
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from imsdk_proto import Frame, Header
from imsdk_proto.codes import Biz, ErrorCode, Flags, PresenceFunc
from imsdk_proto.errors import ProtocolError
from imsdk_proto.messages import (
    DevicePresence,
    ErrorReport,
    Platform,
    PresenceEvent,
    PresenceEventKind,
    PresenceQuery,
    PresenceReply,
    PresenceSubscribe,
    PresenceUnsubscribe,
)
from imsdk_server.links import Link, LinkBusy, LinkClosed, LinkNotReady
from imsdk_server.location._core import (
    CHAT,
    NETWORK_CLASSES,
    BatchNotice,
    DeviceNotice,
    NetworkClass,
    Notice,
    NoticeKind,
    Presence,
    ServerDownNotice,
)
from imsdk_server.location._errors import InvalidPresenceEvent, LocationError, SubscriberOverflow
from imsdk_server.location._events import network_from_wire, network_to_wire
from imsdk_server.location._service import LocationService, Subscriber
from imsdk_server.metrics import Counter, Metrics

__all__ = [
    "PresenceLinkConfig",
    "PresenceLinkServer",
    "classes_from_wire",
    "classes_to_wire",
    "presence_from_wire",
    "presence_to_wire",
]

log = logging.getLogger("imsdk_server.location")

_PRESENCE = int(Biz.PRESENCE)
_RESPONSE = Flags.RESPONSE
_ERROR_RESPONSE = Flags.RESPONSE | Flags.ERROR
_SEND_ERRORS = (LinkClosed, LinkNotReady)


# ------------------------------------------------------------------------------------------- wire mapping


def classes_from_wire(networks: Iterable[int]) -> frozenset[NetworkClass]:
    """The network classes a wire ``networks`` filter names: empty means every class (:data:`CHAT`).

    A filter is a set of *classes*: naming one network of a class (``4g``) names its whole class (``3g``,
    ``4g``, ``5g``). ``NETWORK_TYPE_UNSPECIFIED`` in a filter is refused (:class:`InvalidPresenceEvent`).
    """
    classes: set[NetworkClass] = set()
    for value in networks:
        if value == 0:
            raise InvalidPresenceEvent("a network filter cannot name NETWORK_TYPE_UNSPECIFIED")
        classes.add(NETWORK_CLASSES[network_from_wire(value)])
    return frozenset(classes) if classes else CHAT


def classes_to_wire(classes: frozenset[NetworkClass]) -> list[Any]:
    """The wire ``networks`` filter for ``classes``: every network of those classes (empty for all).

    The items are ``NetworkType`` numbers (typed ``Any`` because the generated stubs want the enum's own
    value type for a repeated enum field)."""
    if not classes:
        raise InvalidPresenceEvent("a network filter needs at least one class")
    if classes >= CHAT:
        return []
    return sorted(network_to_wire(net) for net, cls in NETWORK_CLASSES.items() if cls in classes)


def _platform_to_wire(name: str) -> int:
    if not name:
        return 0
    if name.startswith("platform-") and name[9:].isdigit():
        return int(name[9:])
    try:
        return Platform.Value("PLATFORM_" + name.upper())
    except ValueError:
        return 0


def _platform_from_wire(value: int) -> str:
    if value == 0:
        return ""
    try:
        return Platform.Name(value).removeprefix("PLATFORM_").lower()
    except ValueError:
        return f"platform-{value}"


def presence_to_wire(p: Presence, *, online: bool = True) -> DevicePresence:
    """A :class:`Presence` as the wire's ``DevicePresence`` (the session id does not travel)."""
    return DevicePresence(
        uid=p.uid,
        device=p.device,
        online=online,
        access_id=p.server,
        network=network_to_wire(p.network),  # type: ignore[arg-type]
        platform=_platform_to_wire(p.platform),  # type: ignore[arg-type]
        client_version=p.client_version,
        since_ms=round(p.since * 1000),
    )


def presence_from_wire(m: DevicePresence) -> Presence:
    """A wire ``DevicePresence`` as a :class:`Presence` (session 0: not carried on the wire)."""
    if not m.uid or not m.device:
        raise InvalidPresenceEvent("a device presence needs a uid and a device")
    return Presence(
        uid=m.uid,
        device=m.device,
        server=m.access_id,
        session=0,
        network=network_from_wire(m.network),
        platform=_platform_from_wire(m.platform),
        client_version=m.client_version,
        since=m.since_ms / 1000.0,
    )


def _device_event(n: DeviceNotice, time_ms: int) -> PresenceEvent:
    """One device notice as an ``EVENT`` body (see the mapping table in ``docs/location.md``)."""
    kind = n.kind
    if kind is NoticeKind.ONLINE:
        assert n.presence is not None
        return PresenceEvent(
            kind=PresenceEventKind.PRESENCE_EVENT_KIND_ONLINE,
            presence=presence_to_wire(n.presence),
            time_ms=time_ms,
        )
    if kind is NoticeKind.MOVED:
        assert n.presence is not None
        return PresenceEvent(
            kind=PresenceEventKind.PRESENCE_EVENT_KIND_ONLINE,
            presence=presence_to_wire(n.presence),
            access_id=n.previous.server if n.previous is not None else 0,
            time_ms=time_ms,
        )
    if kind is NoticeKind.NETWORK_CHANGED:
        assert n.presence is not None
        return PresenceEvent(
            kind=PresenceEventKind.PRESENCE_EVENT_KIND_NETWORK_CHANGED,
            presence=presence_to_wire(n.presence),
            time_ms=time_ms,
        )
    # OFFLINE: still connected on a network outside the filter (reason "network") carries that presence;
    # gone (reason "disconnected") carries the presence it had.
    shown = n.presence if n.presence is not None else n.previous
    assert shown is not None
    return PresenceEvent(
        kind=PresenceEventKind.PRESENCE_EVENT_KIND_OFFLINE,
        presence=presence_to_wire(shown, online=False),
        access_id=shown.server,
        time_ms=time_ms,
    )


def notice_events(notice: Notice, time_ms: int) -> list[PresenceEvent]:
    """The ``EVENT`` bodies one notice travels as: a batch as its items, a server-down as one event."""
    if isinstance(notice, ServerDownNotice):
        return [
            PresenceEvent(
                kind=PresenceEventKind.PRESENCE_EVENT_KIND_ACCESS_DOWN,
                access_id=notice.server,
                time_ms=time_ms,
            )
        ]
    if isinstance(notice, BatchNotice):
        return [_device_event(item, time_ms) for item in notice.items]
    return [_device_event(notice, time_ms)]


# ------------------------------------------------------------------------------------------- the server


@dataclass(frozen=True)
class PresenceLinkConfig:
    """Limits of the presence link service (one docstring per field)."""

    max_query_uids: int = 1000
    """Most uids one ``QUERY`` may name; more is answered with ``PAYLOAD_TOO_LARGE``."""

    max_subscribe_uids: int = 100_000
    """Most uids one ``SUBSCRIBE`` may name; more is answered with ``PAYLOAD_TOO_LARGE``."""

    max_subscriptions_per_link: int = 16
    """Open subscriptions one link may hold; one more is answered with ``TOO_MANY_SUBSCRIPTIONS``."""

    def __post_init__(self) -> None:
        for name in ("max_query_uids", "max_subscribe_uids", "max_subscriptions_per_link"):
            if getattr(self, name) < 1:
                raise InvalidPresenceEvent(f"PresenceLinkConfig.{name} must be at least 1")


class _RequestError(LocationError):
    """A request refused with a wire code (answered as an error response, never raised to the hub)."""


@dataclass(eq=False)
class _LinkSub:
    link: Link
    name: str
    seq: int
    subscriber: Subscriber
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    ended: bool = False


class PresenceLinkServer:
    """Serves presence queries and subscriptions to the peers of a :class:`~imsdk_server.links.LinkHub`.

    Give :meth:`on_frame` to the hub as its handler (or call it from your own handler for ``PRESENCE``
    frames, see :meth:`handles`), and run :meth:`run` in a task group: subscriptions forward notices from
    tasks in it. ``wall_clock`` stamps ``time_ms`` of events (Unix seconds).
    """

    def __init__(
        self,
        service: LocationService,
        *,
        config: PresenceLinkConfig | None = None,
        metrics: Metrics | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.service = service
        self.config = config or PresenceLinkConfig()
        m = (metrics if metrics is not None else service.metrics).child("link")
        self.metrics = m
        self._wall = wall_clock
        self._tg: TaskGroup | None = None
        self._subs: dict[Link, dict[str, _LinkSub]] = {}
        self._link_no: dict[Link, int] = {}
        self._numbers = count(1)
        self._m_queries = m.counter("queries")
        self._m_queried_uids = m.counter("queried_uids")
        self._m_events = m.counter("events_out")
        self._m_subscribed = m.counter("subscriptions_opened")
        self._m_gauge = m.gauge("subscriptions")
        self._m_ended: dict[str, Counter] = {}
        self._m_errors: dict[ErrorCode, Counter] = {}

    # -- running ---------------------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Host the subscriptions' tasks until cancelled; every subscription ends when this returns."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                task_status.started()
                await anyio.sleep_forever()
        finally:
            self._tg = None
            for subs in list(self._subs.values()):
                for sub in list(subs.values()):
                    self._end(sub, "stopped")
            self._subs.clear()
            self._link_no.clear()

    @property
    def subscription_count(self) -> int:
        """Open subscriptions over every link."""
        return sum(len(s) for s in self._subs.values())

    def subscriptions_of(self, link: Link) -> list[str]:
        """Names of the open subscriptions of one link."""
        return sorted(self._subs.get(link, {}))

    @property
    def links_watched(self) -> int:
        """Links with at least one open subscription (each has one task waiting for it to close)."""
        return len(self._subs)

    # -- frames ----------------------------------------------------------------------------------------------

    @staticmethod
    def handles(frame: Frame) -> bool:
        """Whether ``frame`` is for this service (``PRESENCE`` business, not a response)."""
        return frame.header.biz == _PRESENCE and not frame.header.is_response

    async def on_frame(self, link: Link, frame: Frame) -> None:
        """The hub's frame handler: answer one request. Never raises for bad input."""
        header = frame.header
        if header.biz != _PRESENCE:
            self._count_error(ErrorCode.NO_BACKEND)
            await self._reply_error(
                link, header, ErrorCode.NO_BACKEND, f"not a presence frame: biz {header.biz}"
            )
            return
        if header.is_response:
            self._count_error(ErrorCode.UNEXPECTED_MESSAGE)  # nothing to answer: never answer a response
            return
        try:
            func = header.func
            if func == PresenceFunc.QUERY:
                await self._query(link, header, frame.body_as(PresenceQuery))
            elif func == PresenceFunc.SUBSCRIBE:
                await self._subscribe(link, header, frame.body_as(PresenceSubscribe))
            elif func == PresenceFunc.UNSUBSCRIBE:
                await self._unsubscribe(link, header, frame.body_as(PresenceUnsubscribe))
            elif func in (PresenceFunc.REPLY, PresenceFunc.EVENT):
                raise _RequestError(
                    f"PRESENCE/{PresenceFunc(func).name} is not a request", ErrorCode.UNEXPECTED_MESSAGE
                )
            else:
                raise _RequestError(f"unknown presence function {func}", ErrorCode.UNKNOWN_CODE)
        except (ProtocolError, LocationError) as exc:
            code = exc.code
            self._count_error(code)
            await self._reply_error(link, header, code, str(exc))

    async def _query(self, link: Link, header: Header, q: PresenceQuery) -> None:
        uids = self._check_uids(q.uids, self.config.max_query_uids, "query")
        classes = classes_from_wire(q.networks)
        found = self.service.devices_many(uids)
        devices = [
            presence_to_wire(p)
            for uid in dict.fromkeys(uids)
            for p in found[uid]
            if NETWORK_CLASSES[p.network] in classes
        ]
        self._m_queries.inc()
        self._m_queried_uids.inc(len(uids))
        reply = Header(_PRESENCE, PresenceFunc.REPLY, seq=header.seq, msg_id=header.msg_id, flags=_RESPONSE)
        await self._send(link, Frame.build(reply, PresenceReply(devices=devices)))

    async def _subscribe(self, link: Link, header: Header, s: PresenceSubscribe) -> None:
        tg = self._tg
        if tg is None:
            raise _RequestError("the presence link service is not running", ErrorCode.BACKEND_NOT_READY)
        uids = self._check_uids(s.uids, self.config.max_subscribe_uids, "subscription") if s.uids else None
        classes = classes_from_wire(s.networks)
        name = s.subscriber or "link"
        subs = self._subs.get(link)
        if (subs is None or name not in subs) and len(subs or ()) >= self.config.max_subscriptions_per_link:
            raise _RequestError(
                f"a link may hold {self.config.max_subscriptions_per_link} subscriptions",
                ErrorCode.TOO_MANY_SUBSCRIPTIONS,
            )
        if not link.ready:
            return  # the peer is going away (not-ready) or gone: nothing to subscribe for
        if link not in self._link_no:
            self._link_no[link] = next(self._numbers)
        internal = f"link{self._link_no[link]}:{name}"
        # A filter that names networks cares about them: it hears NETWORK_CHANGED too.
        handle = self.service.subscribe(
            internal, uids=uids, classes=classes, network_changes=bool(s.networks)
        )
        if subs is None:
            subs = self._subs[link] = {}
            tg.start_soon(self._watch, link)
        old = subs.get(name)
        if old is not None:
            self._end(old, "replaced", notify=ErrorCode.SESSION_REPLACED)
        sub = subs[name] = _LinkSub(link, name, header.seq, handle)
        self._m_subscribed.inc()
        self._m_gauge.inc()
        ack = Header(_PRESENCE, PresenceFunc.SUBSCRIBE, seq=header.seq, msg_id=header.msg_id, flags=_RESPONSE)
        await self._send(link, Frame.build(ack))  # ahead of every event of the subscription
        tg.start_soon(self._pump, sub)

    async def _unsubscribe(self, link: Link, header: Header, u: PresenceUnsubscribe) -> None:
        if u.uids:
            raise _RequestError(
                "unsubscribing single uids is not supported: end the subscription and subscribe again",
                ErrorCode.UNEXPECTED_MESSAGE,
            )
        sub = self._subs.get(link, {}).get(u.subscriber or "link")
        if sub is None:
            raise _RequestError(f"no subscription {u.subscriber!r} on this link", ErrorCode.NOT_FOUND)
        self._end(sub, "unsubscribed")
        ack = Header(
            _PRESENCE, PresenceFunc.UNSUBSCRIBE, seq=header.seq, msg_id=header.msg_id, flags=_RESPONSE
        )
        await self._send(link, Frame.build(ack))

    @staticmethod
    def _check_uids(uids: Sequence[str], limit: int, what: str) -> list[str]:
        if len(uids) > limit:
            raise _RequestError(
                f"a {what} may name {limit} uids, not {len(uids)}", ErrorCode.PAYLOAD_TOO_LARGE
            )
        if not uids and what == "query":
            raise InvalidPresenceEvent("a query needs at least one uid")
        if not all(uids):
            raise InvalidPresenceEvent(f"a {what} cannot name an empty uid")
        return list(uids)

    # -- subscriptions ---------------------------------------------------------------------------------------

    async def _pump(self, sub: _LinkSub) -> None:
        """Forward one subscription's notices to its link until it ends."""
        link = sub.link
        number = 0
        with sub.scope:
            try:
                async for notice in sub.subscriber:
                    number += 1
                    time_ms = round(self._wall() * 1000)
                    header = Header(_PRESENCE, PresenceFunc.EVENT, seq=sub.seq, msg_id=number)
                    for event in notice_events(notice, time_ms):
                        await link.send(Frame.build(header, event))
                        self._m_events.inc()
            except SubscriberOverflow:
                self._end(sub, "overflow", notify=ErrorCode.SLOW_CONSUMER)
                return
            except _SEND_ERRORS:
                self._end(sub, "link_closed")
                return
        # The service stopped (or closed the subscription): tell the peer to subscribe again later.
        self._end(sub, "ended", notify=ErrorCode.SERVER_SHUTTING_DOWN)

    async def _watch(self, link: Link) -> None:
        """End every subscription of ``link`` once it has closed."""
        await link.wait_closed()
        for sub in list(self._subs.get(link, {}).values()):
            self._end(sub, "link_closed")
        self._subs.pop(link, None)
        self._link_no.pop(link, None)

    def _end(self, sub: _LinkSub, reason: str, *, notify: ErrorCode | None = None) -> None:
        """End one subscription (idempotent): unsubscribe from the service, stop its task, count why."""
        if sub.ended:
            return
        sub.ended = True
        subs = self._subs.get(sub.link)
        if subs is not None and subs.get(sub.name) is sub:
            del subs[sub.name]
        sub.subscriber.close()  # the service forgets it at once
        sub.scope.cancel()
        self._m_gauge.dec()
        counter = self._m_ended.get(reason)
        if counter is None:
            counter = self._m_ended[reason] = self.metrics.counter("subscriptions_ended", reason=reason)
        counter.inc()
        if notify is not None and sub.link.ready:
            header = Header(_PRESENCE, PresenceFunc.EVENT, seq=sub.seq, flags=Flags.ERROR, error=notify)
            report = ErrorReport(code=notify, message=f"subscription {sub.name!r} ended: {reason}")
            try:
                sub.link.send_nowait(Frame.build(header, report))
            except (*_SEND_ERRORS, LinkBusy):  # gone, or too slow to be told: its link is its problem
                log.info("presence link: could not tell subscriber %r that it ended (%s)", sub.name, reason)

    # -- sending ---------------------------------------------------------------------------------------------

    async def _send(self, link: Link, frame: Frame) -> None:
        try:
            await link.send(frame)
        except _SEND_ERRORS:
            self._count_error(ErrorCode.LINK_NOT_READY)

    async def _reply_error(self, link: Link, header: Header, code: ErrorCode, message: str) -> None:
        reply = Header(
            header.biz, header.func, seq=header.seq, msg_id=header.msg_id, flags=_ERROR_RESPONSE, error=code
        )
        await self._send(link, Frame.build(reply, ErrorReport(code=code, message=message[:200])))

    def _count_error(self, code: ErrorCode) -> None:
        c = self._m_errors.get(code)
        if c is None:
            c = self._m_errors[code] = self.metrics.counter("errors", code=code.name)
        c.inc()
