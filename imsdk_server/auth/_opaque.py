"""v1 tokens: 256 random bits, mapped to their claims in a cache with a TTL, checked by look-up."""

from __future__ import annotations

import base64
import hashlib
import math
import os

from imsdk_server.auth._errors import TokenFault, TokenInvalid
from imsdk_server.auth._tokens import Claims, RevocationSet, check_claims, decode_claims, encode_claims
from imsdk_server.backends.cache import Cache

__all__ = ["OpaqueTokenStore"]

_TOKEN_CHARS = 43  # base64url of 32 bytes, unpadded
_EMPTY = RevocationSet()


class OpaqueTokenStore:
    """Issues, verifies and revokes v1 tokens ``v1.<base64url(32 random bytes)>``.

    The cache holds ``SHA-256(token)`` → binary claims, never the token itself, under ``prefix``.
    """

    def __init__(self, cache: Cache, *, prefix: str = "auth:v1:", leeway: int = 30) -> None:
        self._cache = cache
        self._prefix = prefix
        self.leeway = leeway

    def _key(self, token: str) -> str:
        return self._prefix + hashlib.sha256(token.encode("ascii")).hexdigest()

    @staticmethod
    def _well_formed(token: object) -> bool:
        if not isinstance(token, str) or len(token) != 3 + _TOKEN_CHARS or not token.startswith("v1."):
            return False
        body = token[3:]
        try:
            raw = base64.b64decode(body + "=", altchars=b"-_", validate=True)
        except ValueError:
            return False
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == body

    async def issue(self, uid: str, device: str, *, now: float, lifetime: int) -> tuple[str, Claims]:
        """A fresh token and its claims, stored for ``lifetime`` seconds (plus leeway)."""
        token = "v1." + base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
        iat = int(now)
        claims = Claims(uid, device, iat, iat + lifetime, os.urandom(16))
        await self._cache.set(self._key(token), encode_claims(claims), ttl=lifetime + self.leeway)
        return token, claims

    async def verify(
        self, token: str, *, now: float, uid: str | None = None, device: str | None = None
    ) -> Claims:
        """The claims of a live token; raises :class:`~imsdk_server.auth.TokenInvalid` otherwise."""
        if not self._well_formed(token):
            raise TokenInvalid(TokenFault.MALFORMED)
        data = await self._cache.get(self._key(token))
        if data is None:
            raise TokenInvalid(TokenFault.UNKNOWN_TOKEN)
        try:
            claims = decode_claims(data)
        except (ValueError, UnicodeDecodeError):
            raise TokenInvalid(TokenFault.MALFORMED) from None
        return check_claims(claims, now, self.leeway, _EMPTY, uid, device)

    async def revoke(self, token: str) -> bool:
        """Forget the token at once; returns whether it was known."""
        if not self._well_formed(token):
            return False
        return await self._cache.delete(self._key(token))

    @staticmethod
    def ttl_for(claims: Claims, now: float, leeway: int) -> float:
        """Seconds a token with ``claims`` may still verify."""
        return max(0.0, math.ceil(claims.expires_at + leeway - now))
