"""The anyio driver of one link: bytes in → :class:`LinkCore`, the core's actions → bytes out.

Thin on purpose. Three tasks per link: the reader (decoder → core → application handler), the writer (one
bounded FIFO buffer, written in batches), and the timer (one ``CancelScope`` whose deadline is re-armed from
:meth:`LinkCore.next_deadline`). All protocol decisions live in the core.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import ByteStream

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

FrameHandler = Callable[["Link", Frame], Awaitable[None]]
"""Receives every traffic frame of a link, in order; the next frame is read only after it returns."""
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
_READ_SIZE = 65536
_DONE_STATES = frozenset({LinkState.DRAINED, LinkState.FINISHED, LinkState.CLOSED})
_TRANSPORT_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


def _clock() -> Callable[[], float]:
    """The event loop's clock as a plain function (what ``anyio.current_time`` reads, minus its dispatch
    cost, which matters at one call per frame)."""
    try:
        return asyncio.get_running_loop().time
    except RuntimeError:  # not on asyncio (trio)
        return anyio.current_time


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


def _identity(hello: LinkHello) -> LinkIdentity:
    return LinkIdentity(
        hello.role, hello.server_id, hello.name, hello.domain, hello.version, tuple(hello.bizs)
    )


class Link:
    """One server-to-server link over one byte stream (TCP or TLS).

    Create it with a fresh :class:`LinkCore`, then run :meth:`run` in a task; it returns when the link has
    closed. Traffic goes out with :meth:`send` (waits for buffer room) or :meth:`send_nowait` (raises
    :class:`LinkBusy` when full); both raise :class:`LinkNotReady` / :class:`LinkClosed` when the link does
    not allow traffic, in which case nothing was sent.
    """

    def __init__(
        self,
        stream: ByteStream,
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
        self._stream = stream
        self._handler = handler
        self._m = metrics if metrics is not None else LinkMetrics(Metrics("links"))
        self._on_state = on_state
        self._cfg = core.config
        self._decoder = FrameDecoder(self._cfg.max_frame_size, codec=_V2)
        self._queue: deque[bytes] = deque()
        self._buffered = 0
        self._wake: anyio.Event | None = None
        self._space = anyio.Event()
        self._ready = anyio.Event()
        self._done = anyio.Event()
        self._finished = anyio.Event()
        self._closing = False
        self._handling = False  # the reader is inside the application's handler
        self._handled = False  # a handler ran since the reader last told the core (reader_busy)
        self._flush_on_close = True
        self._scope: anyio.CancelScope | None = None
        self._timer_scope: anyio.CancelScope | None = None
        self._now = _clock()
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
            if self._space.is_set():
                self._space = anyio.Event()
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
        """Start closing: the close frame carrying ``code`` goes out behind everything queued; the stream
        closes once the peer has read it (or ``close_grace`` passes); :meth:`wait_closed` waits for that."""
        now = self._now()
        self._apply(self.core.close(now, code, reason), now)

    async def aclose(self, code: ErrorCode = ErrorCode.OK, reason: str = "closed locally") -> None:
        """:meth:`close` and wait until the link has ended."""
        self.close(code, reason)
        await self._finished.wait()

    # -- the tasks -------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the link until it closes. Never raises for transport or protocol errors: they close it."""
        try:
            async with anyio.create_task_group() as tg:
                self._scope = tg.cancel_scope
                now = self._now()
                self._apply(self.core.start(now), now)
                tg.start_soon(self._writer)
                tg.start_soon(self._timer)
                await self._reader()
        finally:
            if self.core.state is not LinkState.CLOSED:  # cancelled from outside
                now = self._now()
                self._apply(self.core.close(now, ErrorCode.SERVER_SHUTTING_DOWN, "cancelled"), now)
            self._m.send_buffer.dec(self._buffered)
            self._buffered = 0
            self._queue.clear()
            with anyio.CancelScope(shield=True):
                await anyio.aclose_forcefully(self._stream)
            self._done.set()
            self._ready.set()
            self._space.set()
            self._finished.set()

    async def _reader(self) -> None:
        stream = self._stream
        decoder = self._decoder
        while True:
            try:
                data = await stream.receive(_READ_SIZE)
            except anyio.EndOfStream:
                if self._closing:
                    break
                self._lost(ErrorCode.OK, "the peer closed the connection")
                return
            except _TRANSPORT_ERRORS as exc:
                if self._closing:
                    break
                self._lost(ErrorCode.INTERNAL, f"connection lost: {exc!r}")
                return
            if self._closing:
                continue  # closing: our close frame is out; discard the rest until the peer closes too
            try:
                decoder.feed(data)
                while (frame := decoder.next_frame()) is not None:
                    await self._on_frame(frame)
                    if self._closing:
                        break
            except ProtocolError as exc:
                self._close_now(exc.code, f"bad frame from the peer: {exc}")
            finally:
                if self._handled:
                    # Whatever the peer sent while the handlers ran is read next: the silence was ours,
                    # not its. Once per read, not per frame: no timer runs between two frames of one read
                    # unless a handler waits, and while one waits the timer calls reader_busy itself.
                    self._handled = False
                    self.core.reader_busy(self._now())
        # The peer closed after our close frame: everything we sent has been read. Done.
        assert self._scope is not None
        self._scope.cancel()

    async def _on_frame(self, frame: Frame) -> None:
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
                    return
            if self._handler is not None:
                self._handling = self._handled = True
                try:
                    await self._handler(self, frame)
                except Exception:
                    self._m.handler_errors.inc()
                    log.exception("link %s: the frame handler failed on %r", self._name(), header)
                finally:
                    self._handling = False
            return
        if header.flags & _ERROR:
            report = frame.body_as(ErrorReport)
            code = ErrorCode.from_wire(header.error or report.code)
            self._lost(code, f"the peer closed the link: {report.message}")
            return
        try:
            func = LinkFunc(header.func)
        except ValueError:
            self._close_now(ErrorCode.UNKNOWN_CODE, f"unknown link function {header.func}")
            return
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

    async def _writer(self) -> None:
        stream = self._stream
        queue = self._queue
        m = self._m
        while True:
            while not queue:
                if self._closing:
                    try:
                        await stream.send_eof()  # after the close frame; TLS cannot half-close
                    except (NotImplementedError, *_TRANSPORT_ERRORS):
                        pass
                    return
                self._wake = anyio.Event()
                await self._wake.wait()
                self._wake = None
            data = (
                queue.popleft() if len(queue) == 1 else b"".join([queue.popleft() for _ in range(len(queue))])
            )
            try:
                await stream.send(data)
            except _TRANSPORT_ERRORS as exc:
                self._lost(ErrorCode.INTERNAL, f"connection lost while sending: {exc!r}")
                return
            self._buffered -= len(data)
            m.send_buffer.dec(len(data))
            self._space.set()

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
        self._buffered += size
        m = self._m
        m.send_buffer.value += size
        counter = m._out.get(biz) if type(biz) is int else None
        if counter is None:
            counter = m.frame_out(biz)
        counter.value += 1
        wake = self._wake
        if wake is not None:
            wake.set()

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
        read until the peer closes too, all within ``close_grace``. Closing a socket that still holds unread
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
            if self._flush_on_close:
                self._scope.deadline = self._now() + self._cfg.close_grace
            else:
                self._scope.cancel()
        if self._wake is not None:
            self._wake.set()

    def _lost(self, code: ErrorCode, reason: str) -> None:
        """The transport is gone (or the peer closed with a reason): close without flushing."""
        self._flush_on_close = False
        now = self._now()
        self._apply(self.core.connection_lost(now, code, reason), now)

    def _close_now(self, code: ErrorCode, reason: str) -> None:
        now = self._now()
        self._apply(self.core.close(now, code, reason), now)
