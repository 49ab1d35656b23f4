"""The anyio driver of the client session core: sockets, HTTP answers and one timer in, core actions out.

:class:`SessionDriver` owns **one** task group for the whole client. Everything that happens is handed to
the sans-IO :class:`~imsdk_client._core.session.Session` together with the current time, and the actions it
returns are carried out at once, synchronously:

===============================  ====================================================================
core action                      what the driver does
===============================  ====================================================================
``OpenConnection``               a task races the endpoints (:func:`.race_connect`),
                                 writes the handshake bytes on the winner, reports ``connected``, then
                                 reads: every chunk goes to ``data_received``; EOF or an error to
                                 ``connection_lost``. A race that fails goes to ``connect_failed``.
``SendBytes``                    the bytes join the connection's write queue; one writer task per
                                 connection sends them in order (a failed write is a lost connection)
``CloseConnection``              the connection's tasks are cancelled and its socket closed
``FetchAccessPoints``            a task calls the fetch function (the access manager) and reports the
                                 list or the failure
``RefreshToken``                 a task calls the token function and reports the token or the failure
                                 (``final`` when the credentials were refused)
``Deliver``                      the event goes to the ``on_event`` callback
===============================  ====================================================================

The timer is one cancel scope whose deadline is re-armed from :meth:`Session.next_deadline` after every call
into the core. Time is :func:`anyio.current_time`, so trio's ``MockClock`` drives it too. No asyncio-only API
is used: the driver runs on asyncio and trio.

The race is decided by the TCP connect, and the handshake goes to the winner only. Completing a handshake on
every access point would open a session on each, and the losers' online and offline events could reach the
location server after the winner's and mark the device offline while it is connected.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel

from imsdk_client._core.events import ConnectionState, Event
from imsdk_client._core.race import Endpoint
from imsdk_client._core.session import (
    Action,
    CloseConnection,
    Deliver,
    FetchAccessPoints,
    OpenConnection,
    RefreshToken,
    SendBytes,
    Session,
)
from imsdk_client._drivers.race import AllAccessPointsFailed, Connector, race_connect
from imsdk_client._errors import InvalidCredentials, TokenRejected

__all__ = ["EndpointFetcher", "SessionDriver", "TokenGrant", "TokenSource"]


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """A token and how many seconds it stays valid from now."""

    token: str
    expires_in: float


#: Fetches a fresh list of access points (from the access manager).
EndpointFetcher = Callable[[], Awaitable[Sequence[Endpoint]]]
#: Gets a fresh token; raising ``TokenRejected`` or ``InvalidCredentials`` means logging in cannot help.
TokenSource = Callable[[], Awaitable[TokenGrant]]


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _no_handshake(stream: anyio.abc.ByteStream, endpoint: Endpoint) -> None:
    """The race is won by the connect; the session's handshake goes to the winner alone."""


@dataclass(eq=False)
class _Conn:
    """One connection (or connection attempt) the session asked for."""

    conn_id: int
    scopes: list[anyio.CancelScope] = field(default_factory=list)
    stream: anyio.abc.ByteStream | None = None
    outgoing: deque[bytes] = field(default_factory=deque)
    wake: anyio.Event | None = None
    writer: anyio.CancelScope | None = None
    closed: bool = False


class SessionDriver:
    """Runs ``session`` over real sockets. Use as ``async with SessionDriver(...) as driver:``.

    ``fetch_endpoints`` and ``refresh_token`` answer the core's requests for access points and tokens;
    ``on_event`` receives every event the core delivers (it must not block). ``connector`` opens the
    transport to one endpoint (TCP by default). The app's calls go through :meth:`apply`, e.g.
    ``driver.apply(session.network_changed("4g", driver.now()))``.
    """

    def __init__(
        self,
        session: Session,
        *,
        fetch_endpoints: EndpointFetcher,
        refresh_token: TokenSource,
        on_event: Callable[[Event], None],
        connector: Connector | None = None,
    ) -> None:
        self.session = session
        self._fetch_endpoints = fetch_endpoints
        self._refresh_token = refresh_token
        self._on_event = on_event
        self._connector = connector
        self._conns: dict[int, _Conn] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self._timer_scope: anyio.CancelScope | None = None
        self._running = False
        self._linger = 0.0

    # ------------------------------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> SessionDriver:
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        self._running = True
        tg.start_soon(self._timer)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        self._running = False
        tg = self._tg
        assert tg is not None
        for conn_id in list(self._conns):
            self._close(conn_id)
        tg.cancel_scope.cancel()
        try:
            return await tg.__aexit__(exc_type, exc, tb)
        finally:
            self._tg = None

    def now(self) -> float:
        """The driver's clock (the one every time handed to the session is on)."""
        return anyio.current_time()

    @property
    def open_connections(self) -> int:
        """Connections and attempts the driver holds right now (for tests and metrics)."""
        return len(self._conns)

    # ------------------------------------------------------------------------------------------ actions

    def apply(self, actions: Sequence[Action]) -> None:
        """Carry out the core's actions, then re-arm the timer. Never blocks."""
        for action in actions:
            if isinstance(action, Deliver):
                self._on_event(action.event)
            elif isinstance(action, SendBytes):
                self._write(action.conn_id, action.data)
            elif isinstance(action, OpenConnection):
                self._open(action)
            elif isinstance(action, CloseConnection):
                self._close(action.conn_id)
            elif isinstance(action, FetchAccessPoints):
                self._spawn(self._fetch)
            elif isinstance(action, RefreshToken):
                self._spawn(self._refresh)
        self._rearm()

    def _spawn(self, fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if self._tg is not None and self._running:
            self._tg.start_soon(fn)

    def _write(self, conn_id: int, data: bytes) -> None:
        conn = self._conns.get(conn_id)
        if conn is None or conn.closed:
            return  # a connection the core gave up: nothing more goes out on it
        conn.outgoing.append(data)
        if conn.wake is not None:
            conn.wake.set()

    def _open(self, action: OpenConnection) -> None:
        conn = _Conn(action.conn_id)
        self._conns[action.conn_id] = conn
        if self._tg is None or not self._running:
            return
        scope = anyio.CancelScope()
        conn.scopes.append(scope)
        self._tg.start_soon(self._connect_and_read, conn, scope, action.endpoints, action.handshake)

    def _close(self, conn_id: int) -> None:
        conn = self._conns.pop(conn_id, None)
        if conn is None:
            return
        conn.closed = True
        writer = conn.writer
        if self._linger > 0 and writer is not None and conn.outgoing and conn.stream is not None:
            # A graceful close: the writer sends what is queued (for at most the linger), then closes.
            writer.deadline = min(writer.deadline, self.now() + self._linger)
            for scope in conn.scopes:
                if scope is not writer:
                    scope.cancel()
            if conn.wake is not None:
                conn.wake.set()
            return
        for scope in conn.scopes:
            scope.cancel()
        stream, conn.stream = conn.stream, None
        if stream is not None and self._tg is not None:
            self._tg.start_soon(anyio.aclose_forcefully, stream)

    async def close_gracefully(self, linger: float = 1.0) -> None:
        """Close the session the polite way: acknowledgements due within ``linger`` seconds go out first
        (so the server does not deliver those messages again at the next login), bytes already queued are
        written (for at most ``linger``), then the sockets close."""
        session = self.session
        if linger > 0 and session.state is ConnectionState.READY:
            due = session.reorder.next_deadline()
            if due is not None and due <= self.now() + linger:
                with anyio.move_on_after(linger):
                    while (d := session.reorder.next_deadline()) is not None and d <= due:
                        await anyio.sleep_until(d)
                        await anyio.lowlevel.checkpoint()  # the timer, due at the same instant, runs first
        self._linger = linger
        self.apply(session.close(self.now()))

    def _rearm(self) -> None:
        scope = self._timer_scope
        if scope is not None:
            deadline = self.session.next_deadline()
            scope.deadline = math.inf if deadline is None else deadline

    # ------------------------------------------------------------------------------------------ tasks

    async def _timer(self) -> None:
        """The one timer: sleeps until the core's next deadline (re-armed by :meth:`apply`), then fires."""
        stale: float | None = None
        while True:
            deadline = self.session.next_deadline()
            if deadline is not None and deadline == stale:
                deadline = None  # fired already and nothing changed: wait to be re-armed
            with anyio.CancelScope(deadline=math.inf if deadline is None else deadline) as scope:
                self._timer_scope = scope
                await anyio.sleep_forever()
            self._timer_scope = None
            now = self.now()
            due = self.session.next_deadline()
            if due is not None and due <= now:
                self.apply(self.session.handle_timer(now))
                after = self.session.next_deadline()
                stale = after if after is not None and after <= now else None
            else:
                stale = None

    async def _connect_and_read(
        self,
        conn: _Conn,
        scope: anyio.CancelScope,
        endpoints: Sequence[Endpoint],
        handshake: bytes,
    ) -> None:
        session = self.session
        with scope:
            try:
                result = await race_connect(
                    endpoints,
                    _no_handshake,
                    attempt_timeout=session.config.connect_timeout,
                    connector=self._connector,
                )
            except AllAccessPointsFailed as exc:
                self._forget(conn)
                self.apply(session.connect_failed(conn.conn_id, str(exc), self.now()))
                return
            stream = result.stream
            if conn.closed:
                await anyio.aclose_forcefully(stream)
                return
            conn.stream = stream
            try:
                await stream.send(handshake)
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                self._forget(conn)
                await anyio.aclose_forcefully(stream)
                self.apply(session.connect_failed(conn.conn_id, _describe(exc), self.now()))
                return
            self.apply(session.connected(conn.conn_id, result.endpoint, self.now()))
            if conn.closed or self._tg is None:
                return
            writer_scope = conn.writer = anyio.CancelScope()
            conn.scopes.append(writer_scope)
            self._tg.start_soon(self._writer, conn, writer_scope)
            reason = await self._read(conn, stream)
            if reason is not None:
                self._lost(conn, reason)

    async def _read(self, conn: _Conn, stream: anyio.abc.ByteStream) -> str | None:
        """Feed every chunk to the core; return why the line ended (``None``: the driver closed it)."""
        while True:
            try:
                data = await stream.receive()
            except anyio.EndOfStream:
                return "closed by the server"
            except anyio.ClosedResourceError:
                return None
            except (OSError, anyio.BrokenResourceError) as exc:
                return _describe(exc)
            if conn.closed:
                return None
            self.apply(self.session.data_received(conn.conn_id, data, self.now()))
            if conn.closed:
                return None

    async def _writer(self, conn: _Conn, scope: anyio.CancelScope) -> None:
        """Sends the connection's queue in order; after a graceful close, drains it and closes the socket."""
        try:
            with scope:
                while True:
                    if not conn.outgoing:
                        if conn.closed:
                            return
                        conn.wake = anyio.Event()
                        await conn.wake.wait()
                        continue
                    data = b"".join(conn.outgoing)
                    conn.outgoing.clear()
                    stream = conn.stream
                    if stream is None:
                        return
                    try:
                        await stream.send(data)
                    except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                        if not conn.closed:
                            self._lost(conn, _describe(exc))
                        return
        finally:
            if conn.closed and conn.stream is not None:
                stream, conn.stream = conn.stream, None
                await anyio.aclose_forcefully(stream)

    def _lost(self, conn: _Conn, reason: str) -> None:
        """The line broke under us: close our side, then tell the core."""
        if conn.closed:
            return
        self._close(conn.conn_id)
        self.apply(self.session.connection_lost(conn.conn_id, reason, self.now()))

    def _forget(self, conn: _Conn) -> None:
        conn.closed = True
        self._conns.pop(conn.conn_id, None)

    async def _fetch(self) -> None:
        try:
            endpoints = await self._fetch_endpoints()
        except Exception as exc:  # every failure is the core's news: it backs off and tries again
            self.apply(self.session.fetch_failed(_describe(exc), self.now()))
        else:
            self.apply(self.session.endpoints_fetched(endpoints, self.now()))

    async def _refresh(self) -> None:
        try:
            grant = await self._refresh_token()
        except (InvalidCredentials, TokenRejected) as exc:
            self.apply(self.session.token_refresh_failed(_describe(exc), self.now(), final=True))
        except Exception as exc:  # transient: the core backs off and asks again
            self.apply(self.session.token_refresh_failed(_describe(exc), self.now(), final=False))
        else:
            now = self.now()
            self.apply(self.session.token_refreshed(grant.token, now + grant.expires_in, now))
