"""Token verification for handshakes: one small Protocol and the adapters to the two token kinds.

* v2 tokens (``v2.<kid>.<payload>``) are verified locally by :class:`LocalTokenVerifier`, wrapping the pure
  :class:`imsdk_server.auth.TokenVerifier`: no network, no auth-server load.
* v1 tokens (random strings) are checked by :class:`RemoteTokenVerifier` through the auth server's
  ``POST /v1/tokens/verify`` API, with a short TTL cache so that a reconnect storm does not become a verify
  storm.
* :class:`TokenRouter` picks one of the two by the token's shape.

Every refusal is an :class:`~imsdk_server.access.AuthenticationFailed` carrying the wire code; an auth server
that cannot be reached is :class:`~imsdk_server.access.AuthUnavailable`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import httpx

from imsdk_proto.codes import ErrorCode
from imsdk_server.access._errors import AuthenticationFailed, AuthUnavailable

if TYPE_CHECKING:
    from imsdk_server.auth import TokenVerifier as _AuthTokenVerifier

__all__ = [
    "Identity",
    "LocalTokenVerifier",
    "RemoteTokenVerifier",
    "SyncTokenVerifier",
    "TokenRouter",
    "TokenVerifier",
]


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a verified token speaks for."""

    uid: str
    device: str
    expires_at: float
    """Unix seconds after which the token is no longer valid."""


class TokenVerifier(Protocol):
    """What the access server needs from token verification."""

    async def verify(self, token: str, device: str) -> Identity:
        """The identity of a valid token for ``device``; raises ``AuthenticationFailed`` otherwise."""
        ...


@runtime_checkable
class SyncTokenVerifier(Protocol):
    """A verifier that can often answer at once, without I/O (v2 tokens): the access server then needs no
    task for the handshake."""

    def verify_now(self, token: str, device: str) -> Identity | None:
        """The identity, or ``None`` when the answer needs I/O (then ``verify`` is awaited instead).

        Raises ``AuthenticationFailed`` for a refused token."""
        ...


class LocalTokenVerifier:
    """v2 tokens, verified in-process by the auth package's pure verifier (no I/O)."""

    def __init__(self, verifier: _AuthTokenVerifier, *, clock: Callable[[], float] = time.time) -> None:
        self._verifier = verifier
        self._clock = clock

    async def verify(self, token: str, device: str) -> Identity:
        return self.verify_now(token, device)

    def verify_now(self, token: str, device: str) -> Identity:
        from imsdk_server.auth import AuthError

        try:
            claims = self._verifier.verify(token, self._clock(), device=device)
        except AuthError as exc:
            raise AuthenticationFailed("token refused", exc.code) from None
        return Identity(claims.uid, claims.device, float(claims.expires_at))


class RemoteTokenVerifier:
    """v1 tokens, verified by the auth server's HTTP API, with a short TTL cache of positive answers.

    ``base_url`` is the auth server's root (e.g. ``http://127.0.0.1:8080``). A cached answer is used for at
    most ``ttl`` seconds and never past the token's expiry; refusals are not cached (a new token must work at
    once), but each refusal costs one request only. The cache holds at most ``max_entries`` tokens.
    """

    def __init__(
        self,
        base_url: str,
        *,
        ttl: float = 30.0,
        timeout: float = 3.0,
        max_entries: int = 100_000,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client if client is not None else httpx.AsyncClient(base_url=base_url, timeout=timeout)
        self._owns_client = client is None
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._cache: OrderedDict[tuple[str, str], tuple[Identity, float]] = OrderedDict()

    async def aclose(self) -> None:
        """Close the HTTP client this verifier made (a client passed in is left open)."""
        if self._owns_client:
            await self._client.aclose()

    async def verify(self, token: str, device: str) -> Identity:
        now = self._clock()
        key = (token, device)
        hit = self._cache.get(key)
        if hit is not None:
            identity, until = hit
            if now < until:
                return identity
            del self._cache[key]
        identity = await self._ask(token, device)
        until = min(now + self._ttl, identity.expires_at)
        if until > now:
            self._cache[key] = (identity, until)
            if len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return identity

    async def _ask(self, token: str, device: str) -> Identity:
        try:
            response = await self._client.post("/v1/tokens/verify", json={"token": token, "device": device})
        except httpx.HTTPError as exc:
            raise AuthUnavailable(f"auth server unreachable: {type(exc).__name__}") from None
        if response.status_code == 200:
            try:
                data: Any = response.json()
                return Identity(str(data["uid"]), str(data["device"]), float(data["expires_at"]))
            except (ValueError, KeyError, TypeError):
                raise AuthUnavailable("auth server sent an unreadable answer") from None
        if response.status_code in (400, 401, 403):
            raise AuthenticationFailed("token refused", _error_code(response, ErrorCode.TOKEN_INVALID))
        raise AuthUnavailable(f"auth server answered {response.status_code}")


def _error_code(response: httpx.Response, default: ErrorCode) -> ErrorCode:
    try:
        code = ErrorCode.from_wire(int(response.json()["error"]["code"]))
    except (ValueError, KeyError, TypeError):
        return default
    return code if code.category == "auth" else default


class TokenRouter:
    """Sends ``v2.`` tokens to the local verifier and every other token to the remote (v1) one.

    Either may be ``None``; a token of a kind nobody verifies is refused with ``TOKEN_INVALID``.
    """

    def __init__(self, v2: TokenVerifier | None = None, v1: TokenVerifier | None = None) -> None:
        self._v2 = v2
        self._v1 = v1

    def _pick(self, token: str) -> TokenVerifier:
        verifier = self._v2 if token.startswith("v2.") else self._v1
        if verifier is None:
            raise AuthenticationFailed("no verifier for this kind of token")
        return verifier

    async def verify(self, token: str, device: str) -> Identity:
        return await self._pick(token).verify(token, device)

    def verify_now(self, token: str, device: str) -> Identity | None:
        verifier = self._pick(token)
        if isinstance(verifier, SyncTokenVerifier):
            return verifier.verify_now(token, device)
        return None
