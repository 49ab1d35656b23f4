"""The access manager on the real engines: load reports through Redis Streams, membership from ZooKeeper."""

from __future__ import annotations

import anyio
import pytest

from imsdk_server.access_manager import AccessManager, AccessManagerConfig
from imsdk_server.backends.queue import RedisQueue
from imsdk_server.backends.registry import ZooKeeperRegistry
from imsdk_server.metrics import Metrics
from tests.access_manager.conftest import Tokens, access_entry, eventually, load_report
from tests.conftest import RedisTarget, ZooKeeperTarget

pytestmark = [pytest.mark.anyio, pytest.mark.redis, pytest.mark.zookeeper]


async def test_redis_reports_and_zookeeper_membership(
    tokens: Tokens, redis_target: RedisTarget, zookeeper_target: ZooKeeperTarget
) -> None:
    metrics = Metrics()
    config = AccessManagerConfig(consume_retry_interval=0.05, tie_tolerance=0.0)
    async with (
        RedisQueue.from_url(redis_target.url, prefix=redis_target.prefix) as manager_queue,
        RedisQueue.from_url(redis_target.url, prefix=redis_target.prefix) as publisher,
        await ZooKeeperRegistry.connect(zookeeper_target.hosts, root=zookeeper_target.root) as watcher,
        await ZooKeeperRegistry.connect(zookeeper_target.hosts, root=zookeeper_target.root) as servers,
    ):
        manager = AccessManager(
            config, queue=manager_queue, verifier=tokens.verifier, registry=watcher, metrics=metrics
        )
        async with anyio.create_task_group() as tg:
            await tg.start(manager.run)
            for sid in (11, 12):
                await servers.register(access_entry(sid))
                await publisher.publish("load", load_report(sid, connections=sid * 100))
            await eventually(lambda: metrics.value("access_manager_servers_available") == 2)
            assert [p.server_id for p in manager.access_points("north", "tel")] == [11, 12]
            # Every report was acknowledged in the manager's consumer group.
            await eventually(lambda: metrics.value("access_manager_reports_consumed") == 2)
            assert await publisher.pending("load", manager.consumer_group) == 0
            # An access server's ZooKeeper session ends (close = its ephemeral node goes): forgotten at once.
            await servers.deregister(access_entry(11).key)
            await eventually(lambda: 11 not in manager.table)
            assert [p.server_id for p in manager.access_points(None, None)] == [12]
            tg.cancel_scope.cancel()
