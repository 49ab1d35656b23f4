"""The client side of presence over a link: what a business server embeds to query and subscribe.

:class:`PresenceClient` wraps one ready :class:`~imsdk_server.links.Link` to a location server. Requests are
numbered by the header ``seq`` and matched to their responses by it; every request has a timeout. Frames
arrive through the business server's own hub handler: give it :meth:`PresenceClient.on_frame` (or call
:meth:`PresenceClient.feed` from your handler for ``PRESENCE`` frames).

Errors (all :class:`~imsdk_server.location.LocationError`, each carrying its wire code)::

    LocationError
    ├── PresenceRequestFailed   the server's code   the location server refused the request
    ├── PresenceTimeout         BACKEND_TIMEOUT     no answer within the timeout
    ├── PresenceUnavailable     BACKEND_NOT_READY   the link is not ready, or closed (retry later)
    └── SubscriberOverflow      SLOW_CONSUMER       a subscription fell behind (here or there); it ended
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from imsdk_proto import Frame, Header
from imsdk_proto.codes import Biz, ErrorCode, PresenceFunc
from imsdk_proto.errors import ProtocolError
from imsdk_proto.messages import (
    ErrorReport,
    PresenceEvent,
    PresenceEventKind,
    PresenceQuery,
    PresenceReply,
    PresenceSubscribe,
    PresenceUnsubscribe,
)
from imsdk_server.links import Link, LinkClosed, LinkNotReady
from imsdk_server.location._core import CHAT, NETWORK_CLASSES, NetworkClass, NoticeKind, Presence
from imsdk_server.location._errors import InvalidPresenceEvent, LocationError, SubscriberOverflow
from imsdk_server.location._link import classes_to_wire, presence_from_wire
from imsdk_server.metrics import Metrics

__all__ = [
    "PresenceClient",
    "PresenceNotice",
    "PresenceRequestFailed",
    "PresenceSubscription",
    "PresenceTimeout",
    "PresenceUnavailable",
]

_PRESENCE = int(Biz.PRESENCE)
_K = PresenceEventKind


class PresenceRequestFailed(LocationError):
    """The location server answered a request with an error; :attr:`code` is its code."""


class PresenceTimeout(LocationError):
    """The location server did not answer in time."""

    code = ErrorCode.BACKEND_TIMEOUT


class PresenceUnavailable(LocationError):
    """The link to the location server is not ready or has closed."""

    code = ErrorCode.BACKEND_NOT_READY


@dataclass(frozen=True, slots=True)
class PresenceNotice:
    """One notice of a subscription, as it arrived over the link.

    ``kind`` is ``ONLINE``, ``MOVED``, ``NETWORK_CHANGED``, ``OFFLINE`` or ``SERVER_DOWN`` (a ``BATCH`` of the
    location server arrives as its items, which share :attr:`number`).
    """

    kind: NoticeKind
    at: float
    """Wall-clock seconds when the location server sent it."""
    number: int
    """The notice's number within its subscription (1, 2, …); the items of one batch share it."""
    uid: str = ""
    device: str = ""
    presence: Presence | None = None
    """Where the device is now (session 0: not carried); ``None`` when it is gone, or for ``SERVER_DOWN``."""
    server: int = 0
    """``SERVER_DOWN``: the access server that is down; ``MOVED``: the one the device left; ``OFFLINE``: the
    one it was (or still is, for reason ``network``) on."""
    reason: str = ""
    """For ``OFFLINE``: ``disconnected``, or ``network`` (connected, but on a network outside the filter)."""


def _notice(event: PresenceEvent, number: int, classes: frozenset[NetworkClass]) -> PresenceNotice:
    at = event.time_ms / 1000.0
    kind = event.kind
    if kind == _K.PRESENCE_EVENT_KIND_ACCESS_DOWN:
        return PresenceNotice(NoticeKind.SERVER_DOWN, at, number, server=event.access_id)
    if not event.HasField("presence"):
        raise InvalidPresenceEvent("a device event without a presence")
    p = presence_from_wire(event.presence)
    if kind == _K.PRESENCE_EVENT_KIND_ONLINE:
        if event.access_id and event.access_id != p.server:
            return PresenceNotice(NoticeKind.MOVED, at, number, p.uid, p.device, p, event.access_id)
        return PresenceNotice(NoticeKind.ONLINE, at, number, p.uid, p.device, p)
    if kind == _K.PRESENCE_EVENT_KIND_NETWORK_CHANGED:
        return PresenceNotice(NoticeKind.NETWORK_CHANGED, at, number, p.uid, p.device, p)
    if kind == _K.PRESENCE_EVENT_KIND_OFFLINE:
        # Gone devices were available, so their last network is inside the filter; a device still connected
        # but outside the filter is not.
        if NETWORK_CLASSES[p.network] in classes:
            return PresenceNotice(
                NoticeKind.OFFLINE, at, number, p.uid, p.device, None, p.server, "disconnected"
            )
        return PresenceNotice(NoticeKind.OFFLINE, at, number, p.uid, p.device, p, p.server, "network")
    raise InvalidPresenceEvent(f"unknown presence event kind {kind}")


class _Pending:
    __slots__ = ("done", "frame")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.frame: Frame | None = None


class PresenceSubscription:
    """The notices of one subscription: an async iterator of :class:`PresenceNotice`.

    Iteration ends normally after :meth:`aclose`; it raises :class:`PresenceUnavailable` when the link
    closed, :class:`SubscriberOverflow` when the subscription fell behind, and
    :class:`PresenceRequestFailed` when the location server ended it for another reason (it stopped, or
    another subscription took its name).
    """

    def __init__(
        self,
        client: PresenceClient,
        name: str,
        seq: int,
        classes: frozenset[NetworkClass],
        uids: frozenset[str] | None,
        buffer: int,
    ) -> None:
        self.client = client
        self.name = name
        self.seq = seq
        self.classes = classes
        self.uids = uids
        send, receive = anyio.create_memory_object_stream[PresenceNotice](buffer)
        self._send: MemoryObjectSendStream[PresenceNotice] = send
        self._receive: MemoryObjectReceiveStream[PresenceNotice] = receive
        self._error: LocationError | None = None
        self._ended = False
        self.closed = False

    def _offer(self, notice: PresenceNotice) -> None:
        if self._ended:
            return
        try:
            self._send.send_nowait(notice)
        except anyio.WouldBlock:
            self._fail(SubscriberOverflow(f"subscription {self.name!r} fell behind and was dropped"))
            self.client._forget(self, tell_server=True)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    def _fail(self, error: LocationError | None) -> None:
        """End iteration: with ``error`` once the buffered notices are read, or normally for ``None``."""
        if not self._ended:
            self._ended = True
            self._error = error
        self._send.close()

    def pending(self) -> int:
        """Notices buffered and not yet read."""
        return self._receive.statistics().current_buffer_used

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> PresenceNotice:
        try:
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            if self._error is not None:
                raise self._error from None
            raise StopAsyncIteration from None

    async def receive(self) -> PresenceNotice:
        """The next notice (raises :class:`StopAsyncIteration` once the subscription ended normally)."""
        return await self.__anext__()

    async def aclose(self) -> None:
        """End the subscription: tell the location server (best effort) and stop iteration."""
        if self.closed:
            return
        self.closed = True
        self._fail(None)
        self.client._forget(self, tell_server=False)
        try:
            await self.client._request(
                Header(_PRESENCE, PresenceFunc.UNSUBSCRIBE), PresenceUnsubscribe(subscriber=self.name)
            )
        except LocationError:
            pass  # the link is gone (its subscriptions went with it) or the server already ended it

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class PresenceClient:
    """Presence queries and subscriptions over one link to a location server.

    Use it as an async context manager (it watches the link, so that a closing link fails waiting requests
    and ends subscriptions at once)::

        async with PresenceClient(link, name="voip-1") as presence:
            where = await presence.query(["alice", "bob"], VOIP)
            async with await presence.subscribe(VOIP) as notices:
                async for notice in notices: ...
    """

    def __init__(
        self,
        link: Link,
        *,
        name: str = "presence-client",
        timeout: float = 5.0,
        buffer: int = 1024,
        metrics: Metrics | None = None,
    ) -> None:
        if timeout <= 0 or buffer < 1:
            raise InvalidPresenceEvent("PresenceClient needs a positive timeout and buffer")
        self.link = link
        self.name = name
        self.timeout = timeout
        self.buffer = buffer
        self.metrics = (metrics if metrics is not None else Metrics()).child("presence_client")
        self._seq = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._subs: dict[int, PresenceSubscription] = {}
        self._tg: TaskGroup | None = None
        self._closed = False
        self._m_requests = self.metrics.counter("requests")
        self._m_timeouts = self.metrics.counter("timeouts")
        self._m_notices = self.metrics.counter("notices")
        self._m_stray = self.metrics.counter("stray_frames")

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._watch)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        assert self._tg is not None
        self._shutdown(PresenceUnavailable("the presence client closed"))
        self._tg.cancel_scope.cancel()
        return await self._tg.__aexit__(exc_type, exc, tb)

    async def _watch(self) -> None:
        await self.link.wait_closed()
        self._shutdown(
            PresenceUnavailable(f"the link to the location server closed: {self.link.close_code!r}")
        )

    def _shutdown(self, error: LocationError) -> None:
        self._closed = True
        for pending in self._pending.values():
            pending.done.set()
        self._pending.clear()
        for sub in self._subs.values():
            sub._fail(error)
        self._subs.clear()

    @property
    def subscription_count(self) -> int:
        return len(self._subs)

    # -- frames ----------------------------------------------------------------------------------------------

    async def on_frame(self, link: Link, frame: Frame) -> None:
        """A hub handler: :meth:`feed` the frame (frames of other links and businesses are ignored)."""
        if link is self.link:
            self.feed(frame)

    def feed(self, frame: Frame) -> bool:
        """Take one frame from the link; ``False`` when it is not for this client."""
        header = frame.header
        if header.biz != _PRESENCE:
            return False
        if header.is_response:
            pending = self._pending.pop(header.seq, None)
            if pending is None:
                self._m_stray.inc()  # answered after its timeout
                return True
            pending.frame = frame
            pending.done.set()
            return True
        if header.func != PresenceFunc.EVENT:
            self._m_stray.inc()
            return True
        sub = self._subs.get(header.seq)
        if sub is None:
            self._m_stray.inc()  # events of a subscription we already ended
            return True
        if header.is_error:
            code = ErrorCode.from_wire(header.error)
            message = _error_message(frame)
            error: LocationError = (
                SubscriberOverflow(message)
                if code is ErrorCode.SLOW_CONSUMER
                else PresenceRequestFailed(message, code)
            )
            sub._fail(error)
            self._forget(sub, tell_server=False)
            return True
        try:
            notice = _notice(frame.body_as(PresenceEvent), header.msg_id, sub.classes)
        except (ProtocolError, LocationError):
            self._m_stray.inc()
            return True
        self._m_notices.inc()
        sub._offer(notice)
        return True

    # -- requests --------------------------------------------------------------------------------------------

    async def _request(self, header: Header, body: object) -> Frame:
        """Send a request and wait for its response; raise the typed error of an error response."""
        if self._closed or self._tg is None:
            raise PresenceUnavailable("use the PresenceClient as an async context manager, on an open link")
        seq = header.seq or next(self._seq)
        header.seq = seq
        pending = self._pending[seq] = _Pending()
        self._m_requests.inc()
        try:
            try:
                await self.link.send(Frame.build(header, body))  # type: ignore[arg-type]
            except (LinkClosed, LinkNotReady) as exc:
                raise PresenceUnavailable(
                    f"the link to the location server does not take requests: {exc}"
                ) from None
            with anyio.move_on_after(self.timeout):
                await pending.done.wait()
        finally:
            self._pending.pop(seq, None)
        frame = pending.frame
        if frame is None:
            if self._closed:
                raise PresenceUnavailable("the link to the location server closed")
            self._m_timeouts.inc()
            raise PresenceTimeout(f"no answer from the location server within {self.timeout} s")
        if frame.header.is_error:
            code = ErrorCode.from_wire(frame.header.error)
            raise PresenceRequestFailed(_error_message(frame), code)
        return frame

    async def query(
        self, uids: Iterable[str], classes: frozenset[NetworkClass] = CHAT
    ) -> dict[str, list[Presence]]:
        """Every connected device of each uid on a network of ``classes``; every uid asked is a key."""
        wanted = list(dict.fromkeys(uids))
        frame = await self._request(
            Header(_PRESENCE, PresenceFunc.QUERY),
            PresenceQuery(uids=wanted, networks=classes_to_wire(classes)),
        )
        try:
            reply = frame.body_as(PresenceReply)
            out: dict[str, list[Presence]] = {uid: [] for uid in wanted}
            for m in reply.devices:
                out.setdefault(m.uid, []).append(presence_from_wire(m))
        except (ProtocolError, InvalidPresenceEvent) as exc:
            raise PresenceRequestFailed(f"a malformed reply: {exc}", ErrorCode.MALFORMED_BODY) from None
        return out

    async def subscribe(
        self,
        classes: frozenset[NetworkClass] = CHAT,
        uids: Iterable[str] | None = None,
        *,
        buffer: int | None = None,
    ) -> PresenceSubscription:
        """Start hearing notices about ``uids`` (every user when ``None``) on networks of ``classes``.

        Returns once the location server has acknowledged; notices from then on arrive in order. A filter
        other than :data:`CHAT` also hears ``NETWORK_CHANGED`` between the classes it accepts.
        """
        seq = next(self._seq)
        name = f"{self.name}#{seq}"
        wanted = None if uids is None else frozenset(uids)
        sub = PresenceSubscription(self, name, seq, classes, wanted, buffer or self.buffer)
        self._subs[seq] = sub  # before the request: events may follow its ack at once
        body = PresenceSubscribe(
            uids=sorted(wanted or ()), networks=classes_to_wire(classes), subscriber=name
        )
        try:
            await self._request(Header(_PRESENCE, PresenceFunc.SUBSCRIBE, seq=seq), body)
        except BaseException:
            self._subs.pop(seq, None)
            sub._fail(None)
            raise
        return sub

    def _forget(self, sub: PresenceSubscription, *, tell_server: bool) -> None:
        if self._subs.get(sub.seq) is sub:
            del self._subs[sub.seq]
        if tell_server and self._tg is not None and not self._closed:
            self._tg.start_soon(self._unsubscribe_quietly, sub.name)

    async def _unsubscribe_quietly(self, name: str) -> None:
        try:
            await self._request(
                Header(_PRESENCE, PresenceFunc.UNSUBSCRIBE), PresenceUnsubscribe(subscriber=name)
            )
        except LocationError:
            pass


def _error_message(frame: Frame) -> str:
    try:
        return frame.body_as(ErrorReport).message or ErrorCode.from_wire(frame.header.error).doc
    except ProtocolError:
        return ErrorCode.from_wire(frame.header.error).doc
