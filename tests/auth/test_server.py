"""The auth server for real: serve_auth under uvicorn on a loopback port, raw sockets and the client SDK."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import anyio
import httpx
import pytest

from imsdk_client._auth import AuthClient
from imsdk_server.auth import AuthConfig, KeyRing, serve_auth
from tests.auth._helpers import FAST

pytestmark = pytest.mark.anyio


async def raw_request(address: tuple[str, int], data: bytes) -> bytes:
    async with await anyio.connect_tcp(*address) as stream:
        await stream.send(data)
        received = b""
        with anyio.move_on_after(5):
            while b"\r\n\r\n" not in received or not received.endswith(b"}"):
                try:
                    received += await stream.receive()
                except anyio.EndOfStream:
                    break
        return received


async def test_serve_over_loopback(tmp_path: Path) -> None:
    config = replace(FAST, host="127.0.0.1", port=0, data_dir=tmp_path / "auth")
    async with anyio.create_task_group() as tg:
        address = await tg.start(serve_auth, config)
        base = f"http://{address[0]}:{address[1]}"
        async with AuthClient(base) as client:
            await client.register("alice", "s3cret-password", "Alice")
            token = await client.login("alice", "s3cret-password", "phone-1", platform="linux")
            assert token.kind == "v2"
            assert await client.friends() == []
        async with httpx.AsyncClient(base_url=base) as http:
            r = await http.post("/v1/tokens/verify", json={"token": token.token, "uid": "alice"})
            assert r.json()["uid"] == "alice"
            r = await http.post("/v1/tokens/verify", content=b"{not json")
            assert r.status_code == 400
            assert r.json()["error"]["code"] == 105

        # A body announced far beyond the limit is refused before it is sent; the server keeps serving.
        answer = await raw_request(
            address,
            b"POST /v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000000\r\n\r\n",
        )
        assert answer.startswith(b"HTTP/1.1 413")
        body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert body == {
            "error": {"code": 600, "name": "PAYLOAD_TOO_LARGE", "message": "body larger than 16384 bytes"}
        }
        # Garbage that is not HTTP at all only costs that connection.
        await raw_request(address, b"\x16\x03\x01\x00\xa5 not http\r\n\r\n")
        async with httpx.AsyncClient(base_url=base) as http:
            assert (await http.get("/v1/health")).json() == {"status": "ok"}
        tg.cancel_scope.cancel()

    # The data directory holds the users and the key ring, so a restart keeps both.
    assert KeyRing.load(tmp_path / "auth" / "auth-keys.json").signing_key.kid == token.token.split(".")[1]
    assert (tmp_path / "auth" / "auth.sqlite3").exists()
    async with anyio.create_task_group() as tg:
        address = await tg.start(serve_auth, config)
        async with httpx.AsyncClient(base_url=f"http://{address[0]}:{address[1]}") as http:
            r = await http.post("/v1/tokens/verify", json={"token": token.token})
            assert r.status_code == 200
            r = await http.post("/v1/logout", headers={"Authorization": f"Bearer {token.token}"})
            assert r.status_code == 200
            r = await http.post("/v1/tokens/verify", json={"token": token.token})
            assert r.status_code == 401
        tg.cancel_scope.cancel()


@pytest.mark.redis
async def test_two_servers_share_revocations_through_redis(tmp_path: Path, redis_target: object) -> None:
    url, prefix = redis_target.url, redis_target.prefix  # type: ignore[attr-defined]
    keys = tmp_path / "keys.json"
    base = replace(FAST, port=0, redis_url=url, redis_prefix=prefix, key_file=keys, revocation_refresh=0.05)
    a = replace(base, database=str(tmp_path / "a.sqlite3"))
    b = replace(base, database=str(tmp_path / "b.sqlite3"))
    async with anyio.create_task_group() as tg:
        addr_a = await tg.start(serve_auth, a)
        addr_b = await tg.start(serve_auth, b)
        async with AuthClient(f"http://{addr_a[0]}:{addr_a[1]}") as client:
            await client.register("alice", "s3cret-password", "Alice")
            token = await client.login("alice", "s3cret-password", "d")
            async with httpx.AsyncClient(base_url=f"http://{addr_b[0]}:{addr_b[1]}") as http_b:
                assert (
                    await http_b.post("/v1/tokens/verify", json={"token": token.token})
                ).status_code == 200
                await client.logout()
                assert (
                    await http_b.post("/v1/tokens/verify", json={"token": token.token})
                ).status_code == 401
        tg.cancel_scope.cancel()


def test_config_locations(tmp_path: Path) -> None:
    assert AuthConfig().database_location() == ":memory:"
    assert AuthConfig().key_file_path() is None
    c = AuthConfig(data_dir=tmp_path)
    assert c.database_location() == str(tmp_path / "auth.sqlite3")
    assert c.key_file_path() == tmp_path / "auth-keys.json"
    assert AuthConfig(data_dir=tmp_path, database="mysql://r@h/db").database_location() == "mysql://r@h/db"
