"""Jitter recognition across processes: SIGSTOP an ``imsdk serve access`` process under ZooKeeper and Redis.

The location process links to the access process it finds in ZooKeeper; a business server (this test) is
subscribed to the location process over a link. A stopped access process answers nothing on its links
without closing them: after the three probes the subscriber hears one ``SERVER_DOWN``, no per-user offline
notice, and a query finds the users offline.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from imsdk_proto import Frame
from imsdk_proto.messages import ServerRole
from imsdk_server.backends._open import open_registry
from imsdk_server.links import Link, LinkConfig, LinkHub, LinkIdentity
from imsdk_server.location import NoticeKind, PresenceClient
from tests.allinone._wire import PASSWORD, free_port, handshake_frame
from tests.allinone._wire import Connection as ClientConnection
from tests.cli.test_serve_process import Process, processes  # noqa: F401 - the fixture
from tests.conftest import RedisTarget, ZooKeeperTarget

USERS = 50
FAST = LinkConfig(heartbeat_interval=0.3, grace=0.2, probe_timeout=0.4, probes=3)
CONFIG = """
[links]
heartbeat_interval = 0.3
grace = 0.2
probe_timeout = 0.4
probes = 3

[location]
grace = 0.3
burst_window = 0.3

[auth]
scrypt_log2_n = 10
register_limit = 100
"""


@pytest.mark.zookeeper
@pytest.mark.slow
def test_a_stopped_access_process_is_one_server_down_notice(
    processes: list[Process],  # noqa: F811 - the fixture
    tmp_path: Path,
    redis_target: RedisTarget,
    zookeeper_target: ZooKeeperTarget,
) -> None:
    registry_url = f"zookeeper://{zookeeper_target.hosts}{zookeeper_target.root}"
    config = tmp_path / "imsdk.toml"
    config.write_text(CONFIG)
    shared = [
        "--config",
        str(config),
        "--queue",
        f"{redis_target.url}?prefix={redis_target.prefix}",
        "--cache",
        f"{redis_target.url}?prefix={redis_target.prefix}",
        "--registry",
        registry_url,
    ]
    keys = tmp_path / "auth-keys.json"
    ports = {role: free_port() for role in ("auth", "location", "access")}
    tcp = free_port()
    auth_url = f"http://127.0.0.1:{ports['auth']}"

    def start(role: str, *extra: str) -> Process:
        args = ["serve", role, "--http", f"127.0.0.1:{ports[role]}", *shared, *extra]
        p = Process(args, tmp_path / f"{role}.log")
        processes.append(p)
        return p

    start("auth", "--key-file", str(keys)).wait_healthy(ports["auth"])
    location = start("location")
    location.wait_healthy(ports["location"])
    access = start("access", "--tcp", f"127.0.0.1:{tcp}", "--key-file", str(keys), "--auth", auth_url)
    access_id = int(access.wait_healthy(ports["access"])["access"]["server_id"])

    async def scenario() -> None:
        uids = [f"user{i:02d}" for i in range(USERS)]
        async with httpx.AsyncClient(base_url=auth_url, timeout=30) as http:
            tokens = []
            for uid in uids:
                r = await http.post("/v1/users", json={"uid": uid, "password": PASSWORD, "nickname": uid})
                assert r.status_code == 201, r.text
                r = await http.post("/v1/login", json={"uid": uid, "password": PASSWORD, "device": "phone"})
                assert r.status_code == 200, r.text
                tokens.append(str(r.json()["token"]))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['location']}", timeout=5) as http:
            with anyio.fail_after(10):  # the location process linked to the access process it found
                while access_id not in (await http.get("/healthz")).json()["access_watch"]["linked"]:  # noqa: ASYNC110
                    await anyio.sleep(0.05)
        clients = []
        for token in tokens:
            conn = await ClientConnection.open(("127.0.0.1", tcp))
            await conn.send(handshake_frame(token, "phone"))
            assert (await conn.receive()).header.error == 0
            clients.append(conn)

        registry = await open_registry(registry_url)
        try:
            (loc,) = await registry.list_servers("default", "location")
        finally:
            await registry.aclose()
        holder: dict[str, PresenceClient] = {}

        async def on_frame(link: Link, frame: Frame) -> None:
            await holder["client"].on_frame(link, frame)

        identity = LinkIdentity(int(ServerRole.SERVER_ROLE_BUSINESS), 4_000_000_001, "jitter-test", "default")
        async with LinkHub(identity, config=FAST, handler=on_frame) as hub:
            link = await hub.connect(loc.host, loc.port, expect_server_id=loc.server_id)
            with anyio.fail_after(10):
                await link.wait_ready()
            async with PresenceClient(link, name="jitter-test") as client:
                holder["client"] = client
                with anyio.fail_after(10):  # every login has reached the location process through Redis
                    while sum(map(len, (await client.query(uids)).values())) < USERS:  # noqa: ASYNC110
                        await anyio.sleep(0.05)
                async with await client.subscribe() as notices:
                    access.proc.send_signal(signal.SIGSTOP)
                    try:
                        with anyio.fail_after(15):
                            notice = await notices.__anext__()
                        assert notice.kind is NoticeKind.SERVER_DOWN
                        assert notice.server == access_id
                        where = await client.query(uids)
                        assert where == {uid: [] for uid in uids}
                        # no per-user offline notice follows, not after the grace window either
                        with anyio.move_on_after(1.0):
                            late: Any = await notices.__anext__()
                            raise AssertionError(f"a notice after SERVER_DOWN: {late}")
                    finally:
                        access.proc.send_signal(signal.SIGCONT)
        for conn in clients:
            await conn.aclose()

    anyio.run(scenario)
    metrics = httpx.get(f"http://127.0.0.1:{ports['location']}/metrics", timeout=5).text
    assert 'access_watch_verdicts{verdict="suspect"} 1.0' in metrics, metrics
    assert 'access_watch_verdicts{verdict="down"} 1.0' in metrics, metrics
    for p in reversed(processes):
        assert p.stop() == 0, p.log.read_text()
