"""The access manager service: consumes load reports, follows the registry, answers "which 3 access points?".

The decisions live in two pure pieces: :class:`~imsdk_server.access_manager.AccessServerTable` (who may be
offered, on explicit time) and :func:`~imsdk_server.access_manager.rank_access_points` (in which order). This
module is the thin driver around them: one task consumes the ``load`` topic, one watches the registry's
``access`` role, one forgets stale rows; :meth:`AccessManager.access_points` answers requests.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

import anyio
import anyio.abc
from google.protobuf.message import DecodeError

from imsdk_proto.messages import LoadReport
from imsdk_server.access_manager._config import AccessManagerConfig
from imsdk_server.access_manager._errors import BadLoadReport, NoAccessPoints, TokenRejected
from imsdk_server.access_manager._ranking import RandomSource, ServerStatus, rank_access_points
from imsdk_server.access_manager._table import AccessServerTable, Forgotten, ServerRow
from imsdk_server.backends.queue import InvalidQueueArgument, Queue, QueueClosed, QueueError
from imsdk_server.backends.registry import Registry, RegistryClosed, RegistryError, ServerInfo, ServerState
from imsdk_server.config import ConfigError, parse_host_port
from imsdk_server.metrics import Metrics

if TYPE_CHECKING:
    from imsdk_server.auth import TokenVerifier as _AuthTokenVerifier

__all__ = ["ACCESS_ROLE", "AccessManager", "BearerVerifier", "LocalBearerVerifier", "decode_load_report"]

log = logging.getLogger(__name__)

#: The registry role access servers register under.
ACCESS_ROLE = "access"


class BearerVerifier(Protocol):
    """What the access manager needs from token verification: the uid of a valid bearer token."""

    async def verify(self, token: str) -> str:
        """The uid the token was issued to; raises :class:`~imsdk_server.access_manager.TokenRejected`."""
        ...


class LocalBearerVerifier:
    """v2 tokens, verified in-process by the auth package's pure :class:`imsdk_server.auth.TokenVerifier`."""

    def __init__(self, verifier: _AuthTokenVerifier, *, clock: Callable[[], float] = time.time) -> None:
        self._verifier = verifier
        self._clock = clock

    async def verify(self, token: str) -> str:
        from imsdk_server.auth import AuthError

        try:
            return self._verifier.verify(token, self._clock()).uid
        except AuthError as exc:
            # Like the auth server: one answer whatever the fault, so a caller learns nothing from it.
            raise TokenRejected("invalid token", exc.code) from None


def decode_load_report(payload: bytes, received_at: float) -> ServerStatus:
    """A load report's protobuf bytes as a :class:`ServerStatus`; :class:`BadLoadReport` when unusable."""
    try:
        report = LoadReport.FromString(payload)
    except DecodeError:
        raise BadLoadReport("load report does not decode") from None
    if report.server_id == 0:
        raise BadLoadReport("load report without a server id")
    try:
        address = parse_host_port(report.address)
    except ConfigError:
        raise BadLoadReport(f"server {report.server_id}: bad address {report.address!r}") from None
    if address.port == 0:
        raise BadLoadReport(f"server {report.server_id}: address {report.address!r} has no port")
    cpu = report.cpu if report.cpu == report.cpu else 0.0  # NaN counts as unknown
    return ServerStatus(
        server_id=report.server_id,
        host=address.host,
        port=address.port,
        region=report.region,
        isp=report.isp,
        connections=report.connections,
        send_queue_depth=report.send_queue_depth,
        cpu=min(max(cpu, 0.0), 1.0),
        reported_at=received_at,
        capacity=report.max_connections,
        sent_at_ms=report.time_ms,
        name=report.name,
    )


def _offerable(info: ServerInfo) -> bool:
    """Registered or ready servers may be offered; a draining (not-ready) one may not."""
    return info.state is not ServerState.NOT_READY


class AccessManager:
    """Tracks access servers and answers access-point requests.

    ``registry`` is optional: without one, staleness alone decides who is offered. ``clock`` is a monotonic
    clock (seconds) for report ages; ``wall_clock`` (Unix seconds) is compared only with report timestamps to
    skip reports older than ``config.max_report_age``. ``rng`` draws among near-equal servers.
    """

    def __init__(
        self,
        config: AccessManagerConfig,
        *,
        queue: Queue,
        verifier: BearerVerifier,
        registry: Registry | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: RandomSource | None = None,
    ) -> None:
        self.config = config
        self.queue = queue
        self.verifier = verifier
        self.registry = registry
        self.metrics = (metrics if metrics is not None else Metrics()).child("access_manager")
        self._clock = clock
        self._wall_clock = wall_clock
        self._rng: RandomSource = rng if rng is not None else random.Random()
        self._policy = config.ranking_policy()
        self.table = AccessServerTable(
            staleness=config.staleness,
            require_registration=registry is not None and config.require_registration,
            capacity=config.capacity,
        )
        self.consumer_name = config.consumer_name or f"{socket.gethostname()}-{os.getpid()}"[:128]
        self.consumer_group = config.consumer_group or f"access-manager-{self.consumer_name}"[:128]
        m = self.metrics
        self._m_consumed = m.counter("reports_consumed")
        self._m_rejected = m.counter("reports_rejected")
        self._m_outdated = m.counter("reports_outdated")
        self._m_unavailable = m.counter("unavailable")
        self._m_queue_errors = m.counter("queue_errors")
        self._m_registry_errors = m.counter("registry_errors")
        self._m_registry_updates = m.counter("registry_updates")
        m.gauge("servers_tracked", lambda: float(len(self.table)))
        m.gauge("servers_available", lambda: float(len(self.table.available(self._clock()))))

    # -- inputs

    def handle_report(self, payload: bytes) -> ServerStatus | None:
        """Apply one load report; returns the row it made, or ``None`` if it was older than what we hold.

        Raises :class:`BadLoadReport` (after counting it) for a report that cannot be used.
        """
        try:
            status = decode_load_report(payload, self._clock())
        except BadLoadReport:
            self._m_rejected.inc()
            raise
        self._m_consumed.inc()
        max_age = self.config.max_report_age
        if max_age > 0 and status.sent_at_ms and status.sent_at_ms / 1000 < self._wall_clock() - max_age:
            self._m_outdated.inc()
            return None
        current = self.table.get(status.server_id)
        if current is not None and status.sent_at_ms < current.sent_at_ms:
            self._m_outdated.inc()  # a redelivered report overtaken by a newer one of the same server
            return None
        self.table.report(status)
        return status

    def apply_membership(self, snapshot: Iterable[ServerInfo]) -> list[Forgotten]:
        """Apply a registry snapshot of the ``access`` role; returns the servers forgotten as they left."""
        self._m_registry_updates.inc()
        forgotten = self.table.set_registered(s.server_id for s in snapshot if _offerable(s))
        self._count_forgotten(forgotten)
        return forgotten

    def expire(self) -> list[Forgotten]:
        """Forget the servers whose last report is older than the staleness window."""
        forgotten = self.table.expire(self._clock())
        self._count_forgotten(forgotten)
        return forgotten

    def _count_forgotten(self, forgotten: list[Forgotten]) -> None:
        for f in forgotten:
            self.metrics.counter("servers_forgotten", reason=f.reason).inc()
            log.info("access server %d forgotten (%s)", f.server_id, f.reason)

    # -- outputs

    def now(self) -> float:
        """The manager's monotonic time (what report ages are measured on)."""
        return self._clock()

    def access_points(self, region: str | None, isp: str | None) -> list[ServerStatus]:
        """The ranked access points for a user in ``region`` on ``isp``; :class:`NoAccessPoints` when none."""
        chosen = rank_access_points(
            self.table.available(self._clock()), region=region, isp=isp, policy=self._policy, rng=self._rng
        )
        if not chosen:
            self._m_unavailable.inc()
            raise NoAccessPoints("no access server is available")
        return chosen

    def rows(self) -> list[ServerRow]:
        """Every tracked server, for the ops view."""
        return self.table.rows(self._clock())

    # -- driver

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Consume reports, watch the registry and expire rows until cancelled.

        Reports started once the consumer group exists and the first registry snapshot was applied (or their
        first attempt failed: the loops keep retrying, and the manager answers 503 meanwhile).
        """
        queue_tried, registry_tried = anyio.Event(), anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._consume_loop, queue_tried.set)
            if self.registry is not None:
                tg.start_soon(self._registry_loop, self.registry, registry_tried.set)
            else:
                registry_tried.set()
            tg.start_soon(self._expiry_loop)
            await queue_tried.wait()
            await registry_tried.wait()
            task_status.started()

    async def _consume_loop(self, tried: Callable[[], None]) -> None:
        cfg = self.config
        while True:
            try:
                async with self.queue.consume(
                    cfg.load_topic, self.consumer_group, self.consumer_name, start="latest"
                ) as deliveries:
                    tried()
                    async for d in deliveries:
                        try:
                            self.handle_report(d.payload)
                        except BadLoadReport as exc:
                            log.warning("skipping load report %s: %s", d.id, exc)
                        await self.queue.ack(d.topic, d.group, d.id)
                return  # the stream ended: the queue client was closed
            except (QueueClosed, InvalidQueueArgument):
                tried()
                raise
            except QueueError as exc:
                tried()
                self._m_queue_errors.inc()
                log.warning("load-report consumer failed, retrying: %r", exc)
            await anyio.sleep(cfg.consume_retry_interval)

    async def _registry_loop(self, registry: Registry, tried: Callable[[], None]) -> None:
        cfg = self.config
        while True:
            try:
                async with registry.watch_servers(cfg.domain, ACCESS_ROLE) as watch:
                    async for snapshot in watch:
                        self.apply_membership(snapshot)
                        tried()
                return  # the watch ended: the registry client was closed
            except RegistryClosed:
                tried()
                raise
            except RegistryError as exc:
                tried()
                self._m_registry_errors.inc()
                log.warning("registry watch failed, keeping the last membership: %r", exc)
            await anyio.sleep(cfg.consume_retry_interval)

    async def _expiry_loop(self) -> None:
        while True:
            self.expire()
            deadline = self.table.next_expiry()
            wait = self.config.staleness if deadline is None else deadline - self._clock()
            await anyio.sleep(min(max(wait, 0.01), self.config.staleness))
