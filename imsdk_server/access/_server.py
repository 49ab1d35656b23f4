"""The driver of the access server: listener, per-connection I/O, timers, connection table, events.

The driver is thin on purpose; every protocol decision is made by
:class:`~imsdk_server.access._core.AccessConnection`. It runs on anyio's asyncio backend (uvloop when
installed): :meth:`AccessServer.serve` is an anyio task owning a task group, while each connection is a small
asyncio protocol object rather than a task. That choice is measured, not taste: with a task and an anyio
stream per connection an idle line cost about 9 KiB and a handshake about 350 µs of server CPU before any
imsdk code ran; as a protocol it costs about 1 KiB and 50 µs (``python -m bench.connections``).

What lives here:

* the listener (TCP, or TLS: each accepted connection is upgraded with ``loop.start_tls``, the handshake
  bounded by the handshake timeout, and failed handshakes counted by reason);
* per connection: bytes in → core → actions; bytes out go to the transport: replies at once, frames from
  back-ends at the end of the event loop's turn, so that a burst for one client is one write (one system
  call). When the transport's buffer is full (the peer reads slowly) frames wait in the core's bounded send
  queue; past its bound the line closes with ``SLOW_CONSUMER``. Nobody ever waits for a slow client;
* one timer task for the whole server: a heap of per-connection deadlines (from ``next_deadline()``);
* upstream forwarding: at once when the back-end can take the frame (``try_send``), else through one
  short-lived task per connection that keeps the frames in order while the client's reading is paused,
  each wait bounded by ``backend_send_timeout`` (then the client gets ``BACKEND_TIMEOUT`` for the frame);
* the connection table: uid → device → connection, and session id → connection;
* one publisher task handing online/offline events and load reports to the queue, in order, through a
  bounded buffer so that a slow queue never blocks a connection.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import logging
import secrets
import ssl
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

import anyio
import anyio.abc

from imsdk_proto._frame import Frame
from imsdk_proto._header import Header
from imsdk_proto.codes import Codec, ErrorCode
from imsdk_proto.errors import ProtocolError
from imsdk_proto.messages import LoadReport, OfflineEvent, OnlineEvent
from imsdk_server.access._config import AccessConfig
from imsdk_server.access._core import (
    AccessConnection,
    Action,
    Authenticate,
    Closed,
    CoreContext,
    Forward,
    State,
)
from imsdk_server.access._errors import AccessError, BackendNotReady, BackendTimeout, RoutingError
from imsdk_server.access._routing import Backend, RoutingTable
from imsdk_server.access._verify import Identity, SyncTokenVerifier, TokenVerifier
from imsdk_server.metrics import Counter, Metrics

__all__ = ["AccessServer", "EventPublisher"]

log = logging.getLogger("imsdk_server.access")

_INF = float("inf")
_CLOSED = State.CLOSED
#: Upstream frames a connection may have waiting for a busy back-end before its reading is paused.
_UPSTREAM_PAUSE = 16
#: The most a transport buffers before the core's send queue takes over (see ``pause_writing``).
_TRANSPORT_HIGH_WATER = 64 * 1024
#: Reason classes of failed TLS handshakes (``access_tls_handshake_failures_total{reason}``): the first
#: exception type that matches wins; anything else is ``other``.
_TLS_FAILURES: tuple[tuple[type[BaseException], str], ...] = (
    (ssl.SSLCertVerificationError, "certificate"),  # a client certificate was refused
    (ssl.SSLEOFError, "closed"),  # the peer closed in the middle of the handshake
    (ssl.SSLError, "protocol"),  # not TLS (plain frames, HTTP), an old version, no shared cipher, ...
    (ConnectionAbortedError, "timeout"),  # the handshake timeout aborted the connection
    (TimeoutError, "timeout"),
    (ConnectionError, "closed"),  # reset or EOF before the handshake was done
)


class EventPublisher(Protocol):
    """Where online/offline events and load reports go: any :class:`imsdk_server.backends.queue.Queue`."""

    async def publish(self, topic: str, payload: bytes) -> str: ...


class _Conn(asyncio.Protocol):
    """One client connection as the event loop sees it; all logic is in the server and the core."""

    __slots__ = (
        "abort_at",
        "core",
        "done",
        "early",
        "paused",
        "pending",
        "replaced",
        "scheduled",
        "server",
        "tls",
        "transport",
        "upstream",
    )

    def __init__(self, server: AccessServer) -> None:
        self.server = server
        self.core: AccessConnection | None = None
        self.transport: asyncio.Transport | None = None
        self.paused = False
        self.pending = False
        """In the server's list of connections to write at the end of this turn of the event loop."""
        self.done = False
        self.replaced = False
        self.scheduled = _INF
        self.abort_at = _INF
        self.upstream: deque[Forward] | None = None
        self.tls: Coroutine[Any, Any, asyncio.Transport | None] | None = None
        """The TLS handshake in progress (``loop.start_tls``), stepped by the server."""
        self.early = b""
        """Bytes that arrived after the TLS handshake but before the server took the line over."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport (uvloop's is no subclass)
        if self.server._tls_context is not None:
            self.server._start_tls(self)
        else:
            self.server._accepted(self)

    def data_received(self, data: bytes) -> None:
        self.server._received(self, data)

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._lost(self)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.server._flush(self)


class AccessServer:
    """An access server: accepts client connections, authenticates them, routes their frames.

    Run it inside a task group on anyio's asyncio backend with ``await tg.start(server.serve)``;
    :attr:`address` is then the bound address. Back-ends are registered in :attr:`routes`; frames from
    back-ends for clients are handed to :meth:`deliver` (or, from a link hub, :meth:`on_link_frame`).
    Online/offline events and load reports are published on ``queue`` when one is given.
    """

    def __init__(
        self,
        config: AccessConfig,
        verifier: TokenVerifier,
        *,
        routes: RoutingTable | None = None,
        queue: EventPublisher | None = None,
        metrics: Metrics | None = None,
        event_buffer: int = 100_000,
    ) -> None:
        self.config = config
        self.metrics = metrics if metrics is not None else Metrics()
        self.routes = routes if routes is not None else RoutingTable()
        self._verifier = verifier
        self._sync_verifier = verifier if isinstance(verifier, SyncTokenVerifier) else None
        self._queue = queue
        self._ctx = CoreContext(config, self.metrics)
        m = self.metrics.child("access")
        self._m_events_dropped = m.counter("events_dropped_total")
        self._m_publish_errors = m.counter("publish_errors_total")
        self._m_undeliverable = m.counter("undeliverable_total")
        self._m_verifier_errors = m.counter("verifier_errors_total")
        self._by_session: dict[int, _Conn] = {}
        self._by_uid: dict[str, dict[str, _Conn]] = {}
        self._conns: set[_Conn] = set()
        self._to_flush: list[_Conn] = []
        self._heap: list[tuple[float, int, _Conn]] = []
        self._tie = itertools.count()
        self._timer_target = _INF
        self._timer_wake: anyio.Event | None = None
        self._events: deque[tuple[str, bytes]] = deque()
        self._event_buffer = event_buffer
        self._events_ready: anyio.Event | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._address: tuple[str, int] | None = None
        self._tls_context: ssl.SSLContext | None = None
        self._tls_pending: set[_Conn] = set()
        self._m_tls_failures: dict[str, Counter] = {}

    # ------------------------------------------------------------------ public surface

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the server listens on; known once :meth:`serve` has started."""
        if self._address is None:
            raise RuntimeError("the server is not listening yet")
        return self._address

    @property
    def connection_count(self) -> int:
        """Open connections (accepted and not yet closed)."""
        return len(self._conns)

    def online(self, uid: str) -> dict[str, int]:
        """The devices of ``uid`` on this server, each with its session id."""
        return {device: c.core.session for device, c in self._by_uid.get(uid, {}).items() if c.core}

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen and serve until cancelled; reports the bound address to ``task_status``."""
        cfg = self.config
        if cfg.certfile is not None:
            self._tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._tls_context.load_cert_chain(cfg.certfile, cfg.keyfile)
        loop = self._loop = asyncio.get_running_loop()
        self._ctx.wall_offset = time.time() - loop.time()
        self._timer_wake = anyio.Event()
        self._events_ready = anyio.Event()
        listener = await loop.create_server(
            lambda: _Conn(self),
            cfg.host,
            cfg.port,
            backlog=cfg.backlog,
        )
        try:
            host, port = listener.sockets[0].getsockname()[:2]
            self._address = (host, port)
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._timer_loop)
                if self._queue is not None:
                    tg.start_soon(self._publish_loop)
                    tg.start_soon(self._load_loop)
                task_status.started((host, port))
        finally:
            self._tg = None
            listener.close()
            for conn in list(self._tls_pending):
                self._tls_abandon(conn)
            for conn in list(self._conns):
                if conn.transport is not None:
                    conn.transport.abort()

    def deliver(self, frame: Frame) -> int:
        """Queue a downstream frame for the connections its header addresses; returns how many.

        Addressing: ``receiver_uid`` + ``receiver_device`` → that device's connection (and, if the header
        names a ``session``, only while that session is still the device's current one); ``receiver_uid``
        alone → every device of the user; only ``session`` → that session. A connection too slow to take
        the frame is closed (``SLOW_CONSUMER``); nobody waits for it.
        """
        header = frame.header
        targets = self._targets(header)
        if not targets:
            self._m_undeliverable.inc()
            return 0
        now = self._now()
        encoded: dict[Codec | None, bytes] = {}
        count = 0
        biz = header.biz
        for conn in targets:
            core = conn.core
            assert core is not None
            codec = core.codec
            data = encoded.get(codec)
            if data is None:
                try:
                    # A frame from a link carries the header bytes it arrived with: for a v2 client it
                    # goes out as it came in, without a header encode.
                    data = encoded[codec] = frame.to_codec(codec or Codec.PROTOBUF).encode()
                except ProtocolError as exc:
                    self._ctx.error(exc.code)
                    return 0
            actions = core.send(data, now, biz)
            if actions:
                self._apply(conn, actions, now)
            else:
                count += 1
                if core.backlogged():
                    self._flush(conn)
                elif not conn.pending:
                    self._flush_soon(conn)
        return count

    def on_link_frame(self, link: object, frame: Frame) -> None:
        """A :class:`imsdk_server.links.LinkHub` frame handler (a plain function: handled inside the read):
        back-ends' frames go to :meth:`deliver`."""
        self.deliver(frame)

    def close_session(self, session: int, code: ErrorCode = ErrorCode.SERVER_SHUTTING_DOWN) -> bool:
        """Close one session with ``code``; ``False`` if it is not here."""
        conn = self._by_session.get(session)
        if conn is None or conn.core is None:
            return False
        now = self._now()
        self._apply(conn, conn.core.close(code, now), now)
        return True

    def shutdown_connections(self) -> int:
        """Close every connection with ``SERVER_SHUTTING_DOWN`` (the clients reconnect elsewhere)."""
        now = self._now()
        conns = [c for c in self._conns if c.core is not None]
        for conn in conns:
            assert conn.core is not None
            self._apply(conn, conn.core.close(ErrorCode.SERVER_SHUTTING_DOWN, now), now)
        return len(conns)

    # ------------------------------------------------------------------ connection events

    def _now(self) -> float:
        loop = self._loop
        return loop.time() if loop is not None else anyio.current_time()

    def _accepted(self, conn: _Conn) -> None:
        assert conn.transport is not None
        conn.transport.set_write_buffer_limits(
            high=min(_TRANSPORT_HIGH_WATER, self.config.send_queue_max_bytes)
        )
        conn.core = AccessConnection(self._ctx, self._now())
        self._conns.add(conn)
        self._ctx.connections.inc()
        self._reschedule(conn)

    def _received(self, conn: _Conn, data: bytes) -> None:
        core = conn.core
        if core is None:  # TLS is up but the server has not taken the line over yet
            conn.early += data
            return
        now = self._now()
        actions = core.receive_data(data, now)
        if actions:
            self._apply(conn, actions, now)
        self._flush(conn)
        self._reschedule(conn)

    # ------------------------------------------------------------------ TLS

    def _start_tls(self, conn: _Conn) -> None:
        """Begin the TLS handshake of a connection just accepted.

        The listener itself is plain TCP and each connection is upgraded with ``loop.start_tls``, which
        reports a failed handshake (and why) where ``create_server(ssl=...)`` would drop it silently. Its
        first step -- switching the transport over to the TLS protocol -- runs here, inside
        ``connection_made``: uvloop starts reading a new connection as soon as that returns, whatever
        ``pause_reading`` asked, and the client's first TLS bytes must reach the TLS protocol, not this one.
        The handshake then goes on without a task: :meth:`_tls_step` resumes the coroutine when what it
        waits for is done.
        """
        assert conn.transport is not None
        assert self._loop is not None
        assert self._tls_context is not None
        conn.tls = self._loop.start_tls(
            conn.transport,
            conn,
            self._tls_context,
            server_side=True,
            ssl_handshake_timeout=self.config.handshake_timeout,
        )
        self._tls_pending.add(conn)
        self._tls_step(conn)

    def _tls_step(self, conn: _Conn, _done: object = None) -> None:
        coro = conn.tls
        if coro is None:  # abandoned meanwhile (the server stopped)
            return
        try:
            waiting = coro.send(None)
        except StopIteration as finished:
            self._tls_finished(conn, finished.value)
        except (Exception, asyncio.CancelledError) as exc:
            self._tls_failed(conn, exc)
        else:
            add_done_callback = getattr(waiting, "add_done_callback", None)
            if add_done_callback is not None:
                add_done_callback(functools.partial(self._tls_step, conn))
            else:  # a bare yield: go on at the next turn of the loop
                assert self._loop is not None
                self._loop.call_soon(self._tls_step, conn)

    def _tls_finished(self, conn: _Conn, transport: asyncio.Transport | None) -> None:
        conn.tls = None
        self._tls_pending.discard(conn)
        if transport is None:
            self._tls_failed(conn, ConnectionResetError("no transport after the TLS handshake"))
            return
        if conn.done:  # the peer left right after the handshake
            transport.abort()
            return
        conn.transport = transport
        self._accepted(conn)
        early, conn.early = conn.early, b""
        if early:
            self._received(conn, early)

    def _tls_failed(self, conn: _Conn, exc: BaseException) -> None:
        conn.tls = None
        self._tls_pending.discard(conn)
        reason = next((r for kind, r in _TLS_FAILURES if isinstance(exc, kind)), "other")
        counter = self._m_tls_failures.get(reason)
        if counter is None:
            counter = self._m_tls_failures[reason] = self.metrics.child("access").counter(
                "tls_handshake_failures_total", reason=reason
            )
        counter.inc()
        log.debug("TLS handshake failed (%s): %r", reason, exc)
        if conn.transport is not None:
            conn.transport.abort()

    def _tls_abandon(self, conn: _Conn) -> None:
        """The server stops: end a handshake still in progress (``start_tls`` closes its transport)."""
        coro = conn.tls
        conn.tls = None
        self._tls_pending.discard(conn)
        if coro is not None:
            coro.close()
        if conn.transport is not None:
            conn.transport.abort()

    def _lost(self, conn: _Conn) -> None:
        conn.done = True
        core = conn.core
        if core is not None:
            if core.state is not _CLOSED:
                now = self._now()
                self._apply(conn, core.connection_lost(now), now)
            core.release()
        # Deadlines of closed lines leave the heap lazily; compact it before they pile up under churn.
        heap = self._heap
        if len(heap) > 2 * len(self._conns) + 1024:
            heap[:] = [entry for entry in heap if not entry[2].done]
            heapq.heapify(heap)

    def _apply(self, conn: _Conn, actions: Sequence[Action], now: float) -> None:
        for action in actions:
            if isinstance(action, Forward):
                self._forward(conn, action, now)
            elif isinstance(action, Authenticate):
                self._authenticate(conn, action, now)
            else:
                self._closed(conn, action, now)

    def _flush_soon(self, conn: _Conn) -> None:
        """Write ``conn``'s queued frames at the end of this turn of the event loop rather than now.

        Downstream frames come in bursts: one read from a back-end's link carries many, often several for
        the same client (a sender's acks, a receiver's pushes). Written at once, each would cost a system
        call; collected until the turn ends, a client's frames go out in one write. The delay is the rest of
        the current callback, nothing more. :meth:`AccessConnection.backlogged` bounds what may collect.
        """
        loop = self._loop
        if loop is None:
            self._flush(conn)
            return
        conn.pending = True
        to_flush = self._to_flush
        to_flush.append(conn)
        if len(to_flush) == 1:
            loop.call_soon(self._flush_pending)

    def _flush_pending(self) -> None:
        to_flush, self._to_flush = self._to_flush, []
        for conn in to_flush:
            conn.pending = False
            self._flush(conn)

    def _flush(self, conn: _Conn) -> None:
        """Hand queued bytes to the transport unless it is full (then they wait, bounded, in the core)."""
        core = conn.core
        if conn.paused or conn.done or core is None or core.state is _CLOSED:
            return
        data = core.data_to_send()
        if data:
            assert conn.transport is not None
            conn.transport.write(data)
            core.send_done()

    def _spawn(self, func: Callable[..., Coroutine[Any, Any, None]], *args: object) -> bool:
        """Start a task in the server's task group; ``False`` once the server is stopping.

        Connection callbacks run outside any task, and a task started from one into a task group that is
        already cancelled is never cancelled itself, so it would hold the server's shutdown up for as long
        as it waits (e.g. on a hung back-end). Once the group is cancelled nothing new starts.
        """
        tg = self._tg
        if tg is None or tg.cancel_scope.cancel_called:
            return False
        tg.start_soon(func, *args)
        return True

    # ------------------------------------------------------------------ authentication

    def _authenticate(self, conn: _Conn, request: Authenticate, now: float) -> None:
        sync = self._sync_verifier
        if sync is not None:
            try:
                identity = sync.verify_now(request.token, request.device)
            except AccessError as exc:
                self._auth_done(conn, request, None, exc.code)
                return
            except Exception:
                self._verifier_failed(conn, request)
                return
            if identity is not None:
                self._auth_done(conn, request, identity, ErrorCode.OK)
                return
        if not self._spawn(self._authenticate_async, conn, request):
            self._auth_done(conn, request, None, ErrorCode.SERVER_SHUTTING_DOWN)

    async def _authenticate_async(self, conn: _Conn, request: Authenticate) -> None:
        try:
            identity = await self._verifier.verify(request.token, request.device)
        except AccessError as exc:
            self._auth_done(conn, request, None, exc.code)
        except Exception:
            self._verifier_failed(conn, request)
        else:
            self._auth_done(conn, request, identity, ErrorCode.OK)
        self._flush(conn)
        self._reschedule(conn)

    def _verifier_failed(self, conn: _Conn, request: Authenticate) -> None:
        """The pluggable verifier raised something outside the access error tree: a fault of the
        verifier, not of the token. Only this handshake fails (``INTERNAL``, the client retries); the
        exception must not reach the connection callback or end the server's task group."""
        log.exception("the token verifier failed on a handshake of device %r", request.device)
        self._m_verifier_errors.inc()
        self._auth_done(conn, request, None, ErrorCode.INTERNAL)

    def _auth_done(
        self, conn: _Conn, request: Authenticate, identity: Identity | None, code: ErrorCode
    ) -> None:
        core = conn.core
        assert core is not None
        now = self._now()
        if identity is not None and identity.device != request.device:
            identity, code = None, ErrorCode.TOKEN_INVALID
        if identity is None:
            self._apply(conn, core.auth_failed(code, now), now)
            return
        session = secrets.randbits(63) or 1
        while session in self._by_session:
            session = secrets.randbits(63) or 1
        seq_base = secrets.randbits(30) << 32
        hint = 0
        if self.config.msg_server_biz:
            router = self.routes.choose(self.config.msg_server_biz, None, identity.uid)
            hint = router.server_id if router is not None else 0
        if core.authenticated(identity.uid, identity.device, session, seq_base, now, hint):
            self._register(conn, now)

    # ------------------------------------------------------------------ upstream

    def _forward(self, conn: _Conn, action: Forward, now: float) -> None:
        if conn.upstream is not None:  # frames are waiting for a busy back-end: keep the order
            conn.upstream.append(action)
            if len(conn.upstream) >= _UPSTREAM_PAUSE and conn.transport is not None:
                conn.transport.pause_reading()
            return
        core = conn.core
        assert core is not None
        header = action.header
        try:
            backend = self.routes.resolve(header)
            frame = action.to_frame()
        except (RoutingError, ProtocolError) as exc:
            core.reject(header, exc.code, now)
            return
        try:
            if backend.try_send(frame):
                return
        except Exception as exc:  # not ready, closed: the client's line stays up
            log.debug("back-end %s refused a frame: %r", backend.server_id, exc)
            core.reject(header, BackendNotReady.code, now)
            return
        if not self._spawn(self._forward_loop, conn):
            core.reject(header, BackendNotReady.code, now)
            return
        conn.upstream = deque((action,))

    async def _forward_loop(self, conn: _Conn) -> None:
        """Send the frames a busy back-end could not take at once, in order, waiting for room.

        Each wait is bounded by ``backend_send_timeout``: a frame the back-end did not take in time is
        answered with ``BACKEND_TIMEOUT``, and so are the frames queued behind it for the same back-end
        (they would only wait as long again), so a hung back-end cannot keep the client's reading paused.
        """
        queue = conn.upstream
        core = conn.core
        assert queue is not None
        assert core is not None
        timeout = self.config.backend_send_timeout
        stalled: list[Backend] = []  # back-ends that let a frame time out during this run
        try:
            while queue and core.state is not _CLOSED:
                action = queue[0]
                header = action.header
                code = ErrorCode.OK
                try:
                    backend = self.routes.resolve(header)
                    frame = action.to_frame()
                    if backend in stalled:
                        code = BackendTimeout.code
                    else:
                        with anyio.move_on_after(timeout) as scope:
                            await backend.send(frame)
                        if scope.cancelled_caught:
                            log.debug("back-end %s took no frame for %.1f s", backend.server_id, timeout)
                            stalled.append(backend)
                            code = BackendTimeout.code
                except (RoutingError, ProtocolError) as exc:
                    code = exc.code
                except Exception as exc:  # a back-end that fails must not take the client's line down
                    log.debug("back-end refused a frame: %r", exc)
                    code = BackendNotReady.code
                if code is not ErrorCode.OK:
                    core.reject(header, code, self._now())
                queue.popleft()
                self._flush(conn)
        finally:
            conn.upstream = None
            if not conn.done and conn.transport is not None and core.state is not _CLOSED:
                conn.transport.resume_reading()

    # ------------------------------------------------------------------ closing and the table

    def _closed(self, conn: _Conn, closed: Closed, now: float) -> None:
        """Book-keeping of a line that just closed: table, gauges, offline event, flush-then-close."""
        if conn in self._conns:
            self._conns.discard(conn)
            self._ctx.connections.dec()
        core = conn.core
        assert core is not None
        if closed.was_open:
            if self._by_session.get(core.session) is conn:
                del self._by_session[core.session]
            devices = self._by_uid.get(core.uid)
            if devices is not None and devices.get(core.device) is conn:
                del devices[core.device]
                if not devices:
                    del self._by_uid[core.uid]
            if not conn.replaced and self._queue is not None:
                event = OfflineEvent(
                    uid=core.uid,
                    device=core.device,
                    access_id=self.config.server_id,
                    time_ms=self._ctx.wall_ms(now),
                    reason=int(closed.code),
                    session=core.session,
                    network=core.network,  # type: ignore[arg-type]
                )
                self._emit(self.config.offline_topic, event.SerializeToString())
        transport = conn.transport
        if conn.done or transport is None:
            return
        if closed.code is ErrorCode.SLOW_CONSUMER:
            transport.abort()  # it cannot take even the reason
            return
        data = core.data_to_send()  # the reason frame
        if data:
            transport.write(data)
            core.send_done()
        transport.close()  # flushes what the transport holds, then closes
        conn.abort_at = now + self.config.close_grace
        self._reschedule(conn)

    def _register(self, conn: _Conn, now: float) -> None:
        core = conn.core
        assert core is not None
        devices = self._by_uid.setdefault(core.uid, {})
        old = devices.get(core.device)
        if old is not None and old is not conn and old.core is not None:
            old.replaced = True
            self._apply(old, old.core.close(ErrorCode.SESSION_REPLACED, now), now)
            devices = self._by_uid.setdefault(core.uid, {})
        devices[core.device] = conn
        self._by_session[core.session] = conn
        if self._queue is None:
            return
        event = OnlineEvent(
            uid=core.uid,
            device=core.device,
            access_id=self.config.server_id,
            network=core.network,  # type: ignore[arg-type]
            platform=core.platform,  # type: ignore[arg-type]
            client_version=core.client_version,
            time_ms=self._ctx.wall_ms(now),
            session=core.session,
        )
        self._emit(self.config.online_topic, event.SerializeToString())

    def _targets(self, header: Header) -> list[_Conn]:
        uid = header.receiver_uid
        if uid:
            devices = self._by_uid.get(uid)
            if not devices:
                return []
            if header.receiver_device:
                conn = devices.get(header.receiver_device)
                if conn is None or (header.session and conn.core and conn.core.session != header.session):
                    return []
                return [conn]
            return list(devices.values())
        if header.session:
            conn = self._by_session.get(header.session)
            return [conn] if conn is not None else []
        return []

    # ------------------------------------------------------------------ timers

    def _reschedule(self, conn: _Conn) -> None:
        core = conn.core
        if core is None or conn.done:
            return
        deadline = core.next_deadline()
        if deadline is None:
            deadline = conn.abort_at
        if deadline < conn.scheduled:
            conn.scheduled = deadline
            heapq.heappush(self._heap, (deadline, next(self._tie), conn))
            if deadline < self._timer_target and self._timer_wake is not None:
                self._timer_wake.set()

    async def _timer_loop(self) -> None:
        heap = self._heap
        while True:
            now = self._now()
            while heap and heap[0][0] <= now:
                deadline, _, conn = heapq.heappop(heap)
                if conn.done:
                    continue
                if deadline == conn.scheduled:
                    conn.scheduled = _INF
                core = conn.core
                assert core is not None
                if core.state is _CLOSED:
                    if now >= conn.abort_at and conn.transport is not None:
                        conn.transport.abort()
                        continue
                else:
                    actions = core.handle_timer(now)
                    if actions:
                        self._apply(conn, actions, now)
                self._reschedule(conn)
            self._timer_target = heap[0][0] if heap else _INF
            wake = self._timer_wake
            assert wake is not None
            if wake.is_set():
                wake = self._timer_wake = anyio.Event()
            with anyio.move_on_after(self._timer_target - now):
                await wake.wait()

    # ------------------------------------------------------------------ events and load reports

    def _emit(self, topic: str, payload: bytes) -> None:
        if self._queue is None:
            return
        if len(self._events) >= self._event_buffer:
            self._events.popleft()
            self._m_events_dropped.inc()
        self._events.append((topic, payload))
        if self._events_ready is not None:
            self._events_ready.set()

    async def _publish_loop(self) -> None:
        assert self._queue is not None
        events = self._events
        backoff = 0.05
        while True:
            if not events:
                self._events_ready = anyio.Event()
                await self._events_ready.wait()
                continue
            topic, payload = events[0]
            try:
                await self._queue.publish(topic, payload)
            except Exception as exc:  # the queue is down or refused: keep the event, retry with back-off
                self._m_publish_errors.inc()
                log.warning("publishing on %s failed: %r", topic, exc)
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.05
            if events and events[0] == (topic, payload):
                events.popleft()

    def load_report(self, now: float, cpu: float) -> LoadReport:
        """The load report this server would publish now (``cpu``: fraction of one core)."""
        cfg = self.config
        address = cfg.advertised_address
        if not address and self._address is not None:
            address = f"{self._address[0]}:{self._address[1]}"
        return LoadReport(
            server_id=cfg.server_id,
            connections=len(self._conns),
            send_queue_depth=self._ctx.queued_frames,
            cpu=cpu,
            address=address,
            region=cfg.region,
            isp=cfg.isp,
            time_ms=self._ctx.wall_ms(now),
        )

    async def _load_loop(self) -> None:
        last_cpu = time.process_time()
        last = self._now()
        while True:
            await anyio.sleep(self.config.load_report_interval)
            now = self._now()
            cpu_now = time.process_time()
            cpu = (cpu_now - last_cpu) / max(now - last, 1e-6)
            last_cpu, last = cpu_now, now
            report = self.load_report(now, min(cpu, 1.0))
            self._emit(self.config.load_topic, report.SerializeToString())
