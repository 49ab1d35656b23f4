"""Token verification: v2 locally, v1 through the auth server's real verify API with a short cache."""

from __future__ import annotations

import time

import httpx
import pytest

from imsdk_proto.codes import ErrorCode
from imsdk_server.access import (
    AuthenticationFailed,
    AuthUnavailable,
    Identity,
    RemoteTokenVerifier,
    TokenRouter,
)
from imsdk_server.auth import AuthConfig, AuthService, KeyRing, SQLUserStore, create_auth_app
from imsdk_server.backends.cache import MemoryCache
from imsdk_server.metrics import Metrics
from tests.access.conftest import Tokens

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def v1_service(clock: Clock) -> AuthService:
    config = AuthConfig(scrypt_log2_n=10, scrypt_r=8, scrypt_p=1, token_lifetime=3600, token_kind="v1")
    return AuthService(
        store=await SQLUserStore.open(":memory:"),
        cache=MemoryCache(clock=clock),
        ring=KeyRing.generate(clock.now),
        config=config,
        metrics=Metrics("auth"),
        clock=clock,
    )


async def test_v1_tokens_verified_over_http_with_a_short_cache() -> None:
    clock = Clock()
    service = await v1_service(clock)
    await service.register("alice", "correct horse battery", "Alice")
    issued = await service.login("alice", "correct horse battery", "phone")
    assert issued.token.startswith("v1.")
    app = create_auth_app(service)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://auth.test") as http:
        verifier = RemoteTokenVerifier("http://auth.test", client=http, ttl=30.0, clock=clock)
        identity = await verifier.verify(issued.token, "phone")
        assert identity == Identity("alice", "phone", float(issued.claims.expires_at))
        with pytest.raises(AuthenticationFailed) as refused:
            await verifier.verify("v1.not-a-token", "phone")
        assert refused.value.code == ErrorCode.TOKEN_INVALID
        # Within the TTL the answer comes from the cache, even after a logout...
        await service.logout(issued.token)
        assert await verifier.verify(issued.token, "phone") == identity
        # ...and once it has expired the auth server is asked again, which refuses the revoked token.
        clock.now += 31
        with pytest.raises(AuthenticationFailed):
            await verifier.verify(issued.token, "phone")
        # A token for another device is not the cached one.
        with pytest.raises(AuthenticationFailed):
            await verifier.verify(issued.token, "laptop")


async def test_unreachable_auth_server_is_auth_unavailable() -> None:
    verifier = RemoteTokenVerifier("http://127.0.0.1:9", timeout=1.0)
    try:
        with pytest.raises(AuthUnavailable):
            await verifier.verify("v1.whatever", "phone")
    finally:
        await verifier.aclose()


async def test_router_sends_each_kind_to_its_verifier(tokens: Tokens) -> None:
    router = TokenRouter(v2=tokens.verifier)
    identity = await router.verify(tokens.issue("bob", "pad"), "pad")
    assert (identity.uid, identity.device) == ("bob", "pad")
    with pytest.raises(AuthenticationFailed) as refused:
        await router.verify("v1.opaque", "pad")  # nobody verifies v1 here
    assert refused.value.code == ErrorCode.TOKEN_INVALID
    with pytest.raises(AuthenticationFailed):
        await router.verify(tokens.issue("bob", "pad"), "phone")  # the token names another device
