"""Deadlines run on the monotonic clock, timestamps on the wall clock: a wall clock stepped backwards or
forwards (NTP, an operator, a VM resumed) neither stalls nor fires presence timeouts, and messages are still
stamped with the wall time they arrived at."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from imsdk_proto.codes import ErrorCode
from imsdk_proto.messages import SendStatus
from imsdk_server.backends.sql import SQLiteDatabase
from imsdk_server.location import LocationService
from imsdk_server.metrics import Metrics
from imsdk_server.routing import (
    LocalDownstream,
    LocationPresence,
    NoticeStream,
    PresenceAnswer,
    RouterConfig,
    RouterService,
    SQLMessageStore,
)
from tests.routing.test_service import ALICE_AT, BOB_AT, ROUTER, Inbox, ack_of, error_of, text

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0
HOUR = 3600.0


class SteppedWall:
    """A wall clock that stands still until a test steps it."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class GatedPresence:
    """The location service, but every answer needs I/O and waits until :attr:`gate` is set."""

    def __init__(self, location: LocationService) -> None:
        self.inner = LocationPresence(location)
        self.gate = anyio.Event()

    def lookup_now(self, uids: Sequence[str]) -> Mapping[str, PresenceAnswer] | None:
        return None

    async def lookup(self, uids: Sequence[str]) -> Mapping[str, PresenceAnswer]:
        await self.gate.wait()
        return await self.inner.lookup(uids)

    def subscribe(self, subscriber: str) -> NoticeStream:
        return self.inner.subscribe(subscriber)


@asynccontextmanager
async def router(
    tmp_path: Path, wall: SteppedWall, presence_timeout: float
) -> AsyncIterator[tuple[RouterService, GatedPresence, Inbox]]:
    store = SQLMessageStore(SQLiteDatabase(str(tmp_path / "m.db")))
    await store.setup()
    location = LocationService(metrics=Metrics())
    presence = GatedPresence(location)
    alice = Inbox()
    service = RouterService(
        RouterConfig(server_id=ROUTER, presence_timeout=presence_timeout),
        store,
        presence,
        LocalDownstream({ALICE_AT: alice.deliver, BOB_AT: Inbox().deliver}),
        clock=wall,
        max_delay=0.001,
    )
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(location.run)
            await tg.start(service.run)
            yield service, presence, alice
            tg.cancel_scope.cancel()
    finally:
        await store.aclose()


async def test_a_wall_clock_stepped_back_does_not_stall_a_presence_timeout(tmp_path: Path) -> None:
    wall = SteppedWall(T0)
    async with router(tmp_path, wall, presence_timeout=0.2) as (service, presence, alice):
        service.frame_received(text(1))
        wall.now -= HOUR  # before the timer task has even looked
        (reply,) = await alice.wait(1, within=3.0)  # not an hour and 0.2 s later
        assert error_of(reply) is ErrorCode.BACKEND_TIMEOUT
        # the wall clock still stamps messages: the next one carries the stepped-back time
        presence.gate.set()
        service.frame_received(text(2))
        ack = ack_of((await alice.wait(2))[1])
        assert (ack.msg_id, ack.status) == (2, SendStatus.SEND_STATUS_STORED)
        assert ack.timestamp_ms == int((T0 - HOUR) * 1000)


async def test_a_wall_clock_stepped_forward_does_not_time_out_a_pending_look_up(tmp_path: Path) -> None:
    wall = SteppedWall(T0)
    async with router(tmp_path, wall, presence_timeout=1.0) as (service, presence, alice):
        service.frame_received(text(1))
        wall.now += HOUR  # the message's presence deadline is 1 s away, whatever the wall clock says
        await anyio.sleep(0.05)
        assert alice.frames == []
        presence.gate.set()
        (reply,) = await alice.wait(1)
        ack = ack_of(reply)
        assert (ack.msg_id, ack.conv_seq, ack.status) == (1, 1, SendStatus.SEND_STATUS_STORED)
        assert ack.timestamp_ms == int(T0 * 1000)  # stamped when it arrived
        # and the timeout still fires when the location service really does not answer in time
        presence.gate = anyio.Event()
        service.frame_received(text(3))
        wall.now += HOUR
        (late,) = (await alice.wait(2, within=5.0))[1:]
        assert error_of(late) is ErrorCode.BACKEND_TIMEOUT
        assert late.header.msg_id == 3
