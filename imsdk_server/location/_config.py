"""Configuration of the location server: one dataclass, a docstring per field."""

from __future__ import annotations

from dataclasses import dataclass

from imsdk_server.location._errors import InvalidPresenceEvent

__all__ = ["LocationConfig"]


@dataclass(frozen=True)
class LocationConfig:
    """Timing rules, jitter thresholds and wiring of one location server (see ``docs/location.md``)."""

    server_id: str = "location-1"
    """This location server's name: its queue consumer group and (by default) its store's key prefix."""

    grace: float = 5.0
    """Seconds an offline notice waits for a reconnect before it is published."""

    burst_threshold: int = 200
    """Departures from one access server within ``burst_window`` that put the server on hold."""

    burst_window: float = 2.0
    """The sliding window, in seconds, over which departures are counted. At most ``grace``."""

    hold_timeout: float = 30.0
    """Seconds after its last trigger (``SUSPECT`` or a burst) a hold with no verdict is released."""

    recovery_window: float = 60.0
    """Seconds after a ``DOWN`` verdict during which the returns of that server's users are batched."""

    batch_interval: float = 1.0
    """Seconds a recovery batch collects returns before it is published."""

    tombstone_ttl: float = 60.0
    """Seconds an offline event for a session not (yet) seen blocks a late online event of that session."""

    subscriber_buffer: int = 1024
    """Notices buffered per subscriber; a subscriber that lets more pile up is dropped with an overflow."""

    store_check_interval: float = 5.0
    """Seconds between checks that the store still holds our data (a flushed Redis is rewritten)."""

    store_retry_interval: float = 1.0
    """Seconds between attempts to write to a store that failed."""

    online_topic: str = "presence.online"
    """Queue topic the access servers publish online events on."""

    offline_topic: str = "presence.offline"
    """Queue topic the access servers publish offline events on."""

    redis_prefix: str = ""
    """Key prefix of the Redis store; empty means ``imsdk:location:<server_id>:`` (one store per server)."""

    def __post_init__(self) -> None:
        positive = {
            "grace": self.grace,
            "burst_window": self.burst_window,
            "hold_timeout": self.hold_timeout,
            "recovery_window": self.recovery_window,
            "batch_interval": self.batch_interval,
            "tombstone_ttl": self.tombstone_ttl,
            "store_check_interval": self.store_check_interval,
            "store_retry_interval": self.store_retry_interval,
        }
        for name, value in positive.items():
            if not value > 0:
                raise InvalidPresenceEvent(f"LocationConfig.{name} must be positive, not {value!r}")
        if self.burst_threshold < 2:
            raise InvalidPresenceEvent("LocationConfig.burst_threshold must be at least 2")
        if self.burst_window > self.grace:
            raise InvalidPresenceEvent("LocationConfig.burst_window must not exceed grace")
        if self.subscriber_buffer < 1:
            raise InvalidPresenceEvent("LocationConfig.subscriber_buffer must be at least 1")
        if not self.server_id:
            raise InvalidPresenceEvent("LocationConfig.server_id must not be empty")

    @property
    def store_prefix(self) -> str:
        """The Redis key prefix actually used."""
        return self.redis_prefix or f"imsdk:location:{self.server_id}:"
