"""The registry conformance suite against the embedded and the ZooKeeper implementations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from imsdk_server.backends.registry import MemoryRegistryHub, ZooKeeperRegistry
from imsdk_server.backends.registry import conformance as c
from tests.conftest import ZooKeeperTarget

CHECKS = [
    c.check_register_and_list,
    c.check_state_transitions,
    c.check_only_owner_changes,
    c.check_close_drops_entries,
    c.check_closed_client,
    c.check_watch_servers,
    c.check_allocate_server_id,
    c.check_config,
    c.check_config_watch,
    c.check_invalid_input,
]


@pytest.mark.anyio
@pytest.mark.parametrize("check", CHECKS, ids=lambda f: f.__name__)
async def test_memory(check: Callable[[c.RegistryFactory], Awaitable[None]]) -> None:
    await check(MemoryRegistryHub().connect)


@pytest.mark.anyio
@pytest.mark.zookeeper
@pytest.mark.parametrize("check", CHECKS, ids=lambda f: f.__name__)
async def test_zookeeper(
    check: Callable[[c.RegistryFactory], Awaitable[None]], zookeeper_target: ZooKeeperTarget
) -> None:
    async def make() -> ZooKeeperRegistry:
        return await ZooKeeperRegistry.connect(zookeeper_target.hosts, root=zookeeper_target.root)

    await check(make)


@pytest.mark.parametrize("anyio_backend", ["trio"])
@pytest.mark.anyio
async def test_memory_whole_suite_on_trio(anyio_backend: str) -> None:
    """The embedded registry is backend-neutral: the whole suite passes on trio too."""
    await c.check_registry(MemoryRegistryHub().connect)
