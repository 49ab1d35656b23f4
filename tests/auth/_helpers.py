"""Shared test helpers: a service on the embedded backends with a controllable clock, and an HTTP client."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx

from imsdk_server.auth import AuthConfig, AuthService, KeyRing, SQLUserStore, create_auth_app
from imsdk_server.backends.cache import Cache, MemoryCache
from imsdk_server.metrics import Metrics

T0 = 1_800_000_000.0
FAST = AuthConfig(scrypt_log2_n=10, scrypt_r=8, scrypt_p=1, token_lifetime=3600, leeway=30)


class Clock:
    """Unix time that tests move by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def make_service(
    clock: Clock, cache: Cache | None = None, store_location: str = ":memory:", **overrides: Any
) -> AuthService:
    config = replace(FAST, **overrides)
    store = await SQLUserStore.open(store_location)
    return AuthService(
        store=store,
        cache=cache if cache is not None else MemoryCache(clock=clock),
        ring=KeyRing.generate(clock.now),
        config=config,
        metrics=Metrics("auth"),
        clock=clock,
    )


def client_for(service: AuthService, address: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_auth_app(service), client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://auth.test")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
