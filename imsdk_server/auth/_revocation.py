"""Revocation of v2 tokens by token id: the shared timed set in a cache, and the local in-memory copy."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import anyio
from anyio.abc import TaskStatus

from imsdk_server.auth._tokens import RevocationSet
from imsdk_server.backends.cache import Cache, CacheUnavailable
from imsdk_server.metrics import Metrics

__all__ = ["RevocationList"]

log = logging.getLogger("imsdk_server.auth")


class RevocationList:
    """Keeps a :class:`RevocationSet` (what a :class:`~imsdk_server.auth.TokenVerifier` consults) in step with
    the shared timed set ``key`` in ``cache``.

    :meth:`revoke` writes through to both. :meth:`run` reloads the shared set every ``interval`` seconds, so a
    revocation made on any auth server reaches every access server within one interval; if the cache fails the
    last loaded set stays in force and the loop retries. :meth:`is_revoked` is the explicit async check for
    callers that cannot wait for the next reload.
    """

    def __init__(
        self,
        cache: Cache,
        *,
        local: RevocationSet | None = None,
        key: str = "auth:revoked-v2",
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self.cache = cache
        self.local = local if local is not None else RevocationSet()
        self.key = key
        self._clock = clock
        metrics = metrics or Metrics()
        self._m_refresh = metrics.counter("revocation_refreshes")
        self._m_fail = metrics.counter("revocation_refresh_failures")
        metrics.gauge("revocation_set_size", fn=lambda: len(self.local))

    async def revoke(self, token_id: bytes, expires_at: float) -> None:
        """Refuse ``token_id`` everywhere until ``expires_at`` (token expiry plus leeway)."""
        self.local.add(token_id, expires_at)
        await self.cache.timed_add(self.key, token_id.hex(), expires_at=expires_at)

    async def is_revoked(self, token_id: bytes) -> bool:
        """Ask the shared set directly (and remember a positive answer locally)."""
        if token_id in self.local:
            return True
        revoked = await self.cache.timed_contains(self.key, token_id.hex())
        return revoked

    async def refresh(self) -> None:
        """Load the shared set into the local one, dropping expired ids."""
        members = await self.cache.timed_members(self.key)
        entries: dict[bytes, float] = {}
        for member, expires in members.items():
            try:
                entries[bytes.fromhex(member)] = expires
            except ValueError:
                log.warning("ignoring malformed revocation entry in %s", self.key)
        self.local.prune(self._clock())
        self.local.replace(entries)
        self._m_refresh.inc()

    async def run(
        self, interval: float = 1.0, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Reload every ``interval`` seconds until cancelled; reports started after the first attempt."""
        started = False
        while True:
            try:
                await self.refresh()
            except CacheUnavailable as exc:
                self._m_fail.inc()
                log.warning("revocation refresh failed, keeping %d known ids: %s", len(self.local), exc)
            if not started:
                task_status.started()
                started = True
            await anyio.sleep(interval)
