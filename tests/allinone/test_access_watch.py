"""Jitter recognition wired end to end: the presence view's links to the access servers feed its core.

The decision table (:class:`AccessWatchCore`) is tested on its own first, then the whole path in one
process: an :class:`AllInOne` with the location role (its presence view, its access watch), a real access
server with 50 connected clients whose link listener sits behind a relay that can freeze, and a subscriber.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import anyio.abc
import pytest

from imsdk_proto.codes import SystemFunc
from imsdk_proto.messages import ServerRole
from imsdk_server.access import AccessConfig, AccessServer, LocalTokenVerifier, TokenRouter
from imsdk_server.allinone import AllInOne, AllInOneConfig
from imsdk_server.allinone._watch_core import (
    WATCH_TRANSITIONS,
    AccessWatchCore,
    Verdict,
    WatchInput,
    WatchState,
    WatchTransitionError,
)
from imsdk_server.backends.registry import ServerInfo, ServerState
from imsdk_server.config import HostPort
from imsdk_server.links import LinkConfig, LinkHub, LinkIdentity
from imsdk_server.location import (
    BatchNotice,
    DeviceNotice,
    LocationService,
    Notice,
    NoticeKind,
    ServerDownNotice,
    Subscriber,
)
from imsdk_server.location import ServerState as PresenceServerState
from imsdk_server.metrics import Metrics
from tests.allinone._freeze import FreezableRelay
from tests.allinone._wire import Connection, handshake_frame

pytestmark = pytest.mark.anyio

# ------------------------------------------------------------------------------------- the decision table

In, S, V = WatchInput, WatchState, Verdict

#: (inputs fed one by one at t = 0, 1, 2, …), the state after them, the verdicts they produced.
SCENARIOS: list[tuple[str, list[WatchInput], WatchState, list[Verdict]]] = [
    ("linked", [In.LINKED], S.UP, []),
    ("jitter", [In.LINKED, In.SUSPECT, In.ALIVE], S.UP, [V.SUSPECT, V.ALIVE]),
    ("probes all timed out", [In.LINKED, In.SUSPECT, In.DOWN], S.DOWN, [V.SUSPECT, V.DOWN]),
    ("orderly deregistration", [In.LINKED, In.LEFT], S.LEFT, [V.STOPPED]),
    ("a drain while suspect", [In.LINKED, In.SUSPECT, In.LEFT], S.LEFT, [V.SUSPECT, V.ALIVE]),
    ("lost, then linked again", [In.LINKED, In.LOST, In.LINKED], S.UP, [V.SUSPECT, V.ALIVE]),
    ("lost while suspect", [In.LINKED, In.SUSPECT, In.LOST], S.LOST, [V.SUSPECT]),
    ("back after down", [In.LINKED, In.SUSPECT, In.DOWN, In.LINKED], S.UP, [V.SUSPECT, V.DOWN, V.ALIVE]),
    ("a new link while suspect", [In.LINKED, In.SUSPECT, In.LINKED], S.UP, [V.SUSPECT, V.ALIVE]),
    ("restarted after leaving", [In.LINKED, In.LEFT, In.LINKED], S.UP, [V.STOPPED]),
    ("late news after down", [In.LINKED, In.DOWN, In.LOST, In.LEFT], S.DOWN, [V.DOWN]),
]


@pytest.mark.parametrize(
    ("inputs", "state", "verdicts"), [s[1:] for s in SCENARIOS], ids=[s[0] for s in SCENARIOS]
)
def test_scenarios(inputs: list[WatchInput], state: WatchState, verdicts: list[Verdict]) -> None:
    core = AccessWatchCore(window=3.0)
    for t, inp in enumerate(inputs):
        core.handle(7, inp, float(t))
    assert core.state(7) is state
    assert [v for _, v in core.pop_verdicts()] == verdicts
    assert core.pop_verdicts() == []


def test_a_lost_link_is_down_after_the_probe_window_unless_linked_again() -> None:
    core = AccessWatchCore(window=3.0)
    core.handle(7, In.LINKED, 0.0)
    core.handle(8, In.LINKED, 0.0)
    core.handle(7, In.LOST, 10.0)
    core.handle(8, In.LOST, 11.0)
    assert core.next_deadline() == 13.0
    core.handle_timer(12.999)
    assert core.pop_verdicts() == [(7, V.SUSPECT), (8, V.SUSPECT)]
    core.handle(8, In.LINKED, 13.5)  # back within its window: jitter
    core.handle_timer(13.0)
    assert core.pop_verdicts() == [(8, V.ALIVE), (7, V.DOWN)]
    assert core.next_deadline() is None
    assert (core.state(7), core.state(8)) == (S.DOWN, S.UP)


def test_forgetting_keeps_servers_still_in_play() -> None:
    core = AccessWatchCore(window=1.0)
    for server, inputs in {
        1: [In.LINKED, In.LEFT],
        2: [In.LINKED, In.DOWN],
        3: [In.LINKED, In.LOST],
        4: [In.LINKED],
    }.items():
        for inp in inputs:
            core.handle(server, inp, 0.0)
    for server in (1, 2, 3, 4):
        core.forget(server)
    assert [core.state(s) for s in (1, 2, 3, 4)] == [S.NEW, S.NEW, S.LOST, S.UP]


def test_every_pair_outside_the_table_raises() -> None:
    for state in WatchState:
        for inp in WatchInput:
            if (state, inp) in WATCH_TRANSITIONS:
                continue
            core = AccessWatchCore(window=1.0)
            core._states[7] = state
            with pytest.raises(WatchTransitionError):
                core.handle(7, inp, 0.0)


def test_the_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window"):
        AccessWatchCore(window=0.0)


# ---------------------------------------------------------------------------------------- in one process

#: Short link timing: a silent peer is suspect after 0.5 s and down after 3 probes of 0.4 s more.
FAST = LinkConfig(heartbeat_interval=0.3, grace=0.2, probe_timeout=0.4, probes=3)
USERS = 50
ACCESS_ROLE = int(ServerRole.SERVER_ROLE_ACCESS)
#: How long a test waits for something that should happen well within a second.
WAIT = 10.0


@dataclass
class World:
    server: AllInOne
    location: LocationService
    access: AccessServer
    access_id: int
    hub: LinkHub
    relay: FreezableRelay
    info: ServerInfo
    clients: list[Connection]

    def verdicts(self, verdict: str) -> int:
        return int(self.server.metrics.value("access_watch_verdicts", verdict=verdict))

    def links(self, name: str) -> int:
        return int(self.server.metrics.value(f"links_{name}"))


def uid(i: int) -> str:
    return f"user{i:02d}"


@asynccontextmanager
async def world() -> AsyncIterator[World]:
    """An AllInOne (auth, location) and a real access server with 50 clients, linked through a relay."""
    config = AllInOneConfig(
        http=HostPort("127.0.0.1", 0),
        tcp=HostPort("127.0.0.1", 0),
        components={
            "links": {"heartbeat_interval": 0.3, "grace": 0.2, "probe_timeout": 0.4, "probes": 3},
            "location": {"grace": 0.2, "burst_window": 0.2},
        },
    )
    async with AllInOne(config, roles=("auth", "location")) as server, anyio.create_task_group() as tg:
        assert server.registry is not None
        assert server.auth is not None
        assert server.location is not None
        assert server.access_watch is not None
        access_id = await server.registry.allocate_server_id()
        verifier = TokenRouter(v2=LocalTokenVerifier(server.auth.verifier))
        access = AccessServer(
            AccessConfig(server_id=access_id, host="127.0.0.1", port=0),
            verifier,
            queue=server.queue,
            metrics=Metrics(),
        )
        client_address = await tg.start(access.serve)
        identity = LinkIdentity(ACCESS_ROLE, access_id, f"access-{access_id}", "default")
        async with LinkHub(identity, config=FAST, handler=access.on_link_frame) as hub:
            link_address = await hub.listen("127.0.0.1", 0)
            async with FreezableRelay(link_address) as relay:
                info = ServerInfo(
                    role="access",
                    server_id=access_id,
                    name=f"access-{access_id}",
                    domain="default",
                    host=relay.address[0],
                    port=relay.address[1],
                    client_host=client_address[0],
                    client_port=client_address[1],
                )
                await server.registry.register(info)
                info = await server.registry.set_state(info.key, ServerState.READY)
                with anyio.fail_after(5):
                    await server.access_watch.wait_linked(access_id)
                clients = []
                for i in range(USERS):
                    token, _ = server.auth.codec.issue(uid(i), "phone", now=time.time(), lifetime=600)
                    conn = await Connection.open(client_address)
                    await conn.send(handshake_frame(token, "phone"))
                    ack = await conn.receive()
                    assert (ack.header.func, ack.header.error) == (SystemFunc.HANDSHAKE_ACK, 0)
                    clients.append(conn)
                location = server.location
                with anyio.fail_after(5):  # the online events have come through the queue
                    while location.core.connected_count < USERS:  # noqa: ASYNC110 - no event for it
                        await anyio.sleep(0.01)
                try:
                    yield World(server, location, access, access_id, hub, relay, info, clients)
                finally:
                    relay.thaw()
                    for conn in clients:
                        await conn.aclose()
        tg.cancel_scope.cancel()


async def next_notice(sub: Subscriber) -> Notice:
    with anyio.fail_after(WAIT):
        return await sub.receive()


async def wait_for(predicate: Callable[[], bool]) -> None:
    """Poll a condition of the process' state (verdict counters, core state) until it holds."""
    with anyio.fail_after(WAIT):
        while not predicate():  # noqa: ASYNC110 - counters and core states have no event
            await anyio.sleep(0.01)


async def test_a_frozen_access_server_is_one_server_down_notice_after_three_probes() -> None:
    async with world() as w:
        sub = w.location.subscribe("business")
        w.relay.freeze()
        notice = await next_notice(sub)
        assert isinstance(notice, ServerDownNotice)
        assert notice.server == w.access_id
        assert sorted(notice.devices) == [(uid(i), "phone") for i in range(USERS)]
        # exactly the three probes, one suspicion, one down: then the notice
        assert w.links("probes_sent_total") == 3
        assert (w.verdicts("suspect"), w.verdicts("down")) == (1, 1)
        assert w.links("peers_down_total") == 1
        for i in range(USERS):
            assert w.location.devices(uid(i)) == []
        assert w.location.core.server_state(w.access_id) is PresenceServerState.DOWN
        # nothing per user follows: no offline notices, not after the grace window either
        await anyio.sleep(0.5)
        assert sub.pending() == 0
        assert w.server.metrics.value("location_notices", kind="offline") == 0


async def test_a_brief_freeze_says_nothing() -> None:
    async with world() as w:
        sub = w.location.subscribe("business")
        w.relay.freeze()
        await wait_for(lambda: w.verdicts("suspect") == 1)  # silent: held, being probed
        assert w.location.core.server_state(w.access_id) is PresenceServerState.HOLD
        w.relay.thaw()  # within the probe window
        await wait_for(lambda: w.verdicts("alive") == 1)
        assert w.location.core.server_state(w.access_id) is PresenceServerState.NORMAL
        assert w.links("probes_sent_total") < 3
        assert w.verdicts("down") == 0
        assert sub.pending() == 0
        for i in range(USERS):
            assert [p.server for p in w.location.devices(uid(i))] == [w.access_id]
        # the link stays the same one: it answers again, heartbeats flow, no suspicion comes back
        await anyio.sleep(1.0)
        assert (w.verdicts("suspect"), w.verdicts("down")) == (1, 0)
        assert sub.pending() == 0


async def test_an_orderly_stop_is_ordinary_offline_notices() -> None:
    async with world() as w:
        sub = w.location.subscribe("business")
        assert w.server.registry is not None
        await w.server.registry.set_state(w.info.key, ServerState.NOT_READY)
        await w.server.registry.deregister(w.info.key)
        assert w.access.shutdown_connections() == USERS
        report = await w.hub.deregister(drain_timeout=5.0)
        assert report.complete
        gone: set[str] = set()
        while len(gone) < USERS:
            notice = await next_notice(sub)
            items = notice.items if isinstance(notice, BatchNotice) else (notice,)
            for item in items:
                assert isinstance(item, DeviceNotice)
                assert item.kind is NoticeKind.OFFLINE
                gone.add(item.uid)
        await wait_for(lambda: w.verdicts("stopped") == 1)
        assert (w.verdicts("suspect"), w.verdicts("down")) == (0, 0)
        assert w.location.core.server_state(w.access_id) is PresenceServerState.NORMAL
        assert w.server.metrics.value("location_notices", kind="server_down") == 0
        for i in range(USERS):
            assert w.location.devices(uid(i)) == []
        assert sub.pending() == 0


async def test_a_crash_that_cuts_the_link_is_one_server_down_notice_after_the_probe_window() -> None:
    async with world() as w:
        sub = w.location.subscribe("business")
        await w.relay.crash()  # the connection breaks and nothing listens there any more
        notice = await next_notice(sub)
        assert isinstance(notice, ServerDownNotice)
        assert len(notice.devices) == USERS
        assert (w.verdicts("suspect"), w.verdicts("down")) == (1, 1)
        for i in range(USERS):
            assert w.location.devices(uid(i)) == []
        await anyio.sleep(0.5)
        assert sub.pending() == 0
