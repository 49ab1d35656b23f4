"""The anyio driver of the access server: listener, per-connection reader, writers, timers, connection table.

The driver is thin on purpose; every protocol decision is made by
:class:`~imsdk_server.access._core.AccessConnection`. What lives here:

* one accept loop per listening socket (TLS wrapped in the connection's own task when configured);
* one task per connection reading bytes into its core. Writes happen in that task when it has something to
  answer, or in a short-lived writer task started when a downstream frame arrives for an idle line; there is
  never more than one writer per connection;
* one timer task for the whole server: a heap of per-connection deadlines (from ``next_deadline()``);
* the connection table: uid → device → connection, and session id → connection;
* one publisher task handing online/offline events and load reports to the queue, in order, through a
  bounded buffer so that a slow queue never blocks a connection.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import secrets
import ssl
import time
from collections import deque
from collections.abc import Sequence
from typing import Protocol

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream

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
from imsdk_server.access._errors import AccessError, BackendNotReady, RoutingError
from imsdk_server.access._routing import RoutingTable
from imsdk_server.access._verify import TokenVerifier
from imsdk_server.metrics import Metrics

__all__ = ["AccessServer", "EventPublisher"]

log = logging.getLogger("imsdk_server.access")

_STREAM_GONE = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)
_INF = float("inf")


class EventPublisher(Protocol):
    """Where online/offline events and load reports go: any :class:`imsdk_server.backends.queue.Queue`."""

    async def publish(self, topic: str, payload: bytes) -> str: ...


class _Conn:
    """The driver's side of one connection: its core, its stream and its writer and timer bookkeeping."""

    __slots__ = ("abort_at", "core", "done", "replaced", "scheduled", "stream", "writing")

    def __init__(self, core: AccessConnection, stream: anyio.abc.ByteStream) -> None:
        self.core = core
        self.stream = stream
        self.writing = False
        self.done = False
        self.replaced = False
        self.scheduled = _INF
        self.abort_at = _INF


class AccessServer:
    """An access server: accepts client connections, authenticates them, routes their frames.

    Run it inside a task group with ``await tg.start(server.serve)``; :attr:`address` is then the bound
    address. Back-ends are registered in :attr:`routes`; frames from back-ends for clients are handed to
    :meth:`deliver`. Online/offline events and load reports are published on ``queue`` when one is given.
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
        self._queue = queue
        self._ctx = CoreContext(config, self.metrics)
        m = self.metrics.child("access")
        self._m_events_dropped = m.counter("events_dropped_total")
        self._m_publish_errors = m.counter("publish_errors_total")
        self._m_tls_failures = m.counter("tls_failures_total")
        self._m_accept_errors = m.counter("accept_errors_total")
        self._m_undeliverable = m.counter("undeliverable_total")
        self._by_session: dict[int, _Conn] = {}
        self._by_uid: dict[str, dict[str, _Conn]] = {}
        self._conns: set[_Conn] = set()
        self._heap: list[tuple[float, int, _Conn]] = []
        self._tie = itertools.count()
        self._timer_target = _INF
        self._timer_wake = anyio.Event()
        self._events: deque[tuple[str, bytes]] = deque()
        self._event_buffer = event_buffer
        self._events_ready = anyio.Event()
        self._tg: anyio.abc.TaskGroup | None = None
        self._ssl: ssl.SSLContext | None = None
        self._address: tuple[str, int] | None = None
        self._closing = False

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
        return {device: c.core.session for device, c in self._by_uid.get(uid, {}).items()}

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen and serve until cancelled; reports the bound address to ``task_status``."""
        cfg = self.config
        if cfg.certfile is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(cfg.certfile, cfg.keyfile)
            self._ssl = ctx
        self._ctx.wall_offset = time.time() - anyio.current_time()
        listener = await anyio.create_tcp_listener(
            local_host=cfg.host, local_port=cfg.port, backlog=cfg.backlog
        )
        try:
            sockets = listener.listeners
            raw = sockets[0].extra(anyio.abc.SocketAttribute.raw_socket)
            host, port = raw.getsockname()[:2]
            self._address = (host, port)
            async with anyio.create_task_group() as tg:
                self._tg = tg
                for sock in sockets:
                    if isinstance(sock, anyio.abc.SocketListener):
                        tg.start_soon(self._accept_loop, sock)
                tg.start_soon(self._timer_loop)
                if self._queue is not None:
                    tg.start_soon(self._publish_loop)
                    tg.start_soon(self._load_loop)
                task_status.started((host, port))
        finally:
            self._tg = None
            await listener.aclose()

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
        now = anyio.current_time()
        encoded: dict[Codec | None, bytes] = {}
        count = 0
        for conn in targets:
            core = conn.core
            codec = core.codec
            data = encoded.get(codec)
            if data is None:
                try:
                    data = encoded[codec] = frame.to_codec(codec or Codec.PROTOBUF).encode()
                except ProtocolError as exc:
                    self._ctx.error(exc.code)
                    return 0
            actions = core.send(data, now, header.biz)
            if actions:
                self._apply_sync(conn, actions, now)
            else:
                count += 1
                self._start_writer(conn)
        return count

    async def on_link_frame(self, link: object, frame: Frame) -> None:
        """A :class:`imsdk_server.links.LinkHub` frame handler: back-ends' frames go to :meth:`deliver`."""
        self.deliver(frame)

    def close_session(self, session: int, code: ErrorCode = ErrorCode.SERVER_SHUTTING_DOWN) -> bool:
        """Close one session with ``code``; ``False`` if it is not here."""
        conn = self._by_session.get(session)
        if conn is None:
            return False
        now = anyio.current_time()
        self._apply_sync(conn, conn.core.close(code, now), now)
        return True

    def shutdown_connections(self) -> int:
        """Close every connection with ``SERVER_SHUTTING_DOWN`` (the clients reconnect elsewhere)."""
        now = anyio.current_time()
        conns = list(self._conns)
        for conn in conns:
            self._apply_sync(conn, conn.core.close(ErrorCode.SERVER_SHUTTING_DOWN, now), now)
        return len(conns)

    # ------------------------------------------------------------------ accepting and reading

    async def _accept_loop(self, listener: anyio.abc.SocketListener) -> None:
        assert self._tg is not None
        tg = self._tg
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:  # out of file descriptors, aborted handshakes: keep serving
                self._m_accept_errors.inc()
                log.warning("accept failed: %s", exc)
                await anyio.sleep(0.05)
                continue
            tg.start_soon(self._handle, stream)

    async def _handle(self, stream: anyio.abc.ByteStream) -> None:
        if self._ssl is not None:
            try:
                with anyio.fail_after(self.config.handshake_timeout):
                    stream = await TLSStream.wrap(stream, ssl_context=self._ssl, standard_compatible=False)
            except (TimeoutError, ssl.SSLError, *_STREAM_GONE):
                self._m_tls_failures.inc()
                await anyio.aclose_forcefully(stream)
                return
        now = anyio.current_time()
        core = AccessConnection(self._ctx, now)
        conn = _Conn(core, stream)
        self._conns.add(conn)
        self._ctx.connections.inc()
        self._reschedule(conn)
        try:
            while core.state is not State.CLOSED:
                try:
                    data = await stream.receive()
                except _STREAM_GONE:
                    break
                now = anyio.current_time()
                actions = core.receive_data(data, now)
                if actions:
                    await self._apply(conn, actions)
                if not conn.writing and core.queued_frames:
                    await self._write(conn)
                self._reschedule(conn)
        finally:
            now = anyio.current_time()
            if core.state is not State.CLOSED:
                self._apply_sync(conn, core.connection_lost(now), now)
            if not conn.writing and not conn.done:
                with anyio.CancelScope(shield=True):
                    await self._write(conn)

    async def _apply(self, conn: _Conn, actions: Sequence[Action]) -> None:
        for action in actions:
            if isinstance(action, Forward):
                await self._forward(conn, action)
            elif isinstance(action, Authenticate):
                await self._authenticate(conn, action)
            else:
                self._closed(conn, action, anyio.current_time())

    def _apply_sync(self, conn: _Conn, actions: Sequence[Action], now: float) -> None:
        for action in actions:
            if isinstance(action, Closed):
                self._closed(conn, action, now)

    async def _authenticate(self, conn: _Conn, request: Authenticate) -> None:
        core = conn.core
        try:
            identity = await self._verifier.verify(request.token, request.device)
            if identity.device != request.device:
                raise AccessError("token names another device", ErrorCode.TOKEN_INVALID)
        except AccessError as exc:
            self._apply_sync(conn, core.auth_failed(exc.code, anyio.current_time()), anyio.current_time())
            return
        session = secrets.randbits(63) or 1
        while session in self._by_session:
            session = secrets.randbits(63) or 1
        seq_base = secrets.randbits(30) << 32
        now = anyio.current_time()
        if not core.authenticated(identity.uid, identity.device, session, seq_base, now):
            return
        self._register(conn, now)

    async def _forward(self, conn: _Conn, action: Forward) -> None:
        header = action.header
        try:
            backend = self.routes.resolve(header)
            frame = action.to_frame()
        except (RoutingError, ProtocolError) as exc:
            conn.core.reject(header, exc.code, anyio.current_time())
            return
        try:
            await backend.send(frame)
        except Exception as exc:  # a back-end that fails must not take the client's line down
            log.debug("back-end %s refused a frame: %r", backend.server_id, exc)
            conn.core.reject(header, BackendNotReady.code, anyio.current_time())

    # ------------------------------------------------------------------ writing and closing

    def _start_writer(self, conn: _Conn) -> None:
        if not conn.writing and not conn.done and self._tg is not None:
            conn.writing = True
            self._tg.start_soon(self._write, conn)

    async def _write(self, conn: _Conn) -> None:
        """Write everything queued; when the line is closed, close the stream after the last byte."""
        core = conn.core
        stream = conn.stream
        conn.writing = True
        try:
            while True:
                data = core.data_to_send()
                if not data:
                    break
                try:
                    await stream.send(data)
                except _STREAM_GONE:
                    core.release()
                    if core.state is not State.CLOSED:
                        now = anyio.current_time()
                        self._apply_sync(conn, core.connection_lost(now), now)
                    break
                core.send_done()
        finally:
            conn.writing = False
        if core.state is State.CLOSED and not conn.done:
            await self._finish(conn)

    async def _finish(self, conn: _Conn) -> None:
        conn.done = True
        conn.core.release()
        with anyio.move_on_after(self.config.close_grace, shield=True) as scope:
            await conn.stream.aclose()
        if scope.cancelled_caught:
            await anyio.aclose_forcefully(conn.stream)

    async def _abort(self, conn: _Conn) -> None:
        if not conn.done:
            conn.done = True
            conn.core.release()
            await anyio.aclose_forcefully(conn.stream)

    def _closed(self, conn: _Conn, closed: Closed, now: float) -> None:
        """Book-keeping of a line that just closed: table, gauges, offline event, flush-then-close."""
        if conn in self._conns:
            self._conns.discard(conn)
            self._ctx.connections.dec()
        core = conn.core
        if closed.was_open:
            if self._by_session.get(core.session) is conn:
                del self._by_session[core.session]
            devices = self._by_uid.get(core.uid)
            if devices is not None and devices.get(core.device) is conn:
                del devices[core.device]
                if not devices:
                    del self._by_uid[core.uid]
            if not conn.replaced:
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
        tg = self._tg
        if tg is None:
            return
        if closed.code is ErrorCode.SLOW_CONSUMER:
            tg.start_soon(self._abort, conn)
        else:
            conn.abort_at = now + self.config.close_grace
            self._reschedule(conn)
            if not conn.writing:
                conn.writing = True
                tg.start_soon(self._write, conn)

    def _register(self, conn: _Conn, now: float) -> None:
        core = conn.core
        devices = self._by_uid.setdefault(core.uid, {})
        old = devices.get(core.device)
        if old is not None and old is not conn:
            old.replaced = True
            self._apply_sync(old, old.core.close(ErrorCode.SESSION_REPLACED, now), now)
            devices = self._by_uid.setdefault(core.uid, {})
        devices[core.device] = conn
        self._by_session[core.session] = conn
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
                if conn is None or (header.session and conn.core.session != header.session):
                    return []
                return [conn]
            return list(devices.values())
        if header.session:
            conn = self._by_session.get(header.session)
            return [conn] if conn is not None else []
        return []

    # ------------------------------------------------------------------ timers

    def _reschedule(self, conn: _Conn) -> None:
        deadline = conn.core.next_deadline()
        if deadline is None:
            deadline = conn.abort_at
        if deadline < conn.scheduled:
            conn.scheduled = deadline
            heapq.heappush(self._heap, (deadline, next(self._tie), conn))
            if deadline < self._timer_target:
                self._timer_wake.set()

    async def _timer_loop(self) -> None:
        heap = self._heap
        while True:
            now = anyio.current_time()
            while heap and heap[0][0] <= now:
                deadline, _, conn = heapq.heappop(heap)
                if conn.done:
                    continue
                if deadline == conn.scheduled:
                    conn.scheduled = _INF
                core = conn.core
                if core.state is State.CLOSED:
                    if now >= conn.abort_at and self._tg is not None:
                        self._tg.start_soon(self._abort, conn)
                        continue
                else:
                    actions = core.handle_timer(now)
                    if actions:
                        self._apply_sync(conn, actions, now)
                self._reschedule(conn)
            self._timer_target = heap[0][0] if heap else _INF
            if self._timer_wake.is_set():
                self._timer_wake = anyio.Event()
            with anyio.move_on_after(self._timer_target - now):
                await self._timer_wake.wait()

    # ------------------------------------------------------------------ events and load reports

    def _emit(self, topic: str, payload: bytes) -> None:
        if self._queue is None:
            return
        if len(self._events) >= self._event_buffer:
            self._events.popleft()
            self._m_events_dropped.inc()
        self._events.append((topic, payload))
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
        last = anyio.current_time()
        while True:
            await anyio.sleep(self.config.load_report_interval)
            now = anyio.current_time()
            cpu_now = time.process_time()
            cpu = (cpu_now - last_cpu) / max(now - last, 1e-6)
            last_cpu, last = cpu_now, now
            report = self.load_report(now, min(cpu, 1.0))
            self._emit(self.config.load_topic, report.SerializeToString())
