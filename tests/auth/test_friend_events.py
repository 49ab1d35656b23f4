"""Friend changes are published on the auth service's event broadcast, once per real change."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from imsdk_server.auth import AuthEvent, AuthService, FriendAdded, FriendRemoved, UserNotFound
from tests.auth._helpers import Clock, bearer, client_for, make_service

pytestmark = pytest.mark.anyio

PASSWORD = "s3cret-password"


@pytest.fixture
async def service() -> AsyncIterator[AuthService]:
    svc = await make_service(Clock())
    for uid in ("alice", "bob", "carol"):
        await svc.register(uid, PASSWORD, uid.title())
    yield svc
    await svc.aclose()


async def test_add_and_remove_publish_once_per_change(service: AuthService) -> None:
    clock = service.clock
    assert isinstance(clock, Clock)
    events: list[AuthEvent] = []

    async def record(event: AuthEvent) -> None:
        events.append(event)

    service.events.subscribe(record)
    steps = [  # (action, uid, friend, result, event or None)
        ("add", "alice", "bob", True, FriendAdded("alice", "bob", clock.now)),
        ("add", "alice", "bob", False, None),  # already friends: nothing changed, nothing told
        ("add", "bob", "alice", False, None),  # friendship is mutual
        ("remove", "bob", "alice", True, FriendRemoved("bob", "alice", clock.now + 1)),
        ("remove", "alice", "bob", False, None),
        ("add", "carol", "alice", True, FriendAdded("carol", "alice", clock.now + 2)),
    ]
    start = clock.now
    for i, (action, uid, friend, result, event) in enumerate(steps):
        clock.now = start + sum(1 for s in steps[:i] if s[4] is not None)
        before = len(events)
        if action == "add":
            assert await service.add_friend(uid, friend) is result
        else:
            assert await service.remove_friend(uid, friend) is result
        assert events[before:] == ([event] if event is not None else [])
    assert await service.list_friends("alice") == ["carol"]


async def test_a_refused_add_publishes_nothing(service: AuthService) -> None:
    events: list[AuthEvent] = []

    async def record(event: AuthEvent) -> None:
        events.append(event)

    service.events.subscribe(record)
    with pytest.raises(UserNotFound):
        await service.add_friend("alice", "ghost")
    assert events == []


async def test_http_friend_calls_publish(service: AuthService) -> None:
    events: list[AuthEvent] = []

    async def record(event: AuthEvent) -> None:
        events.append(event)

    async with client_for(service) as client:
        r = await client.post("/v1/login", json={"uid": "alice", "password": PASSWORD, "device": "d"})
        alice = bearer(r.json()["token"])
        service.events.subscribe(record)
        assert (await client.put("/v1/friends/bob", headers=alice)).json()["added"] is True
        assert (await client.delete("/v1/friends/bob", headers=alice)).status_code == 200
    assert [type(e) for e in events] == [FriendAdded, FriendRemoved]
    assert [(e.uid, e.friend) for e in events if isinstance(e, FriendAdded | FriendRemoved)] == [
        ("alice", "bob"),
        ("alice", "bob"),
    ]
