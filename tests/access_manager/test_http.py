"""The HTTP API: in-process over httpx's ASGI transport, and once over a real uvicorn server on loopback."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator

import anyio
import anyio.abc
import httpx
import pytest

from imsdk_client._core.race import Endpoint
from imsdk_client._drivers.race import race_with_refresh
from imsdk_proto.codes import ErrorCode
from imsdk_server.access_manager import (
    AccessManager,
    AccessManagerConfig,
    create_access_manager_app,
    serve_access_manager,
)
from imsdk_server.auth import KeyRing, TokenCodec
from imsdk_server.backends.queue import MemoryQueue, MemoryQueueHub
from imsdk_server.backends.registry import MemoryRegistryHub
from imsdk_server.config import HostPort
from imsdk_server.metrics import Metrics
from tests.access_manager.conftest import GUARD, Clock, Tokens, access_entry, eventually, load_report

pytestmark = pytest.mark.anyio


def make_manager(tokens: Tokens, config: AccessManagerConfig | None = None) -> tuple[AccessManager, Metrics]:
    metrics = Metrics()
    hub = MemoryQueueHub()
    manager = AccessManager(
        config or AccessManagerConfig(tie_tolerance=0.0),
        queue=MemoryQueue(hub),
        verifier=tokens.verifier,
        metrics=metrics,
        clock=Clock(),
        rng=random.Random(1),
    )
    return manager, metrics


@pytest.fixture
async def client_and_manager(
    tokens: Tokens,
) -> AsyncIterator[tuple[httpx.AsyncClient, AccessManager, Metrics]]:
    manager, metrics = make_manager(tokens)
    transport = httpx.ASGITransport(app=create_access_manager_app(manager))
    async with httpx.AsyncClient(transport=transport, base_url="http://am") as client:
        yield client, manager, metrics


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_three_ranked_access_points(
    client_and_manager: tuple[httpx.AsyncClient, AccessManager, Metrics], tokens: Tokens
) -> None:
    client, manager, metrics = client_and_manager
    manager.handle_report(load_report(1, region="south", connections=0))
    manager.handle_report(load_report(2, connections=4000))
    manager.handle_report(load_report(3, isp="mob", connections=0))
    manager.handle_report(load_report(4, connections=1000))
    r = await client.get(
        "/v1/access-points", params={"region": "north", "isp": "tel"}, headers=bearer(tokens.issue())
    )
    assert r.status_code == 200
    body = r.json()
    assert body["ttl"] == 60
    assert body["access_points"] == [
        {"host": "127.0.0.1", "port": 7004, "server_id": 4, "region": "north", "isp": "tel"},
        {"host": "127.0.0.1", "port": 7002, "server_id": 2, "region": "north", "isp": "tel"},
        {"host": "127.0.0.1", "port": 7003, "server_id": 3, "region": "north", "isp": "mob"},
    ]
    # No region or ISP given: no preference, pure load order.
    r = await client.get("/v1/access-points", headers=bearer(tokens.issue()))
    assert [p["server_id"] for p in r.json()["access_points"]] == [1, 3, 4]
    assert metrics.value("access_manager_requests", route="access_points", status=200) == 2


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic dXNlcjpwdw=="},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer v2.nope.AAAA"},
        {"Authorization": "Bearer " + "x" * 5000},
    ],
    ids=["missing", "basic", "empty", "forged", "oversize"],
)
async def test_bad_tokens_get_401(
    client_and_manager: tuple[httpx.AsyncClient, AccessManager, Metrics], headers: dict[str, str]
) -> None:
    client, manager, metrics = client_and_manager
    manager.handle_report(load_report(1))
    r = await client.get("/v1/access-points", headers=headers)
    assert r.status_code == 401
    error = r.json()["error"]
    assert error["code"] == ErrorCode.TOKEN_INVALID
    assert error["name"] == "TOKEN_INVALID"
    assert error["message"]
    assert metrics.value("access_manager_requests", route="access_points", status=401) == 1


async def test_expired_and_foreign_tokens_get_401(
    client_and_manager: tuple[httpx.AsyncClient, AccessManager, Metrics], tokens: Tokens
) -> None:
    client, manager, _ = client_and_manager
    manager.handle_report(load_report(1))
    expired = tokens.issue(lifetime=60, issued_ago=3600)
    r = await client.get("/v1/access-points", headers=bearer(expired))
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "invalid token"  # the fault is never told
    foreign, _ = TokenCodec(KeyRing.generate(0)).issue("mallory", "phone", now=time.time(), lifetime=60)
    r = await client.get("/v1/access-points", headers=bearer(foreign))
    assert r.status_code == 401


async def test_oversize_region_gets_400_and_the_server_keeps_serving(
    client_and_manager: tuple[httpx.AsyncClient, AccessManager, Metrics], tokens: Tokens
) -> None:
    client, manager, _ = client_and_manager
    manager.handle_report(load_report(1))
    r = await client.get("/v1/access-points", params={"region": "r" * 65}, headers=bearer(tokens.issue()))
    assert r.status_code == 400
    assert r.json()["error"]["code"] == ErrorCode.PAYLOAD_TOO_LARGE
    r = await client.get("/v1/access-points", params={"region": "r" * 64}, headers=bearer(tokens.issue()))
    assert r.status_code == 200


async def test_no_servers_gives_503_with_retry_after(
    client_and_manager: tuple[httpx.AsyncClient, AccessManager, Metrics], tokens: Tokens
) -> None:
    client, _, metrics = client_and_manager
    r = await client.get("/v1/access-points", headers=bearer(tokens.issue()))
    assert r.status_code == 503
    assert r.headers["retry-after"] == "5"
    assert r.json()["error"]["code"] == ErrorCode.NO_ACCESS_POINTS
    assert metrics.value("access_manager_unavailable") == 1


async def test_ops_view_with_a_user_token_when_no_admin_key(
    client_and_manager: tuple[httpx.AsyncClient, AccessManager, Metrics], tokens: Tokens
) -> None:
    client, manager, _ = client_and_manager
    manager.handle_report(load_report(2, connections=2500, cpu=0.1))
    assert (await client.get("/v1/access-servers")).status_code == 401
    r = await client.get("/v1/access-servers", headers=bearer(tokens.issue()))
    assert r.status_code == 200
    (row,) = r.json()["servers"]
    assert row["server_id"] == 2
    assert row["name"] == "access-2"
    assert row["connections"] == 2500
    assert row["load"] == 0.25
    assert row["available"] is True
    assert row["registered"] is False


async def test_ops_view_requires_the_admin_key_when_configured(tokens: Tokens) -> None:
    manager, _ = make_manager(tokens, AccessManagerConfig(admin_key="s3cret"))
    manager.handle_report(load_report(1))
    transport = httpx.ASGITransport(app=create_access_manager_app(manager))
    async with httpx.AsyncClient(transport=transport, base_url="http://am") as client:
        r = await client.get(
            "/v1/access-servers", headers=bearer(tokens.issue())
        )  # a user token is not enough
        assert r.status_code == 401
        assert r.json()["error"]["code"] == ErrorCode.FORBIDDEN
        r = await client.get("/v1/access-servers", headers={"X-Admin-Key": "wrong"})
        assert r.status_code == 401
        r = await client.get("/v1/access-servers", headers={"X-Admin-Key": "s3cret"})
        assert r.status_code == 200
        assert [s["server_id"] for s in r.json()["servers"]] == [1]


async def test_healthz(client_and_manager: tuple[httpx.AsyncClient, AccessManager, Metrics]) -> None:
    client, manager, _ = client_and_manager
    manager.handle_report(load_report(1))
    r = await client.get("/healthz")
    assert r.json() == {"status": "ok", "servers": 1}


async def test_real_uvicorn_server_and_the_client_race(tokens: Tokens) -> None:
    """End to end on loopback: access servers report, the manager serves the list, the client races it."""
    queue_hub, registry_hub = MemoryQueueHub(), MemoryRegistryHub()

    handled: list[int] = []

    async def access_server(stream: anyio.abc.SocketStream, name: int) -> None:
        async with stream:
            await stream.receive()
            handled.append(name)
            await stream.send(f"OK {name}\n".encode())

    async def handshake(stream: anyio.abc.ByteStream, endpoint: Endpoint) -> int:
        await stream.send(b"HELLO\n")
        reply = await stream.receive()
        assert reply.startswith(b"OK ")
        return int(reply[3:].strip())

    metrics = Metrics()
    async with (
        MemoryQueue(queue_hub) as manager_queue,
        MemoryQueue(queue_hub) as publisher,
        await registry_hub.connect() as watcher,
        await registry_hub.connect() as servers,
        anyio.create_task_group() as tg,
    ):
        config = AccessManagerConfig(port=0, consume_retry_interval=0.01)
        address: HostPort = await tg.start(
            lambda task_status: serve_access_manager(
                config,
                queue=manager_queue,
                verifier=tokens.verifier,
                registry=watcher,
                metrics=metrics,
                task_status=task_status,
            )
        )
        for sid in (1, 2):
            listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            tg.start_soon(listener.serve, lambda stream, sid=sid: access_server(stream, sid))
            await servers.register(access_entry(sid))
            await publisher.publish("load", load_report(sid, port=port, connections=100 * sid))
        await eventually(lambda: metrics.value("access_manager_servers_available") == 2)

        async with httpx.AsyncClient(base_url=f"http://{address.host}:{address.port}", timeout=GUARD) as http:

            async def fetch() -> list[Endpoint]:
                r = await http.get(
                    "/v1/access-points", params={"region": "north"}, headers=bearer(tokens.issue())
                )
                r.raise_for_status()
                return [Endpoint(p["host"], p["port"], p["server_id"]) for p in r.json()["access_points"]]

            with anyio.fail_after(GUARD):
                result = await race_with_refresh(fetch, handshake)
            assert result.handshake in (1, 2)
            await result.stream.aclose()

            r = await http.get("/v1/access-points", headers=bearer("v2.bad.token"))
            assert r.status_code == 401
            await servers.deregister(access_entry(1).key)
            await servers.deregister(access_entry(2).key)
            await eventually(lambda: metrics.value("access_manager_servers_available") == 0)
            r = await http.get("/v1/access-points", headers=bearer(tokens.issue()))
            assert r.status_code == 503
        tg.cancel_scope.cancel()
    # The runner shut uvicorn down and released the port.
    with pytest.raises(OSError) as refused:  # noqa: PT011 - the cause below is the specific check
        await anyio.connect_tcp(address.host, address.port)
    assert isinstance(refused.value.__cause__ or refused.value, ConnectionRefusedError)
