"""Logging in to the auth server over HTTP: keep the token, refresh it before it expires, log in again when
the server refuses it, and call the friends and profile endpoints. Async (httpx), runs on asyncio and trio."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import anyio
import httpx
from anyio.abc import TaskStatus

from imsdk_client._errors import (
    BadResponse,
    IMClientError,
    NotLoggedIn,
    TokenRejected,
    TransportError,
    error_from_response,
)

__all__ = ["AuthClient", "ProfileInfo", "TokenInfo", "refresh_due"]


@dataclass(frozen=True)
class TokenInfo:
    """A token as the client keeps it."""

    token: str
    kind: str
    """``"v1"`` (checked by the auth server) or ``"v2"`` (checked locally by access servers)."""
    uid: str
    device: str
    issued_at: int
    """Server time, Unix seconds."""
    expires_at: int
    """Server time, Unix seconds."""
    received_at: float
    """Client clock when the token arrived; refresh timing uses it, so clock skew does not matter."""

    @property
    def lifetime(self) -> float:
        return float(self.expires_at - self.issued_at)

    def local_expiry(self) -> float:
        """When the token expires, on the client's clock."""
        return self.received_at + self.lifetime


def refresh_due(token: TokenInfo, fraction: float) -> float:
    """The client time at which to refresh: once only ``fraction`` of the lifetime is left. Pure."""
    return token.received_at + token.lifetime * (1.0 - fraction)


@dataclass(frozen=True)
class ProfileInfo:
    """A user's public profile."""

    uid: str
    nickname: str
    signature: str
    avatar: str
    updated_at: float


@dataclass(frozen=True)
class _Credentials:
    uid: str
    password: str
    device: str
    extra: dict[str, str]


class AuthClient:
    """An async client of the auth server.

    After :meth:`login` it keeps the token; :meth:`valid_token` refreshes it once less than
    ``refresh_fraction`` of its lifetime is left (``POST /v1/tokens/refresh``) and logs in again with the
    remembered credentials when the server refuses the refresh. Calls that need a token retry once after a
    fresh login when the server refuses the token. :meth:`keep_fresh` does the refreshing in the background.
    Every failure is an :class:`~imsdk_client.IMClientError`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        refresh_fraction: float = 0.2,
        timeout: float = 10.0,
    ) -> None:
        if not 0.0 < refresh_fraction < 1.0:
            raise ValueError("refresh_fraction must be between 0 and 1")
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(base_url=base_url, timeout=timeout)
        if http is not None:
            self._http.base_url = httpx.URL(base_url)
        self._clock = clock
        self.refresh_fraction = refresh_fraction
        self._token: TokenInfo | None = None
        self._credentials: _Credentials | None = None
        self._lock = anyio.Lock()

    async def __aenter__(self) -> AuthClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this object made it."""
        if self._own_http:
            await self._http.aclose()

    @property
    def token(self) -> TokenInfo | None:
        """The current token, or ``None`` before login and after logout."""
        return self._token

    # -- HTTP plumbing ---------------------------------------------------------------------------------------

    async def _request(self, method: str, path: str, *, json: Any = None, token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        try:
            response = await self._http.request(method, path, json=json, headers=headers)
        except httpx.TransportError as exc:
            raise TransportError(f"{method} {path}: {exc!r}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            if not isinstance(body, dict) or "error" not in body:
                if response.status_code >= 500:
                    raise error_from_response(response.status_code, None)
                raise BadResponse(f"{method} {path}: HTTP {response.status_code} without an error body")
            raise error_from_response(response.status_code, body, response.headers.get("retry-after"))
        if body is None:
            raise BadResponse(f"{method} {path}: the answer is not JSON")
        return body

    def _token_from(self, body: Any) -> TokenInfo:
        try:
            return TokenInfo(
                token=str(body["token"]),
                kind=str(body["token_kind"]),
                uid=str(body["uid"]),
                device=str(body["device"]),
                issued_at=int(body["issued_at"]),
                expires_at=int(body["expires_at"]),
                received_at=self._clock(),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadResponse(f"malformed token answer: {exc!r}") from exc

    # -- account ---------------------------------------------------------------------------------------------

    async def register(self, uid: str, password: str, nickname: str) -> None:
        """Create an account. Raises ``Conflict`` if the uid is taken, ``RequestRejected`` on bad fields."""
        await self._request(
            "POST", "/v1/users", json={"uid": uid, "password": password, "nickname": nickname}
        )

    async def login(
        self,
        uid: str,
        password: str,
        device: str,
        *,
        platform: str = "",
        client_version: str = "",
        region: str = "",
        isp: str = "",
    ) -> TokenInfo:
        """Log in and keep the token (and the credentials, to log in again when needed)."""
        extra = {"platform": platform, "client_version": client_version, "region": region, "isp": isp}
        credentials = _Credentials(uid, password, device, extra)
        async with self._lock:
            return await self._login(credentials)

    async def _login(self, c: _Credentials) -> TokenInfo:
        body = await self._request(
            "POST", "/v1/login", json={"uid": c.uid, "password": c.password, "device": c.device, **c.extra}
        )
        self._token = self._token_from(body)
        self._credentials = c
        return self._token

    async def valid_token(self) -> str:
        """A token good for a while yet: refreshed, or obtained by logging in again, when due."""
        async with self._lock:
            token = self._token
            if token is None:
                if self._credentials is None:
                    raise NotLoggedIn("log in first")
                return (await self._login(self._credentials)).token
            now = self._clock()
            if now < refresh_due(token, self.refresh_fraction):
                return token.token
            try:
                body = await self._request("POST", "/v1/tokens/refresh", token=token.token)
                self._token = self._token_from(body)
            except TokenRejected:
                if self._credentials is None:
                    self._token = None
                    raise
                await self._login(self._credentials)
            except IMClientError:
                if now >= token.local_expiry():
                    raise
                return token.token  # refresh failed for now; the current token is still valid
            assert self._token is not None
            return self._token.token

    async def _authed(self, method: str, path: str, *, json: Any = None) -> Any:
        token = await self.valid_token()
        try:
            return await self._request(method, path, json=json, token=token)
        except TokenRejected:
            async with self._lock:
                if self._credentials is None:
                    raise
                if self._token is not None and self._token.token != token:
                    fresh = self._token.token  # another task already replaced it
                else:
                    fresh = (await self._login(self._credentials)).token
            return await self._request(method, path, json=json, token=fresh)

    async def logout(self) -> None:
        """Revoke the token on the server and forget it and the credentials."""
        async with self._lock:
            token, self._token, self._credentials = self._token, None, None
        if token is not None:
            try:
                await self._request("POST", "/v1/logout", token=token.token)
            except TokenRejected:
                pass  # already invalid: nothing left to revoke

    async def keep_fresh(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Refresh the token in the background, shortly before each refresh point, until cancelled."""
        task_status.started()
        while True:
            token = self._token
            if token is None:
                await anyio.sleep(1.0)
                continue
            now = self._clock()
            await anyio.sleep(max(0.0, refresh_due(token, self.refresh_fraction) - now))
            try:
                await self.valid_token()
            except (TransportError, IMClientError):
                await anyio.sleep(min(30.0, max(1.0, token.lifetime * 0.01)))

    # -- friends and profiles --------------------------------------------------------------------------------

    async def friends(self) -> list[str]:
        """The uids of this user's friends."""
        body = await self._authed("GET", "/v1/friends")
        friends = body.get("friends") if isinstance(body, dict) else None
        if not isinstance(friends, list) or not all(isinstance(f, str) for f in friends):
            raise BadResponse("malformed friends answer")
        return friends

    async def add_friend(self, uid: str) -> bool:
        """Become friends with ``uid``; ``False`` if already friends; ``NotFound`` for unknown users."""
        return bool((await self._authed("PUT", f"/v1/friends/{_path_id(uid)}"))["added"])

    async def remove_friend(self, uid: str) -> bool:
        """End the friendship with ``uid``; ``False`` if there was none."""
        return bool((await self._authed("DELETE", f"/v1/friends/{_path_id(uid)}"))["removed"])

    async def profile(self, uid: str | None = None) -> ProfileInfo:
        """A profile: this user's, or ``uid``'s."""
        path = "/v1/profile" if uid is None else f"/v1/profile/{_path_id(uid)}"
        return _profile_from(await self._authed("GET", path))

    async def update_profile(
        self, *, nickname: str | None = None, signature: str | None = None, avatar: str | None = None
    ) -> ProfileInfo:
        """Change some of nickname, signature and avatar reference; returns the new profile."""
        changes = {
            k: v
            for k, v in (("nickname", nickname), ("signature", signature), ("avatar", avatar))
            if v is not None
        }
        return _profile_from(await self._authed("PATCH", "/v1/profile", json=changes))


def _path_id(uid: str) -> str:
    from urllib.parse import quote

    return quote(uid, safe="")


def _profile_from(body: Any) -> ProfileInfo:
    try:
        return ProfileInfo(
            str(body["uid"]),
            str(body["nickname"]),
            str(body["signature"]),
            str(body["avatar"]),
            float(body["updated_at"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BadResponse(f"malformed profile answer: {exc!r}") from exc
