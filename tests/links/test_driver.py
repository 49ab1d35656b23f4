"""Links over real loopback sockets: handshake, gating, lossless drain, failure detection, bad bytes, TLS."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from anyio.abc import SocketAttribute, SocketStream
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from imsdk_proto import Frame, FrameDecoder, Header, encode_frame, encode_raw
from imsdk_proto.codes import Biz, ChatFunc, Codec, ErrorCode, Flags, LinkFunc
from imsdk_proto.errors import ProtocolError
from imsdk_proto.messages import ChatText, LinkHeartbeat, LinkProbe
from imsdk_server.backends.registry import MemoryRegistry, ServerInfo
from imsdk_server.links import (
    Health,
    Link,
    LinkBusy,
    LinkClosed,
    LinkConfig,
    LinkHub,
    LinkIdentity,
    LinkNotReady,
    LinkRejected,
    LinkState,
)
from imsdk_server.metrics import Metrics
from tests.links._peers import ACCESS, FAST, ROUTER, RawPeer, chat, close_code, control, hello_frame

pytestmark = pytest.mark.anyio

A = LinkIdentity(ACCESS, 7, "access-7", "cn")
A2 = LinkIdentity(ACCESS, 8, "access-8", "cn")
A3 = LinkIdentity(ACCESS, 11, "access-11", "cn")
R = LinkIdentity(ROUTER, 21, "router-21", "cn", bizs=(int(Biz.CHAT),))


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> object:
    """Links are asyncio protocols: every test runs on both event loops a server runs on (their transports
    differ: uvloop's are not ``asyncio.Transport`` subclasses and pause and resume on their own terms)."""
    return request.param


class Sink:
    """A frame handler that records frames and lets a test wait for a count."""

    def __init__(self, reply: bool = False) -> None:
        self.frames: list[Frame] = []
        self.reply = reply
        self._waiters: list[tuple[int, anyio.Event]] = []

    async def __call__(self, link: Link, frame: Frame) -> None:
        self.frames.append(frame)
        if self.reply:  # answer every frame, as a back-end does for work it accepted
            header = Header(Biz.CHAT, ChatFunc.TEXT, seq=frame.header.seq, flags=Flags.RESPONSE)
            await link.send(Frame.build(header, ChatText(text="ack")))
        for n, event in self._waiters:
            if len(self.frames) >= n:
                event.set()

    async def wait(self, n: int) -> None:
        if len(self.frames) < n:
            event = anyio.Event()
            self._waiters.append((n, event))
            with anyio.fail_after(10):
                await event.wait()

    @property
    def seqs(self) -> list[int]:
        return [f.header.seq for f in self.frames]


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Poll a condition that no event announces (a link's state as seen from another task)."""
    with anyio.fail_after(10):
        while not predicate():  # noqa: ASYNC110
            await anyio.sleep(0.005)


async def test_hello_ready_handshake_then_traffic_both_ways() -> None:
    at_router, at_access = Sink(reply=True), Sink()
    m_router, m_access = Metrics(), Metrics()
    async with (
        LinkHub(R, config=FAST, handler=at_router, metrics=m_router) as router,
        LinkHub(A, config=FAST, handler=at_access, metrics=m_access) as access,
    ):
        address = await router.listen()
        link = await access.connect(*address, expect_server_id=21)
        await link.wait_ready()
        assert link.peer == R
        assert access.ready_links(role=ROUTER, biz=Biz.CHAT) == [link]
        assert access.ready_links(role=ACCESS) == []
        for seq in range(500):
            await link.send(chat(seq))
        await at_access.wait(500)
        assert at_router.seqs == list(range(500))
        assert at_access.seqs == list(range(500))
        assert at_router.frames[0].body == ChatText(text="hi")
        back = router.link_to(ACCESS, 7)
        assert back is not None
        assert back.peer == A
        assert back.state is LinkState.READY
        assert m_router.value("links_frames_in_total", biz="CHAT") == 500
        assert m_access.value("links_frames_out_total", biz="CHAT") == 500
        assert m_access.value("links_by_state", state="ready") == 1
        assert m_router.value("links_by_state", state="ready") == 1


class Mixed:
    """A handler that is a plain function, except that every tenth frame needs work awaited (a database,
    say): it then returns a coroutine, and the frames behind it must wait for it."""

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.inline = 0
        self.awaited = 0

    def __call__(self, link: Link, frame: Frame) -> Awaitable[None] | None:
        if frame.header.seq % 10 == 0:
            return self._slow(frame)
        self.inline += 1
        self.seqs.append(frame.header.seq)
        return None

    async def _slow(self, frame: Frame) -> None:
        await anyio.sleep(0.01)
        self.awaited += 1
        self.seqs.append(frame.header.seq)


async def test_plain_and_async_handlers_keep_the_order_of_frames() -> None:
    mixed = Mixed()
    async with (
        LinkHub(R, config=FAST, handler=mixed) as router,
        LinkHub(A, config=FAST) as access,
    ):
        link = await access.connect(*await router.listen())
        await link.wait_ready()
        for seq in range(200):
            link.send_nowait(chat(seq))  # many frames per read: the ones behind an awaited one wait
        await wait_until(lambda: len(mixed.seqs) == 200)
        assert mixed.seqs == list(range(200))
        assert (mixed.inline, mixed.awaited) == (180, 20)
        back = router.link_to(ACCESS, 7)
        assert back is not None
        assert back.state is LinkState.READY
        assert link.state is LinkState.READY


async def test_no_traffic_until_both_sides_are_ready() -> None:
    sink = Sink()
    async with (
        LinkHub(R, config=FAST, handler=sink, ready=False) as router,
        LinkHub(A, config=FAST) as access,
    ):
        address = await router.listen()
        link = await access.connect(*address)
        await wait_until(lambda: link.state is LinkState.READY_LOCAL)
        with pytest.raises(LinkNotReady) as info:
            link.send_nowait(chat(1))
        assert info.value.code is ErrorCode.LINK_NOT_READY
        with pytest.raises(LinkNotReady):
            await link.send(chat(1))
        assert access.ready_links() == []
        router.mark_ready()
        await link.wait_ready()
        await link.send(chat(2))
        await sink.wait(1)
        assert sink.seqs == [2]


async def test_a_peer_sending_traffic_before_ready_is_closed_with_a_code() -> None:
    sink = Sink()
    async with LinkHub(R, config=FAST, handler=sink) as router:
        address = await router.listen()
        peer = await RawPeer.connect(address)
        await peer.send(hello_frame(A) + chat(1).encode())
        frames = await peer.recv_until_eof()
        assert close_code(frames) is ErrorCode.UNEXPECTED_MESSAGE
        assert sink.frames == []


async def test_deregistration_loses_no_frame_while_the_peer_keeps_sending() -> None:
    """The access side sends as fast as it can; the router deregisters in the middle. Every frame the
    access side's send accepted reaches the router's handler, and every answer the router sent during the
    drain reaches the access side; the frames refused were refused with LinkNotReady, never lost."""
    at_router, at_access = Sink(reply=True), Sink()
    m_router = Metrics()
    sent: list[int] = []
    refused: list[BaseException] = []
    async with (
        MemoryRegistry() as registry,
        LinkHub(R, config=FAST, handler=at_router, metrics=m_router) as router,
        LinkHub(A, config=FAST, handler=at_access) as access,
    ):
        address = await router.listen()
        info = ServerInfo("router", R.server_id, R.name, R.domain, address[0], address[1])
        await registry.register(info)
        link = await access.connect(*address)
        await link.wait_ready()

        async def keep_sending() -> None:
            seq = 0
            while True:
                try:
                    await link.send(chat(seq))
                except (LinkNotReady, LinkClosed) as exc:
                    refused.append(exc)
                    return
                sent.append(seq)
                seq += 1
                if seq % 64 == 0:
                    await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as tg:
            tg.start_soon(keep_sending)
            await at_router.wait(3000)
            report = await router.deregister(registry, key=info.key, drain_timeout=5)
        await link.wait_closed()
        assert await registry.list_servers("cn", "router") == ()

    assert report.acked == [(ACCESS, 7)]
    assert report.complete
    assert len(refused) == 1
    assert isinstance(refused[0], LinkNotReady)
    assert len(sent) >= 3000
    assert at_router.seqs == sent  # nothing lost, nothing duplicated, in order
    assert at_access.seqs == sent  # every answer sent during the drain arrived too
    assert link.close_code is ErrorCode.OK
    assert m_router.value("links_drain_seconds") == 1


async def test_both_sides_deregistering_at_once_both_complete() -> None:
    async with LinkHub(R, config=FAST) as router, LinkHub(A, config=FAST) as access:
        address = await router.listen()
        link = await access.connect(*address)
        await link.wait_ready()
        reports = []

        async def leave(hub: LinkHub) -> None:
            reports.append(await hub.deregister(drain_timeout=5))

        async with anyio.create_task_group() as tg:
            tg.start_soon(leave, router)
            tg.start_soon(leave, access)
    assert sorted(r.acked[0] for r in reports) == [(ACCESS, 7), (ROUTER, 21)]
    assert all(r.complete for r in reports)


async def test_drain_deadline_is_reported_when_a_peer_never_acks() -> None:
    async with LinkHub(R, config=FAST) as router:
        address = await router.listen()
        peer = await RawPeer.connect(address)
        await peer.link_up(A)

        async def heartbeats_only() -> None:  # alive, but never acks a not-ready
            while True:
                await peer.send(control(LinkFunc.HEARTBEAT, LinkHeartbeat()))
                await anyio.sleep(0.05)

        async with anyio.create_task_group() as tg:
            tg.start_soon(heartbeats_only)
            report = await router.deregister(drain_timeout=0.3)
            tg.cancel_scope.cancel()
    assert report.timed_out == [(ACCESS, 7)]
    assert not report.complete
    frames = await peer.recv_until_eof()
    assert LinkFunc.NOT_READY in [f.header.func for f in frames if not f.header.flags & Flags.ERROR]
    assert close_code(frames) is ErrorCode.SERVER_SHUTTING_DOWN


async def test_a_silent_peer_is_suspect_then_probed_three_times_then_down() -> None:
    metrics = Metrics()
    async with LinkHub(R, config=FAST, metrics=metrics) as router:
        address = await router.listen()
        peer = await RawPeer.connect(address)
        await peer.link_up(A)  # ... and from now on the peer says nothing at all
        await wait_until(lambda: router.link_to(ACCESS, 7) is not None)
        link = router.link_to(ACCESS, 7)
        assert link is not None
        with anyio.fail_after(10):
            await link.wait_closed()
        assert link.close_code is ErrorCode.HEARTBEAT_TIMEOUT
        assert router.link_to(ACCESS, 7) is None
    assert metrics.value("links_peers_suspect_total") == 1
    assert metrics.value("links_probes_sent_total") == 3
    assert metrics.value("links_peers_down_total") == 1
    assert metrics.value("links_peers_recovered_total") == 0
    frames = await peer.recv_until_eof()
    link_frames = [f for f in frames if f.header.biz == Biz.LINK and not f.header.flags & Flags.ERROR]
    probes = [f.body_as(LinkProbe).probe_id for f in link_frames if f.header.func == LinkFunc.PROBE]
    assert probes == [1, 2, 3]
    assert close_code(frames) is ErrorCode.HEARTBEAT_TIMEOUT
    assert frames[-1].header.flags & Flags.ERROR  # the close reason is the last frame


async def test_a_peer_answering_a_probe_late_but_in_its_window_stays_up() -> None:
    metrics = Metrics()
    config = LinkConfig(heartbeat_interval=0.2, grace=0.1, probe_timeout=0.6, probes=3, hello_timeout=2.0)
    async with LinkHub(R, config=config, metrics=metrics) as router:
        address = await router.listen()
        peer = await RawPeer.connect(address)
        await peer.link_up(A)
        while True:  # silent until the second probe, which is answered late (0.2 s of its 0.6 s window)
            frame = await peer.recv()
            assert frame is not None
            if frame.header.func == LinkFunc.PROBE and frame.body_as(LinkProbe).probe_id == 2:
                break
        await anyio.sleep(0.2)
        await peer.answer_probe(2)
        for _ in range(10):  # then behaves: heartbeats every 0.1 s for a while
            await peer.send(control(LinkFunc.HEARTBEAT, LinkHeartbeat()))
            await anyio.sleep(0.1)
        link = router.link_to(ACCESS, 7)
        assert link is not None
        assert link.state is LinkState.READY
        await peer.aclose()
        await link.wait_closed()
        # EOF, or a reset since the peer left our heartbeats unread: either way not a down decision.
        assert link.close_code in (ErrorCode.OK, ErrorCode.INTERNAL)
    assert metrics.value("links_probes_sent_total") == 2
    assert metrics.value("links_peers_recovered_total") == 1
    assert metrics.value("links_peers_down_total") == 0


async def test_a_peer_that_accepts_and_never_answers_fails_the_hello() -> None:
    held: list[SocketStream] = []

    async def hold(stream: SocketStream) -> None:
        held.append(stream)
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        tg.start_soon(listener.serve, hold)
        port = listener.extra(SocketAttribute.local_port)
        async with LinkHub(A, config=FAST) as access:
            link = await access.connect("127.0.0.1", port)
            with pytest.raises(LinkClosed) as info:
                await link.wait_ready()
            assert info.value.code is ErrorCode.HANDSHAKE_TIMEOUT
        tg.cancel_scope.cancel()


def _decoder_code(data: bytes) -> ErrorCode:
    decoder = FrameDecoder(FAST.max_frame_size, codec=Codec.PROTOBUF)
    try:
        decoder.feed(data)
        while decoder.next_frame() is not None:
            pass
    except ProtocolError as exc:
        return exc.code
    raise AssertionError("these bytes decode")


SMALL = LinkConfig(
    heartbeat_interval=0.2,
    grace=0.1,
    probe_timeout=0.15,
    hello_timeout=1.0,
    max_frame_size=4096,
    close_grace=0.5,
)
BAD_INPUT: list[tuple[str, bytes, ErrorCode]] = [
    ("zero bytes", b"\x00" * 32, _decoder_code(b"\x00" * 32)),
    ("random bytes", bytes(range(255, 0, -7)) * 4, _decoder_code(bytes(range(255, 0, -7)) * 4)),
    ("oversize frame", encode_raw(Header(Biz.CHAT, ChatFunc.TEXT), b"x" * 5000), ErrorCode.FRAME_TOO_LARGE),
    (
        "v1 codec on a link",
        encode_frame(Header(Biz.LINK, LinkFunc.HELLO), None, Codec.BSON_JSON),
        ErrorCode.CODEC_CHANGED,
    ),
    ("unknown link function", encode_raw(Header(Biz.LINK, 99), b""), ErrorCode.UNKNOWN_CODE),
    (
        "hello with a garbage body",
        encode_raw(Header(Biz.LINK, LinkFunc.HELLO), b"\xff\xff\xff"),
        ErrorCode.MALFORMED_BODY,
    ),
    ("traffic before hello", chat(1).encode(), ErrorCode.UNEXPECTED_MESSAGE),
    ("ready before hello", control(LinkFunc.READY), ErrorCode.UNEXPECTED_MESSAGE),
    ("hello from another domain", hello_frame(LinkIdentity(ACCESS, 9, "x", "eu")), ErrorCode.FORBIDDEN),
    ("hello twice", hello_frame(A3) + hello_frame(A3), ErrorCode.UNEXPECTED_MESSAGE),
]


@pytest.mark.parametrize(("name", "data", "code"), BAD_INPUT, ids=[case[0] for case in BAD_INPUT])
async def test_bad_input_closes_that_link_with_its_code_and_the_others_keep_working(
    name: str, data: bytes, code: ErrorCode
) -> None:
    sink = Sink()
    metrics = Metrics()
    async with (
        LinkHub(R, config=SMALL, handler=sink, metrics=metrics) as router,
        LinkHub(A, config=SMALL) as access_a,
        LinkHub(A2, config=SMALL) as access_b,
    ):
        address = await router.listen()
        good = [await access_a.connect(*address), await access_b.connect(*address)]
        for link in good:
            await link.wait_ready()
        peer = await RawPeer.connect(address)
        await peer.send(data)
        frames = await peer.recv_until_eof()
        assert close_code(frames) is code
        assert metrics.value("links_closes_total", reason=code.name) == 1
        for seq, link in enumerate(good):
            assert link.state is LinkState.READY
            await link.send(chat(seq))
        await sink.wait(2)
        assert sorted(sink.seqs) == [0, 1]
        second = await RawPeer.connect(address)  # and the hub still accepts new links
        await second.link_up(LinkIdentity(ACCESS, 10, "access-10", "cn"))
        await second.aclose()


async def test_a_newer_link_from_the_same_peer_replaces_the_older_one() -> None:
    async with LinkHub(R, config=FAST) as router:
        address = await router.listen()
        old, new = await RawPeer.connect(address), await RawPeer.connect(address)
        await old.link_up(A)
        await wait_until(lambda: router.link_to(ACCESS, 7) is not None)
        first = router.link_to(ACCESS, 7)
        await new.link_up(A)  # the peer restarted before its old link was found dead
        assert close_code(await old.recv_until_eof()) is ErrorCode.SESSION_REPLACED
        second = router.link_to(ACCESS, 7)
        assert second is not None
        assert second is not first
        assert second.state is LinkState.READY
        await new.aclose()


async def test_a_rejected_hello_is_a_typed_error_on_the_dialing_side() -> None:
    async with LinkHub(R, config=FAST) as router, LinkHub(A, config=FAST) as access:
        address = await router.listen()
        link = await access.connect(*address, expect_server_id=22)
        with pytest.raises(LinkRejected) as info:
            await link.wait_ready()
        assert info.value.code is ErrorCode.FORBIDDEN
        assert "expected server 22, peer says 21" in str(info.value)


async def test_send_buffer_is_bounded_and_applies_backpressure() -> None:
    config = LinkConfig(heartbeat_interval=30, send_buffer_bytes=64 * 1024, hello_timeout=2.0)
    metrics = Metrics()
    async with LinkHub(R, config=config, metrics=metrics) as router:
        address = await router.listen()
        peer = await RawPeer.connect(address)
        await peer.link_up(A)  # ... then stops reading
        await wait_until(lambda: router.link_to(ACCESS, 7) is not None)
        link = router.link_to(ACCESS, 7)
        assert link is not None
        big = Frame.build(Header(Biz.CHAT, ChatFunc.TEXT), ChatText(text="x" * 4000))
        queued = 0
        busy: LinkBusy | None = None
        for _ in range(1_000_000):
            try:
                link.send_nowait(big)
            except LinkBusy as exc:
                busy = exc
                break
            queued += 1
            await anyio.lowlevel.checkpoint()
        assert busy is not None
        assert busy.code is ErrorCode.SLOW_CONSUMER
        assert 0 < link.buffered_bytes <= config.send_buffer_bytes
        assert metrics.value("links_send_buffer_bytes") == link.buffered_bytes
        with anyio.move_on_after(0.2) as waited:
            await link.send(big)
        assert waited.cancelled_caught  # send waits for room instead of buffering without bound

        async def read_everything() -> None:
            count = 0
            while count < queued + 1:
                frame = await peer.recv()
                assert frame is not None
                count += frame.header.biz == Biz.CHAT

        async with anyio.create_task_group() as tg:
            tg.start_soon(read_everything)
            with anyio.fail_after(10):
                await link.send(big)  # room appears once the peer reads


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
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "link.crt", tmp / "link.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


async def test_links_over_tls(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    sink = Sink(reply=True)
    back = Sink()
    async with (
        LinkHub(R, config=FAST, handler=sink, ssl_context=server_ctx) as router,
        LinkHub(A, config=FAST, handler=back) as access,
    ):
        address = await router.listen()
        link = await access.connect(*address, ssl_context=client_ctx, server_hostname="localhost")
        await link.wait_ready()
        for seq in range(50):
            await link.send(chat(seq))
        await back.wait(50)
        assert sink.seqs == list(range(50))
        # A plain-TCP peer on the TLS port never gets a link.
        plain = await RawPeer.connect(address)
        await plain.send(hello_frame(A2))
        assert await plain.recv() is None
        assert router.link_to(ACCESS, 8) is None


async def test_a_failing_handler_is_counted_and_the_link_stays_up() -> None:
    seen: list[int] = []
    done = anyio.Event()

    async def handler(link: Link, frame: Frame) -> None:
        seen.append(frame.header.seq)
        if frame.header.seq == 1:
            raise ValueError("application bug")
        if frame.header.seq == 2:
            done.set()

    metrics = Metrics()
    async with (
        LinkHub(R, config=FAST, handler=handler, metrics=metrics) as router,
        LinkHub(A, config=FAST) as access,
    ):
        link = await access.connect(*await router.listen())
        await link.wait_ready()
        for seq in range(3):
            await link.send(chat(seq))
        with anyio.fail_after(10):
            await done.wait()
        assert link.state is LinkState.READY
    assert seen == [0, 1, 2]
    assert metrics.value("links_handler_errors_total") == 1


async def test_a_failing_registry_is_reported_and_the_drain_still_happens() -> None:
    async with (
        MemoryRegistry() as registry,
        LinkHub(R, config=FAST) as router,
        LinkHub(A, config=FAST) as access,
    ):
        link = await access.connect(*await router.listen())
        await link.wait_ready()
        # Never registered: the registry refuses to remove the entry.
        report = await router.deregister(
            registry, key=ServerInfo("router", 21, "r", "cn", "127.0.0.1", 1).key
        )
        await link.wait_closed()
    assert report.registry_error.startswith("NotRegistered")
    assert report.acked == [(ACCESS, 7)]
    assert not report.complete


async def test_a_slow_handler_does_not_make_its_own_side_declare_the_peer_down() -> None:
    """While the handler runs, the link does not read: the peer's heartbeats wait unread in the socket.
    That silence is ours, not the peer's, so it must not lead to probes and a down decision."""
    config = FAST
    slow = config.detector.down_after * 2
    seen: list[int] = []
    done = anyio.Event()

    async def handler(link: Link, frame: Frame) -> None:
        seen.append(frame.header.seq)
        if frame.header.seq == 1:
            await anyio.sleep(slow)  # a slow database, say
        if frame.header.seq == 2:
            done.set()

    m_router, m_access = Metrics(), Metrics()
    async with (
        LinkHub(R, config=config, handler=handler, metrics=m_router) as router,
        LinkHub(A, config=config, metrics=m_access) as access,
    ):
        link = await access.connect(*await router.listen())
        await link.wait_ready()
        await link.send(chat(1))
        await link.send(chat(2))
        with anyio.fail_after(10):
            await done.wait()
        back = router.link_to(ACCESS, 7)
        assert back is not None
        assert back.state is LinkState.READY
        assert link.state is LinkState.READY
    assert seen == [1, 2]
    assert m_router.value("links_peers_down_total") == 0
    assert m_router.value("links_probes_sent_total") == 0
    assert m_access.value("links_peers_down_total") == 0


class LaterAnswers:
    """A handler that accepts work at once and answers it later from a task of its own, as a router's
    group-commit writer does; :meth:`wait_idle` returns once every accepted frame has been answered."""

    def __init__(self, tg: anyio.abc.TaskGroup, delay: float) -> None:
        self.tg = tg
        self.delay = delay
        self.accepted = 0
        self.answered = 0
        self.refused: list[BaseException] = []
        self._idle = anyio.Event()
        self._idle.set()

    async def __call__(self, link: Link, frame: Frame) -> None:
        self.accepted += 1
        self._idle = anyio.Event() if self._idle.is_set() else self._idle
        self.tg.start_soon(self._answer, link, frame.header.seq)

    async def _answer(self, link: Link, seq: int) -> None:
        await anyio.sleep(self.delay)
        try:
            await link.send(Frame.build(Header(Biz.CHAT, ChatFunc.TEXT, seq=seq, flags=Flags.RESPONSE)))
        except (LinkNotReady, LinkClosed) as exc:
            self.refused.append(exc)
        self.answered += 1
        if self.answered == self.accepted:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


async def test_deregister_waits_for_the_applications_work_in_flight_before_closing() -> None:
    """Work accepted before the peer's ack is answered after it: the hub waits for ``idle`` before it
    closes the links, so no answer is refused or lost."""
    at_access = Sink()
    async with anyio.create_task_group() as work:
        later = LaterAnswers(work, delay=0.3)
        async with (
            LinkHub(R, config=FAST, handler=later) as router,
            LinkHub(A, config=FAST, handler=at_access) as access,
        ):
            link = await access.connect(*await router.listen())
            await link.wait_ready()
            for seq in range(20):
                await link.send(chat(seq))
            await wait_until(lambda: later.accepted == 20)
            report = await router.deregister(idle=later.wait_idle, drain_timeout=5)
            await link.wait_closed()
    assert report.complete
    assert not report.idle_timed_out
    assert later.refused == []
    assert at_access.seqs == list(range(20))


async def test_work_that_outlasts_the_drain_timeout_is_reported() -> None:
    async with anyio.create_task_group() as work:
        later = LaterAnswers(work, delay=3.0)
        async with (
            LinkHub(R, config=FAST, handler=later) as router,
            LinkHub(A, config=FAST) as access,
        ):
            link = await access.connect(*await router.listen())
            await link.wait_ready()
            await link.send(chat(1))
            await wait_until(lambda: later.accepted == 1)
            report = await router.deregister(idle=later.wait_idle, drain_timeout=0.3)
        work.cancel_scope.cancel()
    assert report.acked == [(ACCESS, 7)]
    assert report.idle_timed_out
    assert not report.complete


async def test_a_registry_that_never_answers_does_not_stall_the_drain() -> None:
    class Hanging:
        async def deregister(self, key: object, /) -> None:
            await anyio.sleep_forever()

    async with LinkHub(R, config=FAST) as router, LinkHub(A, config=FAST) as access:
        link = await access.connect(*await router.listen())
        await link.wait_ready()
        with anyio.fail_after(10):
            report = await router.deregister(Hanging(), drain_timeout=0.5)
    assert "timed out" in report.registry_error
    assert report.acked == [(ACCESS, 7)]
    assert not report.complete


async def test_the_detectors_verdicts_reach_the_application() -> None:
    """What a location server needs to recognise jitter: suspect, alive again, down — per peer."""
    heard: list[tuple[int, Health]] = []

    def on_health(link: Link, health: Health) -> None:
        assert link.peer is not None
        heard.append((link.peer.server_id, health))
        if len(heard) == 1:
            raise ValueError("an application bug must not take the link down")

    config = LinkConfig(heartbeat_interval=0.2, grace=0.1, probe_timeout=0.3, probes=3, hello_timeout=2.0)
    metrics = Metrics()
    async with LinkHub(R, config=config, metrics=metrics, on_health=on_health) as router:
        address = await router.listen()
        peer = await RawPeer.connect(address)
        await peer.link_up(A)
        while True:  # silent until the first probe, answered at once: jitter
            frame = await peer.recv()
            assert frame is not None
            if frame.header.func == LinkFunc.PROBE:
                await peer.answer_probe(frame.body_as(LinkProbe).probe_id)
                break
        await wait_until(lambda: len(heard) == 2)
        link = router.link_to(ACCESS, 7)
        assert link is not None
        with anyio.fail_after(10):  # then silent for good: down
            await link.wait_closed()
        assert link.close_code is ErrorCode.HEARTBEAT_TIMEOUT
        # An orderly end is neither: the detector just stops.
        other = await RawPeer.connect(address)
        await other.link_up(A2)
        await wait_until(lambda: router.link_to(ACCESS, 8) is not None)
        await other.aclose()
        await wait_until(lambda: router.link_to(ACCESS, 8) is None)
    assert heard == [
        (7, Health.SUSPECT),
        (7, Health.ALIVE),
        (7, Health.SUSPECT),
        (7, Health.DOWN),
        (8, Health.STOPPED),
    ]
    assert metrics.value("links_handler_errors_total") == 1


async def test_a_failing_state_callback_is_counted_and_neither_the_link_nor_the_hub_falls() -> None:
    def on_state(link: Link, old: LinkState, new: LinkState) -> None:
        raise ValueError("application bug")

    sink = Sink()
    metrics = Metrics()
    async with (
        LinkHub(R, config=FAST, handler=sink, metrics=metrics, on_state=on_state) as router,
        LinkHub(A, config=FAST) as access,
    ):
        address = await router.listen()
        link = await access.connect(*address)
        await link.wait_ready()
        await link.send(chat(1))
        await sink.wait(1)
        other = await access.connect(*address)  # the hub still accepts (the newer link replaces the older)
        await other.wait_ready()
        await other.send(chat(2))
        await sink.wait(2)
    assert sink.seqs == [1, 2]
    assert metrics.value("links_handler_errors_total") >= 2
