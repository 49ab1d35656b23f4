"""The auth service: registration, login, tokens of both kinds, friends and profiles, with metrics and events.

The HTTP layer (:func:`~imsdk_server.auth.create_auth_app`) is a thin shell around it; embedders may call it
directly. Every failure is an :class:`~imsdk_server.auth.AuthError`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import anyio
import anyio.to_thread
from anyio.abc import TaskStatus

from imsdk_proto.codes import ErrorCode
from imsdk_server.auth._config import AuthConfig
from imsdk_server.auth._errors import (
    BadCredentials,
    InvalidRequest,
    ServiceUnavailable,
    Throttled,
    TokenFault,
    TokenInvalid,
)
from imsdk_server.auth._events import (
    AuthEvents,
    FriendAdded,
    FriendRemoved,
    Profile,
    ProfileChanged,
    UserLoggedIn,
    UserLoggedOut,
)
from imsdk_server.auth._opaque import OpaqueTokenStore
from imsdk_server.auth._passwords import PasswordHasher, ScryptParams
from imsdk_server.auth._revocation import RevocationList
from imsdk_server.auth._store import SQLUserStore, User, UserStore
from imsdk_server.auth._throttle import LoginThrottle, ThrottleRule
from imsdk_server.auth._tokens import Claims, KeyRing, TokenCodec, TokenVerifier
from imsdk_server.auth._validation import check_device, check_uid
from imsdk_server.backends.cache import Cache, MemoryCache, RedisCache
from imsdk_server.backends.sql import StorageUnavailable
from imsdk_server.metrics import Metrics

__all__ = ["AuthService", "ClientInfo", "IssuedToken", "load_or_create_key_ring"]

log = logging.getLogger("imsdk_server.auth")

TokenKind = Literal["v1", "v2"]

EMBEDDED_TOKEN_CAPACITY = 1_000_000
"""Live v1 tokens plus timed sets the in-process token store holds before it refuses new logins (503).

Nothing there exists anywhere else, so it never evicts: an evicted token would log its user out and an
evicted revocation set would un-revoke tokens. Entries leave only when they expire (or on logout)."""


@dataclass(frozen=True)
class ClientInfo:
    """What a client says about itself at login (used for presence and access-point choice)."""

    platform: str = ""
    client_version: str = ""
    region: str = ""
    isp: str = ""


@dataclass(frozen=True)
class IssuedToken:
    """A token handed to a client."""

    token: str
    kind: TokenKind
    claims: Claims


def load_or_create_key_ring(path: Path | None, now: float) -> KeyRing:
    """The ring in ``path``; a new one-key ring (saved there) if the file is missing; in memory if no path."""
    if path is None:
        log.warning("no key file configured: using a key ring that lives only in this process")
        return KeyRing.generate(now)
    if path.exists():
        return KeyRing.load(path)
    ring = KeyRing.generate(now)
    path.parent.mkdir(parents=True, exist_ok=True)
    ring.save(path)
    log.info("created key ring %s", path)
    return ring


class AuthService:
    """Registration, login, tokens, friends and profiles over a :class:`UserStore` and a :class:`Cache`."""

    def __init__(
        self,
        *,
        store: UserStore,
        cache: Cache,
        ring: KeyRing,
        config: AuthConfig | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self.config = config = config or AuthConfig()
        self.store = store
        self.cache = cache
        self.metrics = metrics = metrics if metrics is not None else Metrics()
        self.clock = clock
        self.events = AuthEvents(metrics)
        self.hasher = hasher or PasswordHasher(
            ScryptParams(config.scrypt_log2_n, config.scrypt_r, config.scrypt_p)
        )
        self.revocations = RevocationList(cache, clock=clock, metrics=metrics)
        self.codec = TokenCodec(ring)
        self.verifier = TokenVerifier(ring, revoked=self.revocations.local, leeway=config.leeway)
        self.opaque = OpaqueTokenStore(cache, leeway=config.leeway)
        self.throttle = LoginThrottle()
        self._uid_rule = ThrottleRule(config.uid_failure_limit, config.throttle_window)
        self._addr_rule = ThrottleRule(config.address_failure_limit, config.throttle_window)
        self._reg_rule = ThrottleRule(config.register_limit, config.throttle_window)
        self._kdf = anyio.CapacityLimiter(config.kdf_threads)
        self._m_login = {
            r: metrics.counter("logins", result=r) for r in ("ok", "bad_credentials", "throttled")
        }
        self._m_register = metrics.counter("registrations")
        self._m_kdf = metrics.histogram("kdf_seconds")

    @classmethod
    async def from_config(cls, config: AuthConfig, *, metrics: Metrics | None = None) -> AuthService:
        """Open the store, the cache and the key ring that ``config`` names."""
        now = time.time()
        if config.data_dir is not None:
            Path(config.data_dir).mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - start-up only
        ring = load_or_create_key_ring(config.key_file_path(), now)
        store = await SQLUserStore.open(config.database_location())
        cache: Cache
        if config.redis_url:
            cache = RedisCache(config.redis_url, prefix=config.redis_prefix)
        else:
            cache = MemoryCache(EMBEDDED_TOKEN_CAPACITY, evict=False)
        return cls(store=store, cache=cache, ring=ring, config=config, metrics=metrics)

    async def aclose(self) -> None:
        """Close the store and the cache."""
        try:
            await self.store.aclose()
        finally:
            await self.cache.aclose()

    async def run_background(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """The service's background work (reloading the shared revocation set) until cancelled."""
        await self.revocations.run(self.config.revocation_refresh, task_status=task_status)

    def use_ring(self, ring: KeyRing) -> None:
        """Switch to a rotated key ring (signing and verifying)."""
        self.codec.use_ring(ring)
        self.verifier.use_ring(ring)

    # -- helpers ---------------------------------------------------------------------------------------------

    @asynccontextmanager
    async def _storage(self) -> AsyncIterator[None]:
        try:
            yield
        except StorageUnavailable as exc:
            log.warning("storage unavailable: %s", exc)
            raise ServiceUnavailable("storage unavailable") from exc

    async def _kdf_run(self, fn: Callable[[], bool | str]) -> bool | str:
        started = time.perf_counter()
        try:
            return await anyio.to_thread.run_sync(fn, limiter=self._kdf)
        finally:
            self._m_kdf.observe(time.perf_counter() - started)

    def _check_throttle(self, keys: list[tuple[str, ThrottleRule]], now: float, code: ErrorCode) -> None:
        waits = [w for key, rule in keys if (w := self.throttle.retry_after(key, rule, now)) is not None]
        if waits:
            raise Throttled(max(waits), code=code)

    # -- users -----------------------------------------------------------------------------------------------

    async def register(
        self, uid: str, password: str, nickname: str, *, address: str = ""
    ) -> tuple[User, Profile]:
        """Create a user with a profile; raises ``UserExists``, ``Throttled``, ``ServiceUnavailable``."""
        check_uid(uid)
        now = self.clock()
        reg_key = f"reg:{address}"
        self._check_throttle([(reg_key, self._reg_rule)], now, ErrorCode.RATE_LIMITED)
        self.throttle.record_failure(reg_key, self._reg_rule, now)  # every registration counts
        encoded = await self._kdf_run(lambda: self.hasher.hash(password))
        assert isinstance(encoded, str)
        async with self._storage():
            user = await self.store.create_user(uid, encoded, nickname, now=now)
            profile = await self.store.get_profile(uid)
        assert profile is not None
        self._m_register.inc()
        return user, profile

    async def login(
        self,
        uid: str,
        password: str,
        device: str,
        *,
        info: ClientInfo = ClientInfo(),
        address: str = "",
    ) -> IssuedToken:
        """Check the password and issue a token of the configured kind.

        Unknown uid and wrong password both raise ``BadCredentials`` after the same work; over the throttle
        limit (per uid or per address) it raises ``Throttled`` before checking anything.
        """
        check_uid(uid)
        check_device(device)
        now = self.clock()
        uid_key, addr_key = f"uid:{uid}", f"addr:{address}"
        try:
            self._check_throttle(
                [(uid_key, self._uid_rule), (addr_key, self._addr_rule)], now, ErrorCode.AUTH_THROTTLED
            )
        except Throttled:
            self._m_login["throttled"].inc()
            raise
        # Count the attempt as a failure now, in the same step as the check (no await in between), and take
        # it back if it was not one: otherwise guesses sent in parallel all pass the check while the slow
        # password checks of the first ones are still running.
        self.throttle.record_failure(uid_key, self._uid_rule, now)
        self.throttle.record_failure(addr_key, self._addr_rule, now)
        try:
            async with self._storage():
                user = await self.store.get_user(uid)
            if user is None:
                ok = await self._kdf_run(lambda: self.hasher.verify_dummy(password))
            else:
                stored = user.password_hash
                ok = await self._kdf_run(lambda: self.hasher.verify(password, stored))
        except BaseException:
            self.throttle.forgive(uid_key, self._uid_rule, now)
            self.throttle.forgive(addr_key, self._addr_rule, now)
            raise
        if not ok:
            self._m_login["bad_credentials"].inc()
            log.info("login refused for a uid (%s)", "unknown uid" if user is None else "wrong password")
            raise BadCredentials("invalid credentials")
        self.throttle.reset(uid_key)
        self.throttle.forgive(addr_key, self._addr_rule, now)
        assert user is not None
        if self.hasher.needs_rehash(user.password_hash):
            encoded = await self._kdf_run(lambda: self.hasher.hash(password))
            assert isinstance(encoded, str)
            async with self._storage():
                await self.store.set_password_hash(uid, encoded)
        issued = await self._issue(uid, device, now)
        self._m_login["ok"].inc()
        await self.events.publish(
            UserLoggedIn(
                uid, device, info.platform, info.client_version, info.region, info.isp, issued.kind, now
            )
        )
        return issued

    async def _issue(self, uid: str, device: str, now: float) -> IssuedToken:
        lifetime = self.config.token_lifetime
        if self.config.token_kind == "v1":
            async with self._storage():
                token, claims = await self.opaque.issue(uid, device, now=now, lifetime=lifetime)
            return IssuedToken(token, "v1", claims)
        token, claims = self.codec.issue(uid, device, now=now, lifetime=lifetime)
        return IssuedToken(token, "v2", claims)

    # -- tokens ----------------------------------------------------------------------------------------------

    async def verify(
        self, token: str, *, uid: str | None = None, device: str | None = None
    ) -> tuple[Claims, TokenKind]:
        """Check a token of either kind (v2 also against the shared revocation set), or ``TokenInvalid``."""
        now = self.clock()
        kind: TokenKind = "v1" if isinstance(token, str) and token.startswith("v1.") else "v2"
        try:
            if kind == "v1":
                async with self._storage():
                    claims = await self.opaque.verify(token, now=now, uid=uid, device=device)
            else:
                claims = self.verifier.verify(token, now, uid=uid, device=device)
                try:
                    revoked = await self.revocations.is_revoked(claims.token_id)
                except StorageUnavailable as exc:
                    # The local set (refreshed in the background) already said no; keep serving on it.
                    log.warning("revocation check fell back to the local set: %s", exc)
                    revoked = False
                if revoked:
                    raise TokenInvalid(TokenFault.REVOKED)
        except TokenInvalid as exc:
            self.metrics.counter("token_refusals", kind=kind, fault=exc.fault.value).inc()
            kid = (
                token.split(".")[1]
                if kind == "v2" and isinstance(token, str) and token.count(".") == 2
                else "-"
            )
            log.info("token refused: kind=%s fault=%s kid=%.16s", kind, exc.fault.value, kid)
            raise
        self.metrics.counter("token_verifications", kind=kind).inc()
        return claims, kind

    async def _revoke(self, claims: Claims, token: str, kind: TokenKind) -> None:
        async with self._storage():
            if kind == "v1":
                await self.opaque.revoke(token)
            else:
                await self.revocations.revoke(claims.token_id, claims.expires_at + self.config.leeway)

    async def logout(self, token: str) -> Claims:
        """Revoke ``token`` (it must be valid); returns its claims."""
        claims, kind = await self.verify(token)
        await self._revoke(claims, token, kind)
        await self.events.publish(UserLoggedOut(claims.uid, claims.device, self.clock()))
        return claims

    async def refresh(self, token: str) -> IssuedToken:
        """A new token for the same uid and device; the presented one is revoked."""
        claims, kind = await self.verify(token)
        issued = await self._issue(claims.uid, claims.device, self.clock())
        await self._revoke(claims, token, kind)
        return issued

    # -- friends and profiles --------------------------------------------------------------------------------

    async def add_friend(self, uid: str, friend: str) -> bool:
        """Make ``uid`` and ``friend`` friends and publish :class:`FriendAdded`; ``False`` (and no event)
        when they already were."""
        check_uid(friend, "friend")
        if friend == uid:
            raise InvalidRequest("a user cannot befriend themselves")
        now = self.clock()
        async with self._storage():
            added = await self.store.add_friend(uid, friend, now=now, limit=self.config.max_friends)
        if added:
            await self.events.publish(FriendAdded(uid, friend, now))
        return added

    async def remove_friend(self, uid: str, friend: str) -> bool:
        """End a friendship and publish :class:`FriendRemoved`; ``False`` (no event) when there was none."""
        check_uid(friend, "friend")
        async with self._storage():
            removed = await self.store.remove_friend(uid, friend)
        if removed:
            await self.events.publish(FriendRemoved(uid, friend, self.clock()))
        return removed

    async def list_friends(self, uid: str) -> list[str]:
        """``uid``'s friends, sorted."""
        async with self._storage():
            return await self.store.list_friends(uid)

    async def get_profile(self, uid: str) -> Profile | None:
        """A profile, or ``None``."""
        check_uid(uid)
        async with self._storage():
            return await self.store.get_profile(uid)

    async def update_profile(
        self,
        uid: str,
        *,
        nickname: str | None = None,
        signature: str | None = None,
        avatar: str | None = None,
    ) -> Profile:
        """Change a profile and publish :class:`ProfileChanged` to subscribers."""
        async with self._storage():
            profile = await self.store.update_profile(
                uid, nickname=nickname, signature=signature, avatar=avatar, now=self.clock()
            )
            friends = await self.store.list_friends(uid)
        await self.events.publish(ProfileChanged(profile, tuple(friends)))
        return profile
