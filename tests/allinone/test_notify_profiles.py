"""The all-in-one's notification server, profile push and presence over links, through real connections."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from imsdk_proto import Biz, Codec, Frame, Header, NotifyFunc, ProfileFunc, encode_frame
from imsdk_proto.codes import ErrorCode, Flags
from imsdk_proto.messages import (
    FriendEvent,
    FriendEventKind,
    Notification,
    NotifyAck,
    ProfileUpdated,
    ServerRole,
    StorePolicy,
)
from imsdk_server.allinone import AllInOne, AllInOneConfig
from imsdk_server.config import HostPort
from imsdk_server.links import LinkHub, LinkIdentity
from imsdk_server.location import PresenceClient
from tests.allinone._wire import FRAME_TIMEOUT, Connection, handshake_frame, register_and_login

pytestmark = pytest.mark.anyio

ADMIN_KEY = "admin-key-for-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
async def server() -> AsyncIterator[AllInOne]:
    config = AllInOneConfig(
        http=HostPort("127.0.0.1", 0),
        tcp=HostPort("127.0.0.1", 0),
        admin_key=ADMIN_KEY,
        components={"notify": {"policies": {"friend_request": "keep_latest", "typing": "drop"}}},
    )
    async with AllInOne(config) as s:
        yield s


@pytest.fixture
async def http(server: AllInOne) -> AsyncIterator[httpx.AsyncClient]:
    assert server.http_address is not None
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_address[1]}") as client:
        yield client


async def connect(server: AllInOne, token: str, device: str = "phone") -> Connection:
    assert server.tcp_address is not None
    conn = await Connection.open(server.tcp_address)
    await conn.send(handshake_frame(token, device))
    reply = await conn.receive()
    assert reply.header.error == 0, reply.header
    return conn


async def notify(http: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    r = await http.post("/v1/notifications", json=body, headers=ADMIN)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


async def wait_until(condition: Any) -> None:
    with anyio.fail_after(FRAME_TIMEOUT):
        while not await condition():  # noqa: ASYNC110 - polling a state that has no event of its own
            await anyio.sleep(0.01)


def note_of(frame: Frame) -> Notification:
    body = frame.body_as(Notification)
    assert isinstance(body, Notification)
    return body


async def test_offline_notifications_merge_by_type_and_arrive_at_login(
    server: AllInOne, http: httpx.AsyncClient
) -> None:
    bob_token = await register_and_login(http, "bob")
    assert server.notify is not None
    store = server.notify.store

    first = await notify(http, uid="bob", type="friend_request", payload="from alice")
    second = await notify(http, uid="bob", type="friend_request", payload="from carol")
    dropped = await notify(http, uid="bob", type="typing", payload="...")
    assert first["results"]["bob"]["outcome"] == "stored"
    assert second["results"]["bob"]["outcome"] == "stored"
    assert dropped["results"]["bob"]["outcome"] == "dropped"
    latest_id = second["results"]["bob"]["notify_id"]
    assert latest_id > first["results"]["bob"]["notify_id"]
    pending = await store.pending("bob", after_id=0, limit=10)
    assert [(r.type, r.notify_id, r.payload) for r in pending] == [
        ("friend_request", latest_id, b"from carol")
    ]

    bob = await connect(server, bob_token)
    try:
        delivered = await bob.receive_kind(Biz.NOTIFY, NotifyFunc.NOTIFY)
        note = note_of(delivered)
        assert (note.type, note.payload, note.notify_id) == ("friend_request", b"from carol", latest_id)
        assert note.store == StorePolicy.STORE_POLICY_KEEP_LATEST
        assert delivered.header.msg_id == latest_id

        ack = Header(Biz.NOTIFY, NotifyFunc.ACK, seq=2)
        await bob.send(encode_frame(ack, NotifyAck(notify_ids=[latest_id]), Codec.PROTOBUF))

        async def acked() -> bool:
            return not await store.pending("bob", after_id=0, limit=10)

        await wait_until(acked)
        # Live now: the next notification is pushed at once, and it is the next NOTIFY frame bob reads (the
        # older, merged-away one never came).
        live = await notify(http, uid="bob", type="typing", payload="alice is typing")
        assert live["results"]["bob"]["outcome"] == "delivered"
        pushed = note_of(await bob.receive_kind(Biz.NOTIFY, NotifyFunc.NOTIFY))
        assert (pushed.type, pushed.payload) == ("typing", b"alice is typing")
    finally:
        await bob.aclose()


async def test_notifications_endpoint_refuses_bad_requests(server: AllInOne, http: httpx.AsyncClient) -> None:
    await register_and_login(http, "dave")

    def error(r: httpx.Response) -> tuple[int, str]:
        body = r.json()["error"]
        assert ErrorCode(body["code"]).name == body["name"]
        return r.status_code, body["name"]

    cases: list[tuple[dict[str, str], Any, tuple[int, str]]] = [
        ({}, {"uid": "dave", "type": "t"}, (401, "TOKEN_INVALID")),
        ({"Authorization": "Bearer wrong"}, {"uid": "dave", "type": "t"}, (401, "TOKEN_INVALID")),
        (ADMIN, {"type": "t"}, (400, "MALFORMED_BODY")),
        (ADMIN, {"uid": "dave", "uids": ["dave"], "type": "t"}, (400, "MALFORMED_BODY")),
        (ADMIN, {"uid": "dave", "type": "t", "colour": "red"}, (400, "MALFORMED_BODY")),
        (ADMIN, {"uid": "dave", "type": "t", "policy": "forever"}, (400, "MALFORMED_BODY")),
        (ADMIN, {"uid": "dave", "type": "t", "payload_b64": "%%%"}, (400, "MALFORMED_BODY")),
        (ADMIN, {"uid": "dave", "type": ""}, (400, "MALFORMED_BODY")),  # refused by the notification core
        (ADMIN, {"uid": "dave", "type": "t", "payload": "x" * 5000}, (400, "PAYLOAD_TOO_LARGE")),
        (ADMIN, [1, 2], (400, "MALFORMED_BODY")),
    ]
    for headers, body, expected in cases:
        assert error(await http.post("/v1/notifications", json=body, headers=headers)) == expected, body
    assert error(await http.post("/v1/notifications", content=b"{not json", headers=ADMIN)) == (
        400,
        "MALFORMED_BODY",
    )
    assert (await http.get("/v1/notifications", headers=ADMIN)).status_code == 405
    # Several receivers share one notify_id; the server kept serving through the bad requests above.
    many = await notify(http, uids=["dave", "erin"], type="t", payload_b64="AAE=", policy="keep_latest")
    ids = {result["notify_id"] for result in many["results"].values()}
    assert len(ids) == 1
    assert {uid: r["outcome"] for uid, r in many["results"].items()} == {"dave": "stored", "erin": "stored"}


async def test_the_endpoint_is_off_without_an_admin_key() -> None:
    config = AllInOneConfig(http=HostPort("127.0.0.1", 0), tcp=HostPort("127.0.0.1", 0))
    async with AllInOne(config, roles=("auth", "location", "notify")) as s:
        assert s.http_address is not None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.http_address[1]}") as http:
            r = await http.post("/v1/notifications", json={"uid": "x", "type": "t"}, headers=ADMIN)
            assert (r.status_code, r.json()["error"]["name"]) == (403, "FORBIDDEN")


async def test_profile_update_and_friend_add_reach_online_devices(
    server: AllInOne, http: httpx.AsyncClient
) -> None:
    alice_token = await register_and_login(http, "alice")
    bob_token = await register_and_login(http, "bob")
    carol_token = await register_and_login(http, "carol")
    alice, bob, carol = [await connect(server, t) for t in (alice_token, bob_token, carol_token)]
    location = server.location
    assert location is not None

    async def all_online() -> bool:  # pushes go to the devices presence knows: wait for the online events
        return all(location.devices(uid) for uid in ("alice", "bob", "carol"))

    await wait_until(all_online)
    try:
        alice_auth = {"Authorization": f"Bearer {alice_token}"}
        r = await http.put("/v1/friends/bob", headers=alice_auth)
        assert r.json() == {"friend": "bob", "added": True}
        for conn in (alice, bob):  # both users' online devices hear of the new friendship
            frame = await conn.receive_kind(Biz.PROFILE, ProfileFunc.FRIEND_EVENT)
            event = frame.body_as(FriendEvent)
            assert (event.kind, event.uid, event.friend_uid) == (
                FriendEventKind.FRIEND_EVENT_KIND_ADDED,
                "alice",
                "bob",
            )
            assert frame.header.sender_uid == "alice"

        r = await http.patch("/v1/profile", headers=alice_auth, json={"signature": "on holiday"})
        assert r.status_code == 200, r.text
        updated = await bob.receive_kind(Biz.PROFILE, ProfileFunc.UPDATED)
        profile = updated.body_as(ProfileUpdated).profile
        assert (profile.uid, profile.signature) == ("alice", "on holiday")
        assert updated.header.receiver_uid == "bob"

        # Carol is no friend of alice: the first PROFILE frame she reads is her own friendship with alice.
        carol_auth = {"Authorization": f"Bearer {carol_token}"}
        assert (await http.put("/v1/friends/alice", headers=carol_auth)).json()["added"] is True
        first = await carol.receive_kind(Biz.PROFILE, ProfileFunc.FRIEND_EVENT)
        assert first.body_as(FriendEvent).friend_uid == "alice"

        assert (await http.delete("/v1/friends/bob", headers=alice_auth)).status_code == 200
        removed = (await bob.receive_kind(Biz.PROFILE, ProfileFunc.FRIEND_EVENT)).body_as(FriendEvent)
        assert (removed.kind, removed.uid) == (FriendEventKind.FRIEND_EVENT_KIND_REMOVED, "alice")
    finally:
        for conn in (alice, bob, carol):
            await conn.aclose()


async def test_business_servers_use_presence_and_notifications_over_links(
    server: AllInOne, http: httpx.AsyncClient
) -> None:
    """A business server in another process: it finds the location and notification servers in the
    registry, links to them, asks presence and sends a notification whose answer comes back on its link."""
    frank_token = await register_and_login(http, "frank", "tablet")
    frank = await connect(server, frank_token, "tablet")
    registry = server.registry
    assert registry is not None
    (location,) = await registry.list_servers("default", "location")
    (notifier,) = await registry.list_servers("default", "notify")
    answers: list[Frame] = []
    answered = anyio.Event()

    async def on_frame(link: Any, frame: Frame) -> None:
        if frame.header.biz == Biz.NOTIFY:
            answers.append(frame)
            answered.set()
        else:
            await presence.on_frame(link, frame)

    identity = LinkIdentity(int(ServerRole.SERVER_ROLE_BUSINESS), 4242, "voip-1", "default")
    try:
        async with LinkHub(identity, handler=on_frame) as hub:
            to_location = await hub.connect(location.host, location.port, expect_server_id=location.server_id)
            to_notify = await hub.connect(notifier.host, notifier.port, expect_server_id=notifier.server_id)
            with anyio.fail_after(FRAME_TIMEOUT):
                await to_location.wait_ready()
                await to_notify.wait_ready()
            async with PresenceClient(to_location, name="voip-1") as presence:

                async def online() -> bool:
                    return bool((await presence.query(["frank"]))["frank"])

                await wait_until(online)
                (where,) = (await presence.query(["frank"]))["frank"]
                assert (where.device, where.server) == ("tablet", server.access.config.server_id)  # type: ignore[union-attr]

                header = Header(
                    Biz.NOTIFY, NotifyFunc.NOTIFY, seq=9, receiver_uid="frank", flags=Flags.ACK_WANTED
                )
                await to_notify.send(
                    Frame.build(header, Notification(type="call_missed", payload=b"from grace"))
                )
                with anyio.fail_after(FRAME_TIMEOUT):
                    await answered.wait()
                (answer,) = answers
                assert Flags.RESPONSE in Flags(answer.header.flags)
                assert answer.header.error == 0
                notify_id = answer.body_as(NotifyAck).notify_ids[0]
                pushed = note_of(await frank.receive_kind(Biz.NOTIFY, NotifyFunc.NOTIFY))
                assert (pushed.type, pushed.notify_id) == ("call_missed", notify_id)
    finally:
        await frank.aclose()
