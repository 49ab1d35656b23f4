"""Every link of one server: accept, dial, look up by peer, hand traffic to the application, deregister.

A :class:`LinkHub` is an async context manager owning a task group; each link runs in it. The application
gives one :data:`FrameHandler` for all traffic and asks the hub for ready links by role or business code.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self, cast, runtime_checkable

import anyio
from anyio.abc import TaskGroup

from imsdk_proto.codes import ErrorCode
from imsdk_server.links._core import LinkConfig, LinkCore, LinkIdentity, LinkState
from imsdk_server.links._driver import FrameHandler, HealthCallback, Link, LinkMetrics, StateCallback
from imsdk_server.links._errors import LinkNotReady
from imsdk_server.metrics import Metrics

__all__ = ["Deregistrar", "DrainReport", "LinkHub"]

log = logging.getLogger("imsdk_server.links")

_LINKED_UP = frozenset(
    {
        LinkState.LINKED,
        LinkState.READY_LOCAL,
        LinkState.READY_REMOTE,
        LinkState.READY,
        LinkState.DRAINING,
        LinkState.PEER_DRAINING,
        LinkState.BOTH_DRAINING,
        LinkState.DRAINED,
        LinkState.FINISHED,
    }
)


@runtime_checkable
class Deregistrar(Protocol):
    """Anything the hub can remove this server from before it drains its links.

    The registry of :mod:`imsdk_server.backends.registry` fits (its key is a ``ServerKey``); so does any
    object whose ``deregister`` takes the server id.
    """

    async def deregister(self, key: Any, /) -> None: ...


@dataclass(frozen=True)
class DrainReport:
    """How a deregistration went. Peers are ``(role, server_id)`` pairs."""

    acked: list[tuple[int, int]] = field(default_factory=list)
    """Peers that acked our not-ready: every frame they sent us has been handled."""
    timed_out: list[tuple[int, int]] = field(default_factory=list)
    """Peers that did not ack before the deadline (their link was closed anyway)."""
    lost: list[tuple[int, int]] = field(default_factory=list)
    """Peers whose link closed during the drain before acking (died, reset)."""
    seconds: float = 0.0
    """From the start of the deregistration to the last link closed."""
    registry_error: str = ""
    """Why removing the entry from the registry failed (the drain went on regardless), or empty."""
    idle_timed_out: bool = False
    """The application's work in flight (``idle``) did not finish before the deadline; answers it still
    had to send were cut when the links closed."""

    @property
    def complete(self) -> bool:
        """The registry entry was removed, every peer acked in time and the application went idle."""
        return not self.timed_out and not self.lost and not self.registry_error and not self.idle_timed_out


class _Refused(asyncio.Protocol):
    """A connection that arrived after the hub stopped accepting: closed at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast(asyncio.Transport, transport).abort()


class LinkHub:
    """The links of one server.

    ``identity`` is what our hellos say. ``handler`` receives every traffic frame of every link. ``ready``
    says whether links become ready as soon as their hellos are exchanged (the usual case: a server starts
    its hub once it can serve); otherwise call :meth:`mark_ready`. ``ssl_context`` makes :meth:`listen`
    serve TLS; :meth:`connect` takes its own client context. ``on_state`` hears every link's state changes
    and ``on_health`` the failure detector's verdicts about every peer (see :data:`HealthCallback`).
    """

    def __init__(
        self,
        identity: LinkIdentity,
        *,
        config: LinkConfig | None = None,
        handler: FrameHandler | None = None,
        metrics: Metrics | None = None,
        ssl_context: ssl.SSLContext | None = None,
        ready: bool = True,
        on_state: StateCallback | None = None,
        on_health: HealthCallback | None = None,
    ) -> None:
        self.identity = identity
        self._on_health = on_health
        self.config = config if config is not None else LinkConfig()
        self.metrics = metrics if metrics is not None else Metrics()
        self._m = LinkMetrics(self.metrics.child("links"))
        self._handler = handler
        self._ssl = ssl_context
        self._ready = ready
        self._on_state = on_state
        self._links: set[Link] = set()
        self._by_peer: dict[tuple[int, int], Link] = {}
        self._tg: TaskGroup | None = None
        self._servers: list[asyncio.Server] = []
        self._accepting = True
        self.addresses: list[tuple[str, int]] = []

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        assert self._tg is not None
        self._stop_listening()
        links = list(self._links)
        for link in links:
            link.close(ErrorCode.SERVER_SHUTTING_DOWN, "server stopping")
        with anyio.CancelScope(shield=True), anyio.move_on_after(self.config.close_grace + 1.0):
            for link in links:
                await link.wait_closed()
        self._tg.cancel_scope.cancel()
        return await self._tg.__aexit__(exc_type, exc, tb)

    async def listen(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Accept links on ``host:port`` (TLS if the hub has an ``ssl_context``); return the bound address."""
        self._require_tg()
        loop = asyncio.get_running_loop()
        server = await loop.create_server(self._accepted, host, port, ssl=self._ssl)
        self._servers.append(server)
        bound = server.sockets[0].getsockname()
        address = (bound[0], bound[1])
        self.addresses.append(address)
        return address

    def _accepted(self) -> asyncio.Protocol:
        """A new connection's protocol: a link whose peer is not known until its hello."""
        if not self._accepting:
            return _Refused()
        link = self._make_link(None, None)
        # Run the link in the hub's task group, not the listener's: stopping listening keeps open links.
        self._require_tg().start_soon(self._run_made_link, link)
        return link

    async def connect(
        self,
        host: str,
        port: int,
        *,
        expect_server_id: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> Link:
        """Dial a peer and start its link (hello, then ready). Await :meth:`Link.wait_ready` to use it.

        Raises ``OSError`` when the connection cannot be made.
        """
        tg = self._require_tg()
        loop = asyncio.get_running_loop()
        made: list[Link] = []

        def factory() -> Link:
            made.append(self._make_link(expect_server_id, (host, port)))
            return made[-1]

        try:
            if ssl_context is None:
                await loop.create_connection(factory, host, port)
            else:
                await loop.create_connection(
                    factory, host, port, ssl=ssl_context, server_hostname=server_hostname or host
                )
        except BaseException:  # refused, or cancelled: a connection made meanwhile is dropped
            for link in made:
                self._links.discard(link)
                link.abort()
            raise
        link = made[-1]
        tg.start_soon(self._run_made_link, link)
        return link

    def _make_link(self, expect: int | None, remote: Any) -> Link:
        now = asyncio.get_running_loop().time()  # what anyio.current_time() reads, outside a task too
        core = LinkCore(self.identity, self.config, now, expect_server_id=expect, ready=self._ready)
        link = Link(
            core,
            handler=self._handler,
            metrics=self._m,
            on_state=self._state_changed,
            on_health=self._on_health,
            remote_address=remote,
        )
        self._links.add(link)
        return link

    async def _run_made_link(self, link: Link) -> None:
        try:
            await link.run()
        finally:
            self._links.discard(link)
            peer = link.peer
            if peer is not None and self._by_peer.get((peer.role, peer.server_id)) is link:
                del self._by_peer[(peer.role, peer.server_id)]

    def _state_changed(self, link: Link, old: LinkState, new: LinkState) -> None:
        if new is LinkState.LINKED:
            peer = link.peer
            assert peer is not None
            key = (peer.role, peer.server_id)
            older = self._by_peer.get(key)
            self._by_peer[key] = link
            if older is not None and older is not link:
                # The peer restarted and linked again before the old link was found dead: the newer wins.
                older.close(ErrorCode.SESSION_REPLACED, "the peer opened a newer link")
        if self._on_state is not None:
            self._on_state(link, old, new)

    def _require_tg(self) -> TaskGroup:
        if self._tg is None:
            raise RuntimeError("use the LinkHub as an async context manager first")
        return self._tg

    def _stop_listening(self) -> None:
        self._accepting = False
        for server in self._servers:
            server.close()

    # -- lookups ---------------------------------------------------------------------------------------------

    @property
    def links(self) -> list[Link]:
        """Every open link, in no particular order."""
        return list(self._links)

    def link_to(self, role: int, server_id: int) -> Link | None:
        """The link to one peer (once its hello arrived), or ``None``."""
        return self._by_peer.get((role, server_id))

    def ready_links(self, role: int | None = None, biz: int | None = None) -> list[Link]:
        """Links on which traffic may be sent now, optionally only to peers of ``role`` / handling ``biz``."""
        out = []
        for link in self._by_peer.values():
            peer = link.peer
            if not link.ready or peer is None:
                continue
            if role is not None and peer.role != role:
                continue
            if biz is not None and biz not in peer.bizs:
                continue
            out.append(link)
        return out

    def mark_ready(self) -> None:
        """This server now accepts traffic: say ready on every link, and on every later link at once."""
        self._ready = True
        for link in list(self._links):
            if link.state in (LinkState.IDLE, LinkState.HELLO_SENT, LinkState.LINKED, LinkState.READY_REMOTE):
                link.mark_ready()

    async def send_to(self, role: int, server_id: int, frame: Any) -> None:
        """Send a traffic frame to one peer; raise :class:`LinkNotReady` if it has no ready link."""
        link = self._by_peer.get((role, server_id))
        if link is None:
            raise LinkNotReady(f"no link to server {server_id} (role {role})")
        await link.send(frame)

    # -- deregistration --------------------------------------------------------------------------------------

    async def deregister(
        self,
        registry: Deregistrar | Callable[[], Awaitable[Any]] | None = None,
        *,
        key: Any = None,
        idle: Callable[[], Awaitable[Any]] | None = None,
        drain_timeout: float = 10.0,
    ) -> DrainReport:
        """Leave the service without losing a frame.

        1. remove this server from ``registry`` (``await registry.deregister(key)``, ``key`` defaulting to our
           server id; or ``await registry()`` for a plain callable), at most ``drain_timeout``, and stop
           accepting links;
        2. send not-ready on every link (links still in their hello are closed);
        3. wait until every peer acked — every frame it sent before the ack has then been handled — and then
           until ``await idle()`` returns: the application has answered the work it accepted (a router's
           commits, say), which it may still send on links whose peer acked; both within ``drain_timeout``;
        4. flush every send buffer, close every link, and report.
        """
        start = anyio.current_time()
        registry_error = ""
        if registry is not None:
            try:
                with anyio.fail_after(drain_timeout):
                    if isinstance(registry, Deregistrar):
                        await registry.deregister(self.identity.server_id if key is None else key)
                    else:
                        result = registry()
                        if inspect.isawaitable(result):
                            await result
            except TimeoutError:
                registry_error = f"timed out: the registry did not answer within {drain_timeout} s"
                log.warning("deregistration: %s", registry_error)
            except Exception as exc:
                # Draining anyway is the safer choice: the peers stop sending to us in order, and an
                # ephemeral registry entry disappears with our registry session when the process exits.
                registry_error = f"{type(exc).__name__}: {exc}"
                log.warning("deregistration: removing the registry entry failed: %s", registry_error)
        self._stop_listening()
        links = list(self._links)
        peers: dict[Link, tuple[int, int]] = {}
        for link in links:
            if link.peer is not None:
                peers[link] = (link.peer.role, link.peer.server_id)
            link.drain()
        idle_timed_out = False
        with anyio.move_on_after(drain_timeout) as drain_scope:
            for link in links:
                await link.wait_drained()
            if idle is not None:
                idle_timed_out = True
                await idle()
                idle_timed_out = False
        if idle is not None and drain_scope.cancelled_caught:
            idle_timed_out = True
        acked: list[tuple[int, int]] = []
        timed_out: list[tuple[int, int]] = []
        lost: list[tuple[int, int]] = []
        late: set[Link] = set()
        for link, peer in peers.items():
            if link.state in (LinkState.DRAINED, LinkState.FINISHED):
                acked.append(peer)
            elif link.state is LinkState.CLOSED:
                lost.append(peer)
            else:
                timed_out.append(peer)
                late.add(link)
        for link in links:
            if link in late:
                link.close(ErrorCode.SERVER_SHUTTING_DOWN, "drain timed out")
            else:
                link.close(ErrorCode.OK, "deregistered")
        for link in links:
            await link.wait_closed()
        seconds = anyio.current_time() - start
        self._m.drain_seconds.observe(seconds)
        report = DrainReport(
            sorted(acked), sorted(timed_out), sorted(lost), seconds, registry_error, idle_timed_out
        )
        if not report.complete:
            log.warning("deregistration incomplete: %s", report)
        return report
