"""The anyio driver over real loopback sockets: handshakes, failures with their reason codes, routing,
downstream delivery, slow consumers, TLS, and the events on the embedded queue."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import anyio.lowlevel
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from imsdk_proto._frame import Frame, encode_raw
from imsdk_proto._header import Header
from imsdk_proto.codes import Biz, ChatFunc, Codec, ErrorCode, SystemFunc
from imsdk_proto.messages import ChatText, ErrorReport, Kick, LoadReport, OfflineEvent, OnlineEvent, Pong
from imsdk_server.access import (
    AccessConfig,
    AccessServer,
    Identity,
    LinkRoutes,
    RemoteTokenVerifier,
    TokenRouter,
)
from imsdk_server.auth import create_auth_app
from imsdk_server.backends.queue import MemoryQueue
from imsdk_server.links import LinkHub, LinkIdentity
from imsdk_server.metrics import Metrics
from tests.access._helpers import chat, handshake, ping
from tests.access.conftest import Client, Tokens, running, wait_for

pytestmark = pytest.mark.anyio


def kick_of(frames: list[Frame]) -> ErrorCode:
    assert frames, "the server closed without a reason frame"
    last = frames[-1]
    assert last.header.code == (Biz.SYSTEM, SystemFunc.KICK)
    return ErrorCode(last.body_as(Kick).code)


async def events(queue: MemoryQueue, topic: str, n: int, within: float = 5.0) -> list[bytes]:
    out: list[bytes] = []
    with anyio.fail_after(within):
        async with queue.consume(topic, group="test", consumer="t1") as stream:
            async for delivery in stream:
                out.append(delivery.payload)
                await queue.ack(delivery.topic, delivery.group, delivery.id)
                if len(out) == n:
                    return out
    return out


class RecordingBackend:
    """A back-end that keeps what it receives (the real link back-end is tested below)."""

    def __init__(self, server_id: int = 50, ready: bool = True) -> None:
        self.server_id = server_id
        self.ready = ready
        self.frames: list[Frame] = []

    def try_send(self, frame: Frame) -> bool:
        self.frames.append(frame)
        return True

    async def send(self, frame: Frame) -> None:
        self.frames.append(frame)


# ------------------------------------------------------------------------------------------------ handshakes


@pytest.mark.parametrize("codec", [Codec.PROTOBUF, Codec.BSON_JSON])
async def test_handshake_ok_and_online_event(tokens: Tokens, queue: MemoryQueue, codec: Codec) -> None:
    metrics = Metrics()
    async with running(tokens, queue=queue, metrics=metrics) as server:
        client = await Client.connect(server.address)
        ack = await client.login(tokens.issue("alice", "phone"), "phone", codec)
        assert ack.uid == "alice"
        assert ack.access_id == 7
        assert ack.session != 0
        assert ack.seq_base % (1 << 32) == 0
        assert ack.heartbeat_interval_ms == 60_000
        assert server.online("alice") == {"phone": ack.session}
        (payload,) = await events(queue, "presence.online", 1)
        event = OnlineEvent.FromString(payload)
        assert (event.uid, event.device, event.access_id, event.session) == ("alice", "phone", 7, ack.session)
        assert event.client_version == "1.2.3"
        await client.send(ping(time_ms=99, codec=codec))
        pong = await client.frame()
        assert pong.body_as(Pong).time_ms == 99
        await client.aclose()
        (payload,) = await events(queue, "presence.offline", 1)
        offline = OfflineEvent.FromString(payload)
        assert (offline.uid, offline.session, offline.reason) == ("alice", ack.session, ErrorCode.OK)
        await wait_for(lambda: server.connection_count == 0)
        assert metrics.value("access_handshakes_total", result="ok") == 1
        await client.aclose()
        assert metrics.value("access_connections") == 0


async def test_two_sessions_get_different_sequence_bases(tokens: Tokens) -> None:
    async with running(tokens) as server:
        bases = set()
        for _ in range(4):
            client = await Client.connect(server.address)
            ack = await client.login(tokens.issue("alice", "phone"))
            bases.add(ack.seq_base)
            await client.aclose()
        assert len(bases) == 4


async def test_bad_token_closes_with_auth_code(tokens: Tokens) -> None:
    other = Tokens()  # a token signed by keys this server does not know
    async with running(tokens) as server:
        client = await Client.connect(server.address)
        await client.send(handshake(other.issue("mallory", "phone")))
        assert kick_of(await client.until_closed()) == ErrorCode.TOKEN_INVALID
        # A token for another device is refused too.
        client = await Client.connect(server.address)
        await client.send(handshake(tokens.issue("alice", "laptop"), device="phone"))
        assert kick_of(await client.until_closed()) == ErrorCode.TOKEN_INVALID


async def test_handshake_timeout_and_the_server_keeps_serving(tokens: Tokens) -> None:
    metrics = Metrics()
    async with running(tokens, metrics=metrics, handshake_timeout=0.3) as server:
        silent = await Client.connect(server.address)
        assert kick_of(await silent.until_closed()) == ErrorCode.HANDSHAKE_TIMEOUT
        client = await Client.connect(server.address)
        await client.login(tokens.issue("bob", "phone"))
        assert metrics.value("access_closes_total", reason="HANDSHAKE_TIMEOUT") == 1


async def test_garbage_before_handshake(tokens: Tokens) -> None:
    async with running(tokens) as server:
        client = await Client.connect(server.address)
        await client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert kick_of(await client.until_closed()) == ErrorCode.UNSUPPORTED_VERSION
        client = await Client.connect(server.address)
        await client.login(tokens.issue("bob", "phone"))


async def test_oversize_frame_closes_with_code_and_offline_event(tokens: Tokens, queue: MemoryQueue) -> None:
    async with running(tokens, queue=queue, max_frame_size=4096, send_queue_max_bytes=65536) as server:
        client = await Client.connect(server.address)
        await client.login(tokens.issue("alice", "phone"))
        await client.send(chat("x" * 5000))
        assert kick_of(await client.until_closed()) == ErrorCode.FRAME_TOO_LARGE
        (payload,) = await events(queue, "presence.offline", 1)
        assert OfflineEvent.FromString(payload).reason == ErrorCode.FRAME_TOO_LARGE


async def test_idle_line_is_closed(tokens: Tokens) -> None:
    async with running(tokens, idle_timeout=0.3) as server:
        client = await Client.connect(server.address)
        await client.login(tokens.issue("alice", "phone"))
        assert kick_of(await client.until_closed()) == ErrorCode.IDLE_TIMEOUT


# ------------------------------------------------------------------------------------------------ routing


async def test_unknown_business_code_gets_an_error_frame_and_the_line_stays(tokens: Tokens) -> None:
    async with running(tokens) as server:
        client = await Client.connect(server.address)
        await client.login(tokens.issue("alice", "phone"))
        await client.send(encode_raw(Header(99, 1, seq=5, msg_id=6), b"\x08\x01"))
        error = await client.frame()
        assert error.header.code == (Biz.SYSTEM, SystemFunc.ERROR)
        assert (error.header.seq, error.header.msg_id) == (5, 6)
        assert error.body_as(ErrorReport).code == ErrorCode.NO_BACKEND
        # A registered back-end that is not ready: another code, the line still stays.
        server.routes.add(RecordingBackend(ready=False), Biz.CHAT)
        await client.send(chat(seq=7))
        error = await client.frame()
        assert error.body_as(ErrorReport).code == ErrorCode.BACKEND_NOT_READY
        await client.send(ping(time_ms=1))
        assert (await client.frame()).header.code == (Biz.SYSTEM, SystemFunc.PONG)


async def test_upstream_is_stamped_and_routed_by_business_and_function(tokens: Tokens) -> None:
    async with running(tokens, server_id=9) as server:
        chat_backend, text_backend = RecordingBackend(51), RecordingBackend(52)
        server.routes.add(chat_backend, Biz.CHAT)
        server.routes.add(text_backend, Biz.CHAT, ChatFunc.TEXT)
        client = await Client.connect(server.address)
        ack = await client.login(tokens.issue("alice", "phone"), codec=Codec.BSON_JSON)
        await client.send(
            chat("hi", codec=Codec.BSON_JSON, sender_uid="mallory", access_id=1, receiver_uid="b")
        )
        await client.send(
            Frame.build(
                Header(Biz.CHAT, ChatFunc.DELIVERED, receiver_uid="b"), None, Codec.BSON_JSON
            ).encode()
        )
        await wait_for(lambda: len(text_backend.frames) == 1 and len(chat_backend.frames) == 1)
        (frame,) = text_backend.frames
        assert frame.codec is Codec.PROTOBUF
        h = frame.header
        assert (h.sender_uid, h.sender_device, h.access_id, h.session) == ("alice", "phone", 9, ack.session)
        assert ChatText.FromString(frame.raw_body).text == "hi"
        assert chat_backend.frames[0].header.func == ChatFunc.DELIVERED


# ------------------------------------------------------------------------------------------------ downstream


async def test_several_devices_per_uid_and_addressing(tokens: Tokens) -> None:
    async with running(tokens) as server:
        phone = await Client.connect(server.address)
        laptop = await Client.connect(server.address)
        bob = await Client.connect(server.address)
        s_phone = (await phone.login(tokens.issue("alice", "phone"), "phone")).session
        s_laptop = (await laptop.login(tokens.issue("alice", "laptop"), "laptop", Codec.BSON_JSON)).session
        await bob.login(tokens.issue("bob", "phone"), "phone")
        assert server.online("alice") == {"phone": s_phone, "laptop": s_laptop}

        def text(t: str, **h: object) -> Frame:
            return Frame.build(Header(Biz.CHAT, ChatFunc.TEXT, **h), ChatText(text=t))  # type: ignore[arg-type]

        assert server.deliver(text("all", receiver_uid="alice")) == 2
        for client, codec in ((phone, Codec.PROTOBUF), (laptop, Codec.BSON_JSON)):
            got = await client.frame()
            assert got.codec is codec
            assert got.body_as(ChatText).text == "all"
        assert server.deliver(text("laptop", receiver_uid="alice", receiver_device="laptop")) == 1
        assert (await laptop.frame()).body_as(ChatText).text == "laptop"
        assert server.deliver(text("session", session=s_phone)) == 1
        assert (await phone.frame()).body_as(ChatText).text == "session"
        # A reply meant for an older session of the device is not given to another session.
        assert server.deliver(text("stale", receiver_uid="alice", receiver_device="phone", session=1)) == 0
        assert server.deliver(text("nobody", receiver_uid="carol")) == 0
        await bob.send(ping(time_ms=3))
        assert (await bob.frame()).header.code == (Biz.SYSTEM, SystemFunc.PONG)  # bob got nothing else


async def test_a_burst_delivered_in_one_callback_arrives_whole_and_in_order(tokens: Tokens) -> None:
    # Frames delivered without yielding are collected and written at the end of the loop's turn; the
    # collecting is bounded (a quarter of the send queue), so a burst 16x the queue's bound in frames neither
    # closes the line for SLOW_CONSUMER nor loses or reorders a frame.
    metrics = Metrics()
    async with running(tokens, metrics=metrics, send_queue_max_frames=64) as server:
        alice = await Client.connect(server.address)
        await alice.login(tokens.issue("alice", "phone"))
        n = 1024
        for i in range(n):
            frame = Frame.build(
                Header(Biz.CHAT, ChatFunc.TEXT, seq=i, receiver_uid="alice"), ChatText(text="x")
            )
            assert server.deliver(frame) == 1
        got = [(await alice.frame()).header.seq for _ in range(n)]
        assert got == list(range(n))
        assert metrics.value("access_closes_total", reason="SLOW_CONSUMER") == 0
        assert server.online("alice")
        await alice.send(ping(time_ms=9))
        assert (await alice.frame()).body_as(Pong).time_ms == 9


async def test_second_login_replaces_the_first(tokens: Tokens, queue: MemoryQueue) -> None:
    async with running(tokens, queue=queue) as server:
        first = await Client.connect(server.address)
        s1 = (await first.login(tokens.issue("alice", "phone"))).session
        second = await Client.connect(server.address)
        s2 = (await second.login(tokens.issue("alice", "phone"))).session
        assert kick_of(await first.until_closed()) == ErrorCode.SESSION_REPLACED
        assert server.online("alice") == {"phone": s2}
        online = [OnlineEvent.FromString(p).session for p in await events(queue, "presence.online", 2)]
        assert online == [s1, s2]
        # The replaced session publishes no offline event: the device never went offline.
        await second.aclose()
        (payload,) = await events(queue, "presence.offline", 1)
        assert OfflineEvent.FromString(payload).session == s2


async def test_slow_consumer_is_disconnected_while_others_keep_being_served(tokens: Tokens) -> None:
    metrics = Metrics()
    async with running(
        tokens, metrics=metrics, max_frame_size=4096, send_queue_max_bytes=16384, send_queue_max_frames=64
    ) as server:
        slow = await Client.connect(server.address, rcvbuf=4096)
        fast = await Client.connect(server.address)
        await slow.login(tokens.issue("slow", "phone"))
        await fast.login(tokens.issue("fast", "phone"))
        received: list[Frame] = []

        async def read_fast() -> None:
            while True:
                received.append(await fast.frame(within=30))

        payload = "y" * 3000
        sent_fast = 0
        async with anyio.create_task_group() as tg:
            tg.start_soon(read_fast)
            for _ in range(20_000):
                server.deliver(
                    Frame.build(Header(Biz.CHAT, ChatFunc.TEXT, receiver_uid="slow"), ChatText(text=payload))
                )
                sent_fast += server.deliver(
                    Frame.build(Header(Biz.CHAT, ChatFunc.TEXT, receiver_uid="fast"), ChatText(text="ok"))
                )
                await anyio.lowlevel.checkpoint()
                if not server.online("slow"):
                    break
            assert not server.online("slow")
            await wait_for(lambda: len(received) == sent_fast)
            tg.cancel_scope.cancel()
        assert metrics.value("access_closes_total", reason="SLOW_CONSUMER") == 1
        assert server.online("fast")
        assert all(f.body_as(ChatText).text == "ok" for f in received)
        await fast.send(ping(time_ms=5))
        assert (await fast.frame()).body_as(Pong).time_ms == 5


# ------------------------------------------------------------------------------------------------ TLS


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


#: The TLS path differs between the two event loops a server runs on (uvloop starts reading a new connection
#: whatever its protocol asked), so the TLS tests run on both.
LOOPS = [
    pytest.param(("asyncio", {}), id="asyncio"),
    pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
]


@pytest.mark.parametrize("anyio_backend", LOOPS)
async def test_tls(tokens: Tokens, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    async with running(tokens, certfile=str(cert), keyfile=str(key)) as server:
        ctx = ssl.create_default_context(cafile=str(cert))
        client = await Client.connect(server.address, ssl_context=ctx)
        ack = await client.login(tokens.issue("alice", "phone"))
        assert ack.uid == "alice"
        await client.send(ping(time_ms=8))
        assert (await client.frame()).body_as(Pong).time_ms == 8
        # A client speaking plain TCP to the TLS port gets nowhere, and the server keeps serving.
        plain = await Client.connect(server.address)
        await plain.send(b"\x12\x01\x00\x00" * 100)
        await plain.until_closed()
        client2 = await Client.connect(server.address, ssl_context=ctx)
        await client2.login(tokens.issue("bob", "phone"))


async def _hang_up(client: Client) -> None:
    await client.aclose()


async def _send_nothing(client: Client) -> None:
    await client.until_closed()


def _sender(data: bytes) -> Callable[[Client], Awaitable[None]]:
    async def send(client: Client) -> None:
        await client.send(data)
        await client.until_closed()

    return send


TLS_FAILURES = [
    ("plain_frames", _sender(b"\x12\x01\x00\x00" * 100), "protocol"),
    ("http_request", _sender(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "protocol"),
    ("silent", _send_nothing, "timeout"),
    ("hang_up", _hang_up, "closed"),
]


@pytest.mark.parametrize("anyio_backend", LOOPS)
@pytest.mark.parametrize(("case", "act", "reason"), TLS_FAILURES, ids=[c[0] for c in TLS_FAILURES])
async def test_tls_handshake_failures_are_counted_by_reason(
    tokens: Tokens, tmp_path: Path, case: str, act: Callable[[Client], Awaitable[None]], reason: str
) -> None:
    cert, key = _self_signed(tmp_path)
    metrics = Metrics()
    async with running(
        tokens, metrics=metrics, certfile=str(cert), keyfile=str(key), handshake_timeout=0.5
    ) as server:
        bad = await Client.connect(server.address)
        await act(bad)
        await bad.aclose()
        await wait_for(lambda: metrics.value("access_tls_handshake_failures_total", reason=reason) == 1)
        others = {"protocol", "timeout", "closed", "certificate", "other"} - {reason}
        assert all(metrics.value("access_tls_handshake_failures_total", reason=r) == 0 for r in others)
        assert server.connection_count == 0  # a line counts once its TLS handshake is done
        # The server keeps serving TLS clients.
        ctx = ssl.create_default_context(cafile=str(cert))
        client = await Client.connect(server.address, ssl_context=ctx)
        assert (await client.login(tokens.issue("bob", "phone"))).uid == "bob"
        assert server.connection_count == 1
        assert metrics.value("access_handshakes_total", result="ok") == 1
        await client.aclose()


# -------------------------------------------------------------------------------------------- load reports


async def test_load_reports_are_published(tokens: Tokens, queue: MemoryQueue) -> None:
    async with running(tokens, queue=queue, load_report_interval=0.05, region="eu", isp="isp1") as server:
        client = await Client.connect(server.address)
        await client.login(tokens.issue("alice", "phone"))
        with anyio.fail_after(5):
            while True:
                (payload,) = await events(queue, "load", 1)
                report = LoadReport.FromString(payload)
                if report.connections == 1:
                    break
        assert (report.server_id, report.region, report.isp) == (7, "eu", "isp1")
        assert report.address == f"{server.address[0]}:{server.address[1]}"
        assert 0.0 <= report.cpu <= 1.0


# ------------------------------------------------------------------------------------------------ real links


async def test_routing_over_a_real_link_both_ways(tokens: Tokens) -> None:
    """A chat back-end linked to the access server echoes every text back to its sender."""

    async def echo(link: object, frame: Frame) -> None:
        h = frame.header
        reply = Header(Biz.CHAT, ChatFunc.TEXT, receiver_uid=h.sender_uid, receiver_device=h.sender_device)
        text = ChatText.FromString(frame.raw_body).text
        await backend_hub.link_to(1, 7).send(Frame.build(reply, ChatText(text=f"echo {text}")))  # type: ignore[union-attr]

    async with running(tokens) as server:
        backend_hub = LinkHub(LinkIdentity(role=5, server_id=60, bizs=(int(Biz.CHAT),)), handler=echo)
        routes = LinkRoutes(server.routes)
        access_hub = LinkHub(
            LinkIdentity(role=1, server_id=7), handler=server.on_link_frame, on_state=routes.on_state
        )
        async with backend_hub, access_hub:
            host, port = await backend_hub.listen()
            link = await access_hub.connect(host, port, expect_server_id=60)
            await link.wait_ready()
            client = await Client.connect(server.address)
            await client.login(tokens.issue("alice", "phone"))
            await client.send(chat("ping"))
            got = await client.frame()
            assert got.body_as(ChatText).text == "echo ping"
            await link.aclose()
            await wait_for(lambda: not server.routes.routes())
            await client.send(chat("again"))
            assert (await client.frame()).body_as(ErrorReport).code == ErrorCode.NO_BACKEND


# ------------------------------------------------------------------------------------------ busy back-ends


class BusyBackend(RecordingBackend):
    """Takes nothing at once; ``send`` waits until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__(53)
        self.gate = anyio.Event()

    def try_send(self, frame: Frame) -> bool:
        return False

    async def send(self, frame: Frame) -> None:
        await self.gate.wait()
        self.frames.append(frame)


async def test_busy_back_end_keeps_the_order_and_the_line(tokens: Tokens) -> None:
    async with running(tokens) as server:
        backend = BusyBackend()
        server.routes.add(backend, Biz.CHAT)
        client = await Client.connect(server.address)
        await client.login(tokens.issue("alice", "phone"))
        for i in range(40):  # more than the upstream window: the client's reading is paused meanwhile
            await client.send(chat(f"m{i}", seq=i + 1))
        await anyio.sleep(0.05)
        assert backend.frames == []
        backend.gate.set()
        await wait_for(lambda: len(backend.frames) == 40)
        assert [ChatText.FromString(f.raw_body).text for f in backend.frames] == [f"m{i}" for i in range(40)]
        await client.send(ping(time_ms=4))
        assert (await client.frame()).body_as(Pong).time_ms == 4


# -------------------------------------------------------------------------------------- server-side closes


async def test_close_session_and_shutdown(tokens: Tokens, queue: MemoryQueue) -> None:
    async with running(tokens, queue=queue) as server:
        a = await Client.connect(server.address)
        b = await Client.connect(server.address)
        sa = (await a.login(tokens.issue("alice", "phone"))).session
        await b.login(tokens.issue("bob", "phone"))
        assert server.close_session(sa, ErrorCode.SERVER_SHUTTING_DOWN)
        assert not server.close_session(sa)
        assert kick_of(await a.until_closed()) == ErrorCode.SERVER_SHUTTING_DOWN
        assert server.shutdown_connections() == 1
        assert kick_of(await b.until_closed()) == ErrorCode.SERVER_SHUTTING_DOWN
        reasons = {OfflineEvent.FromString(p).reason for p in await events(queue, "presence.offline", 2)}
        assert reasons == {ErrorCode.SERVER_SHUTTING_DOWN}
        await wait_for(lambda: server.connection_count == 0)


# ------------------------------------------------------------------------------------------------ v1 tokens


async def test_v1_token_handshake_through_the_auth_api(tokens: Tokens) -> None:
    """A verifier that needs I/O (the auth server's verify API) runs off the connection's callbacks."""
    from tests.access.test_verify import Clock, v1_service

    clock = Clock()
    service = await v1_service(clock)
    await service.register("carol", "correct horse battery", "Carol")
    issued = await service.login("carol", "correct horse battery", "tablet")
    transport = httpx.ASGITransport(app=create_auth_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as http:
        verifier = TokenRouter(v2=tokens.verifier, v1=RemoteTokenVerifier("http://auth.test", client=http))
        async with anyio.create_task_group() as tg:
            server = AccessServer(AccessConfig(server_id=3), verifier)
            await tg.start(server.serve)
            client = await Client.connect(server.address)
            ack = await client.login(issued.token, "tablet")
            assert ack.uid == "carol"
            other = await Client.connect(server.address)
            assert (await other.login(tokens.issue("dave", "phone"))).uid == "dave"  # v2, verified in line
            bad = await Client.connect(server.address)
            await bad.send(handshake("v1.unknown", "tablet"))
            assert kick_of(await bad.until_closed()) == ErrorCode.TOKEN_INVALID
            tg.cancel_scope.cancel()


async def test_deadlines_of_closed_lines_do_not_pile_up(tokens: Tokens) -> None:
    async with running(tokens) as server:
        for _ in range(3):
            clients = [await Client.connect(server.address) for _ in range(400)]
            for client in clients:
                await client.aclose()
            await wait_for(lambda: server.connection_count == 0)
        assert len(server._heap) <= 2 * server.connection_count + 1024 + 1


class GatedBackend(RecordingBackend):
    """Takes nothing at once; ``send`` counts its calls and waits until the gate opens."""

    def __init__(self) -> None:
        super().__init__(56)
        self.gate = anyio.Event()
        self.calls = 0

    def try_send(self, frame: Frame) -> bool:
        return False

    async def send(self, frame: Frame) -> None:
        self.calls += 1
        await self.gate.wait()
        self.frames.append(frame)


async def test_a_stopping_server_starts_no_new_upstream_work(tokens: Tokens) -> None:
    """Stopping the server while a back-end holds a send, with more frames still unread in the socket,
    ends the waiting send and sends nothing more (the gate opens only to unblock a server that hangs)."""
    backend = GatedBackend()

    async def open_the_gate_later() -> None:
        await anyio.sleep(3)
        backend.gate.set()

    async with anyio.create_task_group() as valve:
        valve.start_soon(open_the_gate_later)
        async with running(tokens) as server:
            server.routes.add(backend, Biz.CHAT)
            client = await Client.connect(server.address)
            await client.login(tokens.issue("alice", "phone"))
            for i in range(20):  # past the upstream window: the server stops reading from this client
                await client.send(chat(f"m{i}", seq=i + 1))
            await wait_for(lambda: backend.calls == 1)
            await anyio.sleep(0.05)
            for i in range(20, 40):  # these stay unread in the socket
                await client.send(chat(f"m{i}", seq=i + 1))
            await anyio.sleep(0.05)
        assert backend.calls == 1
        assert backend.frames == []
        valve.cancel_scope.cancel()


class HungBackend(RecordingBackend):
    """Never has room: ``try_send`` refuses and ``send`` never returns (a hung back-end)."""

    def __init__(self, server_id: int = 54) -> None:
        super().__init__(server_id)
        self.waiting = 0

    def try_send(self, frame: Frame) -> bool:
        return False

    async def send(self, frame: Frame) -> None:
        self.waiting += 1
        await anyio.sleep_forever()


async def test_hung_back_end_answers_timeout_errors_and_the_line_stays(tokens: Tokens) -> None:
    metrics = Metrics()
    async with running(tokens, metrics=metrics, backend_send_timeout=0.2) as server:
        backend = HungBackend()
        server.routes.add(backend, Biz.CHAT)
        client = await Client.connect(server.address)
        await client.login(tokens.issue("alice", "phone"))
        # More frames than the upstream window, so the client's reading is paused while they wait.
        for i in range(40):
            await client.send(chat(f"m{i}", seq=i + 1, msg_id=100 + i))
        answers = [await client.frame() for _ in range(40)]
        for i, error in enumerate(answers):
            assert error.header.code == (Biz.SYSTEM, SystemFunc.ERROR)
            assert (error.header.seq, error.header.msg_id) == (i + 1, 100 + i)
            assert error.body_as(ErrorReport).code == ErrorCode.BACKEND_TIMEOUT
        assert backend.frames == []
        assert metrics.value("access_errors_total", code="BACKEND_TIMEOUT") == 40
        # The line is up and read again: heartbeats are answered, and a back-end that recovers gets frames.
        await client.send(ping(time_ms=6))
        assert (await client.frame()).body_as(Pong).time_ms == 6
        server.routes.remove(backend)
        healthy = RecordingBackend(55)
        server.routes.add(healthy, Biz.CHAT)
        await client.send(chat("after", seq=41))
        await wait_for(lambda: len(healthy.frames) == 1)
        assert server.online("alice")


# --------------------------------------------------------------------------------------- faulty verifiers


class RaisingVerifier:
    """Delegates to real v2 verification, but raises a foreign error for the token ``boom``."""

    def __init__(self, tokens: Tokens) -> None:
        self.inner = tokens.verifier

    async def verify(self, token: str, device: str) -> Identity:
        await anyio.lowlevel.checkpoint()
        if token == "boom":
            raise RuntimeError("verifier bug")
        return await self.inner.verify(token, device)


class RaisingSyncVerifier(RaisingVerifier):
    """The same, answering in line (``verify_now``) as a local verifier does."""

    def verify_now(self, token: str, device: str) -> Identity | None:
        if token == "boom":
            raise RuntimeError("verifier bug")
        return self.inner.verify_now(token, device)


@pytest.mark.parametrize("verifier_cls", [RaisingVerifier, RaisingSyncVerifier])
async def test_a_verifier_that_raises_closes_only_that_handshake(
    tokens: Tokens, verifier_cls: type[RaisingVerifier]
) -> None:
    metrics = Metrics()
    async with anyio.create_task_group() as tg:
        server = AccessServer(AccessConfig(server_id=4), verifier_cls(tokens), metrics=metrics)
        await tg.start(server.serve)
        before = await Client.connect(server.address)
        await before.login(tokens.issue("alice", "phone"))
        for _ in range(2):
            bad = await Client.connect(server.address)
            await bad.send(handshake("boom", "phone"))
            assert kick_of(await bad.until_closed()) == ErrorCode.INTERNAL
        assert metrics.value("access_verifier_errors_total") == 2
        assert metrics.value("access_handshakes_total", result="INTERNAL") == 2
        # Everyone else is still served: the open line, and new handshakes.
        await before.send(ping(time_ms=2))
        assert (await before.frame()).body_as(Pong).time_ms == 2
        after = await Client.connect(server.address)
        assert (await after.login(tokens.issue("bob", "phone"))).uid == "bob"
        tg.cancel_scope.cancel()


# ------------------------------------------------------------------------------------ message-server hint


async def test_handshake_reply_names_the_chat_router_the_user_is_routed_to(tokens: Tokens) -> None:
    async with running(tokens) as server:
        first = await Client.connect(server.address)
        assert (await first.login(tokens.issue("nobody-routed", "phone"))).msg_server_id == 0  # no router yet
        await first.aclose()
        routers = {i: RecordingBackend(i) for i in (61, 62, 63)}
        for backend in routers.values():
            server.routes.add(backend, Biz.CHAT)
        server.routes.add(RecordingBackend(70), Biz.VOIP)  # another business: never the hint
        hints = set()
        for n in range(12):
            uid = f"user-{n}"
            client = await Client.connect(server.address)
            hint = (await client.login(tokens.issue(uid, "phone"))).msg_server_id
            assert hint in routers
            hints.add(hint)
            # The first message, stamped with the hint as the client does, and an unstamped one both reach
            # the hinted router: no refusal and resend are needed.
            await client.send(chat("first", seq=1, msg_id=1, msg_server_id=hint))
            await client.send(chat("second", seq=2, msg_id=2))
            await wait_for(lambda: sum(len(b.frames) for b in routers.values()) == 2)
            assert [f.header.msg_id for f in routers[hint].frames] == [1, 2]
            for backend in routers.values():
                backend.frames.clear()
            await client.aclose()
        assert len(hints) > 1  # users are spread over the routers
        # A router that is not ready is not named.
        for backend in routers.values():
            backend.ready = False
        routers[62].ready = True
        late = await Client.connect(server.address)
        assert (await late.login(tokens.issue("late", "phone"))).msg_server_id == 62
        await late.aclose()
