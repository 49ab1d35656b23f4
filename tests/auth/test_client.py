"""The client SDK's login over httpx against the real auth app, on asyncio and trio."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route
from trio.testing import MockClock

from imsdk_client._auth import AuthClient, refresh_due
from imsdk_client._errors import (
    BadResponse,
    Conflict,
    IMClientError,
    InvalidCredentials,
    NotFound,
    NotLoggedIn,
    RateLimited,
    RequestRejected,
    ServiceUnavailable,
    TokenRejected,
    TransportError,
    error_from_response,
)
from imsdk_proto.codes import ErrorCode
from imsdk_server.auth import AuthService, TokenInvalid, create_auth_app
from tests.auth._helpers import Clock, make_service

pytestmark = pytest.mark.anyio

PASSWORD = "s3cret-password"
LIFE = 3600


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["v2", "v1"])
async def service(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[AuthService]:
    svc = await make_service(clock, token_kind=request.param)
    yield svc
    await svc.aclose()


def client_of(service: AuthService, clock: Clock) -> AuthClient:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_auth_app(service)))
    return AuthClient("http://auth.test", http=http, clock=clock)


async def test_login_and_directory_calls(service: AuthService, clock: Clock) -> None:
    async with client_of(service, clock) as alice, client_of(service, clock) as bob:
        with pytest.raises(NotLoggedIn):
            await alice.friends()
        await alice.register("alice", PASSWORD, "Alice")
        await bob.register("bob", PASSWORD, "Bob")
        with pytest.raises(Conflict) as info:
            await bob.register("bob", PASSWORD, "Bob")
        assert info.value.code is ErrorCode.DUPLICATE
        token = await alice.login("alice", PASSWORD, "phone-1", platform="ios", region="eu", isp="x")
        assert token.kind == service.config.token_kind
        assert alice.token == token
        await bob.login("bob", PASSWORD, "tab")
        assert await alice.add_friend("bob") is True
        assert await alice.add_friend("bob") is False
        assert await bob.friends() == ["alice"]
        with pytest.raises(NotFound):
            await alice.add_friend("ghost")
        profile = await alice.update_profile(signature="hello", avatar="media:1")
        assert (profile.nickname, profile.signature, profile.avatar) == ("Alice", "hello", "media:1")
        assert await bob.profile("alice") == profile
        assert (await alice.profile()).uid == "alice"
        with pytest.raises(RequestRejected) as rejected:
            await alice.update_profile(nickname="n" * 100)
        assert rejected.value.code is ErrorCode.PAYLOAD_TOO_LARGE
        assert await bob.remove_friend("alice") is True
        assert await alice.friends() == []
        await alice.logout()
        assert alice.token is None
        with pytest.raises(NotLoggedIn):
            await alice.friends()
        with pytest.raises(TokenInvalid):
            await service.verify(token.token)  # logout revoked it on the server


async def test_refreshes_before_expiry(service: AuthService, clock: Clock) -> None:
    async with client_of(service, clock) as c:
        await c.register("alice", PASSWORD, "Alice")
        first = await c.login("alice", PASSWORD, "d")
        assert refresh_due(first, 0.2) == first.received_at + 0.8 * LIFE
        clock.now += 0.8 * LIFE - 1
        assert await c.valid_token() == first.token  # not due yet
        clock.now += 1
        second = await c.valid_token()
        assert second != first.token
        await service.verify(second)
        with pytest.raises(TokenInvalid):
            await service.verify(first.token)  # the refresh revoked the old token


async def test_refresh_is_immune_to_client_clock_skew(service: AuthService, clock: Clock) -> None:
    skewed = Clock(clock.now - 86_400 * 3)  # the phone's clock is three days behind
    async with client_of(service, skewed) as c:
        await c.register("alice", PASSWORD, "Alice")
        first = await c.login("alice", PASSWORD, "d")
        assert await c.valid_token() == first.token
        skewed.now += 0.8 * LIFE
        clock.now += 0.8 * LIFE
        assert await c.valid_token() != first.token


async def test_logs_in_again_when_the_token_is_refused(service: AuthService, clock: Clock) -> None:
    async with client_of(service, clock) as c:
        await c.register("alice", PASSWORD, "Alice")
        first = await c.login("alice", PASSWORD, "d")
        await service.logout(first.token)  # revoked behind the client's back (e.g. by an admin)
        assert await c.friends() == []  # refused, logged in again, retried
        assert c.token is not None
        assert c.token.token != first.token
        # At the refresh point the refresh is refused too: the client logs in again.
        await service.logout(c.token.token)
        clock.now += 0.9 * LIFE
        third = await c.valid_token()
        await service.verify(third)


async def test_error_mapping(service: AuthService, clock: Clock) -> None:
    async with client_of(service, clock) as c:
        await c.register("alice", PASSWORD, "Alice")
        with pytest.raises(InvalidCredentials) as bad:
            await c.login("alice", "wrong-password", "d")
        assert (bad.value.code, bad.value.status) == (ErrorCode.BAD_CREDENTIALS, 401)
        with pytest.raises(RequestRejected):
            await c.login("bad uid", PASSWORD, "d")
        for _ in range(4):
            with pytest.raises(InvalidCredentials):
                await c.login("alice", "wrong-password", "d")
        with pytest.raises(RateLimited) as throttled:
            await c.login("alice", PASSWORD, "d")
        assert throttled.value.code is ErrorCode.AUTH_THROTTLED
        assert throttled.value.retry_after == 300
        await service.store.aclose()
        with pytest.raises(ServiceUnavailable) as down:
            await c.register("bob", PASSWORD, "Bob")
        assert down.value.code is ErrorCode.STORAGE_UNAVAILABLE


async def test_transport_and_protocol_failures(clock: Clock) -> None:
    async with AuthClient("http://127.0.0.1:1", timeout=2) as c:
        with pytest.raises(TransportError):
            await c.login("alice", PASSWORD, "d")

    async def html(request: object) -> HTMLResponse:
        return HTMLResponse("<h1>proxy error</h1>", status_code=502 if "login" in str(request.url) else 200)  # type: ignore[attr-defined]

    app = Starlette(
        routes=[Route("/v1/login", html, methods=["POST"]), Route("/v1/users", html, methods=["POST"])]
    )
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    async with AuthClient("http://proxy.test", http=http, clock=clock) as c:
        with pytest.raises(ServiceUnavailable):
            await c.login("alice", PASSWORD, "d")
        with pytest.raises(BadResponse):
            await c.register("alice", PASSWORD, "Alice")


def test_error_from_response_table() -> None:
    cases = [
        (401, {"error": {"code": 203, "message": "m"}}, InvalidCredentials, ErrorCode.BAD_CREDENTIALS),
        (401, {"error": {"code": 200, "message": "m"}}, TokenRejected, ErrorCode.TOKEN_INVALID),
        (429, {"error": {"code": 204, "message": "m"}}, RateLimited, ErrorCode.AUTH_THROTTLED),
        (409, {"error": {"code": 501, "message": "m"}}, Conflict, ErrorCode.DUPLICATE),
        (404, {"error": {"code": 502, "message": "m"}}, NotFound, ErrorCode.NOT_FOUND),
        (503, {"error": {"code": 500, "message": "m"}}, ServiceUnavailable, ErrorCode.STORAGE_UNAVAILABLE),
        (400, {"error": {"code": 9999, "message": "m"}}, ServiceUnavailable, ErrorCode.INTERNAL),
        (413, {"error": {"message": "m"}}, RequestRejected, ErrorCode.MALFORMED_BODY),
        (418, "garbage", ServiceUnavailable, ErrorCode.STORAGE_UNAVAILABLE),
    ]
    for status, body, cls, code in cases:
        err = error_from_response(status, body, "7")
        assert type(err) is cls, (status, body)
        assert err.code is code
        assert isinstance(err, IMClientError)
        assert err.status == status
    assert error_from_response(429, {"error": {"code": 601}}, "12").retry_after == 12  # type: ignore[attr-defined]


class TrioClock(Clock):
    """Unix time that follows trio's (virtual) clock, for the client and the server alike."""

    def __call__(self) -> float:
        import trio

        return self.now + trio.current_time()


@pytest.mark.parametrize(
    "anyio_backend",
    [pytest.param(("trio", {"clock": MockClock(autojump_threshold=0)}), id="trio-virtual-time")],
)
async def test_keep_fresh_refreshes_in_the_background(anyio_backend: object) -> None:
    import anyio

    clock = TrioClock()
    service = await make_service(clock)
    async with client_of(service, clock) as c:
        await c.register("alice", PASSWORD, "Alice")
        first = await c.login("alice", PASSWORD, "d")
        async with anyio.create_task_group() as tg:
            await tg.start(c.keep_fresh)
            await anyio.sleep(0.8 * LIFE + 1)  # virtual: jumps at once
            assert c.token is not None
            second = c.token
            assert second.token != first.token
            await anyio.sleep(0.8 * LIFE + 1)
            assert c.token.token != second.token
            await service.verify(c.token.token)  # still good long after the first token expired
            tg.cancel_scope.cancel()
    await service.aclose()
