"""Configuration of the notification server: one dataclass, a docstring per field."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

__all__ = ["NotifyConfig", "Policy"]


class Policy(Enum):
    """What happens to a notification whose receiver is offline."""

    DROP = "drop"
    """Discardable: pushed to online devices, dropped when there are none."""
    KEEP_LATEST = "keep_latest"
    """Stored: only the latest per ``(uid, type, merge_key)`` is kept, delivered at the next login."""


@dataclass(frozen=True)
class NotifyConfig:
    """How one notification server behaves (see ``docs/notifications.md``)."""

    node_id: int = 0
    """0-255, the low byte of every ``notify_id`` this server assigns; give each server of a deployment its
    own so that two servers never assign the same id in the same millisecond."""

    policies: dict[str, Policy] = field(default_factory=dict)
    """The policy of each notification type (``{"friend_request": Policy.KEEP_LATEST}``); types not listed
    get :attr:`default_policy`. A notification's own ``store`` field, when set, overrides both. Values may
    also be given as the strings ``"drop"`` and ``"keep_latest"`` (as in a TOML file)."""

    default_policy: Policy = Policy.DROP
    """The policy of types not listed in :attr:`policies`."""

    max_type_chars: int = 64
    """The longest notification ``type`` accepted (it must not be empty)."""

    max_merge_key_chars: int = 128
    """The longest ``merge_key`` accepted (empty means one notification per user and type)."""

    max_payload_bytes: int = 4096
    """The largest ``payload`` accepted, in bytes; notifications are small by design (frames stay small)."""

    max_ack_ids: int = 256
    """The most ``notify_ids`` one client ``NOTIFY/ACK`` may name."""

    login_page: int = 200
    """Stored notifications read per page when a device comes online."""

    login_workers: int = 16
    """The most login deliveries reading the store at once; more online notices wait their turn (a mass
    reconnect must not open a store read per device at the same moment)."""

    tombstone_ttl: float = 7 * 24 * 3600.0
    """Seconds an acknowledged notification's key and version are kept, so that a stale write arriving
    after the ack cannot bring an old notification back."""

    purge_interval: float = 3600.0
    """Seconds between purges of tombstones older than :attr:`tombstone_ttl`."""

    subscriber_id: str = "notify"
    """The name under which the service subscribes to the location service's online/offline notices."""

    session_group: str = "notify-sessions"
    """The queue consumer group in which the service reads the access servers' own online and offline
    events (every new session gets its login delivery from them, also the quick reconnects the location
    service stays silent about). Servers sharing a group split the events; give each server a group of its
    own for each to know every session. Empty: do not read them (login delivery then follows the location
    notices only)."""

    online_topic: str = "presence.online"
    """Queue topic the access servers publish online events on."""

    offline_topic: str = "presence.offline"
    """Queue topic the access servers publish offline events on."""

    ended_session_ttl: float = 600.0
    """Seconds a session that ended is remembered: a late online event or notice of it (the two topics are
    not ordered) is then ignored, and it is never taken for a live session to push to."""

    queue_retry_interval: float = 1.0
    """Seconds between attempts to read a queue that failed."""

    def __post_init__(self) -> None:
        if not 0 <= self.node_id <= 255:
            raise ValueError("node_id must be 0..255")
        policies: dict[str, Policy] = {}
        for kind, policy in dict(self.policies).items():
            if not isinstance(kind, str) or not kind:
                raise ValueError("policy table keys must be non-empty type names")
            try:
                policies[kind] = policy if isinstance(policy, Policy) else Policy(policy)
            except ValueError:
                raise ValueError(f"unknown policy {policy!r} for type {kind!r}") from None
        object.__setattr__(self, "policies", policies)
        if not isinstance(self.default_policy, Policy):
            object.__setattr__(self, "default_policy", Policy(self.default_policy))
        for name in ("max_type_chars", "max_payload_bytes", "max_ack_ids", "login_page", "login_workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_merge_key_chars < 0:
            raise ValueError("max_merge_key_chars must not be negative")
        if self.tombstone_ttl < 0 or self.purge_interval <= 0:
            raise ValueError("tombstone_ttl must be >= 0 and purge_interval > 0")
        if not self.subscriber_id:
            raise ValueError("subscriber_id must not be empty")
        if not self.online_topic or not self.offline_topic:
            raise ValueError("online_topic and offline_topic must not be empty")
        if self.ended_session_ttl < 0 or self.queue_retry_interval <= 0:
            raise ValueError("ended_session_ttl must be >= 0 and queue_retry_interval > 0")

    def policy_of(self, kind: str) -> Policy:
        """The configured policy of notification type ``kind``."""
        return self.policies.get(kind, self.default_policy)
