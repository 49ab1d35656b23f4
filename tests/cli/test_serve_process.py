"""``imsdk serve`` as real processes over loopback: all-in-one, and one process per role on real backends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from imsdk_proto import Biz, ChatFunc, Codec, Header, NotifyFunc, ProfileFunc, SystemFunc, encode_frame
from imsdk_proto.messages import ChatText, Notification, ProfileUpdated
from tests.allinone._wire import PASSWORD, Connection, free_port, handshake_frame
from tests.conftest import MySQLTarget, RedisTarget, ZooKeeperTarget

IMSDK = [sys.executable, "-c", "import sys; from imsdk_server._cli import main; sys.exit(main())"]
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


class Process:
    """One ``imsdk`` process; its stderr goes to a file the test can read."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._file = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*IMSDK, *args], stdout=subprocess.PIPE, stderr=self._file, env={**os.environ, **(env or {})}
        )

    def wait_healthy(self, http_port: int) -> dict[str, Any]:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"exited with {self.proc.returncode}: {self.log.read_text()}")
            try:
                r = httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=1.0)
                if r.status_code == 200:
                    body: dict[str, Any] = r.json()
                    return body
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"not healthy in time: {self.log.read_text()}")

    def stop(self) -> int:
        """SIGTERM, then wait; returns the exit status (kills and fails if it hangs)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"did not stop after SIGTERM: {self.log.read_text()}") from None
        finally:
            self._file.close()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        return status


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for p in reversed(started):
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()


def user_add(server: str, uid: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*IMSDK, "user", "add", uid, "--server", server],
        env={**os.environ, "IMSDK_PASSWORD": PASSWORD},
        capture_output=True,
        text=True,
        timeout=30,
    )


def login(server: str, uid: str, device: str = "phone") -> str:
    r = httpx.post(
        f"{server}/v1/login", json={"uid": uid, "password": PASSWORD, "device": device}, timeout=10
    )
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


async def handshake(address: tuple[str, int], token: str) -> tuple[Connection, Any]:
    conn = await Connection.open(address)
    await conn.send(handshake_frame(token, "phone"))
    return conn, await conn.receive()


def test_serve_all(processes: list[Process], tmp_path: Path) -> None:
    http, tcp = free_port(), free_port()
    server = Process(
        ["serve", "all", "--http", f"127.0.0.1:{http}", "--tcp", f"127.0.0.1:{tcp}", "--data", str(tmp_path)],
        tmp_path / "serve.log",
    )
    processes.append(server)
    health = server.wait_healthy(http)
    assert health["status"] == "ok"
    assert health["access"]["address"] == f"127.0.0.1:{tcp}"
    base = f"http://127.0.0.1:{http}"

    added = user_add(base, "alice")
    assert (added.returncode, added.stdout, added.stderr) == (0, "added user alice\n", "")
    again = user_add(base, "alice")
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1
    assert again.stderr.startswith("imsdk: user alice not added: ")
    assert "DUPLICATE" in again.stderr

    token = login(base, "alice")

    async def connect() -> None:
        conn, reply = await handshake(("127.0.0.1", tcp), token)
        try:
            assert (reply.header.biz, reply.header.func, reply.header.error) == (
                Biz.SYSTEM,
                SystemFunc.HANDSHAKE_ACK,
                0,
            )
            assert reply.body.uid == "alice"
            assert reply.body.access_id == health["access"]["server_id"]
        finally:
            await conn.aclose()

    anyio.run(connect)
    assert server.stop() == 0
    log = server.log.read_text()
    assert "imsdk: stopping" in log
    assert log.rstrip().endswith("imsdk: stopped")
    assert "Traceback" not in log


@pytest.mark.redis
@pytest.mark.zookeeper
@pytest.mark.mysql
@pytest.mark.slow
def test_one_process_per_role_on_mysql_redis_and_zookeeper(
    processes: list[Process],
    tmp_path: Path,
    mysql_db: MySQLTarget,
    redis_target: RedisTarget,
    zookeeper_target: ZooKeeperTarget,
) -> None:
    t = mysql_db
    shared = [
        "--queue",
        f"{redis_target.url}?prefix={redis_target.prefix}",
        "--cache",
        f"{redis_target.url}?prefix={redis_target.prefix}",
        "--registry",
        f"zookeeper://{zookeeper_target.hosts}{zookeeper_target.root}",
        "--database",
        f"mysql://{t.user}:{t.password}@{t.host}:{t.port}/{t.database}",
    ]
    keys = tmp_path / "auth-keys.json"
    roles = ("auth", "location", "router", "notify", "access-manager", "access")
    ports = {role: free_port() for role in roles}
    tcp = free_port()
    auth_url = f"http://127.0.0.1:{ports['auth']}"

    def start(role: str, *extra: str) -> Process:
        args = ["serve", role, "--http", f"127.0.0.1:{ports[role]}", *shared, *extra]
        p = Process(args, tmp_path / f"{role}.log", env={"IMSDK_ADMIN_KEY": "cluster-admin"})
        processes.append(p)
        return p

    start("auth", "--key-file", str(keys)).wait_healthy(ports["auth"])
    assert keys.exists()
    for role in ("location", "router", "notify"):
        start(role).wait_healthy(ports[role])
    start("access-manager", "--key-file", str(keys)).wait_healthy(ports["access-manager"])
    access = start("access", "--tcp", f"127.0.0.1:{tcp}", "--key-file", str(keys), "--auth", auth_url)
    access.wait_healthy(ports["access"])
    # Linked to what it found in ZooKeeper: the router, the notify server and the auth process' push hub;
    # and linked from the access watches of the three presence views (location, router, notify processes).
    deadline = time.monotonic() + START_TIMEOUT
    while (
        httpx.get(f"http://127.0.0.1:{ports['access']}/healthz", timeout=5).json()["access"]["links_ready"]
        < 6
    ):
        assert time.monotonic() < deadline, "the presence views did not link to the access server"
        time.sleep(0.05)
    for role in ("location", "router", "notify"):
        health = httpx.get(f"http://127.0.0.1:{ports[role]}/healthz", timeout=5).json()
        assert len(health["access_watch"]["linked"]) == 1, (role, health)

    for uid in ("alice", "bob"):
        assert user_add(auth_url, uid).returncode == 0
    alice_token, bob_token = login(auth_url, "alice"), login(auth_url, "bob")
    alice_auth = {"Authorization": f"Bearer {alice_token}"}
    assert httpx.put(f"{auth_url}/v1/friends/bob", headers=alice_auth, timeout=10).json()["added"] is True
    deadline = time.monotonic() + START_TIMEOUT  # the auth process links to the location server it finds
    while not httpx.get(f"{auth_url}/healthz", timeout=5).json()["profile_push"]["presence"]:
        assert time.monotonic() < deadline, "the auth process found no location server"
        time.sleep(0.05)
    # Two notifications of one type for alice while she is offline: MySQL keeps only the latest.
    for payload in ("first", "latest"):
        r = httpx.post(
            f"http://127.0.0.1:{ports['notify']}/v1/notifications",
            json={"uid": "alice", "type": "invite", "payload": payload, "policy": "keep_latest"},
            headers={"Authorization": "Bearer cluster-admin"},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        assert r.json()["results"]["alice"]["outcome"] == "stored"
    points = httpx.get(
        f"http://127.0.0.1:{ports['access-manager']}/v1/access-points",
        headers={"Authorization": f"Bearer {bob_token}"},
        timeout=10,
    )
    assert points.status_code == 200, points.text
    assert [(p["host"], p["port"]) for p in points.json()["access_points"]] == [("127.0.0.1", tcp)]

    async def chat() -> None:
        alice, reply_a = await handshake(("127.0.0.1", tcp), alice_token)
        bob, reply_b = await handshake(("127.0.0.1", tcp), bob_token)
        try:
            assert reply_a.header.error == reply_b.header.error == 0
            stored = (await alice.receive_kind(Biz.NOTIFY, NotifyFunc.NOTIFY)).body_as(Notification)
            assert (stored.type, stored.payload) == ("invite", b"latest")  # delivered at login
            text = ChatText(text="across processes")
            await alice.send(
                encode_frame(
                    Header(Biz.CHAT, ChatFunc.TEXT, seq=1, msg_id=5, receiver_uid="bob"), text, Codec.PROTOBUF
                )
            )
            refused = await alice.receive_kind(Biz.CHAT, ChatFunc.SEND_ACK)
            router_id = refused.header.msg_server_id
            sticky = Header(
                Biz.CHAT, ChatFunc.TEXT, seq=1, msg_id=5, receiver_uid="bob", msg_server_id=router_id
            )
            await alice.send(encode_frame(sticky, text, Codec.PROTOBUF))
            ack = await alice.receive_kind(Biz.CHAT, ChatFunc.SEND_ACK)
            assert ack.header.error == 0
            pushed = await bob.receive_kind(Biz.CHAT, ChatFunc.TEXT)
            assert pushed.body_as(ChatText).text == "across processes"

            # A profile change in the auth process reaches bob through the location and access processes. The
            # location process hears of bob's login from the queue on its own time: change until bob hears.
            async with httpx.AsyncClient(base_url=auth_url, headers=alice_auth, timeout=10) as http:
                for attempt in range(20):
                    r = await http.patch("/v1/profile", json={"signature": f"change {attempt}"})
                    assert r.status_code == 200, r.text
                    with anyio.move_on_after(0.5):
                        updated = await bob.receive_kind(Biz.PROFILE, ProfileFunc.UPDATED)
                        profile = updated.body_as(ProfileUpdated).profile
                        assert profile.uid == "alice"  # a push for an earlier change may come late
                        assert profile.signature in {f"change {k}" for k in range(attempt + 1)}
                        break
                else:
                    raise AssertionError("no profile push reached bob")
        finally:
            await alice.aclose()
            await bob.aclose()

    anyio.run(chat)
    for p in reversed(processes):
        assert p.stop() == 0, p.log.read_text()
        assert "Traceback" not in p.log.read_text()
