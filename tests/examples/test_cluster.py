"""examples/cluster: start the multi-process cluster on real MySQL, Redis and ZooKeeper, chat through it with
the client SDK (two access servers, media through the media process, checked by the router there), and stop
it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from imsdk_client import Client, Endpoint, MessageReceived, MessageRejected
from imsdk_proto.codes import ErrorCode
from imsdk_proto.messages import ChatImage, ChatText, MediaRef
from imsdk_server._demo import make_png
from tests.conftest import MySQLTarget, RedisTarget, ZooKeeperTarget

CLUSTER = Path(__file__).resolve().parents[2] / "examples" / "cluster" / "cluster.py"
PASSWORD = "cluster-example-pw"


def cluster(action: str, run_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CLUSTER), action, "--run-dir", str(run_dir), *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def running(
    tmp_path: Path, mysql_db: MySQLTarget, redis_target: RedisTarget, zookeeper_target: ZooKeeperTarget
) -> Iterator[tuple[Path, dict[str, Any]]]:
    t = mysql_db
    run_dir = tmp_path / "cluster"
    started = cluster(
        "start",
        run_dir,
        "--base-port", "0",
        "--mysql", f"mysql://{t.user}:{t.password}@{t.host}:{t.port}/{t.database}",
        "--redis", f"{redis_target.url}?prefix={redis_target.prefix}",
        "--zookeeper", f"zookeeper://{zookeeper_target.hosts}{zookeeper_target.root}",
    )  # fmt: skip
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert started.stdout.splitlines()[-1].startswith("cluster: ready; auth http://127.0.0.1:")
        yield run_dir, json.loads((run_dir / "cluster.json").read_text())
    finally:
        stopped = cluster("stop", run_dir)  # also after a failed start: whatever did start is stopped
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not (run_dir / "cluster.json").exists()


@pytest.mark.mysql
@pytest.mark.redis
@pytest.mark.zookeeper
@pytest.mark.slow
def test_cluster_starts_serves_two_access_servers_and_stops(running: tuple[Path, dict[str, Any]]) -> None:
    run_dir, state = running
    processes = state["processes"]
    assert sorted(p["role"] for p in processes.values()) == sorted(
        ["auth", "media", "location", "router", "notify", "access-manager", "access", "access"]
    )
    status = cluster("status", run_dir)
    assert status.returncode == 0, status.stdout
    assert status.stdout.count(" healthy\n") == 8
    router_health = httpx.get(f"http://{processes['router']['http']}/healthz", timeout=10).json()
    assert router_health["router"]["media"] == f"http://{processes['media']['http']}"  # checked there

    auth = state["auth"]
    manager = f"http://{processes['access-manager']['http']}"
    media = f"http://{processes['media']['http']}"
    for uid in ("alice", "bob"):
        r = httpx.post(
            f"{auth}/v1/users", json={"uid": uid, "password": PASSWORD, "nickname": uid}, timeout=10
        )
        assert r.status_code in (200, 201), r.text

    async def points(uid: str) -> list[Endpoint]:
        async with httpx.AsyncClient(timeout=10) as http:
            login = await http.post(
                f"{auth}/v1/login", json={"uid": uid, "password": PASSWORD, "device": "x"}
            )
            token = login.json()["token"]
            for _ in range(100):  # the access manager offers an access server after its first load report
                r = await http.get(
                    f"{manager}/v1/access-points", headers={"Authorization": f"Bearer {token}"}
                )
                found = r.json()["access_points"] if r.status_code == 200 else []
                if len(found) == 2:
                    return [Endpoint(p["host"], int(p["port"]), int(p["server_id"])) for p in found]
                await anyio.sleep(0.1)
        raise AssertionError(f"the access manager does not offer both access servers: {r.text}")

    async def chat() -> None:
        endpoints = await points("alice")
        tcp = {processes[n]["tcp"] for n in ("access-1", "access-2")}
        assert {f"{e.host}:{e.port}" for e in endpoints} == tcp
        # alice on one access server, bob on the other: the router in its own process links them
        async with (
            Client(auth, "alice", password=PASSWORD, media_url=media, endpoints=endpoints[:1]) as alice,
            Client(auth, "bob", password=PASSWORD, media_url=media, endpoints=endpoints[1:]) as bob,
        ):
            picture = make_png(20, 10)
            await alice.send_text("bob", "hello across the cluster")
            await alice.send_image("bob", picture, caption="from the media process")
            got: list[MessageReceived] = []
            with anyio.fail_after(15):
                async for event in bob.events():
                    if isinstance(event, MessageReceived):
                        got.append(event)
                        if len(got) == 2:
                            break
            assert isinstance(got[0].content, ChatText)
            assert got[0].content.text == "hello across the cluster"
            image = got[1].content
            assert isinstance(image, ChatImage)
            assert (image.image.width, image.image.height, image.caption) == (
                20,
                10,
                "from the media process",
            )
            assert await bob.download_media(image.image) == picture

            # an image naming a blob never uploaded: the router asks the media process, which knows no such
            # blob, and refuses it; nothing is stored or pushed (bob's next message is the text after it)
            ghost = MediaRef(sha256=bytes(32), mime="image/png", size=100, width=10, height=10)
            with pytest.raises(MessageRejected) as refused:
                with anyio.fail_after(15):
                    await alice.post("bob", ChatImage(image=ghost, caption="never uploaded")).wait()
            assert refused.value.code is ErrorCode.NOT_FOUND
            after = await alice.send_text("bob", "after the refusal")
            with anyio.fail_after(15):
                async for event in bob.events():
                    if isinstance(event, MessageReceived):
                        assert isinstance(event.content, ChatText)
                        assert event.content.text == "after the refusal"
                        assert event.conv_seq == after.conv_seq == got[1].conv_seq + 1
                        break

    anyio.run(chat)
    for name in processes:
        assert "Traceback" not in (run_dir / f"{name}.log").read_text()
