"""The router's configuration: one dataclass, a docstring per field."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RouterConfig"]


@dataclass(frozen=True)
class RouterConfig:
    """How one message router behaves. Only :attr:`server_id` has no default."""

    server_id: int
    """This router's message-server id: sessions stick to it, and a frame stamped with another id (or none)
    is answered with ``WRONG_MESSAGE_SERVER`` carrying this one. Must be 1..2**32-1."""

    max_body_bytes: int = 16 * 1024
    """The largest chat body accepted, in bytes; larger ones get ``PAYLOAD_TOO_LARGE``."""

    max_text_chars: int = 4000
    """The longest text (and image caption, location label) accepted, in characters."""

    max_inflight_per_sender: int = 256
    """Messages of one sender session that may wait for presence or the store at once; beyond it the
    sender gets ``RATE_LIMITED``."""

    presence_timeout: float = 5.0
    """Seconds to wait for a presence answer before the sender gets ``BACKEND_TIMEOUT``."""

    pending_page: int = 1000
    """Stored messages read from the store per page during a login catch-up."""

    batch_max_messages: int = 200
    """The most messages in one ``SYNC/BATCH`` frame."""

    batch_max_bytes: int = 48 * 1024
    """The most body bytes in one ``SYNC/BATCH`` frame (keep it below the access servers' frame limit)."""

    max_pull: int = 500
    """The most messages one ``SYNC/PULL`` of a range returns (a pull's own ``limit`` may ask for fewer)."""

    instant_dedup_entries: int = 10_000
    """How many recent instant-class message keys the router remembers to drop resends."""

    def __post_init__(self) -> None:
        if not 0 < self.server_id <= 0xFFFF_FFFF:
            raise ValueError("server_id must be in 1..2**32-1")
        for name in (
            "max_body_bytes",
            "max_text_chars",
            "max_inflight_per_sender",
            "pending_page",
            "batch_max_messages",
            "batch_max_bytes",
            "max_pull",
            "instant_dedup_entries",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.presence_timeout <= 0:
            raise ValueError("presence_timeout must be positive")
