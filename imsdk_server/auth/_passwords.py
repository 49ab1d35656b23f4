"""Password hashing with scrypt, the parameters stored in each hash so they can be raised later."""

from __future__ import annotations

import base64
import hmac
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

__all__ = ["PasswordHasher", "ScryptParams"]

_SALT_BYTES = 16
_KEY_BYTES = 32


@dataclass(frozen=True)
class ScryptParams:
    """scrypt cost parameters. Memory is about ``128 * r * 2**log2_n`` bytes."""

    log2_n: int = 15
    """CPU/memory cost as a power of two (15: 32 MiB with r = 8)."""
    r: int = 8
    """Block size."""
    p: int = 1
    """Parallelism."""

    def __post_init__(self) -> None:
        if not (1 <= self.log2_n <= 20 and 1 <= self.r <= 32 and 1 <= self.p <= 16):
            raise ValueError(f"scrypt parameters out of range: {self}")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


class PasswordHasher:
    """Hash and verify passwords: ``scrypt$<log2 n>$<r>$<p>$<salt>$<key>``.

    :meth:`verify` compares in constant time and returns ``False`` (never raises) for a malformed stored hash;
    :meth:`verify_dummy` spends the same time for a uid that does not exist. All of it is CPU work: callers on
    an event loop run it on a worker thread.
    """

    def __init__(self, params: ScryptParams | None = None) -> None:
        self.params = params or ScryptParams()
        self._dummy = self.hash(_b64(os.urandom(18)))

    @staticmethod
    def _derive(password: str, salt: bytes, params: ScryptParams) -> bytes:
        kdf = Scrypt(salt=salt, length=_KEY_BYTES, n=2**params.log2_n, r=params.r, p=params.p)
        return kdf.derive(password.encode("utf-8", "surrogatepass"))

    def hash(self, password: str) -> str:
        """A fresh salted hash of ``password`` with the current parameters."""
        salt = os.urandom(_SALT_BYTES)
        key = self._derive(password, salt, self.params)
        p = self.params
        return f"scrypt${p.log2_n}${p.r}${p.p}${_b64(salt)}${_b64(key)}"

    @staticmethod
    def _parse(encoded: str) -> tuple[ScryptParams, bytes, bytes] | None:
        parts = encoded.split("$")
        if len(parts) != 6 or parts[0] != "scrypt":
            return None
        try:
            params = ScryptParams(int(parts[1]), int(parts[2]), int(parts[3]))
            salt, key = _unb64(parts[4]), _unb64(parts[5])
        except ValueError:
            return None
        if len(salt) < 8 or len(key) != _KEY_BYTES:
            return None
        return params, salt, key

    def verify(self, password: str, encoded: str) -> bool:
        """Whether ``password`` matches the stored hash ``encoded``."""
        parsed = self._parse(encoded)
        if parsed is None:
            self.verify_dummy(password)
            return False
        params, salt, key = parsed
        return hmac.compare_digest(self._derive(password, salt, params), key)

    def verify_dummy(self, password: str) -> bool:
        """Spend the time of a real verification against a hash nobody can match; always ``False``."""
        parsed = self._parse(self._dummy)
        assert parsed is not None
        params, salt, key = parsed
        hmac.compare_digest(self._derive(password, salt, params), key)
        return False

    def needs_rehash(self, encoded: str) -> bool:
        """Whether ``encoded`` was made with other parameters than the current ones (or is malformed)."""
        parsed = self._parse(encoded)
        return parsed is None or parsed[0] != self.params
