"""Watching access servers for a presence view: a link to every registered access server, verdicts out.

:class:`AccessWatch` dials every access server the registry lists under role ``access`` (and every one that
registers later, again and again while it is listed) from a link hub of its own, feeds what happens on those
links to an :class:`~imsdk_server.allinone._watch_core.AccessWatchCore`, and hands the verdicts to a sink,
normally :meth:`~imsdk_server.location.LocationService.server_status`:

* the detector's ``suspect``, ``alive`` and ``down`` of the current link pass through (three probes before
  ``down``, as the links decide it);
* a link that ends after the access server said not-ready (its orderly deregistration) gives ``stopped``;
* a link that ends any other way gives ``suspect`` at once and a redial; linked again within the probe
  window it is ``alive``, otherwise ``down``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable

import anyio
from anyio.abc import TaskStatus

from imsdk_proto.messages import ServerRole
from imsdk_server.allinone._watch_core import AccessWatchCore, WatchInput
from imsdk_server.backends.registry import Registry, RegistryError, ServerInfo, ServerState
from imsdk_server.links import Health, Link, LinkConfig, LinkHub, LinkIdentity, LinkState
from imsdk_server.metrics import Metrics

__all__ = ["AccessWatch", "VerdictSink"]

log = logging.getLogger("imsdk_server.allinone")

VerdictSink = Callable[[int, str], object]
"""Receives ``(access server id, verdict)``; the verdict is a links ``Health`` value string."""

_ACCESS = int(ServerRole.SERVER_ROLE_ACCESS)


class AccessWatch:
    """A link to every access server of ``identity.domain`` in ``registry``; verdicts about them to ``sink``.

    ``identity`` is what the watch's hellos say (a location-role identity with a server id of its own, so
    that it never replaces another link of the process). ``link_config`` must match the access servers'
    link timing: their heartbeats are what the detector listens for. Run :meth:`run` in a task group;
    cancelling it closes the links without a verdict. Counts ``access_watch_verdicts{verdict}`` and
    ``access_watch_dial_errors``.
    """

    def __init__(
        self,
        sink: VerdictSink,
        registry: Registry,
        identity: LinkIdentity,
        *,
        role: str = "access",
        link_config: LinkConfig | None = None,
        metrics: Metrics | None = None,
        redial_interval: float = 1.0,
    ) -> None:
        self.sink = sink
        self.registry = registry
        self.identity = identity
        self.role = role
        self.redial_interval = redial_interval
        self.metrics = metrics if metrics is not None else Metrics()
        config = dataclasses.replace(link_config or LinkConfig(), accept_roles=frozenset({_ACCESS}))
        self.core = AccessWatchCore(config.probes * config.probe_timeout)
        self.hub = LinkHub(
            identity, config=config, metrics=self.metrics, on_state=self._on_state, on_health=self._on_health
        )
        self._m = self.metrics.child("access_watch")
        self._m_dial_errors = self._m.counter("dial_errors")
        self._current: dict[int, Link] = {}
        self._dialing: dict[int, Link] = {}
        self._drained: set[Link] = set()
        self._peers: dict[int, ServerInfo] = {}
        self._stopping = False
        self._wake = anyio.Event()
        self._timer_wake = anyio.Event()
        self._changed = anyio.Event()

    def linked(self) -> list[int]:
        """The access servers with a link up now."""
        return sorted(self._current)

    async def wait_linked(self, server: int, linked: bool = True) -> None:
        """Wait until the link to access server ``server`` is up (or, with ``linked=False``, gone)."""
        while (server in self._current) != linked:
            await self._changed.wait()

    # -- running ---------------------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Follow the registry and keep the links until cancelled; reports started at once."""
        async with self.hub:
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._follow)
                    tg.start_soon(self._timer)
                    tg.start_soon(self._dial_loop)
                    task_status.started()
            finally:
                # Our own links closing from here on say nothing about the access servers.
                self._stopping = True

    async def _follow(self) -> None:
        while True:
            try:
                async with self.registry.watch_servers(self.identity.domain, self.role) as snapshots:
                    async for snapshot in snapshots:
                        self._registry_changed(snapshot)
            except RegistryError as exc:
                log.warning("access watch: registry watch failed: %r", exc)
            await anyio.sleep(self.redial_interval)

    def _registry_changed(self, snapshot: tuple[ServerInfo, ...]) -> None:
        # A server going NOT_READY is deregistering: it is not dialled again (its drain is on the link).
        peers = {p.server_id: p for p in snapshot if p.state is not ServerState.NOT_READY}
        for gone in set(self._peers) - set(peers):
            self.core.forget(gone)
        self._peers = peers
        self._wake.set()

    async def _dial_loop(self) -> None:
        while True:
            with anyio.move_on_after(self.redial_interval):
                await self._wake.wait()
            self._wake = anyio.Event()
            for peer in list(self._peers.values()):
                await self._dial(peer)

    async def _dial(self, peer: ServerInfo) -> None:
        sid = peer.server_id
        for table in (self._current, self._dialing):
            link = table.get(sid)
            if link is not None and link.state is not LinkState.CLOSED:
                return  # linked, or a dial still in its hello (a frozen server accepts but never says hello)
        try:
            self._dialing[sid] = await self.hub.connect(peer.host, peer.port, expect_server_id=sid)
        except OSError as exc:
            self._m_dial_errors.inc()
            log.info("access watch: cannot link to access server %d: %s", sid, exc)

    async def _timer(self) -> None:
        while True:
            deadline = self.core.next_deadline()
            now = anyio.current_time()
            if deadline is not None and deadline <= now:
                self.core.handle_timer(now)
                self._flush()
                continue
            self._timer_wake = anyio.Event()
            with anyio.move_on_after(math.inf if deadline is None else deadline - now):
                await self._timer_wake.wait()

    # -- link callbacks --------------------------------------------------------------------------------------

    def _on_state(self, link: Link, old: LinkState, new: LinkState) -> None:
        peer = link.peer
        if self._stopping or peer is None:
            return
        sid = peer.server_id
        if new is LinkState.LINKED:
            self._current[sid] = link
            if self._dialing.get(sid) is link:
                del self._dialing[sid]
            self._input(sid, WatchInput.LINKED)
        elif new in (LinkState.PEER_DRAINING, LinkState.BOTH_DRAINING):
            self._drained.add(link)  # the peer said not-ready: when this link ends, it left in order

    def _on_health(self, link: Link, health: Health) -> None:
        peer = link.peer
        if self._stopping or peer is None or self._current.get(peer.server_id) is not link:
            self._drained.discard(link)
            return  # a link replaced by a newer one says nothing about the server
        sid = peer.server_id
        if health is Health.STOPPED:
            del self._current[sid]
            orderly = link in self._drained
            self._drained.discard(link)
            self._input(sid, WatchInput.LEFT if orderly else WatchInput.LOST)
            if not orderly:
                self._wake.set()  # dial again at once: linked again within the window, it was jitter
            return
        if health is Health.DOWN:
            del self._current[sid]
        self._input(sid, WatchInput(health.value))

    def _input(self, server: int, inp: WatchInput) -> None:
        try:
            self.core.handle(server, inp, anyio.current_time())
        finally:
            self._flush()
            self._timer_wake.set()
            self._changed.set()
            self._changed = anyio.Event()

    def _flush(self) -> None:
        for server, health in self.core.pop_verdicts():
            self._m.counter("verdicts", verdict=health.value).inc()
            log.info("access watch: access server %d is %s", server, health.value)
            self.sink(server, health.value)
