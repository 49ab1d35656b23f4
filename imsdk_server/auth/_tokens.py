"""v2 tokens: encrypted, authenticated, verified locally with no I/O. Pure code: time is an argument.

Format (see ``docs/auth.md`` for the byte layout)::

    v2.<kid>.<base64url(nonce[24] || ChaCha20-Poly1305(subkey, nonce[12:24], claims, aad="v2.<kid>.") )>
    subkey = BLAKE2b-256(key=K[kid], person="imsdk-token-v2", data=nonce[0:12])
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import secrets
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from imsdk_server.auth._errors import TokenFault, TokenInvalid

__all__ = [
    "Claims",
    "KeyRing",
    "RevocationSet",
    "TokenCodec",
    "TokenKey",
    "TokenVerifier",
    "decode_claims",
    "encode_claims",
]

_CLAIMS_FORMAT = 1
_HEAD = struct.Struct(">BQQ16s")
_NONCE = 24
_TAG = 16
_KEY_BYTES = 32
_MAX_ID = 64
_PERSON = b"imsdk-token-v2"
_KID = re.compile(r"[A-Za-z0-9_-]{1,16}\Z")
_MAX_TOKEN = 512
_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True, slots=True)
class Claims:
    """What a token says: who, on which device, from when to when, and its own id (for revocation)."""

    uid: str
    device: str
    issued_at: int
    """Unix seconds."""
    expires_at: int
    """Unix seconds; the token is valid strictly before this (plus leeway)."""
    token_id: bytes
    """16 random bytes naming this token in revocation lists."""


def encode_claims(claims: Claims) -> bytes:
    """The compact binary form: format byte, iat, exp, token id, then length-prefixed uid and device."""
    uid = claims.uid.encode("ascii")
    device = claims.device.encode("ascii")
    if not (1 <= len(uid) <= _MAX_ID and 1 <= len(device) <= _MAX_ID and len(claims.token_id) == 16):
        raise ValueError("claims out of range")
    head = _HEAD.pack(_CLAIMS_FORMAT, claims.issued_at, claims.expires_at, claims.token_id)
    return b"".join((head, bytes((len(uid),)), uid, bytes((len(device),)), device))


def decode_claims(data: bytes) -> Claims:
    """Parse :func:`encode_claims` output exactly; raises ``ValueError`` on anything else."""
    if len(data) < _HEAD.size + 4:
        raise ValueError("claims too short")
    fmt, iat, exp, tid = _HEAD.unpack_from(data)
    if fmt != _CLAIMS_FORMAT:
        raise ValueError("unknown claims format")
    pos = _HEAD.size
    ulen = data[pos]
    uid = data[pos + 1 : pos + 1 + ulen]
    pos += 1 + ulen
    if not 1 <= ulen <= _MAX_ID or len(uid) != ulen or pos >= len(data):
        raise ValueError("bad uid length")
    dlen = data[pos]
    device = data[pos + 1 : pos + 1 + dlen]
    if not 1 <= dlen <= _MAX_ID or len(device) != dlen or pos + 1 + dlen != len(data):
        raise ValueError("bad device length or trailing bytes")
    return Claims(uid.decode("ascii"), device.decode("ascii"), iat, exp, tid)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


@dataclass(frozen=True)
class TokenKey:
    """One key of a :class:`KeyRing`."""

    kid: str
    """Key id written into every token it makes: 1-16 of ``A-Z a-z 0-9 _ -``."""
    secret: bytes = field(repr=False)
    """32 random bytes."""
    created: float
    """Unix time the key was made; the newest active key signs."""
    retired: bool = False
    """Retired keys are known but every token under them is refused."""

    def __post_init__(self) -> None:
        if not _KID.match(self.kid):
            raise ValueError("a kid is 1-16 of A-Z a-z 0-9 _ -")
        if len(self.secret) != _KEY_BYTES:
            raise ValueError("a token key is 32 bytes")


class KeyRing:
    """The token keys of a deployment: the newest active key signs, the other active keys verify.

    Immutable: :meth:`rotate` and :meth:`retire` return a new ring. Stored as JSON (:meth:`save`,
    :meth:`load`).
    """

    def __init__(self, keys: Iterable[TokenKey]) -> None:
        self._keys: dict[str, TokenKey] = {}
        for key in keys:
            if key.kid in self._keys:
                raise ValueError(f"duplicate kid {key.kid!r}")
            self._keys[key.kid] = key
        active = [k for k in self._keys.values() if not k.retired]
        # The newest key signs; of keys made at the same time, the one added last.
        self._signing = max(reversed(active), key=lambda k: k.created) if active else None

    @classmethod
    def generate(cls, now: float) -> KeyRing:
        """A ring holding one fresh key."""
        return cls([cls._new_key(now)])

    @staticmethod
    def _new_key(now: float, kid: str | None = None) -> TokenKey:
        return TokenKey(kid or secrets.token_urlsafe(6), os.urandom(_KEY_BYTES), now)

    @property
    def keys(self) -> tuple[TokenKey, ...]:
        """Every key, retired ones included."""
        return tuple(self._keys.values())

    @property
    def signing_key(self) -> TokenKey:
        """The newest active key; raises ``LookupError`` when every key is retired."""
        if self._signing is None:
            raise LookupError("the key ring has no active key")
        return self._signing

    def get(self, kid: str) -> TokenKey | None:
        """The key with this id, retired or not; ``None`` if unknown."""
        return self._keys.get(kid)

    def rotate(self, now: float, kid: str | None = None) -> KeyRing:
        """A ring with one more key, made at ``now``, which becomes the signing key."""
        return KeyRing([*self._keys.values(), self._new_key(now, kid)])

    def retire(self, kid: str) -> KeyRing:
        """A ring in which ``kid`` is retired (its tokens are refused)."""
        if kid not in self._keys:
            raise KeyError(kid)
        return KeyRing(replace(k, retired=True) if k.kid == kid else k for k in self._keys.values())

    def without(self, kid: str) -> KeyRing:
        """A ring with ``kid`` dropped entirely (its tokens then fail as an unknown key)."""
        return KeyRing(k for k in self._keys.values() if k.kid != kid)

    def to_json(self) -> str:
        """The JSON text :meth:`from_json` reads."""
        keys = [
            {"kid": k.kid, "secret": _b64(k.secret), "created": k.created, "retired": k.retired}
            for k in self._keys.values()
        ]
        return json.dumps({"keys": keys}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> KeyRing:
        """Parse a ring; raises ``ValueError`` on anything malformed."""
        try:
            data = json.loads(text)
            entries: list[Mapping[str, Any]] = data["keys"]
            return cls(
                TokenKey(
                    str(e["kid"]),
                    _unb64(str(e["secret"])),
                    float(e["created"]),
                    bool(e.get("retired", False)),
                )
                for e in entries
            )
        except (KeyError, TypeError, json.JSONDecodeError, binascii.Error) as exc:
            raise ValueError(f"malformed key ring: {exc}") from exc

    def save(self, path: str | Path) -> None:
        """Write the ring to ``path`` atomically, readable by the owner only."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.to_json())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> KeyRing:
        """Read a ring written by :meth:`save`."""
        return cls.from_json(Path(path).read_text())


class RevocationSet:
    """Token ids refused until their own expiry. In memory, no I/O: a driver keeps it fresh."""

    __slots__ = ("_entries",)

    def __init__(self, entries: Mapping[bytes, float] | None = None) -> None:
        self._entries: dict[bytes, float] = dict(entries or {})

    def __contains__(self, token_id: object) -> bool:
        return token_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, token_id: bytes, expires_at: float) -> None:
        """Refuse ``token_id`` until ``expires_at``."""
        self._entries[token_id] = max(expires_at, self._entries.get(token_id, expires_at))

    def replace(self, entries: Mapping[bytes, float]) -> None:
        """Swap in the complete set loaded from the shared store (entries added locally since are kept)."""
        merged = dict(entries)
        for tid, exp in self._entries.items():
            if merged.get(tid, -1.0) < exp:
                merged[tid] = exp
        self._entries = merged

    def prune(self, now: float) -> None:
        """Forget ids whose tokens could no longer verify anyway."""
        self._entries = {t: e for t, e in self._entries.items() if e > now}


class _KeyState:
    __slots__ = ("hasher", "key", "retired")

    def __init__(self, key: TokenKey) -> None:
        self.key = key
        self.retired = key.retired
        self.hasher = hashlib.blake2b(key=key.secret, digest_size=32, person=_PERSON)


class _KeyCache:
    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring
        self.states = {k.kid: _KeyState(k) for k in ring.keys}


class TokenCodec:
    """Makes v2 tokens with the newest key of a :class:`KeyRing`."""

    def __init__(self, ring: KeyRing) -> None:
        self._cache = _KeyCache(ring)

    @property
    def ring(self) -> KeyRing:
        return self._cache.ring

    def use_ring(self, ring: KeyRing) -> None:
        """Switch to a rotated ring; tokens made from now on use its signing key."""
        self._cache = _KeyCache(ring)

    def issue(
        self,
        uid: str,
        device: str,
        *,
        now: float,
        lifetime: int,
        token_id: bytes | None = None,
        nonce: bytes | None = None,
    ) -> tuple[str, Claims]:
        """A token for ``uid`` on ``device`` valid from ``now`` for ``lifetime`` seconds, and its claims."""
        iat = int(now)
        claims = Claims(uid, device, iat, iat + lifetime, token_id or os.urandom(16))
        return self.encode(claims, nonce=nonce), claims

    def encode(self, claims: Claims, *, nonce: bytes | None = None) -> str:
        """Encrypt ``claims`` under the signing key (``nonce`` is random unless a test fixes it)."""
        state = self._cache.states[self._cache.ring.signing_key.kid]
        nonce = os.urandom(_NONCE) if nonce is None else nonce
        if len(nonce) != _NONCE:
            raise ValueError("nonce must be 24 bytes")
        header = f"v2.{state.key.kid}."
        sub = state.hasher.copy()
        sub.update(nonce[:12])
        sealed = ChaCha20Poly1305(sub.digest()).encrypt(
            nonce[12:], encode_claims(claims), header.encode("ascii")
        )
        return header + _b64(nonce + sealed)


class TokenVerifier:
    """Checks v2 tokens locally: pure, synchronous, no I/O; safe to call on an event loop's hot path.

    ``revoked`` is the in-memory :class:`RevocationSet` a driver keeps fresh (see
    :class:`~imsdk_server.auth.RevocationList`). ``leeway`` (seconds) absorbs clock skew between servers.
    """

    def __init__(self, ring: KeyRing, *, revoked: RevocationSet | None = None, leeway: int = 30) -> None:
        self._cache = _KeyCache(ring)
        self.revoked = revoked if revoked is not None else RevocationSet()
        self.leeway = leeway

    @property
    def ring(self) -> KeyRing:
        return self._cache.ring

    def use_ring(self, ring: KeyRing) -> None:
        """Switch to a rotated ring (new keys verify, retired keys are refused from now on)."""
        self._cache = _KeyCache(ring)

    def verify(self, token: str, now: float, *, uid: str | None = None, device: str | None = None) -> Claims:
        """The token's claims if it is valid at ``now`` (and names ``uid``/``device`` when given).

        Raises :class:`~imsdk_server.auth.TokenInvalid` whose ``fault`` says why it is not.
        """
        if not isinstance(token, str) or len(token) > _MAX_TOKEN or not token.startswith("v2."):
            raise TokenInvalid(TokenFault.MALFORMED)
        kid, sep, payload = token[3:].partition(".")
        if not sep:
            raise TokenInvalid(TokenFault.MALFORMED)
        state = self._cache.states.get(kid)
        if state is None:
            raise TokenInvalid(TokenFault.UNKNOWN_KEY)
        if state.retired:
            raise TokenInvalid(TokenFault.RETIRED_KEY)
        if not _B64_CHARS.issuperset(payload):
            raise TokenInvalid(TokenFault.MALFORMED)
        try:
            raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        except ValueError:
            raise TokenInvalid(TokenFault.MALFORMED) from None
        if len(raw) < _NONCE + _HEAD.size + 4 + _TAG or _b64(raw) != payload:
            raise TokenInvalid(TokenFault.MALFORMED)
        sub = state.hasher.copy()
        sub.update(raw[:12])
        try:
            plain = ChaCha20Poly1305(sub.digest()).decrypt(
                raw[12:_NONCE], raw[_NONCE:], f"v2.{kid}.".encode("ascii")
            )
        except InvalidTag:
            raise TokenInvalid(TokenFault.BAD_TAG) from None
        try:
            claims = decode_claims(plain)
        except (ValueError, UnicodeDecodeError):
            raise TokenInvalid(TokenFault.MALFORMED) from None
        return check_claims(claims, now, self.leeway, self.revoked, uid, device)


def check_claims(
    claims: Claims,
    now: float,
    leeway: int,
    revoked: RevocationSet,
    uid: str | None = None,
    device: str | None = None,
) -> Claims:
    """The checks shared by both token kinds once the claims are trusted: time window, revocation, subject."""
    if now >= claims.expires_at + leeway:
        raise TokenInvalid(TokenFault.EXPIRED)
    if now < claims.issued_at - leeway:
        raise TokenInvalid(TokenFault.NOT_YET_VALID)
    if claims.token_id in revoked:
        raise TokenInvalid(TokenFault.REVOKED)
    if (uid is not None and uid != claims.uid) or (device is not None and device != claims.device):
        raise TokenInvalid(TokenFault.WRONG_SUBJECT)
    return claims
