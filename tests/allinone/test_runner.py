"""The all-in-one runner in this process: start, serve a chat over real sockets, stop cleanly."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import anyio
import httpx
import pytest

from imsdk_proto import Biz, ChatFunc, Codec, ErrorCode, Flags, Header, SystemFunc, encode_frame
from imsdk_proto.messages import ChatText, SendAck
from imsdk_server._asgi import ASGIApp
from imsdk_server.allinone import AllInOne, AllInOneConfig, PathDispatch, StartupError, load_serve_config
from imsdk_server.config import ConfigError, HostPort
from tests.allinone._wire import Connection, free_port, handshake_frame, register_and_login

pytestmark = pytest.mark.anyio


def loopback_config(**overrides: object) -> AllInOneConfig:
    return AllInOneConfig(
        http=HostPort("127.0.0.1", 0),
        tcp=HostPort("127.0.0.1", 0),
        **overrides,  # type: ignore[arg-type]
    )


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def test_starts_serves_and_stops_without_leaking_tasks_or_ports() -> None:
    before = set(asyncio.all_tasks())
    async with AllInOne(loopback_config()) as server:
        assert server.state == "ready"
        assert server.http_address is not None
        assert server.tcp_address is not None
        http_port, tcp_port = server.http_address[1], server.tcp_address[1]
        link_ports = [port for _, port in (server.access_hub.addresses if server.access_hub else [])]
        assert server.router is not None
        assert server.notify_server is not None
        assert server.notify_server.address is not None
        assert server.location_server is not None
        assert server.location_server.address is not None
        backend_ports = [
            server.router.address[1],
            server.notify_server.address[1],
            server.location_server.address[1],
        ]
        assert server.access is not None
        assert server.access_watch is not None
        access_id = server.access.config.server_id
        with anyio.fail_after(5):  # the presence view's watch links to the access server once it registers
            await server.access_watch.wait_linked(access_id)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as client:
            health = (await client.get("/healthz")).json()
            assert health["status"] == "ok"
            assert health["roles"] == [
                "auth",
                "media",
                "location",
                "router",
                "notify",
                "access-manager",
                "access",
            ]
            # the router, the notification server and the presence view's access watch
            assert health["access"]["links_ready"] == 3
            assert health["access_watch"] == {"linked": [access_id]}
            assert health["notify"]["links_ready"] == 1  # the access server
            metrics = await client.get("/metrics")
            assert metrics.status_code == 200
            assert "# TYPE access_connections gauge" in metrics.text
            unknown = await client.get("/v1/nothing-here")
            assert unknown.status_code == 404
    assert server.state == "stopped"
    await asyncio.sleep(0)
    leaked = {t for t in asyncio.all_tasks() - before if not t.done()}
    assert leaked == set()
    for port in (http_port, tcp_port, *backend_ports, *link_ports):
        assert port_is_free(port), port


async def test_login_handshake_and_a_chat_message_through_the_router() -> None:
    async with AllInOne(loopback_config()) as server:
        assert server.http_address is not None
        assert server.tcp_address is not None
        base = f"http://127.0.0.1:{server.http_address[1]}"
        async with httpx.AsyncClient(base_url=base) as client:
            alice_token = await register_and_login(client, "alice")
            bob_token = await register_and_login(client, "bob")
            points = await client.get("/v1/access-points", headers={"Authorization": f"Bearer {bob_token}"})
            assert points.status_code == 200, points.text
            assert [p["port"] for p in points.json()["access_points"]] == [server.tcp_address[1]]
        alice = await Connection.open(server.tcp_address)
        bob = await Connection.open(server.tcp_address)
        try:
            for conn, token in ((alice, alice_token), (bob, bob_token)):
                await conn.send(handshake_frame(token, "phone"))
                reply = await conn.receive()
                assert (reply.header.biz, reply.header.func) == (Biz.SYSTEM, SystemFunc.HANDSHAKE_ACK)
                assert reply.header.error == 0

            # The first message goes without a message-server id: the router answers with its own.
            text = ChatText(text="hello bob")
            header = Header(Biz.CHAT, ChatFunc.TEXT, seq=1, msg_id=77, receiver_uid="bob")
            await alice.send(encode_frame(header, text, Codec.PROTOBUF))
            refused = await alice.receive_kind(Biz.CHAT, ChatFunc.SEND_ACK)
            assert refused.header.error == ErrorCode.WRONG_MESSAGE_SERVER
            router_id = refused.header.msg_server_id
            assert router_id == server.router.config.server_id

            sticky = Header(
                Biz.CHAT, ChatFunc.TEXT, seq=1, msg_id=77, receiver_uid="bob", msg_server_id=router_id
            )
            await alice.send(encode_frame(sticky, text, Codec.PROTOBUF))
            ack = await alice.receive_kind(Biz.CHAT, ChatFunc.SEND_ACK)
            assert ack.header.error == 0
            assert Flags.RESPONSE in Flags(ack.header.flags)
            assert ack.body_as(SendAck).conv_seq == 1

            pushed = await bob.receive_kind(Biz.CHAT, ChatFunc.TEXT)
            assert pushed.header.sender_uid == "alice"
            body = pushed.body_as(ChatText)
            assert (body.text, body.conv_seq) == ("hello bob", 1)
        finally:
            await alice.aclose()
            await bob.aclose()


async def test_stopping_sends_clients_away_with_server_shutting_down() -> None:
    server = AllInOne(loopback_config())
    async with server:
        assert server.http_address is not None
        assert server.tcp_address is not None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_address[1]}") as client:
            token = await register_and_login(client, "carol", "tablet")
        conn = await Connection.open(server.tcp_address)
        await conn.send(handshake_frame(token, "tablet"))
        assert (await conn.receive()).header.error == 0
    try:
        goodbye = await conn.receive_kind(Biz.SYSTEM, SystemFunc.KICK)
        assert goodbye.header.error == ErrorCode.SERVER_SHUTTING_DOWN
    finally:
        await conn.aclose()


async def test_users_and_keys_persist_in_the_data_directory(tmp_path: Path) -> None:
    config = loopback_config(data=tmp_path)
    async with AllInOne(config) as server:
        assert server.http_address is not None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_address[1]}") as client:
            token = await register_and_login(client, "dora")
    assert (tmp_path / "imsdk.sqlite3").exists()
    assert (tmp_path / "auth-keys.json").exists()
    async with AllInOne(config) as server:
        assert server.tcp_address is not None
        conn = await Connection.open(server.tcp_address)
        try:
            await conn.send(handshake_frame(token, "phone"))  # the token of the first run still verifies
            assert (await conn.receive()).header.error == 0
        finally:
            await conn.aclose()


async def test_a_port_in_use_fails_before_anything_starts() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        before = set(asyncio.all_tasks())
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}: address already in use"):
            async with AllInOne(AllInOneConfig(http=HostPort("127.0.0.1", port))):
                pass
        assert {t for t in asyncio.all_tasks() - before if not t.done()} == set()


async def test_a_tcp_port_in_use_stops_what_had_started() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        http_port = free_port()
        config = AllInOneConfig(http=HostPort("127.0.0.1", http_port), tcp=HostPort("127.0.0.1", port))
        before = set(asyncio.all_tasks())
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}: address already in use"):
            async with AllInOne(config):
                pass
        assert {t for t in asyncio.all_tasks() - before if not t.done()} == set()
        assert port_is_free(http_port)


async def test_single_roles_need_a_key_ring_to_verify_tokens(tmp_path: Path) -> None:
    config = loopback_config(key_file=tmp_path / "missing.json")
    with pytest.raises(StartupError, match="no token key ring"):
        async with AllInOne(config, roles=["access-manager"]):
            pass


async def test_component_tables_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "imsdk.toml"
    path.write_text('[server]\nhttp = "127.0.0.1:0"\ntcp = "127.0.0.1:0"\n[access]\nidle_timeout = "soon"\n')
    config = load_serve_config(path)
    with pytest.raises(ConfigError, match="idle_timeout"):
        async with AllInOne(config):
            pass


@pytest.mark.parametrize(
    ("roles", "message"),
    [([], "no role to serve"), (["auth", "gateway"], "unknown role")],
)
def test_roles_are_checked(roles: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AllInOne(AllInOneConfig(), roles=roles)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/access-points", "am"),
        ("/v1/access-points/", "am"),
        ("/v1/access-pointsX", "default"),
        ("/v1/login", "default"),
        ("/metrics", "metrics"),
        ("/metrics/x", "metrics"),
        ("/", "default"),
    ],
)
def test_path_dispatch_picks_the_longest_prefix(path: str, expected: str) -> None:
    apps = {name: _named(name) for name in ("am", "metrics", "default")}
    dispatch = PathDispatch({"/v1/access-points": apps["am"], "/metrics": apps["metrics"]}, apps["default"])
    assert dispatch.resolve(path) is apps[expected]


def _named(name: str) -> ASGIApp:
    async def app(scope: object, receive: object, send: object) -> None:  # pragma: no cover - never called
        pass

    app.__name__ = name
    return app


def test_path_dispatch_refuses_bad_prefixes() -> None:
    with pytest.raises(ValueError, match="prefix"):
        PathDispatch({"v1": _named("x")}, _named("d"))


async def test_file_tables_reach_each_component_and_v1_tokens_verify_in_process(tmp_path: Path) -> None:
    path = tmp_path / "imsdk.toml"
    path.write_text(
        '[server]\nhttp = "127.0.0.1:0"\ntcp = "127.0.0.1:0"\n'
        '[auth]\ntoken_kind = "v1"\ntoken_lifetime = 600\n'
        '[access]\nregion = "east"\nisp = "telecom"\nidle_timeout = 120.0\n'
    )
    async with AllInOne(load_serve_config(path)) as server:
        assert server.auth is not None
        assert server.access is not None
        assert server.access_info is not None
        assert (server.auth.config.token_kind, server.auth.config.token_lifetime) == ("v1", 600)
        assert (server.access.config.region, server.access.config.isp) == ("east", "telecom")
        assert server.access.config.idle_timeout == 120.0
        assert (server.access_info.region, server.access_info.isp) == ("east", "telecom")
        assert server.http_address is not None
        assert server.tcp_address is not None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_address[1]}") as client:
            token = await register_and_login(client, "erin")
        assert token.startswith("v1.")
        conn = await Connection.open(server.tcp_address)
        try:
            await conn.send(handshake_frame(token, "phone"))
            reply = await conn.receive()
            assert (reply.header.func, reply.header.error) == (SystemFunc.HANDSHAKE_ACK, 0)
        finally:
            await conn.aclose()


def test_the_configuration_example_of_the_deployment_page_loads() -> None:
    page = (Path(__file__).parents[2] / "docs" / "deployment.md").read_text()
    example = page.split("```toml\n", 1)[1].split("```", 1)[0]
    config = load_serve_config_from_text(example)
    assert config.queue.startswith("redis://")
    assert config.registry.startswith("zookeeper://")
    assert config.database is not None
    assert config.database.startswith("mysql://")
    assert config.media_url.startswith("http://")  # routers check media at the media service
    assert set(config.components) == {"auth", "access", "access_manager", "notify", "links"}


def load_serve_config_from_text(text: str) -> AllInOneConfig:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "imsdk.toml"
        file.write_text(text)
        return load_serve_config(file)


def tiny_png() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 2, 3, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(3)))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


async def test_media_is_served_beside_auth_on_the_one_http_address(tmp_path: Path) -> None:
    async with AllInOne(loopback_config(data=tmp_path)) as server:
        assert server.http_address is not None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_address[1]}") as client:
            token = await register_and_login(client, "fay")
            auth = {"Authorization": f"Bearer {token}"}
            assert (await client.post("/v1/media", content=tiny_png())).status_code == 401
            up = await client.post("/v1/media?kind=image", content=tiny_png(), headers=auth)
            assert up.status_code == 201, up.text
            meta = up.json()
            assert (meta["kind"], meta["width"], meta["height"]) == ("image", 2, 3)
            down = await client.get(f"/v1/media/{meta['id']}", headers=auth)
            assert (down.status_code, down.content) == (200, tiny_png())
    assert any((tmp_path / "media").rglob(meta["id"]))
