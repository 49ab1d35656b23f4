"""Where the embedded auth server keeps v1 tokens and revoked v2 ids: nothing live is ever evicted."""

from __future__ import annotations

from dataclasses import replace

import pytest

from imsdk_server.auth import AuthService, RevocationList, ServiceUnavailable, TokenFault, TokenInvalid
from imsdk_server.backends.cache import MemoryCache
from tests.auth._helpers import FAST, Clock, make_service

pytestmark = pytest.mark.anyio

OLD_LRU_LIMIT = 100_000


async def test_a_flood_of_logins_neither_logs_anyone_out_nor_unrevokes_a_token() -> None:
    service = await AuthService.from_config(replace(FAST, token_kind="v1"))
    try:
        now = service.clock()
        first, _ = await service.opaque.issue("alice", "phone", now=now, lifetime=3600)
        v2, v2_claims = service.codec.issue("bob", "phone", now=now, lifetime=3600)
        await service.logout(v2)
        for i in range(OLD_LRU_LIMIT + 1):
            await service.opaque.issue(f"u{i}", "d", now=now, lifetime=3600)
        claims, kind = await service.verify(first)
        assert (claims.uid, kind) == ("alice", "v1")
        # A server that starts now loads the shared set afresh: the revocation must still be there.
        fresh = RevocationList(service.cache, clock=service.clock)
        assert await fresh.is_revoked(v2_claims.token_id)
        await fresh.refresh()
        assert v2_claims.token_id in fresh.local
        with pytest.raises(TokenInvalid) as info:
            await service.verify(v2)
        assert info.value.fault is TokenFault.REVOKED
    finally:
        await service.aclose()


async def test_a_full_token_store_refuses_logins_with_503_and_keeps_every_token() -> None:
    clock = Clock()
    cache = MemoryCache(max_entries=2, evict=False, clock=clock)
    service = await make_service(clock, cache=cache, token_kind="v1")
    for uid in ("alice", "bob", "carol"):
        await service.register(uid, "s3cret-password", uid)
    kept = [(await service.login(uid, "s3cret-password", "d")).token for uid in ("alice", "bob")]
    with pytest.raises(ServiceUnavailable):
        await service.login("carol", "s3cret-password", "d")
    for token in kept:
        assert (await service.verify(token))[1] == "v1"
    await service.aclose()
