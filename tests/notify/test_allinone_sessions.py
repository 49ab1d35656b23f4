"""The bug the demo found, end to end in the in-process all-in-one server over real sockets: a stored
notification posted while the receiver's line has just dropped (inside the location service's grace window)
reaches the device exactly once when it reconnects quickly to the same access server, a reconnect the
location service announces to nobody."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from imsdk_proto import Biz, Codec, Header, NotifyFunc, encode_frame
from imsdk_proto.messages import Notification, NotifyAck
from imsdk_server.allinone import AllInOne, AllInOneConfig
from imsdk_server.config import HostPort
from tests.allinone._wire import Connection, handshake_frame, register_and_login

pytestmark = pytest.mark.anyio

ADMIN = {"Authorization": "Bearer notify-sessions-admin-key"}
GRACE = 3.0


@pytest.fixture
async def server() -> AsyncIterator[AllInOne]:
    config = AllInOneConfig(
        http=HostPort("127.0.0.1", 0),
        tcp=HostPort("127.0.0.1", 0),
        admin_key="notify-sessions-admin-key",
        components={
            "notify": {"policies": {"friend_request": "keep_latest"}},
            "location": {"grace": GRACE},
        },
    )
    async with AllInOne(config) as s:
        yield s


async def connect(server: AllInOne, token: str) -> Connection:
    assert server.tcp_address is not None
    conn = await Connection.open(server.tcp_address)
    await conn.send(handshake_frame(token, "phone"))
    assert (await conn.receive()).header.error == 0
    return conn


async def until(condition: Any) -> None:
    while not condition():  # noqa: ASYNC110 - polls state that has no event of its own
        await anyio.sleep(0.01)


async def test_a_notification_posted_in_the_grace_window_arrives_once_after_a_quick_reconnect(
    server: AllInOne,
) -> None:
    assert server.http_address is not None
    assert server.notify is not None
    core = server.notify.core
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_address[1]}") as http:
        token = await register_and_login(http, "carol")
        first = await connect(server, token)
        with anyio.fail_after(5):
            await until(lambda: "phone" in core.online_devices("carol"))
        await first.aclose()
        # The offline event reaches the notification server at once, well inside the grace window.
        with anyio.fail_after(GRACE / 2):
            await until(lambda: "phone" not in core.online_devices("carol"))
        r = await http.post(
            "/v1/notifications",
            headers=ADMIN,
            json={"uid": "carol", "type": "friend_request", "payload": "hi"},
        )
        assert r.status_code == 200, r.text
        result = r.json()["results"]["carol"]
        assert result["outcome"] == "stored"

        second = await connect(server, token)
        try:
            frame = await second.receive_kind(Biz.NOTIFY, NotifyFunc.NOTIFY)
            note = frame.body_as(Notification)
            assert isinstance(note, Notification)
            assert (note.notify_id, note.payload) == (result["notify_id"], b"hi")
            # Nothing else arrives, not even once the grace window is over.
            with anyio.move_on_after(GRACE + 0.5) as waited:
                await second.receive_kind(Biz.NOTIFY, NotifyFunc.NOTIFY)
            assert waited.cancelled_caught
            ack = Header(Biz.NOTIFY, NotifyFunc.ACK, seq=2)
            await second.send(encode_frame(ack, NotifyAck(notify_ids=[note.notify_id]), Codec.PROTOBUF))
            store = server.notify.store
            with anyio.fail_after(5):
                while await store.pending("carol"):  # noqa: ASYNC110 - the store has no change event
                    await anyio.sleep(0.01)
        finally:
            await second.aclose()
