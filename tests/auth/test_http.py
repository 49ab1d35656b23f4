"""The auth API over its real ASGI app: happy paths, every kind of bad input, every token fault, failures."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from imsdk_proto.codes import ErrorCode
from imsdk_server.auth import (
    AuthEvent,
    AuthService,
    BadCredentials,
    KeyRing,
    ProfileChanged,
    Throttled,
    TokenFault,
    TokenInvalid,
    UserLoggedIn,
    UserLoggedOut,
)
from imsdk_server.backends.cache import RedisCache
from tests.auth._helpers import Clock, bearer, client_for, make_service

pytestmark = pytest.mark.anyio

PASSWORD = "s3cret-password"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["v2", "v1"])
async def service(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[AuthService]:
    svc = await make_service(clock, token_kind=request.param)
    yield svc
    await svc.aclose()


@pytest.fixture
async def client(service: AuthService) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(service) as c:
        yield c


def error_of(response: httpx.Response) -> tuple[int, int, str]:
    body = response.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert ErrorCode(err["code"]).name == err["name"]  # the one error shape of every imsdk HTTP service
    return response.status_code, err["code"], err["message"]


async def register(client: httpx.AsyncClient, uid: str, nickname: str | None = None) -> None:
    r = await client.post("/v1/users", json={"uid": uid, "password": PASSWORD, "nickname": nickname or uid})
    assert r.status_code == 201, r.text


async def login(client: httpx.AsyncClient, uid: str, device: str = "phone-1", **extra: Any) -> dict[str, Any]:
    r = await client.post("/v1/login", json={"uid": uid, "password": PASSWORD, "device": device, **extra})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


# -- happy paths ---------------------------------------------------------------------------------------------


async def test_register_login_verify_logout(
    client: httpx.AsyncClient, service: AuthService, clock: Clock
) -> None:
    r = await client.post("/v1/users", json={"uid": "alice", "password": PASSWORD, "nickname": "Alice"})
    assert r.status_code == 201
    assert r.json() == {"uid": "alice", "nickname": "Alice", "created_at": clock.now}
    events: list[AuthEvent] = []

    async def record(event: AuthEvent) -> None:
        events.append(event)

    service.events.subscribe(record)
    info = {"platform": "android", "client_version": "1.2.3", "region": "cn-east", "isp": "cmcc"}
    body = await login(client, "alice", **info)
    kind = service.config.token_kind
    assert body["token_kind"] == kind
    assert body["token"].startswith(f"{kind}.")
    assert (body["uid"], body["device"]) == ("alice", "phone-1")
    assert body["expires_at"] - body["issued_at"] == 3600
    assert events == [
        UserLoggedIn("alice", "phone-1", "android", "1.2.3", "cn-east", "cmcc", kind, clock.now)
    ]

    r = await client.post(
        "/v1/tokens/verify", json={"token": body["token"], "uid": "alice", "device": "phone-1"}
    )
    assert r.status_code == 200
    assert r.json() == {
        "uid": "alice",
        "device": "phone-1",
        "issued_at": body["issued_at"],
        "expires_at": body["expires_at"],
        "token_kind": kind,
    }
    r = await client.post("/v1/logout", headers=bearer(body["token"]))
    assert r.json() == {"revoked": True}
    assert events[-1] == UserLoggedOut("alice", "phone-1", clock.now)
    r = await client.post("/v1/tokens/verify", json={"token": body["token"]})
    assert error_of(r) == (401, ErrorCode.TOKEN_INVALID, "invalid token")
    r = await client.get("/v1/friends", headers=bearer(body["token"]))
    assert error_of(r)[:2] == (401, ErrorCode.TOKEN_INVALID)
    assert r.headers["www-authenticate"] == "Bearer"


async def test_refresh_replaces_the_token(client: httpx.AsyncClient, clock: Clock) -> None:
    await register(client, "alice")
    old = (await login(client, "alice"))["token"]
    clock.now += 100
    r = await client.post("/v1/tokens/refresh", headers=bearer(old))
    assert r.status_code == 200
    new = r.json()
    assert new["token"] != old
    assert new["issued_at"] == int(clock.now)
    assert (await client.get("/v1/friends", headers=bearer(new["token"]))).status_code == 200
    assert (await client.get("/v1/friends", headers=bearer(old))).status_code == 401


async def test_friends_and_profiles(client: httpx.AsyncClient, service: AuthService, clock: Clock) -> None:
    for uid in ("alice", "bob", "carol"):
        await register(client, uid, uid.title())
    alice = bearer((await login(client, "alice"))["token"])
    bob = bearer((await login(client, "bob"))["token"])
    assert (await client.put("/v1/friends/bob", headers=alice)).json() == {"friend": "bob", "added": True}
    assert (await client.put("/v1/friends/bob", headers=alice)).json() == {"friend": "bob", "added": False}
    assert (await client.put("/v1/friends/carol", headers=alice)).json()["added"] is True
    assert (await client.get("/v1/friends", headers=alice)).json() == {"friends": ["bob", "carol"]}
    assert (await client.get("/v1/friends", headers=bob)).json() == {"friends": ["alice"]}
    assert error_of(await client.put("/v1/friends/ghost", headers=alice))[:2] == (404, ErrorCode.NOT_FOUND)
    assert error_of(await client.put("/v1/friends/alice", headers=alice))[:2] == (
        400,
        ErrorCode.MALFORMED_BODY,
    )

    events: list[AuthEvent] = []

    async def record(event: AuthEvent) -> None:
        events.append(event)

    async def broken(event: AuthEvent) -> None:
        raise RuntimeError("subscriber bug")

    service.events.subscribe(broken)
    service.events.subscribe(record)
    clock.now += 5
    r = await client.patch(
        "/v1/profile", headers=alice, json={"signature": "on holiday", "avatar": "media:7"}
    )
    assert r.status_code == 200
    profile = r.json()
    assert profile == {
        "uid": "alice",
        "nickname": "Alice",
        "signature": "on holiday",
        "avatar": "media:7",
        "updated_at": clock.now,
    }
    assert len(events) == 1
    assert isinstance(events[0], ProfileChanged)
    assert events[0].friends == ("bob", "carol")
    assert events[0].profile.signature == "on holiday"
    assert service.metrics.value("auth_event_errors") == 1
    assert (await client.get("/v1/profile/alice", headers=bob)).json() == profile
    assert (await client.get("/v1/profile", headers=alice)).json() == profile
    assert error_of(await client.get("/v1/profile/ghost", headers=bob))[:2] == (404, ErrorCode.NOT_FOUND)
    assert (await client.delete("/v1/friends/alice", headers=bob)).json() == {
        "friend": "alice",
        "removed": True,
    }
    assert (await client.get("/v1/friends", headers=alice)).json() == {"friends": ["carol"]}


# -- credentials and throttling ------------------------------------------------------------------------------


async def test_unknown_uid_and_wrong_password_look_the_same(client: httpx.AsyncClient) -> None:
    await register(client, "alice")
    wrong = await client.post("/v1/login", json={"uid": "alice", "password": "wrong-password", "device": "d"})
    unknown = await client.post(
        "/v1/login", json={"uid": "nobody", "password": "wrong-password", "device": "d"}
    )
    assert error_of(wrong) == error_of(unknown) == (401, ErrorCode.BAD_CREDENTIALS, "invalid credentials")
    assert dict(wrong.headers) == dict(unknown.headers)


async def test_duplicate_registration(client: httpx.AsyncClient) -> None:
    await register(client, "alice")
    r = await client.post("/v1/users", json={"uid": "alice", "password": PASSWORD, "nickname": "Other"})
    assert error_of(r)[:2] == (409, ErrorCode.DUPLICATE)


async def test_throttle_per_uid(client: httpx.AsyncClient, clock: Clock) -> None:
    await register(client, "alice")
    for uid in ("alice", "nobody"):  # known and unknown uids are throttled alike
        for _ in range(5):
            r = await client.post("/v1/login", json={"uid": uid, "password": "wrong-password", "device": "d"})
            assert r.status_code == 401
        r = await client.post("/v1/login", json={"uid": uid, "password": PASSWORD, "device": "d"})
        assert error_of(r) == (429, ErrorCode.AUTH_THROTTLED, "too many attempts, retry later")
        assert r.headers["retry-after"] == "300"
        assert r.json()["error"]["retry_after"] == 300
    clock.now += 300
    await login(client, "alice")


async def test_throttle_per_address(clock: Clock) -> None:
    service = await make_service(clock, address_failure_limit=3)
    async with client_for(service, "10.0.0.7") as attacker, client_for(service, "10.0.0.8") as other:
        await register(other, "alice")
        for i in range(3):
            r = await attacker.post(
                "/v1/login", json={"uid": f"u{i}", "password": "wrong-password", "device": "d"}
            )
            assert r.status_code == 401
        r = await attacker.post("/v1/login", json={"uid": "alice", "password": PASSWORD, "device": "d"})
        assert error_of(r)[:2] == (429, ErrorCode.AUTH_THROTTLED)
        await login(other, "alice")  # other addresses are unaffected
    await service.aclose()


async def test_throttle_holds_against_parallel_guesses(clock: Clock) -> None:
    """Guesses sent all at once are counted before the slow password check, so no more than the limit of
    them reach it: the rest are throttled, as they would be one after another."""
    service = await make_service(clock, uid_failure_limit=5, address_failure_limit=1000)
    await service.register("alice", PASSWORD, "Alice")
    outcomes: list[str] = []

    async def guess() -> None:
        try:
            await service.login("alice", "wrong-password", "d", address="10.0.0.9")
        except BadCredentials:
            outcomes.append("refused")
        except Throttled:
            outcomes.append("throttled")

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(guess)
    assert sorted(outcomes) == ["refused"] * 5 + ["throttled"] * 15
    await service.aclose()


async def test_successful_login_does_not_count_against_the_address(clock: Clock) -> None:
    service = await make_service(clock, address_failure_limit=2)
    for uid in ("alice", "bob", "carol"):
        await service.register(uid, PASSWORD, uid)
    for uid in ("alice", "bob", "carol"):  # three good logins from one address: none of them is a failure
        await service.login(uid, PASSWORD, "d", address="10.0.0.9")
    with pytest.raises(BadCredentials):
        await service.login("alice", "wrong-password", "d", address="10.0.0.9")
    await service.aclose()


async def test_registration_rate_limit(clock: Clock) -> None:
    service = await make_service(clock, register_limit=2)
    async with client_for(service) as c:
        await register(c, "a1")
        await register(c, "a2")
        r = await c.post("/v1/users", json={"uid": "a3", "password": PASSWORD, "nickname": "x"})
        assert error_of(r)[:2] == (429, ErrorCode.RATE_LIMITED)
    await service.aclose()


# -- bad input ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"{'uid': 'a'}", b"[]", b"null", b'"text"', b"42", b"\xff\xfe{}", b"{}" + b"\x00",
     b"[" * 5000 + b"]" * 5000, b'{"uid": "a", "uid": ', b"NaN"],
)  # fmt: skip
async def test_malformed_json(client: httpx.AsyncClient, raw: bytes) -> None:
    for path in ("/v1/users", "/v1/login", "/v1/tokens/verify"):
        r = await client.post(path, content=raw, headers={"content-type": "application/json"})
        assert error_of(r)[:2] == (400, ErrorCode.MALFORMED_BODY), (path, raw[:20])


LOGIN_OK = {"uid": "alice", "password": PASSWORD, "device": "phone-1"}


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"uid": None}, 400, ErrorCode.MALFORMED_BODY),
        ({"password": None}, 400, ErrorCode.MALFORMED_BODY),
        ({"device": None}, 400, ErrorCode.MALFORMED_BODY),
        ({"uid": 7}, 400, ErrorCode.MALFORMED_BODY),
        ({"uid": ["alice"]}, 400, ErrorCode.MALFORMED_BODY),
        ({"password": {"$ne": ""}}, 400, ErrorCode.MALFORMED_BODY),
        ({"password": "short"}, 400, ErrorCode.MALFORMED_BODY),
        ({"password": "x" * 257}, 400, ErrorCode.PAYLOAD_TOO_LARGE),
        ({"uid": "a" * 65}, 400, ErrorCode.PAYLOAD_TOO_LARGE),
        ({"device": "d" * 65}, 400, ErrorCode.PAYLOAD_TOO_LARGE),
        ({"platform": "p" * 65}, 400, ErrorCode.PAYLOAD_TOO_LARGE),
        ({"region": 5}, 400, ErrorCode.MALFORMED_BODY),
        ({"isp": "cm\ncc"}, 400, ErrorCode.MALFORMED_BODY),
    ],
)
async def test_missing_wrong_and_oversize_login_fields(
    client: httpx.AsyncClient, change: dict[str, Any], status: int, code: ErrorCode
) -> None:
    await register(client, "alice")
    body = {**LOGIN_OK, **change}
    body = {k: v for k, v in body.items() if v is not None}
    r = await client.post("/v1/login", json=body)
    got_status, got_code, message = error_of(r)
    assert (got_status, got_code) == (status, code)
    for value in change.values():
        if isinstance(value, str):
            assert value not in message  # never echoes the input
    await login(client, "alice")  # and the server keeps serving


ODD_UIDS = ["", " ", "a b", "a'--", "' OR '1'='1", "alice; DROP TABLE auth_users; --", "a\x00b", "ü", "a/b",
            ".hidden", "-x", "_x", "a%00", "a\nb", "😀", "a" * 65, "alice\u200b", "ＡＬＩＣＥ"]  # fmt: skip


@pytest.mark.parametrize("uid", ODD_UIDS)
async def test_odd_uids_are_refused_everywhere(client: httpx.AsyncClient, uid: str) -> None:
    await register(client, "alice")
    token = (await login(client, "alice"))["token"]
    attempts = [
        client.post("/v1/users", json={"uid": uid, "password": PASSWORD, "nickname": "x"}),
        client.post("/v1/login", json={"uid": uid, "password": PASSWORD, "device": "d"}),
        client.post("/v1/login", json={"uid": "alice", "password": PASSWORD, "device": uid}),
        client.post("/v1/tokens/verify", json={"token": token, "uid": uid}),
    ]
    for attempt in attempts:
        status, code, _ = error_of(await attempt)
        assert status == 400
        assert code in (ErrorCode.MALFORMED_BODY, ErrorCode.PAYLOAD_TOO_LARGE)
    if uid and "/" not in uid and "\x00" not in uid and "\n" not in uid:
        r = await client.put(f"/v1/friends/{uid}", headers=bearer(token))
        assert r.status_code in (400, 404)
    # Nothing was harmed: the table is there and alice still logs in.
    await login(client, "alice")


async def test_profile_fields(client: httpx.AsyncClient) -> None:
    await register(client, "alice")
    h = bearer((await login(client, "alice"))["token"])
    bad = [
        ({"nickname": ""}, ErrorCode.MALFORMED_BODY),
        ({"nickname": "n" * 65}, ErrorCode.PAYLOAD_TOO_LARGE),
        ({"signature": "s" * 257}, ErrorCode.PAYLOAD_TOO_LARGE),
        ({"signature": "bell\x07"}, ErrorCode.MALFORMED_BODY),
        ({"avatar": "a" * 513}, ErrorCode.PAYLOAD_TOO_LARGE),
        ({"avatar": "média"}, ErrorCode.MALFORMED_BODY),
        ({"nickname": 12}, ErrorCode.MALFORMED_BODY),
        ({"uid": "bob"}, ErrorCode.MALFORMED_BODY),
        ({"password_hash": "x"}, ErrorCode.MALFORMED_BODY),
        (b'{"signature": "\\ud800"}', ErrorCode.MALFORMED_BODY),  # a lone surrogate, escaped in JSON
    ]
    for body, code in bad:
        if isinstance(body, bytes):
            r = await client.patch("/v1/profile", headers=h, content=body)
        else:
            r = await client.patch("/v1/profile", headers=h, json=body)
        assert error_of(r)[:2] == (400, code), body
    r = await client.patch("/v1/profile", headers=h, json={"nickname": "Robert'); DROP TABLE auth_users;--"})
    assert r.json()["nickname"] == "Robert'); DROP TABLE auth_users;--"


async def test_huge_declared_body_is_refused_unread(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/login", content=b"{}", headers={"content-length": str(10**9), "content-type": "application/json"}
    )
    assert error_of(r)[:2] == (413, ErrorCode.PAYLOAD_TOO_LARGE)


async def test_huge_streamed_body_is_cut_off(client: httpx.AsyncClient) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"uid": "'
        for _ in range(10_000):
            sent += 1
            yield b"a" * 1024
        yield b'"}'

    r = await client.post("/v1/users", content=chunks())
    assert error_of(r)[:2] == (413, ErrorCode.PAYLOAD_TOO_LARGE)
    assert sent < 10_000  # the server stopped reading long before the end


async def test_bad_content_length(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/login", content=b"{}", headers={"content-length": "-1"})
    assert r.status_code == 400


async def test_unknown_route_and_method(client: httpx.AsyncClient) -> None:
    assert error_of(await client.get("/v1/nothing"))[:2] == (404, ErrorCode.NOT_FOUND)
    assert error_of(await client.get("/v1/login"))[:2] == (405, ErrorCode.NOT_FOUND)
    assert (await client.get("/v1/health")).json() == {"status": "ok"}
    assert "auth_logins" in (await client.get("/v1/metrics")).text


# -- token faults over HTTP ---------------------------------------------------------------------------------


async def assert_refused(client: httpx.AsyncClient, token: str, **extra: str) -> None:
    r = await client.post("/v1/tokens/verify", json={"token": token, **extra})
    assert error_of(r) == (401, ErrorCode.TOKEN_INVALID, "invalid token")
    if not extra:  # the same token as a bearer credential
        r = await client.get("/v1/friends", headers=bearer(token))
        assert error_of(r) == (401, ErrorCode.TOKEN_INVALID, "invalid token")


async def test_every_token_fault_gets_the_same_answer(
    client: httpx.AsyncClient, service: AuthService, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    await register(client, "alice")
    token = (await login(client, "alice"))["token"]
    # any one character flipped, at every position
    for pos in range(len(token)):
        flipped = token[:pos] + chr(ord(token[pos]) ^ 0x01) + token[pos + 1 :]
        r = await client.post("/v1/tokens/verify", json={"token": flipped})
        assert error_of(r) == (401, ErrorCode.TOKEN_INVALID, "invalid token"), pos
    # truncated
    for end in (0, 1, 3, 10, len(token) // 2, len(token) - 1):
        await assert_refused(client, token[:end])
    # another uid or device
    await assert_refused(client, token, uid="bob")
    await assert_refused(client, token, device="phone-2")
    # not a string, or absurdly long
    for junk in (None, 5, ["x"]):
        r = await client.post("/v1/tokens/verify", json={"token": junk})
        assert error_of(r)[:2] == (400, ErrorCode.MALFORMED_BODY)
    await assert_refused(client, "v2." + "A" * 5000)
    # expired by one second (past the leeway)
    clock.now += 3600 + 30 + 1
    with caplog.at_level(logging.INFO, logger="imsdk_server.auth"):
        await assert_refused(client, token)
    assert "fault=expired" in caplog.text or "fault=unknown_token" in caplog.text
    assert token not in caplog.text


async def test_retired_key_over_http(clock: Clock) -> None:
    service = await make_service(clock)
    async with client_for(service) as c:
        await register(c, "alice")
        old = (await login(c, "alice"))["token"]
        old_kid = service.codec.ring.signing_key.kid
        rotated = service.codec.ring.rotate(clock.now + 1, kid="next")
        service.use_ring(rotated)
        new = (await login(c, "alice"))["token"]
        assert new.startswith("v2.next.")
        assert (await c.post("/v1/tokens/verify", json={"token": old})).status_code == 200
        service.use_ring(rotated.retire(old_kid))
        await assert_refused(c, old)
        assert (await c.post("/v1/tokens/verify", json={"token": new})).status_code == 200
        service.use_ring(KeyRing.generate(clock.now))  # a ring that never held these kids
        await assert_refused(c, new)  # unknown kid fails closed
    await service.aclose()


async def test_v2_revocation_reaches_another_server_through_the_shared_cache(clock: Clock) -> None:
    a = await make_service(clock)
    # A second auth server sharing the store, the cache and the keys.
    b = AuthService(store=a.store, cache=a.cache, ring=a.codec.ring, config=a.config, clock=clock)
    async with client_for(a) as ca, client_for(b) as cb:
        await register(ca, "alice")
        token = (await login(ca, "alice"))["token"]
        assert (await cb.post("/v1/tokens/verify", json={"token": token})).status_code == 200
        await ca.post("/v1/logout", headers=bearer(token))
        assert token.split(".")[0] == "v2"
        await assert_refused(cb, token)  # b checks the shared set explicitly
        assert len(b.revocations.local) == 0
        await b.revocations.refresh()  # ...and its background refresh loads it for local verification
        assert len(b.revocations.local) == 1
        with pytest.raises(TokenInvalid) as info:
            b.verifier.verify(token, clock.now)  # the pure, local path an access server uses
        assert info.value.fault is TokenFault.REVOKED
    await a.aclose()


# -- failures -----------------------------------------------------------------------------------------------


async def test_store_down_is_503_and_the_server_keeps_serving(
    client: httpx.AsyncClient, service: AuthService
) -> None:
    await register(client, "alice")
    token = (await login(client, "alice"))["token"]
    await service.store.aclose()
    r = await client.post("/v1/login", json=LOGIN_OK)
    assert error_of(r) == (503, ErrorCode.STORAGE_UNAVAILABLE, "storage unavailable")
    assert error_of(await client.get("/v1/friends", headers=bearer(token)))[0] == 503
    assert (await client.get("/v1/health")).status_code == 200


async def test_cache_down(clock: Clock) -> None:
    dead = RedisCache("redis://127.0.0.1:1/0", prefix="x:", timeout=0.5)
    for kind in ("v1", "v2"):
        service = await make_service(clock, cache=dead, token_kind=kind)
        async with client_for(service) as c:
            await register(c, "alice")
            r = await c.post("/v1/login", json=LOGIN_OK)
            if kind == "v1":
                assert error_of(r)[:2] == (503, ErrorCode.STORAGE_UNAVAILABLE)
            else:
                token = r.json()["token"]  # v2 needs no cache to issue...
                assert (
                    await c.post("/v1/tokens/verify", json={"token": token})
                ).status_code == 200  # ...or check
                r = await c.post("/v1/logout", headers=bearer(token))
                assert error_of(r)[:2] == (
                    503,
                    ErrorCode.STORAGE_UNAVAILABLE,
                )  # revocation must not be lost silently
        await service.store.aclose()
    await dead.aclose()


async def test_error_bodies_are_json_everywhere(client: httpx.AsyncClient) -> None:
    for r in (
        await client.post("/v1/login", content=b"nope"),
        await client.get("/v1/friends"),
        await client.get("/v1/friends", headers={"Authorization": "Basic abc"}),
        await client.delete("/v1/profile"),
    ):
        assert r.headers["content-type"] == "application/json"
        json.loads(r.text)["error"]["code"]
