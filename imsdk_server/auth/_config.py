"""Configuration of the auth server: one dataclass, a docstring per field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["AuthConfig"]


@dataclass
class AuthConfig:
    """Everything ``imsdk serve auth`` and :func:`~imsdk_server.auth.serve_auth` need."""

    host: str = "127.0.0.1"
    """Address the HTTP server listens on."""
    port: int = 8080
    """TCP port the HTTP server listens on (0: any free port, reported when started)."""
    data_dir: Path | None = None
    """Directory for the embedded SQLite database (``auth.sqlite3``) and the key ring (``auth-keys.json``).
    ``None`` keeps everything in memory (a fresh key ring per start; tests and demos only)."""
    database: str | None = None
    """Overrides the user store: a SQLite file path, ``":memory:"`` or ``mysql://user:password@host:port/db``."""
    redis_url: str | None = None
    """Redis for v1 tokens and the v2 revocation set (shared by every auth and access server);
    ``None`` uses an in-process cache, which only one auth server can use."""
    redis_prefix: str = "imsdk:"
    """Prefix of every Redis key this server writes."""
    token_kind: Literal["v1", "v2"] = "v2"
    """Which tokens login issues: ``"v1"`` opaque (checked by the verify API) or ``"v2"`` encrypted (checked
    locally by access servers). Both kinds are always accepted."""
    key_file: Path | None = None
    """The v2 key ring (JSON); default ``<data_dir>/auth-keys.json``, created with one key when missing."""
    token_lifetime: int = 86_400
    """Seconds a token is valid after it is issued."""
    leeway: int = 30
    """Seconds of clock skew tolerated at both ends of a token's validity."""
    uid_failure_limit: int = 5
    """Failed logins allowed per uid in one throttle window before it answers 429."""
    address_failure_limit: int = 50
    """Failed logins allowed per client address in one throttle window."""
    register_limit: int = 20
    """Registrations allowed per client address in one throttle window."""
    throttle_window: float = 300.0
    """Length of a throttle window, in seconds."""
    scrypt_log2_n: int = 15
    """scrypt cost (power of two) for new password hashes; stored per hash, so it can be raised later."""
    scrypt_r: int = 8
    """scrypt block size for new password hashes."""
    scrypt_p: int = 1
    """scrypt parallelism for new password hashes."""
    kdf_threads: int = 2
    """Worker threads that may run password hashing at once."""
    max_body_bytes: int = 16_384
    """Largest request body accepted; larger ones get 413 without being read."""
    max_friends: int = 1_000
    """Largest friend list."""
    revocation_refresh: float = 1.0
    """Seconds between reloads of the shared v2 revocation set."""

    def database_location(self) -> str:
        """Where the user store lives, from :attr:`database` or :attr:`data_dir`."""
        if self.database is not None:
            return self.database
        if self.data_dir is not None:
            return str(Path(self.data_dir) / "auth.sqlite3")
        return ":memory:"

    def key_file_path(self) -> Path | None:
        """Where the key ring lives, or ``None`` for an in-memory ring."""
        if self.key_file is not None:
            return Path(self.key_file)
        if self.data_dir is not None:
            return Path(self.data_dir) / "auth-keys.json"
        return None
