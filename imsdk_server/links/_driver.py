"""The asyncio driver of one link: bytes in → :class:`LinkCore`, the core's actions → bytes out.

Thin on purpose. A link is an :class:`asyncio.Protocol`, as the access server's client connections are:
bytes arrive in :meth:`Link.data_received` and go through the decoder and the core to the application's
handler at once, and frames queued by one turn of the event loop leave in one write at the end of it. Two
tasks per link run beside it: the timer (one ``CancelScope`` whose deadline is re-armed from
:meth:`LinkCore.next_deadline`) and the awaiter, which awaits the handlers that are coroutines while the
link reads nothing more. No task switch lies on the path of a frame whose handler is a plain function. All
protocol decisions live in the core.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, cast

import anyio

from imsdk_proto import Frame, FrameDecoder, Header, encode_frame
from imsdk_proto.codes import Biz, Codec, ErrorCode, Flags, LinkFunc
from imsdk_proto.errors import ProtocolError
from imsdk_proto.messages import (
    ErrorReport,
    LinkHeartbeat,
    LinkHello,
    LinkNotReady,
    LinkNotReadyAck,
    LinkProbe,
    LinkProbeAck,
    LinkReady,
)
from imsdk_server.links._core import (
    CloseLink,
    LinkAction,
    LinkCore,
    LinkIdentity,
    LinkState,
    SendControl,
    StateChanged,
)
from imsdk_server.links._detector import Health, LateAfterDown, PeerAlive, PeerDown, PeerSuspect
from imsdk_server.links._errors import LinkBusy, LinkClosed, LinkRejected
from imsdk_server.metrics import Counter, Metrics

__all__ = ["FrameHandler", "HealthCallback", "Link", "LinkMetrics", "StateCallback"]

log = logging.getLogger("imsdk_server.links")

FrameHandler = Callable[["Link", Frame], Awaitable[None] | None]
"""Receives every traffic frame of a link, in order; the next frame is read only after it returns.

A plain function runs inside the read (the fast path); an ``async`` one is awaited by the link's awaiter
task, and the link reads nothing more until it has finished."""
StateCallback = Callable[["Link", LinkState, LinkState], None]
"""Called with ``(link, old, new)`` on every state change."""
HealthCallback = Callable[["Link", Health], None]
"""Called with the failure detector's verdicts about the peer: ``SUSPECT`` (silent, being probed), ``ALIVE``
(heard again: jitter), ``DOWN`` (every probe timed out; the link then closes) or ``STOPPED`` (the link ended
for another reason: EOF, reset, a close, a deregistration). A location server feeds them to its jitter
recognition."""

_LINK = int(Biz.LINK)
_V2 = Codec.PROTOBUF
_ERROR = Flags.ERROR
_DONE_STATES = frozenset({LinkState.DRAINED, LinkState.FINISHED, LinkState.CLOSED})


def _biz_label(biz: int) -> str:
    try:
        return Biz(biz).name
    except ValueError:
        return str(biz)


class LinkMetrics:
    """The series every link of one server counts into (``links_*`` in the given registry)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.states = {s: metrics.gauge("by_state", state=s.value) for s in LinkState}
        self.probes_sent = metrics.counter("probes_sent_total")
        self.suspect = metrics.counter("peers_suspect_total")
        self.recovered = metrics.counter("peers_recovered_total")
        self.down = metrics.counter("peers_down_total")
        self.late = metrics.counter("late_after_down_total")
        self.handler_errors = metrics.counter("handler_errors_total")
        self.send_buffer = metrics.gauge("send_buffer_bytes")
        self.drain_seconds = metrics.histogram("drain_seconds")
        self._in: dict[int, Counter] = {}
        self._out: dict[int, Counter] = {}

    # Keyed by plain ints: a Biz member as a dict key is hashed by Enum.__hash__, a Python call per frame.

    def frame_in(self, biz: int) -> Counter:
        if type(biz) is not int:
            biz = int(biz)
        c = self._in.get(biz)
        if c is None:
            c = self._in[biz] = self.metrics.counter("frames_in_total", biz=_biz_label(biz))
        return c

    def frame_out(self, biz: int) -> Counter:
        if type(biz) is not int:
            biz = int(biz)
        c = self._out.get(biz)
        if c is None:
            c = self._out[biz] = self.metrics.counter("frames_out_total", biz=_biz_label(biz))
        return c

    def closed(self, code: ErrorCode) -> None:
        self.metrics.counter("closes_total", reason=code.name).inc()


def _discard(waiting: Awaitable[None] | None) -> None:
    """Drop an async handler's work that will never be awaited (the link closed first)."""
    if inspect.iscoroutine(waiting):
        waiting.close()


def _identity(hello: LinkHello) -> LinkIdentity:
    return LinkIdentity(
        hello.role, hello.server_id, hello.name, hello.domain, hello.version, tuple(hello.bizs)
    )


class Link(asyncio.Protocol):
    """One server-to-server link over one TCP (or TLS) connection.

    A :class:`~imsdk_server.links.LinkHub` makes links: it gives a fresh :class:`LinkCore` to each, hands
    the link to the event loop as the connection's protocol, and runs :meth:`run` in a task, which returns
    once the link has closed. Traffic goes out with :meth:`send` (waits for buffer room) or
    :meth:`send_nowait` (raises :class:`LinkBusy` when full); both raise :class:`LinkNotReady` /
    :class:`LinkClosed` when the link does not allow traffic, in which case nothing was sent.
    """

    def __init__(
        self,
        core: LinkCore,
        *,
        handler: FrameHandler | None = None,
        metrics: LinkMetrics | None = None,
        on_state: StateCallback | None = None,
        on_health: HealthCallback | None = None,
        remote_address: Any = None,
    ) -> None:
        self.core = core
        self._on_health = on_health
        self.remote_address = remote_address
        self._handler = handler
        self._m = metrics if metrics is not None else LinkMetrics(Metrics("links"))
        self._on_state = on_state
        self._cfg = core.config
        self._decoder = FrameDecoder(self._cfg.max_frame_size, codec=_V2)
        self._loop = asyncio.get_running_loop()
        self._now = self._loop.time
        self._transport: asyncio.Transport | None = None
        self._queue: list[bytes] = []
        self._queued = 0  # bytes in _queue
        self._buffered = 0  # bytes in _queue and in the transport's buffer, as last counted
        self._flush_soon: asyncio.Handle | None = None
        self._paused = False  # the transport's buffer is full: keep frames here until it drains
        self._eof_sent = False
        self._waiting: Awaitable[None] | None = None  # an async handler's awaitable, for the awaiter
        self._wake = asyncio.Event()
        self._space = asyncio.Event()
        self._ready = asyncio.Event()
        self._done = asyncio.Event()
        self._gone = asyncio.Event()  # the connection is over (or the peer closed after our close frame)
        self._finished = asyncio.Event()
        self._closing = False
        self._handling = False  # the awaiter is inside an async handler
        self._handled = False  # a handler ran since the reader last told the core (reader_busy)
        self._flush_on_close = True
        self._scope: anyio.CancelScope | None = None
        self._timer_scope: anyio.CancelScope | None = None
        self._m.states[core.state].inc()

    # -- what the application sees ---------------------------------------------------------------------------

    @property
    def state(self) -> LinkState:
        return self.core.state

    @property
    def ready(self) -> bool:
        """Whether traffic may be sent now (both sides said ready, and the peer has not said not-ready)."""
        return self.core.state in (LinkState.READY, LinkState.DRAINING, LinkState.DRAINED)

    @property
    def peer(self) -> LinkIdentity | None:
        """The peer's hello, once received."""
        return self.core.peer

    @property
    def close_code(self) -> ErrorCode | None:
        return self.core.close_code

    @property
    def buffered_bytes(self) -> int:
        """Bytes accepted for sending that wait for the socket: those queued here, and the transport's own
        while it refuses more."""
        return self._buffered

    def send_nowait(self, frame: Frame) -> None:
        """Queue a traffic frame, or raise ``LinkNotReady``/``LinkClosed``/``LinkBusy`` without sending."""
        data = self._encode(frame)
        self._check()
        if self._buffered and self._buffered + len(data) > self._cfg.send_buffer_bytes:
            raise LinkBusy(f"send buffer full ({self._buffered} bytes)")
        self._push(data, frame.header.biz)

    async def send(self, frame: Frame) -> None:
        """Queue a traffic frame, waiting for buffer room; raises without sending if traffic is refused."""
        data = self._encode(frame)
        while True:
            self._check()
            if not self._buffered or self._buffered + len(data) <= self._cfg.send_buffer_bytes:
                self._push(data, frame.header.biz)
                return
            self._space.clear()
            await self._space.wait()

    async def send_message(self, header: Header, body: Any = None) -> None:
        """Encode ``body`` under ``header`` (v2) and :meth:`send` it."""
        await self.send(Frame.build(header, body, _V2))

    def mark_ready(self) -> None:
        """The local side accepts traffic on this link."""
        now = self._now()
        self._apply(self.core.mark_ready(now), now)

    def drain(self) -> None:
        """Send not-ready (deregistration). :meth:`wait_drained` returns once the peer acked."""
        now = self._now()
        self._apply(self.core.drain(now), now)

    async def wait_ready(self) -> None:
        """Return once traffic may flow; raise :class:`LinkClosed` if the link ends first."""
        await self._ready.wait()
        if not self.ready:
            code = self.core.close_code
            error = LinkRejected if code is ErrorCode.FORBIDDEN else LinkClosed
            raise error(f"link ended before it was ready: {self.core.close_reason}", code)

    async def wait_drained(self) -> None:
        """Return once our not-ready was acked (every frame the peer sent before it has been handled),
        or the link closed."""
        await self._done.wait()

    async def wait_closed(self) -> None:
        """Return once :meth:`run` has finished."""
        await self._finished.wait()

    def close(self, code: ErrorCode = ErrorCode.OK, reason: str = "closed locally") -> None:
        """Start closing: the close frame carrying ``code`` goes out behind everything queued; the connection
        closes once the peer has read it (or ``close_grace`` passes); :meth:`wait_closed` waits for that."""
        now = self._now()
        self._apply(self.core.close(now, code, reason), now)

    async def aclose(self, code: ErrorCode = ErrorCode.OK, reason: str = "closed locally") -> None:
        """:meth:`close` and wait until the link has ended."""
        self.close(code, reason)
        await self._finished.wait()

    def abort(self) -> None:
        """Drop the connection at once, sending nothing more (for a link whose :meth:`run` never started)."""
        if self._transport is not None:
            self._transport.abort()

    # -- the tasks -------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the link's tasks until it closes. Never raises for transport or protocol errors: they close
        it. The hub calls this once the connection is made."""
        try:
            async with anyio.create_task_group() as tg:
                self._scope = tg.cancel_scope
                if self._closing:  # closed before this task started
                    self._arm_close_grace()
                tg.start_soon(self._timer)
                tg.start_soon(self._awaiter)
                await self._gone.wait()
                tg.cancel_scope.cancel()
        finally:
            if self.core.state is not LinkState.CLOSED:  # cancelled from outside
                now = self._now()
                self._apply(self.core.close(now, ErrorCode.SERVER_SHUTTING_DOWN, "cancelled"), now)
            self._m.send_buffer.dec(self._buffered)
            self._buffered = self._queued = 0
            self._queue.clear()
            waiting, self._waiting = self._waiting, None
            _discard(waiting)
            if self._transport is not None:
                self._transport.abort()
            self._done.set()
            self._ready.set()
            self._space.set()
            self._finished.set()

    async def _awaiter(self) -> None:
        """Await the handlers that are coroutines, one at a time, then go on with the frames behind them."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while (waiting := self._waiting) is not None:
                self._handling = True
                try:
                    await waiting
                except Exception:
                    self._m.handler_errors.inc()
                    log.exception("link %s: the frame handler failed", self._name())
                finally:
                    self._handling = False
                    self._waiting = None
                if self._closing:
                    break
                self._process()
            transport = self._transport
            if self._waiting is None and not self._closing and transport is not None:
                transport.resume_reading()

    async def _timer(self) -> None:
        core = self.core
        while True:
            deadline = core.next_deadline()
            with anyio.CancelScope(deadline=math.inf if deadline is None else deadline) as scope:
                self._timer_scope = scope
                await anyio.sleep_forever()
            self._timer_scope = None
            now = self._now()
            if self._handling:
                core.reader_busy(now)
            self._apply(core.handle_timer(now), now)

    # -- the protocol ----------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        # The transport stops taking frames (pause_writing) above half the send buffer; they then wait in
        # our queue, which send/send_nowait bound, and go out when it has drained to an eighth.
        size = self._cfg.send_buffer_bytes
        transport.set_write_buffer_limits(high=size // 2, low=size // 8)
        if self.remote_address is None:
            self.remote_address = transport.get_extra_info("peername")
        now = self._now()
        self._apply(self.core.start(now), now)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return  # closing: our close frame is out; discard the rest until the peer closes too
        try:
            self._decoder.feed(data)
        except ProtocolError as exc:
            self._close_now(exc.code, f"bad frame from the peer: {exc}")
            return
        if self._waiting is None:
            self._process()

    def eof_received(self) -> bool:
        if self._closing:
            # The peer closed after our close frame: everything we sent has been read. Done.
            self._gone.set()
        else:
            self._lost(ErrorCode.OK, "the peer closed the connection")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closing:
            if exc is None:
                self._lost(ErrorCode.OK, "the peer closed the connection")
            else:
                self._lost(ErrorCode.INTERNAL, f"connection lost: {exc!r}")
        self._gone.set()
        self._space.set()

    def pause_writing(self) -> None:
        self._paused = True
        self._count()

    def resume_writing(self) -> None:
        self._paused = False
        self._flush()

    def _process(self) -> None:
        """Handle the frames read so far, in order, until one needs its handler awaited."""
        decoder = self._decoder
        try:
            while (frame := decoder.next_frame()) is not None:
                waiting = self._on_frame(frame)
                if self._closing:
                    _discard(waiting)  # the link closed while the frame was handled: no one will await it
                    return
                if waiting is not None:
                    # The rest waits in the decoder, and the socket is not read, until it has finished.
                    self._waiting = waiting
                    if self._transport is not None:
                        self._transport.pause_reading()
                    self._wake.set()
                    return
        except ProtocolError as exc:
            self._close_now(exc.code, f"bad frame from the peer: {exc}")
        finally:
            if self._handled:
                # Whatever the peer sent while the handlers ran is read next: the silence was ours, not
                # its. Once per read, not per frame: no timer runs between two frames of one read unless
                # a handler is awaited, and while one is the timer calls reader_busy itself.
                self._handled = False
                self.core.reader_busy(self._now())

    def _on_frame(self, frame: Frame) -> Awaitable[None] | None:
        header = frame.header
        biz = header.biz
        counter = self._m._in.get(biz)
        if counter is None:
            counter = self._m.frame_in(biz)
        counter.value += 1
        now = self._now()
        if biz != _LINK:
            actions = self.core.receive_data(now)
            if actions:
                self._apply(actions, now)
                if self._closing:
                    return None
            if self._handler is not None:
                self._handled = True
                try:
                    return self._handler(self, frame)
                except Exception:
                    self._m.handler_errors.inc()
                    log.exception("link %s: the frame handler failed on %r", self._name(), header)
            return None
        if header.flags & _ERROR:
            report = frame.body_as(ErrorReport)
            code = ErrorCode.from_wire(header.error or report.code)
            self._lost(code, f"the peer closed the link: {report.message}")
            return None
        try:
            func = LinkFunc(header.func)
        except ValueError:
            self._close_now(ErrorCode.UNKNOWN_CODE, f"unknown link function {header.func}")
            return None
        hello = None
        number = 0
        if func is LinkFunc.HELLO:
            hello = _identity(frame.body_as(LinkHello))
        elif func is LinkFunc.PROBE:
            number = frame.body_as(LinkProbe).probe_id
        elif func is LinkFunc.PROBE_ACK:
            number = frame.body_as(LinkProbeAck).probe_id
        self._apply(self.core.receive_control(func, now, hello=hello, number=number), now)
        self._rearm()
        return None

    # -- internals -------------------------------------------------------------------------------------------

    def _name(self) -> str:
        peer = self.core.peer
        return f"{peer.role}/{peer.server_id}" if peer else str(self.remote_address)

    def _rearm(self) -> None:
        scope = self._timer_scope
        deadline = self.core.next_deadline()
        if scope is not None and deadline is not None and deadline < scope.deadline:
            scope.deadline = deadline

    def _check(self) -> None:
        self.core.on_send(self._now())
        if self._closing:
            raise LinkClosed(f"link closing: {self.core.close_reason}", self.core.close_code)

    def _encode(self, frame: Frame) -> bytes:
        if frame.codec is not _V2:
            frame = frame.to_codec(_V2)
        return frame.encode(max_frame_size=self._cfg.max_frame_size)  # its header_bytes when it has them

    def _push(self, data: bytes, biz: int) -> None:
        self._queue.append(data)
        size = len(data)
        self._queued += size
        self._buffered += size
        m = self._m
        m.send_buffer.value += size
        counter = m._out.get(biz) if type(biz) is int else None
        if counter is None:
            counter = m.frame_out(biz)
        counter.value += 1
        if self._flush_soon is None:
            self._flush_soon = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Write everything queued in one call (unless the transport's buffer is full), count what is
        still buffered, and after the close frame half-close where the transport can."""
        self._flush_soon = None
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        queue = self._queue
        if queue and not self._paused:
            transport.write(queue[0] if len(queue) == 1 else b"".join(queue))
            queue.clear()
            self._queued = 0
        self._count()
        if self._closing and not queue and not self._eof_sent:
            self._eof_sent = True
            if transport.can_write_eof():  # TLS cannot half-close
                with contextlib.suppress(OSError):  # the peer is gone already: connection_lost follows
                    transport.write_eof()

    def _count(self) -> None:
        """What the send buffer holds: our queue, and while the transport refuses more, its own buffer
        too. (A transport that takes more holds less than its high-water mark, and says nothing when that
        drains; its bytes count once it pauses.)"""
        transport = self._transport
        buffered = self._queued
        if self._paused and transport is not None:
            buffered += transport.get_write_buffer_size()
        self._m.send_buffer.value += buffered - self._buffered
        self._buffered = buffered
        if buffered < self._cfg.send_buffer_bytes:
            self._space.set()

    def _control_frame(self, action: SendControl) -> bytes:
        local = self.core.local
        func = action.func
        body: Any
        if func is LinkFunc.HELLO:
            ident = action.hello or local
            body = LinkHello(
                role=ident.role,  # type: ignore[arg-type]
                server_id=ident.server_id,
                name=ident.name,
                domain=ident.domain,
                version=ident.version,
                bizs=list(ident.bizs),
            )
        elif func is LinkFunc.READY:
            body = LinkReady(server_id=local.server_id)
        elif func is LinkFunc.NOT_READY:
            body = LinkNotReady(server_id=local.server_id, reason="deregistering")
        elif func is LinkFunc.NOT_READY_ACK:
            body = LinkNotReadyAck(server_id=local.server_id)
        elif func is LinkFunc.HEARTBEAT:
            body = LinkHeartbeat()
        elif func is LinkFunc.PROBE:
            body = LinkProbe(probe_id=action.number, attempt=action.number)
            self._m.probes_sent.inc()
        else:
            body = LinkProbeAck(probe_id=action.number)
        return encode_frame(Header(_LINK, func), body, _V2)

    def _apply(self, actions: list[LinkAction], now: float) -> None:
        m = self._m
        for action in actions:
            if isinstance(action, SendControl):
                if not self._closing:
                    self._push(self._control_frame(action), _LINK)
            elif isinstance(action, StateChanged):
                m.states[action.old].dec()
                m.states[action.new].inc()
                if action.new is LinkState.READY:
                    self._ready.set()
                if action.new in _DONE_STATES:
                    self._done.set()
                if self._on_state is not None:
                    try:
                        self._on_state(self, action.old, action.new)
                    except Exception:  # the application's bug: the link's state change stands
                        m.handler_errors.inc()
                        log.exception("link %s: the state callback failed", self._name())
                if action.new is LinkState.CLOSED:
                    det = self.core.detector
                    if det is not None and det.health is Health.STOPPED:
                        self._health(Health.STOPPED)
            elif isinstance(action, CloseLink):
                self._begin_close(action.code, action.reason)
            elif isinstance(action, PeerSuspect):
                m.suspect.inc()
                log.info("link %s: peer suspect (silent since %.3f), probing", self._name(), action.since)
                self._health(Health.SUSPECT)
            elif isinstance(action, PeerAlive):
                m.recovered.inc()
                log.info("link %s: peer answered after %d probe(s)", self._name(), action.probes_sent)
                self._health(Health.ALIVE)
            elif isinstance(action, PeerDown):
                m.down.inc()
                log.warning("link %s: peer down, every probe timed out", self._name())
                self._health(Health.DOWN)
            elif isinstance(action, LateAfterDown):
                m.late.inc()
        if actions:
            self._rearm()

    def _health(self, health: Health) -> None:
        if self._on_health is None:
            return
        try:
            self._on_health(self, health)
        except Exception:  # the application's bug; the link and its peer's verdict stand
            self._m.handler_errors.inc()
            log.exception("link %s: the health callback failed on %s", self._name(), health.value)

    def _begin_close(self, code: ErrorCode, reason: str) -> None:
        """The core closed the link. Unless the transport is already gone, close gracefully: queue the close
        frame (the reason code) behind everything queued, flush, half-close where the transport can, and
        wait for the peer to close too, all within ``close_grace``. Closing a socket that still holds unread
        bytes would reset the connection and could destroy frames the peer has not read yet."""
        if self._closing:
            return
        self._m.closed(code)
        if self._flush_on_close:
            report = ErrorReport(code=code, message=reason[:200])
            header = Header(_LINK, LinkFunc.NOT_READY, flags=_ERROR, error=code)
            self._push(encode_frame(header, report, _V2), _LINK)
        self._closing = True
        self._space.set()
        if self._scope is not None:
            self._arm_close_grace()
        if self._flush_on_close:
            if self._flush_soon is None:
                self._flush_soon = self._loop.call_soon(self._flush)
        else:
            self._gone.set()

    def _arm_close_grace(self) -> None:
        assert self._scope is not None
        if self._flush_on_close:
            self._scope.deadline = self._now() + self._cfg.close_grace
        else:
            self._scope.cancel()

    def _lost(self, code: ErrorCode, reason: str) -> None:
        """The transport is gone (or the peer closed with a reason): close without flushing."""
        self._flush_on_close = False
        now = self._now()
        self._apply(self.core.connection_lost(now, code, reason), now)

    def _close_now(self, code: ErrorCode, reason: str) -> None:
        now = self._now()
        self._apply(self.core.close(now, code, reason), now)
