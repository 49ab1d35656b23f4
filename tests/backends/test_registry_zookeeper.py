"""ZooKeeper-specific behaviour: session expiry, a lost connection, an unreachable ensemble, foreign data."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import pytest
from anyio.abc import SocketStream

from imsdk_server.backends.registry import (
    RegistryUnavailable,
    ServerInfo,
    ServerKey,
    ServerState,
    ZooKeeperRegistry,
)
from imsdk_server.metrics import Metrics
from tests.conftest import ZooKeeperTarget

pytestmark = [pytest.mark.anyio, pytest.mark.zookeeper]


def _info(server_id: int, domain: str = "zk") -> ServerInfo:
    return ServerInfo(
        role="router", server_id=server_id, name="r", domain=domain, host="127.0.0.1", port=7000
    )


async def _eventually(check: Callable[[], Awaitable[bool]], limit: float = 20.0) -> None:
    """Poll an async predicate until it holds (the outcome is asserted, never the time it took)."""
    with anyio.fail_after(limit):
        while not await check():  # noqa: ASYNC110 - polling state another process changes
            await anyio.sleep(0.05)


async def test_entries_come_back_after_session_expiry(zookeeper_target: ZooKeeperTarget) -> None:
    from kazoo.client import KazooClient

    metrics = Metrics()
    hosts, root = zookeeper_target.hosts, zookeeper_target.root
    async with (
        await ZooKeeperRegistry.connect(hosts, root=root, metrics=metrics) as owner,
        await ZooKeeperRegistry.connect(hosts, root=root) as observer,
    ):
        info = _info(5)
        await owner.register(info)
        await owner.set_state(info.key, ServerState.READY)
        old_session = owner.session_id

        # Expire the owner's session the way ZooKeeper does it: another client takes the session over and
        # closes it.
        def expire() -> None:
            session_id, password = owner.kazoo_client.client_id
            thief = KazooClient(hosts=hosts, client_id=(session_id, password))
            thief.start(timeout=5)
            thief.stop()
            thief.close()

        await anyio.to_thread.run_sync(expire)

        async def restored() -> bool:
            return owner.session_id != old_session and metrics.value("registry_reregistrations") >= 1

        await _eventually(restored)
        listed = await observer.list_servers("zk", "router")
        assert listed == (info.with_state(ServerState.READY),)
        assert metrics.value("registry_session_losses") == 1
        # The entry belongs to the new session: closing the owner still removes it.
    assert await _list_fresh(zookeeper_target) == ()


async def test_failed_re_creation_is_retried_until_it_succeeds(zookeeper_target: ZooKeeperTarget) -> None:
    from kazoo.client import KazooClient
    from kazoo.security import OPEN_ACL_UNSAFE, make_acl

    metrics = Metrics()
    hosts, root = zookeeper_target.hosts, zookeeper_target.root
    async with (
        await ZooKeeperRegistry.connect(hosts, root=root, metrics=metrics) as owner,
        await ZooKeeperRegistry.connect(hosts, root=root) as observer,
    ):
        info = _info(5)
        await owner.register(info)
        old_session = owner.session_id
        role_path = f"{root}/domains/zk/servers/router"
        admin = observer.kazoo_client
        # Nobody may create entries under the role node for now: the owner's existing entry stays, but
        # re-creating it in a new session fails (NoAuth) until the ACL is opened again.
        no_create = [make_acl("world", "anyone", read=True, write=True, delete=True, admin=True)]
        await anyio.to_thread.run_sync(lambda: admin.set_acls(role_path, no_create))

        def expire() -> None:
            session_id, password = owner.kazoo_client.client_id
            thief = KazooClient(hosts=hosts, client_id=(session_id, password))
            thief.start(timeout=5)
            thief.stop()
            thief.close()

        await anyio.to_thread.run_sync(expire)

        async def failed_once() -> bool:
            return owner.session_id != old_session and metrics.value("registry_restore_failures") >= 1

        await _eventually(failed_once)
        with pytest.raises(RegistryUnavailable):
            await owner.set_state(info.key, ServerState.READY)
        assert await observer.list_servers("zk", "router") == ()
        # No further connection-state change happens: only the registry's own retry can bring it back.
        await anyio.to_thread.run_sync(lambda: admin.set_acls(role_path, OPEN_ACL_UNSAFE))

        async def restored() -> bool:
            return metrics.value("registry_reregistrations") >= 1

        await _eventually(restored)
        assert await observer.list_servers("zk", "router") == (info,)
        await owner.set_state(info.key, ServerState.READY)
        assert await observer.list_servers("zk", "router") == (info.with_state(ServerState.READY),)
        assert metrics.value("registry_available") == 1
    assert await _list_fresh(zookeeper_target) == ()


async def _list_fresh(target: ZooKeeperTarget) -> tuple[ServerInfo, ...]:
    async with await ZooKeeperRegistry.connect(target.hosts, root=target.root) as fresh:
        return await fresh.list_servers("zk", "router")


async def test_unreachable_ensemble_is_unavailable() -> None:
    with pytest.raises(RegistryUnavailable):
        await ZooKeeperRegistry.connect("127.0.0.1:1", connect_timeout=0.5)


async def test_foreign_entries_are_skipped(zookeeper_target: ZooKeeperTarget) -> None:
    metrics = Metrics()
    async with await ZooKeeperRegistry.connect(
        zookeeper_target.hosts, root=zookeeper_target.root, metrics=metrics
    ) as reg:
        await reg.register(_info(1))
        zk = reg.kazoo_client
        base = f"{zookeeper_target.root}/domains/zk/servers/router"
        await anyio.to_thread.run_sync(lambda: zk.create(f"{base}/2", b"not json"))
        await anyio.to_thread.run_sync(lambda: zk.create(f"{base}/3", _info(4).to_json()))  # wrong id
        await anyio.to_thread.run_sync(lambda: zk.create(f"{base}/junk", b"{}"))  # not an id at all
        assert await reg.list_servers("zk", "router") == (_info(1),)
        assert metrics.value("registry_bad_entries") == 2


class _Proxy:
    """A TCP relay in front of ZooKeeper that can cut every connection and refuse new ones."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.split(",")[0].partition(":")
        self.upstream = (host, int(port or 2181))
        self.refusing = False
        self.scopes: set[anyio.CancelScope] = set()
        self.port = 0

    async def handle(self, client: SocketStream) -> None:
        async with client:
            if self.refusing:
                return
            with anyio.CancelScope() as scope:
                self.scopes.add(scope)
                try:
                    async with await anyio.connect_tcp(*self.upstream) as server:

                        async def pump(src: SocketStream, dst: SocketStream) -> None:
                            async for chunk in src:
                                await dst.send(chunk)
                            scope.cancel()

                        async with anyio.create_task_group() as tg:
                            tg.start_soon(pump, client, server)
                            tg.start_soon(pump, server, client)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    pass
                finally:
                    self.scopes.discard(scope)

    def cut(self) -> None:
        self.refusing = True
        for scope in list(self.scopes):
            scope.cancel()

    def restore(self) -> None:
        self.refusing = False


@pytest.fixture
async def proxy(zookeeper_target: ZooKeeperTarget) -> AsyncIterator[_Proxy]:
    p = _Proxy(zookeeper_target.hosts)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    p.port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, p.handle)
        yield p
        tg.cancel_scope.cancel()


async def test_lost_connection_is_unavailable_then_recovers(
    zookeeper_target: ZooKeeperTarget, proxy: _Proxy
) -> None:
    root = zookeeper_target.root
    async with (
        await ZooKeeperRegistry.connect(
            f"127.0.0.1:{proxy.port}", root=root, session_timeout=20.0, operation_timeout=2.0
        ) as flaky,
        await ZooKeeperRegistry.connect(zookeeper_target.hosts, root=root) as steady,
    ):
        await flaky.register(_info(1))
        async with flaky.watch_servers("zk", "router") as watch:
            assert [i.server_id for i in await watch.__anext__()] == [1]
            proxy.cut()

            async def refused() -> bool:
                try:
                    await flaky.list_servers("zk", "router")
                except RegistryUnavailable:
                    return True
                return False

            await _eventually(refused)
            with pytest.raises(RegistryUnavailable):
                await flaky.set_state(ServerKey("zk", "router", 1), ServerState.READY)
            await steady.register(_info(2))  # a change the flaky client cannot see yet
            proxy.restore()
            # Within the session timeout: the session survives, the watch catches up, calls work again.
            with anyio.fail_after(20):
                async for snap in watch:
                    if [i.server_id for i in snap] == [1, 2]:
                        break
            await flaky.set_state(ServerKey("zk", "router", 1), ServerState.READY)
            states = {i.server_id: i.state for i in await steady.list_servers("zk", "router")}
            assert states == {1: ServerState.READY, 2: ServerState.REGISTERED}
