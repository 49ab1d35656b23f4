"""The client end to end over loopback sockets, in two worlds.

* ``real`` (asyncio): the real servers assembled in this process — auth, location, router and access
  manager from the all-in-one runner, three access servers of our own linked to its router and registered
  in its registry, and the media service on its own HTTP port.
* ``fake`` (asyncio and trio): :class:`imsdk_client.testing.FakeServer`, whose access points are real
  loopback listeners too (the servers run on asyncio only, so this is how the client is tested on trio).

Every scenario runs in every world. Waits are bounded by ``fail_after`` only to stop a broken run; nothing
asserts on timing.
"""

from __future__ import annotations

import hashlib
import io
import struct
import wave
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.abc
import pytest

from imsdk_client import (
    Client,
    ConnectionState,
    Endpoint,
    InvalidContent,
    MessageReceived,
    ReceiverOffline,
    SessionConfig,
    UnknownReceiver,
    conversation_id,
)
from imsdk_client.testing import FakeServer
from imsdk_proto.messages import ChatImage, ChatLocation, ChatText, ChatVoice, SendStatus

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery"
GUARD = 30.0  # seconds: only stops a broken test from hanging
T = TypeVar("T")


@pytest.fixture(
    params=[
        pytest.param(("asyncio", "real"), id="asyncio-real"),
        pytest.param(("asyncio", "fake"), id="asyncio-fake"),
        pytest.param(("trio", "fake"), id="trio-fake"),
    ]
)
def world_kind(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def anyio_backend(world_kind: tuple[str, str]) -> str:
    return world_kind[0]


# ---------------------------------------------------------------------------------------------------- media


def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes(range(width)) for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def wav(milliseconds: int, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(2 * rate * milliseconds // 1000))
    return out.getvalue()


# -------------------------------------------------------------------------------------------- lossy connector


class LossyStream(anyio.abc.ByteStream):
    """A client-side socket whose incoming bytes can be thrown away (answers lost on a dying network)."""

    def __init__(self, inner: anyio.abc.ByteStream, owner: LossyConnector) -> None:
        self.inner = inner
        self.owner = owner

    async def receive(self, max_bytes: int = 65536) -> bytes:
        while True:
            data = await self.inner.receive(max_bytes)
            if not self.owner.deaf:
                return data

    async def send(self, item: bytes) -> None:
        await self.inner.send(item)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class LossyConnector:
    """TCP to the endpoint; while :attr:`deaf`, everything the server sends is lost before the client."""

    deaf: bool = False
    dialled: list[Endpoint] = field(default_factory=list)

    async def __call__(self, endpoint: Endpoint) -> anyio.abc.ByteStream:
        self.dialled.append(endpoint)
        return LossyStream(await anyio.connect_tcp(endpoint.host, endpoint.port), self)


# ---------------------------------------------------------------------------------------------------- worlds


@dataclass
class World:
    """What a scenario needs from a deployment."""

    url: str
    options: dict[str, Any]
    add_user: Callable[[str], Any]
    kill_access: Callable[[Endpoint], Any]
    endpoints: Callable[[], list[Endpoint]]
    kind: str

    def client(self, uid: str, device: str = "phone", **extra: Any) -> Client:
        options = {**self.options, **extra}
        config = options.pop("config", None) or SessionConfig(device_id=device, ack_timeout=30.0)
        return Client(self.url, uid, password=PASSWORD, device=device, config=config, **options)


@asynccontextmanager
async def fake_world() -> AsyncIterator[World]:
    async with FakeServer() as server:

        async def add_user(uid: str) -> None:
            server.add_user(uid, PASSWORD)

        async def kill(endpoint: Endpoint) -> None:
            for ap in server.access_points:
                if ap.port == endpoint.port:
                    ap.kill()

        yield World(
            server.url,
            {"http_transport": server.http_transport()},
            add_user,
            kill,
            lambda: [ap.endpoint for ap in server.access_points if ap.alive],
            "fake",
        )


@asynccontextmanager
async def real_world(tmp_path: Path) -> AsyncIterator[World]:
    import httpx

    from imsdk_client import AuthClient
    from imsdk_proto.messages import ServerRole
    from imsdk_server.access import AccessConfig, AccessServer, LinkRoutes, LocalTokenVerifier, RoutingTable
    from imsdk_server.allinone import AllInOne, AllInOneConfig
    from imsdk_server.allinone._http import bind_socket, serve_http
    from imsdk_server.backends.registry import ServerInfo, ServerState
    from imsdk_server.config import HostPort
    from imsdk_server.links import LinkHub, LinkIdentity
    from imsdk_server.media import LocalMediaStore, MediaConfig, TokenAuth, create_media_app

    config = AllInOneConfig(http=HostPort("127.0.0.1", 0), tcp=HostPort("127.0.0.1", 0))
    roles = ("auth", "location", "router", "access-manager")
    async with AllInOne(config, roles=roles) as core, AsyncExitStack() as stack:
        tg = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(tg.cancel_scope.cancel)
        assert core.auth is not None
        assert core.registry is not None
        assert core.queue is not None
        registry, queue, auth = core.registry, core.queue, core.auth
        router = core.router
        access: dict[int, tuple[AccessServer, anyio.CancelScope, anyio.Event, ServerInfo]] = {}

        async def run_access(
            server: AccessServer,
            scope: anyio.CancelScope,
            done: anyio.Event,
            *,
            task_status: anyio.abc.TaskStatus[ServerInfo],
        ) -> None:
            """One access server in a task of its own: its listener and its link hub, until killed."""
            server_id = server.config.server_id
            try:
                with scope:
                    async with anyio.create_task_group() as inner:
                        host, port = await inner.start(server.serve)
                        hub = LinkHub(
                            LinkIdentity(
                                int(ServerRole.SERVER_ROLE_ACCESS),
                                server_id,
                                f"access-{server_id}",
                                "default",
                            ),
                            handler=server.on_link_frame,
                            on_state=LinkRoutes(server.routes).on_state,
                        )
                        async with hub:
                            link_host, link_port = await hub.listen("127.0.0.1", 0)
                            router_host, router_port = router.address
                            link = await hub.connect(
                                router_host, router_port, expect_server_id=router.config.server_id
                            )
                            await link.wait_ready()
                            info = ServerInfo(
                                role="access",
                                server_id=server_id,
                                name=f"access-{server_id}",
                                domain="default",
                                host=link_host,
                                port=link_port,
                                client_host=host,
                                client_port=port,
                            )
                            await registry.register(info)
                            task_status.started(await registry.set_state(info.key, ServerState.READY))
                            await anyio.sleep_forever()
            finally:
                done.set()

        async def start_access(server_id: int) -> None:
            cfg = AccessConfig(server_id=server_id, host="127.0.0.1", port=0)
            server = AccessServer(cfg, LocalTokenVerifier(auth.verifier), routes=RoutingTable(), queue=queue)
            scope, done = anyio.CancelScope(), anyio.Event()
            info = await tg.start(run_access, server, scope, done)
            await queue.publish(
                cfg.load_topic, server.load_report(anyio.current_time(), 0.0).SerializeToString()
            )
            assert info.client_port is not None
            access[info.client_port] = (server, scope, done, info)

        for server_id in (101, 102, 103):
            await start_access(server_id)

        media_root = tmp_path / "media"
        media_app = create_media_app(
            LocalMediaStore(media_root), TokenAuth(auth.verifier), MediaConfig(root=media_root)
        )
        media_host, media_port = await tg.start(serve_http, media_app, bind_socket("127.0.0.1", 0))
        assert core.http_address is not None
        url = f"http://127.0.0.1:{core.http_address[1]}"

        # The access manager offers an access server once its first load report is in.
        async with AuthClient(url) as probe:
            await probe.register("probe", PASSWORD, "probe")
            await probe.login("probe", PASSWORD, "probe")
            with anyio.fail_after(GUARD):
                while True:
                    token = await probe.valid_token()
                    async with httpx.AsyncClient(base_url=url) as http:
                        r = await http.get("/v1/access-points", headers={"Authorization": f"Bearer {token}"})
                    if r.status_code == 200 and len(r.json()["access_points"]) == 3:
                        break
                    await anyio.sleep(0.05)

        async def add_user(uid: str) -> None:
            async with AuthClient(url) as a:
                await a.register(uid, PASSWORD, uid)

        async def kill(endpoint: Endpoint) -> None:
            _, scope, done, info = access.pop(endpoint.port)
            await registry.deregister(info.key)
            scope.cancel()  # the listener closes and every client line is cut at once
            await done.wait()

        def endpoints() -> list[Endpoint]:
            return [Endpoint("127.0.0.1", port, s[0].config.server_id) for port, s in access.items()]

        yield World(
            url, {"media_url": f"http://{media_host}:{media_port}"}, add_user, kill, endpoints, "real"
        )


@pytest.fixture
async def world(world_kind: tuple[str, str], tmp_path: Path) -> AsyncIterator[World]:
    factory = real_world(tmp_path) if world_kind[1] == "real" else fake_world()
    async with factory as w:
        for uid in ("alice", "bob", "carol"):
            await w.add_user(uid)
        yield w


# ---------------------------------------------------------------------------------------------------- helpers


async def collect(client: Client, kind: type[T], until: Callable[[list[T]], bool]) -> list[T]:
    """Events of ``kind`` in arrival order, until ``until(collected)`` holds."""
    got: list[T] = []
    with anyio.fail_after(GUARD):
        async for event in client.events():
            if isinstance(event, kind):
                got.append(event)
                if until(got):
                    return got
    raise AssertionError(f"the event stream ended after {got}")


def texts(messages: list[MessageReceived]) -> list[str]:
    return [m.content.text for m in messages if isinstance(m.content, ChatText)]


async def texts_until(client: Client, last: str) -> list[MessageReceived]:
    """Messages up to and including the text ``last`` (an end marker the test sends)."""
    return await collect(
        client,
        MessageReceived,
        lambda got: isinstance(got[-1].content, ChatText) and got[-1].content.text == last,
    )


# -------------------------------------------------------------------------------------------------- scenarios


async def test_every_content_type_is_delivered_with_its_metadata(world: World) -> None:
    image, voice = png(4, 3), wav(600)
    async with world.client("alice") as alice, world.client("bob", "pc") as bob:
        assert alice.state is ConnectionState.READY
        acks = [
            await alice.send_text("bob", "hello bob"),
            await alice.send_image("bob", image, caption="a tiny picture"),
            await alice.send_voice("bob", voice, duration_ms=600),
            await alice.send_location("bob", 48.8584, 2.2945, accuracy_m=5.0, label="tower"),
        ]
        assert [a.conv_seq for a in acks] == [1, 2, 3, 4]
        assert all(a.status == SendStatus.SEND_STATUS_DELIVERED for a in acks)
        got = await collect(bob, MessageReceived, lambda got: len(got) == 4)
    conv = conversation_id("alice", "bob")
    assert [(m.conversation, m.sender_uid, m.sender_device, m.conv_seq) for m in got] == [
        (conv, "alice", "phone", seq) for seq in (1, 2, 3, 4)
    ]
    assert [m.server_msg_id for m in got] == [a.server_msg_id for a in acks]
    assert [m.msg_id for m in got] == [a.msg_id for a in acks]
    text, picture, clip, place = (m.content for m in got)
    assert isinstance(text, ChatText)
    assert text.text == "hello bob"
    assert isinstance(picture, ChatImage)
    assert (picture.caption, picture.image.mime, picture.image.width, picture.image.height) == (
        "a tiny picture", "image/png", 4, 3,
    )  # fmt: skip
    assert (picture.image.sha256, picture.image.size) == (hashlib.sha256(image).digest(), len(image))
    assert isinstance(clip, ChatVoice)
    assert (clip.duration_ms, clip.voice.mime, clip.voice.sha256) == (
        600, "audio/wav", hashlib.sha256(voice).digest(),
    )  # fmt: skip
    assert isinstance(place, ChatLocation)
    assert (place.lat, place.lng, place.accuracy_m, place.label) == (48.8584, 2.2945, 5.0, "tower")
    assert all(m.sent_at_ms > 0 for m in got)


async def test_media_round_trip_and_local_checks(world: World) -> None:
    image = png(2, 2)
    async with world.client("alice") as alice:
        info = await alice.upload_media(image, "image")
        assert info.id == hashlib.sha256(image).hexdigest()
        assert await alice.download_media(info.ref()) == image
        with pytest.raises(InvalidContent):
            await alice.send_location("bob", 91.0, 0.0)
        with pytest.raises(InvalidContent):
            await alice.send_location("bob", 0.0, float("nan"))
        with pytest.raises(InvalidContent):
            await alice.send_text("bob", "")
        with pytest.raises(InvalidContent):
            await alice.send_voice("bob", wav(100), duration_ms=0)


async def test_offline_messages_arrive_in_order_at_login_before_ready(world: World) -> None:
    async with world.client("alice") as alice:
        acks = [await alice.send_text("bob", f"m{i}") for i in range(1, 21)]
    assert [a.status for a in acks] == [SendStatus.SEND_STATUS_STORED] * 20
    assert [a.conv_seq for a in acks] == list(range(1, 21))
    async with world.client("bob", "pc") as bob:
        # Ready means caught up: everything stored had arrived when the client said so.
        assert bob.state is ConnectionState.READY
        assert bob.session.reorder.cursors()[conversation_id("alice", "bob")] == 20
        got = await collect(bob, MessageReceived, lambda got: len(got) == 20)
        assert texts(got) == [f"m{i}" for i in range(1, 21)]
        assert [m.conv_seq for m in got] == list(range(1, 21))
        # and nothing more: the next message is the next one
        async with world.client("alice") as alice:
            await alice.send_text("bob", "end")
        rest = await texts_until(bob, "end")
        assert texts(rest) == ["end"]


async def test_network_switch_in_the_middle_of_a_burst_loses_nothing_and_shows_nothing_twice(
    world: World,
) -> None:
    connector = LossyConnector()
    async with world.client("alice", connector=connector) as alice, world.client("bob", "pc") as bob:
        switches = 0
        burst = [alice.post("bob", ChatText(text=f"m{i}")) for i in range(1, 11)]
        # 1. bytes written but not yet flushed when the network changes: they go again on the new line
        alice.set_network("4g")
        switches += 1
        burst += [alice.post("bob", ChatText(text=f"m{i}")) for i in range(11, 21)]
        first = [await s.wait() for s in burst]
        # 2. the server stores m21..m30 and pushes them to bob, but its answers die with alice's old
        #    network: after the switch alice resends them with the same ids and the server deduplicates
        connector.deaf = True
        lost = [alice.post("bob", ChatText(text=f"m{i}")) for i in range(21, 31)]
        seen = await collect(bob, MessageReceived, lambda got: len(got) == 30)
        assert not any(s.done for s in lost)
        connector.deaf = False
        alice.set_network("wifi")
        switches += 1
        second = [await s.wait() for s in lost]
        tail = [alice.post("bob", ChatText(text=f"m{i}")) for i in range(31, 41)]
        third = [await s.wait() for s in tail]
        await alice.send_text("bob", "end")
        rest = await texts_until(bob, "end")
    acks = first + second + third
    assert [a.conv_seq for a in acks] == list(range(1, 41)), "one sequence per message, in send order"
    assert [a.msg_id for a in acks] == [s.msg_id for s in burst + lost + tail]
    assert [a.status for a in second] == [SendStatus.SEND_STATUS_DUPLICATE] * 10
    shown = seen + rest
    assert texts(shown) == [f"m{i}" for i in range(1, 41)] + ["end"], "nothing lost, nothing twice, in order"
    assert len({m.server_msg_id for m in shown}) == 41
    assert switches == 2
    assert len(connector.dialled) >= 3


async def test_access_server_killed_under_the_client_moves_it_to_another_one(world: World) -> None:
    async with world.client("alice") as alice, world.client("bob", "pc") as bob:
        home = alice.endpoint
        assert home is not None
        assert {e.port for e in world.endpoints()} >= {home.port}
        await world.kill_access(home)
        # bob keeps writing while alice is away from every access server
        for i in range(1, 6):
            await bob.send_text("alice", f"b{i}")
        got = await collect(alice, MessageReceived, lambda got: len(got) == 5)
        assert texts(got) == [f"b{i}" for i in range(1, 6)]
        assert alice.endpoint is not None
        assert alice.endpoint.port != home.port
        assert alice.endpoint.port in {e.port for e in world.endpoints()}
        # the new line works both ways
        ack = await alice.send_text("bob", "back")
        assert ack.conv_seq == 6
        back = await texts_until(bob, "back")
        assert texts(back) == ["back"]


async def test_instant_message_to_an_offline_user_raises_receiver_offline(world: World) -> None:
    async with world.client("alice") as alice:
        with pytest.raises(ReceiverOffline) as info:
            await alice.send_text("bob", "are you there?", instant=True)
        assert info.value.code is not None
        assert info.value.code.name == "RECEIVER_OFFLINE"
        with pytest.raises(UnknownReceiver):
            await alice.send_text("nobody-by-that-name", "hello?")
        async with world.client("bob", "pc") as bob:
            ack = await alice.send_text("bob", "now you are", instant=True)
            assert ack.conv_seq == 0
            assert ack.status == SendStatus.SEND_STATUS_DELIVERED
            (got,) = await collect(bob, MessageReceived, lambda got: len(got) == 1)
            assert got.instant
            assert texts([got]) == ["now you are"]
    # instant messages are not stored: a later login finds nothing
    async with world.client("bob", "tablet") as tablet:
        assert conversation_id("alice", "bob") not in tablet.session.reorder.cursors()


async def test_a_second_device_catches_up_on_everything_stored_once(world: World) -> None:
    """The store holds each message once even after resends: a fresh device of the receiver gets all."""
    connector = LossyConnector()
    async with world.client("alice", connector=connector) as alice, world.client("bob", "pc") as bob:
        await alice.send_text("bob", "r0")  # the session learns its message server (stickiness) first
        connector.deaf = True
        pending = [alice.post("bob", ChatText(text=f"r{i}")) for i in range(1, 6)]
        await collect(bob, MessageReceived, lambda got: len(got) == 6)
        connector.deaf = False
        alice.set_network("5g")
        acks = [await p.wait() for p in pending]
        assert [a.status for a in acks] == [SendStatus.SEND_STATUS_DUPLICATE] * 5
    async with world.client("bob", "tablet") as tablet:
        got = await collect(tablet, MessageReceived, lambda got: len(got) == 6)
        assert texts(got) == [f"r{i}" for i in range(6)]
        assert tablet.session.reorder.cursors()[conversation_id("alice", "bob")] == 6
