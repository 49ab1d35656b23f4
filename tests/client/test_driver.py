"""The session driver over real loopback sockets, on asyncio and trio, against the fake access points of
:mod:`imsdk_client.testing`: the one timer (heartbeats, dead lines), the race, closing, kicks, no network,
token refusal. Waits are bounded by ``fail_after`` only to stop a broken run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

from imsdk_client import (
    BackoffConfig,
    Client,
    ClientClosed,
    ConnectionState,
    ConnectTimeout,
    Endpoint,
    HeartbeatConfig,
    InvalidCredentials,
    SessionConfig,
    StateChanged,
)
from imsdk_client._core.session import CloseConnection, OpenConnection, Session
from imsdk_client._drivers.connection import SessionDriver, TokenGrant
from imsdk_client.testing import FakeConnection, FakeServer
from imsdk_proto import Frame
from imsdk_proto.codes import Biz, ErrorCode, SystemFunc
from imsdk_proto.messages import ChatText, Handshake

pytestmark = pytest.mark.anyio

PASSWORD = "pw"
GUARD = 20.0


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    async with FakeServer(heartbeat_interval=0.05) as fake:
        for uid in ("alice", "bob"):
            fake.add_user(uid, PASSWORD)
        yield fake


def client(server: FakeServer, uid: str = "alice", device: str = "phone", **options: Any) -> Client:
    config = options.pop(
        "config",
        SessionConfig(
            device_id=device,
            heartbeat=HeartbeatConfig(adaptive=False, pong_timeout=2.0),
            backoff=BackoffConfig(base=0.05, cap=0.2),
        ),
    )
    return Client(
        server.url,
        uid,
        password=PASSWORD,
        device=device,
        config=config,
        http_transport=server.http_transport(),
        **options,
    )


async def until(condition: Callable[[], bool], server: FakeServer) -> None:
    with anyio.fail_after(GUARD):
        await server.wait_for(condition)


async def test_the_one_timer_sends_heartbeats_at_the_servers_interval(server: FakeServer) -> None:
    async with client(server) as alice:
        await until(lambda: len(server.frames("alice", Biz.SYSTEM, SystemFunc.PING)) >= 5, server)
        assert alice.state is ConnectionState.READY
        # every ping was answered: the first session is still the only one (the race opened three
        # sockets, and the handshake went to the winner alone)
        assert sum(ap.accepted for ap in server.access_points) == 3
        assert len(server.frames("alice", Biz.SYSTEM, SystemFunc.HANDSHAKE)) == 1


async def test_a_silent_line_is_found_dead_by_the_heartbeat_and_replaced(server: FakeServer) -> None:
    async with client(server) as alice:
        first = server.connections("alice")[0]

        def swallow_pings(conn: FakeConnection, frame: Frame) -> bool:
            return conn is first and frame.header.code == (Biz.SYSTEM, SystemFunc.PING)

        server.script(swallow_pings)
        await until(
            lambda: bool(server.connections("alice")) and server.connections("alice")[0] is not first, server
        )
        with anyio.fail_after(GUARD):
            await alice.wait_ready()
        ack = await alice.send_text("bob", "still here")
        assert ack.conv_seq == 1
    reasons = [e.reason for e in await drained(alice) if isinstance(e, StateChanged)]
    assert any("heartbeat timed out" in r for r in reasons), reasons


async def drained(c: Client) -> list[Any]:
    return [e async for e in c.events()]


async def test_closing_closes_every_socket_and_fails_what_is_unanswered(server: FakeServer) -> None:
    def no_acks(conn: FakeConnection, frame: Frame) -> bool:
        return frame.header.biz == Biz.CHAT

    server.script(no_acks)
    alice = client(server)
    async with alice:
        pending = alice.post("bob", ChatText(text="x"))
        await until(lambda: bool(server.frames("alice", Biz.CHAT)), server)
        driver = alice._driver
        assert driver is not None
    assert driver.open_connections == 0
    await until(lambda: not server.connections("alice"), server)
    with pytest.raises(ClientClosed):
        await pending.wait()
    with pytest.raises(ClientClosed):
        await alice.send_text("bob", "too late")
    events = await drained(alice)
    assert isinstance(events[-1], StateChanged)
    assert events[-1].new is ConnectionState.CLOSED


async def test_the_race_skips_a_dead_access_point(server: FakeServer) -> None:
    dead = server.access_points[0]
    endpoints = [ap.endpoint for ap in server.access_points]
    dead.kill()
    async with client(server, endpoints=endpoints) as alice:
        assert alice.endpoint is not None
        assert alice.endpoint.port != dead.port


async def test_no_access_point_at_all_ends_in_connect_timeout(server: FakeServer) -> None:
    for ap in server.access_points:
        ap.kill()
    refused = [Endpoint("127.0.0.1", ap.port) for ap in server.access_points]
    with pytest.raises(ConnectTimeout) as info:
        async with client(server, endpoints=refused, ready_timeout=1.0):
            pass
    assert str(info.value).startswith("no session within 1 s")


async def test_wrong_password_is_invalid_credentials(server: FakeServer) -> None:
    with pytest.raises(InvalidCredentials):
        async with Client(server.url, "alice", password="nope", http_transport=server.http_transport()):
            pass


async def test_a_second_login_of_the_same_device_ends_the_first_for_good(server: FakeServer) -> None:
    async with client(server) as first, client(server) as second:
        events = await drained(first)
        closed = [e for e in events if isinstance(e, StateChanged) and e.new is ConnectionState.CLOSED]
        assert closed[-1].code is ErrorCode.SESSION_REPLACED
        with pytest.raises(ClientClosed) as info:
            await first.send_text("bob", "hello?")
        assert info.value.code is ErrorCode.SESSION_REPLACED
        assert (await second.send_text("bob", "hello")).conv_seq == 1


async def test_no_network_stops_attempts_until_a_network_is_back(server: FakeServer) -> None:
    async with client(server) as alice:
        alice.set_network("none")
        server.connections("alice")[0].drop()
        with anyio.fail_after(GUARD):
            async for event in alice.events():
                if isinstance(event, StateChanged) and event.new is ConnectionState.NO_NETWORK:
                    break
        accepted = sum(ap.accepted for ap in server.access_points)
        pending = alice.post("bob", ChatText(text="queued"))
        assert sum(ap.accepted for ap in server.access_points) == accepted
        assert alice.state is ConnectionState.NO_NETWORK
        alice.set_network("3g")
        ack = await pending.wait()
        assert ack.conv_seq == 1
        hs = server.frames("alice", Biz.SYSTEM, SystemFunc.HANDSHAKE)[-1].body_as(Handshake)
        assert hs.network == 4  # NETWORK_TYPE_3G: the new network travels in the handshake


async def test_a_refused_token_is_replaced_by_a_fresh_login(server: FakeServer) -> None:
    async with client(server) as alice:
        server.revoke_tokens("alice")
        server.connections("alice")[0].drop()
        # the refused handshake is recorded without a uid: the fake never accepted its token
        await until(lambda: len(server.frames(None, Biz.SYSTEM, SystemFunc.HANDSHAKE)) >= 3, server)
        with anyio.fail_after(GUARD):
            await alice.wait_ready()
        tokens = [f.body_as(Handshake).token for f in server.frames(None, Biz.SYSTEM, SystemFunc.HANDSHAKE)]
        assert len(tokens) == 3
        assert tokens[0] == tokens[1] != tokens[2]
        assert (await alice.send_text("bob", "after the refresh")).conv_seq == 1


async def test_closing_during_the_race_leaves_no_socket_open(server: FakeServer) -> None:
    """The session gives up its attempt while the race is still running: the driver cancels it and the
    sockets it may have opened are closed."""
    events: list[Any] = []

    async def fetch() -> list[Endpoint]:
        return [ap.endpoint for ap in server.access_points]

    async def refresh() -> TokenGrant:
        return TokenGrant(server.issue_token("alice", "phone"), 3600.0)

    session = Session(SessionConfig(device_id="phone"))
    async with SessionDriver(
        session, fetch_endpoints=fetch, refresh_token=refresh, on_event=events.append
    ) as d:
        now = d.now()
        token = server.issue_token("alice", "phone")
        actions = session.start(now, token=token, token_expires_at=now + 3600, endpoints=await fetch())
        assert any(isinstance(a, OpenConnection) for a in actions)
        d.apply(actions)
        closing = session.close(d.now())
        assert any(isinstance(a, CloseConnection) for a in closing)
        d.apply(closing)
        assert d.open_connections == 0
        assert session.state is ConnectionState.CLOSED
    await until(lambda: not any(ap.connections for ap in server.access_points), server)
