"""Events the auth server publishes: profile and friend changes (pushed to online users), logins, logouts."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from imsdk_server.metrics import Metrics

__all__ = [
    "AuthEvent",
    "AuthEvents",
    "FriendAdded",
    "FriendRemoved",
    "Profile",
    "ProfileChanged",
    "Subscriber",
    "UserLoggedIn",
    "UserLoggedOut",
]

log = logging.getLogger("imsdk_server.auth")


@dataclass(frozen=True)
class Profile:
    """A user's public profile."""

    uid: str
    nickname: str
    signature: str
    avatar: str
    """A media reference (e.g. an upload id or URL), not the image itself."""
    updated_at: float


@dataclass(frozen=True)
class ProfileChanged:
    """A user changed their profile; ``friends`` are the uids to tell (their friends at that moment)."""

    profile: Profile
    friends: tuple[str, ...]


@dataclass(frozen=True)
class FriendAdded:
    """``uid`` befriended ``friend`` (friendship is mutual: both users are to be told)."""

    uid: str
    friend: str
    at: float


@dataclass(frozen=True)
class FriendRemoved:
    """``uid`` ended the friendship with ``friend`` (both users are to be told)."""

    uid: str
    friend: str
    at: float


@dataclass(frozen=True)
class UserLoggedIn:
    """A login succeeded; the client's self-description rides along for presence and access choice."""

    uid: str
    device: str
    platform: str
    client_version: str
    region: str
    isp: str
    token_kind: str
    at: float


@dataclass(frozen=True)
class UserLoggedOut:
    """A token was revoked by its holder."""

    uid: str
    device: str
    at: float


AuthEvent = ProfileChanged | FriendAdded | FriendRemoved | UserLoggedIn | UserLoggedOut
Subscriber = Callable[[AuthEvent], Awaitable[None]]


class AuthEvents:
    """A broadcast of :data:`AuthEvent` to async subscriber callbacks, in subscription order.

    A subscriber that raises is logged and counted; the others still get the event and the request that caused
    it still succeeds.
    """

    def __init__(self, metrics: Metrics | None = None) -> None:
        self._subscribers: list[Subscriber] = []
        metrics = metrics or Metrics()
        self._m_errors = metrics.counter("event_errors")
        self._m_published = metrics.counter("events_published")

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Add ``callback``; returns a function that removes it again."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    async def publish(self, event: AuthEvent) -> None:
        """Hand ``event`` to every subscriber."""
        self._m_published.inc()
        for callback in list(self._subscribers):
            try:
                await callback(event)
            except Exception:
                self._m_errors.inc()
                log.exception("auth event subscriber failed on %s", type(event).__name__)
