"""The access manager service with the embedded queue and registry: reports in, membership, expiry, errors."""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import pytest

from imsdk_server.access_manager import (
    AccessManager,
    AccessManagerConfig,
    BadLoadReport,
    Forgotten,
    NoAccessPoints,
)
from imsdk_server.backends.queue import MemoryQueue, MemoryQueueHub
from imsdk_server.backends.registry import MemoryRegistry, MemoryRegistryHub, ServerState
from imsdk_server.metrics import Metrics
from tests.access_manager.conftest import Clock, Tokens, access_entry, eventually, load_report

pytestmark = pytest.mark.anyio

CONFIG = AccessManagerConfig(staleness=10.0, consume_retry_interval=0.01, tie_tolerance=0.0)


def _consumed(manager: AccessManager, n: int) -> bool:
    return manager.metrics.value("access_manager_reports_consumed") == n


@dataclass
class Setup:
    manager: AccessManager
    publisher: MemoryQueue
    servers: MemoryRegistry
    registry_hub: MemoryRegistryHub
    metrics: Metrics
    clock: Clock

    async def publish(self, payload: bytes) -> None:
        consumed = self.metrics.value("access_manager_reports_consumed") + self.metrics.value(
            "access_manager_reports_rejected"
        )
        await self.publisher.publish("load", payload)
        await eventually(
            lambda: (
                self.metrics.value("access_manager_reports_consumed")
                + self.metrics.value("access_manager_reports_rejected")
                > consumed
            )
        )

    def ids(self, region: str | None = None, isp: str | None = None) -> list[int]:
        return [s.server_id for s in self.manager.access_points(region, isp)]


@asynccontextmanager
async def running(
    tokens: Tokens, config: AccessManagerConfig = CONFIG, *, with_registry: bool = True
) -> AsyncIterator[Setup]:
    queue_hub = MemoryQueueHub()
    registry_hub = MemoryRegistryHub()
    metrics = Metrics()
    clock = Clock()
    async with (
        await queue_hub.connect(block=0.05) as consumer_side,
        await queue_hub.connect() as publisher,
        await registry_hub.connect() as servers,
        await registry_hub.connect() as watcher,
    ):
        manager = AccessManager(
            config,
            queue=consumer_side,
            verifier=tokens.verifier,
            registry=watcher if with_registry else None,
            metrics=metrics,
            clock=clock,
        )
        async with anyio.create_task_group() as tg:
            await tg.start(manager.run)
            yield Setup(manager, publisher, servers, registry_hub, metrics, clock)
            tg.cancel_scope.cancel()


async def test_registered_reporting_servers_are_offered_in_rank_order(tokens: Tokens) -> None:
    async with running(tokens) as s:
        for sid in (1, 2, 3, 4):
            await s.servers.register(access_entry(sid))
        await s.publish(load_report(1, connections=5000))
        await s.publish(load_report(2, connections=100))
        await s.publish(load_report(3, region="south"))
        await s.publish(load_report(4, connections=3000))
        await s.publish(load_report(5))  # reporting but never registered: not offered
        assert s.ids("north", "tel") == [2, 4, 1]
        assert s.ids("south", None) == [3, 2, 4]
        assert s.metrics.value("access_manager_servers_tracked") == 5
        assert s.metrics.value("access_manager_servers_available") == 4
        point = s.manager.access_points("south", None)[0]
        assert (point.host, point.port, point.region, point.isp) == ("127.0.0.1", 7003, "south", "tel")


async def test_leaving_the_registry_forgets_at_once_even_while_reporting(tokens: Tokens) -> None:
    async with running(tokens) as s:
        for sid in (1, 2):
            await s.servers.register(access_entry(sid))
            await s.publish(load_report(sid))
        await eventually(lambda: len(s.manager.table.registered()) == 2)
        assert sorted(s.ids()) == [1, 2]
        await s.servers.deregister(access_entry(1).key)
        await eventually(lambda: 1 not in s.manager.table)
        assert s.ids() == [2]
        assert s.metrics.value("access_manager_servers_forgotten", reason="deregistered") == 1
        await s.publish(load_report(1))  # still draining and reporting: tracked, not offered
        assert s.ids() == [2]


async def test_a_draining_server_is_not_offered(tokens: Tokens) -> None:
    async with running(tokens) as s:
        for sid in (1, 2):
            await s.servers.register(access_entry(sid))
            await s.publish(load_report(sid))
        await eventually(lambda: len(s.manager.table.registered()) == 2)
        await s.servers.set_state(access_entry(1).key, ServerState.NOT_READY)
        await eventually(lambda: s.manager.table.registered() == frozenset({2}))
        assert s.ids() == [2]


async def test_servers_that_stop_reporting_are_forgotten(tokens: Tokens) -> None:
    async with running(tokens) as s:
        for sid in (1, 2):
            await s.servers.register(access_entry(sid))
        await s.publish(load_report(1))
        s.clock.advance(6)
        await s.publish(load_report(2))
        s.clock.advance(4)  # report 1 is exactly 10 s old: still fresh
        assert sorted(s.ids()) == [1, 2]
        s.clock.advance(0.5)
        assert s.ids() == [2]  # excluded at once, whether or not the row was expired yet
        assert s.manager.expire() == [Forgotten(1, "stale")]
        assert s.metrics.value("access_manager_servers_forgotten", reason="stale") == 1
        s.clock.advance(6)
        s.manager.expire()
        with pytest.raises(NoAccessPoints):
            s.manager.access_points(None, None)
        assert s.metrics.value("access_manager_unavailable") == 1
        assert s.metrics.value("access_manager_servers_tracked") == 0


async def test_bad_reports_are_counted_acked_and_skipped(tokens: Tokens) -> None:
    async with running(tokens, with_registry=False) as s:
        await s.publish(b"\xff\xff\xff garbage")
        await s.publish(load_report(0))  # no server id
        await s.publish(load_report(3, host="no-port-here", port=0))
        await s.publish(load_report(4))
        assert s.metrics.value("access_manager_reports_rejected") == 3
        assert s.metrics.value("access_manager_reports_consumed") == 1
        assert s.ids() == [4]
        assert await s.publisher.pending("load", s.manager.consumer_group) == 0


async def test_old_and_overtaken_reports_are_ignored(tokens: Tokens) -> None:
    async with running(tokens, with_registry=False) as s:
        now_ms = int(time.time() * 1000)
        await s.publish(load_report(1, connections=10, time_ms=now_ms))
        await s.publish(load_report(1, connections=9000, time_ms=now_ms - 5000))  # redelivered, older
        (point,) = s.manager.access_points(None, None)
        assert point.connections == 10
        await s.publish(load_report(2, time_ms=now_ms - 3_600_000))  # from an hour ago: a backlog
        assert s.ids() == [1]
        assert s.metrics.value("access_manager_reports_outdated") == 2


async def test_without_a_registry_reports_alone_decide(tokens: Tokens) -> None:
    async with running(tokens, with_registry=False) as s:
        await s.publish(load_report(1, connections=2000))
        await s.publish(load_report(2, connections=1000))
        assert s.ids() == [2, 1]


async def test_reported_capacity_is_used(tokens: Tokens) -> None:
    async with running(tokens, with_registry=False) as s:
        await s.publish(load_report(1, connections=500, max_connections=1000))  # half full
        await s.publish(load_report(2, connections=2000))  # 2000 of the default 10,000
        assert s.ids() == [2, 1]


async def test_registry_down_at_start_then_back(tokens: Tokens) -> None:
    queue_hub, registry_hub = MemoryQueueHub(), MemoryRegistryHub()
    metrics = Metrics()
    async with (
        await queue_hub.connect(block=0.05) as consumer_side,
        await registry_hub.connect() as servers,
        await registry_hub.connect() as watcher,
    ):
        await servers.register(access_entry(1))
        registry_hub.set_available(False)
        manager = AccessManager(
            CONFIG, queue=consumer_side, verifier=tokens.verifier, registry=watcher, metrics=metrics
        )
        async with anyio.create_task_group() as tg:
            await tg.start(manager.run)  # starts although the registry cannot be read
            await consumer_side.publish("load", load_report(1))
            await eventually(lambda: 1 in manager.table)
            with pytest.raises(NoAccessPoints):
                manager.access_points(None, None)  # reporting, but registration is unknown
            assert metrics.value("access_manager_registry_errors") >= 1
            registry_hub.set_available(True)
            await eventually(lambda: manager.table.registered() == frozenset({1}))
            assert [p.server_id for p in manager.access_points(None, None)] == [1]
            tg.cancel_scope.cancel()


async def test_handle_report_raises_typed_errors(tokens: Tokens) -> None:
    manager = AccessManager(CONFIG, queue=MemoryQueue(), verifier=tokens.verifier)
    with pytest.raises(BadLoadReport, match="does not decode"):
        manager.handle_report(b"\x0a")
    with pytest.raises(BadLoadReport, match="bad address"):
        manager.handle_report(load_report(9, host=""))


async def test_every_manager_instance_sees_every_report(tokens: Tokens) -> None:
    """Two managers on one queue each read in a group of their own, so neither misses a report."""
    queue_hub = MemoryQueueHub()
    async with (
        await queue_hub.connect(block=0.05) as q1,
        await queue_hub.connect(block=0.05) as q2,
        await queue_hub.connect() as publisher,
    ):
        managers = [
            AccessManager(
                AccessManagerConfig(consume_retry_interval=0.01, consumer_name=f"m{i}"),
                queue=q,
                verifier=tokens.verifier,
                metrics=Metrics(),
            )
            for i, q in enumerate((q1, q2))
        ]
        assert managers[0].consumer_group != managers[1].consumer_group
        async with anyio.create_task_group() as tg:
            for m in managers:
                await tg.start(m.run)
            for sid in (1, 2, 3, 4):
                await publisher.publish("load", load_report(sid))
            for m in managers:
                await eventually(functools.partial(_consumed, m, 4))
                assert m.metrics.value("access_manager_servers_tracked") == 4
            tg.cancel_scope.cancel()
