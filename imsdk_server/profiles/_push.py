"""Profile and friend changes pushed at once to every online device of the users who should hear them.

The auth service publishes :class:`~imsdk_server.auth.ProfileChanged` (the new profile and the user's friends
at that moment). :class:`ProfilePush` takes such events off the auth service's request path (a bounded queue),
asks presence which of those friends' devices are online, and hands one ``PROFILE/UPDATED`` frame per device
to a :class:`Downstream` — all devices of one change concurrently. Friend changes (``PROFILE/FRIEND_EVENT``)
go the same way to the devices of both users. Offline users are not queued for: they read profiles when
they next log in. See ``docs/profiles.md``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from imsdk_proto import FrameDecoder, Header, encode_raw
from imsdk_proto.codes import Biz, Codec, ProfileFunc
from imsdk_proto.messages import FriendEvent, FriendEventKind, MediaRef, ProfileUpdated
from imsdk_proto.messages import Profile as WireProfile
from imsdk_server.auth import AuthEvent, AuthEvents, Profile, ProfileChanged
from imsdk_server.links import LinkHub
from imsdk_server.location import LocationService, Presence
from imsdk_server.metrics import Metrics

__all__ = [
    "ACCESS_ROLE",
    "Downstream",
    "FriendChanged",
    "LinkDownstream",
    "LocalPresence",
    "PresenceLookup",
    "ProfilePush",
    "ProfilePushConfig",
    "friend_event_body",
    "profile_updated_body",
    "wire_profile",
]

log = logging.getLogger("imsdk_server.profiles")

ACCESS_ROLE = 1
"""``ServerRole.SERVER_ROLE_ACCESS``: the role of the peers :class:`LinkDownstream` sends to."""

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_V2 = Codec.PROTOBUF


# ------------------------------------------------------------------------------------------- interfaces


@runtime_checkable
class Downstream(Protocol):
    """Where pushed frames go: the access server ``access_id`` delivers ``frame`` (a whole v2 frame whose
    header names ``uid`` and ``device`` as its receiver) to that device. Raises when it cannot."""

    async def send(self, access_id: int, uid: str, device: str, frame: bytes) -> None: ...


@runtime_checkable
class PresenceLookup(Protocol):
    """Which devices of these users are online: :class:`~imsdk_server.location.PresenceClient` (over a
    link) fits, and :class:`LocalPresence` wraps an in-process location service."""

    async def query(self, uids: Iterable[str]) -> Mapping[str, Sequence[Presence]]: ...


class LocalPresence:
    """A :class:`PresenceLookup` on a :class:`~imsdk_server.location.LocationService` in this process."""

    def __init__(self, service: LocationService) -> None:
        self.service = service

    async def query(self, uids: Iterable[str]) -> Mapping[str, Sequence[Presence]]:
        return self.service.devices_many(uids)


class LinkDownstream:
    """A :class:`Downstream` over a :class:`~imsdk_server.links.LinkHub`: each frame goes on the link to the
    access server ``access_id`` (``LinkNotReady``/``LinkClosed`` when there is none that takes traffic)."""

    def __init__(self, hub: LinkHub, *, role: int = ACCESS_ROLE) -> None:
        self.hub = hub
        self.role = role

    async def send(self, access_id: int, uid: str, device: str, frame: bytes) -> None:
        decoder = FrameDecoder(max(len(frame), 64), codec=_V2)
        decoder.feed(frame)
        parsed = decoder.next_frame()
        if parsed is None:
            raise ValueError("not a whole frame")
        await self.hub.send_to(self.role, access_id, parsed)


# ------------------------------------------------------------------------------------------- frames (no I/O)


def wire_profile(profile: Profile) -> WireProfile:
    """The auth service's profile as the wire's ``Profile``.

    ``version`` and ``updated_at_ms`` are the update time in milliseconds, so a client keeps the newest of
    two pushes. An avatar that is a media id (the hex SHA-256 of an upload) travels as a ``MediaRef``; any
    other avatar reference is left out of the push (the client reads it with the profile over HTTP).
    """
    ms = round(profile.updated_at * 1000)
    m = WireProfile(
        uid=profile.uid,
        nickname=profile.nickname,
        signature=profile.signature,
        version=max(ms, 0),
        updated_at_ms=ms,
    )
    avatar = profile.avatar.lower()
    if _SHA256_HEX.fullmatch(avatar):
        m.avatar.CopyFrom(MediaRef(sha256=bytes.fromhex(avatar)))
    return m


def profile_updated_body(profile: Profile) -> bytes:
    """The encoded ``ProfileUpdated`` body (v2), made once per change and shared by every device's frame."""
    return ProfileUpdated(profile=wire_profile(profile)).SerializeToString()


def friend_event_body(kind: Literal["added", "removed"], uid: str, friend: str, at: float) -> bytes:
    """The encoded ``FriendEvent`` body (v2)."""
    wire_kind = (
        FriendEventKind.FRIEND_EVENT_KIND_ADDED
        if kind == "added"
        else FriendEventKind.FRIEND_EVENT_KIND_REMOVED
    )
    return FriendEvent(
        kind=wire_kind, uid=uid, friend_uid=friend, time_ms=round(at * 1000)
    ).SerializeToString()


def _frame(func: int, sender: str, uid: str, device: str, body: bytes) -> bytes:
    header = Header(Biz.PROFILE, func, sender_uid=sender, receiver_uid=uid, receiver_device=device)
    return encode_raw(header, body, _V2)


# ------------------------------------------------------------------------------------------- the service


@dataclass(frozen=True)
class FriendChanged:
    """``uid`` and ``friend`` became friends (``added``) or stopped being friends (``removed``)."""

    kind: Literal["added", "removed"]
    uid: str
    friend: str
    at: float


@dataclass(frozen=True)
class ProfilePushConfig:
    """Limits of the push service (one docstring per field)."""

    queue_size: int = 4096
    """Changes waiting to be pushed; when full, a new change is dropped and counted (the friends see it on
    their next profile read) rather than slowing the auth service's requests down."""

    max_parallel_sends: int = 256
    """Frames handed to the downstream at the same time (one change reaches all its devices at once)."""

    send_timeout: float = 5.0
    """Seconds one frame may take to hand over; a slower access server is counted as a failed send."""

    def __post_init__(self) -> None:
        if self.queue_size < 1 or self.max_parallel_sends < 1 or not self.send_timeout > 0:
            raise ValueError(
                "ProfilePushConfig needs a positive queue_size, max_parallel_sends and send_timeout"
            )


_Change = ProfileChanged | FriendChanged


class ProfilePush:
    """Pushes profile and friend changes to online devices. Run :meth:`run` in a task group; feed it with
    :meth:`attach` (the auth service's events) and :meth:`friend_changed`."""

    def __init__(
        self,
        presence: PresenceLookup,
        downstream: Downstream,
        *,
        config: ProfilePushConfig | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.presence = presence
        self.downstream = downstream
        self.config = config or ProfilePushConfig()
        m = (metrics if metrics is not None else Metrics()).child("profiles")
        self.metrics = m
        send, receive = anyio.create_memory_object_stream[_Change](self.config.queue_size)
        self._send: MemoryObjectSendStream[_Change] = send
        self._receive: MemoryObjectReceiveStream[_Change] = receive
        self._limiter = anyio.CapacityLimiter(self.config.max_parallel_sends)
        self._m_changes = {k: m.counter("changes", kind=k) for k in ("profile", "friend")}
        self._m_dropped = m.counter("changes_dropped")
        self._m_frames = m.counter("frames_sent")
        self._m_failed = m.counter("send_errors")
        self._m_presence_errors = m.counter("presence_errors")
        self._m_offline = m.counter("recipients_offline")
        self._m_latency = m.histogram("push_seconds")
        self._m_queue = m.gauge(
            "queue_depth", fn=lambda: float(self._receive.statistics().current_buffer_used)
        )

    # -- inputs ----------------------------------------------------------------------------------------------

    def attach(self, events: AuthEvents) -> Callable[[], None]:
        """Subscribe to the auth service's events; returns the function that detaches again."""
        return events.subscribe(self.on_auth_event)

    async def on_auth_event(self, event: AuthEvent) -> None:
        """An auth-service subscriber: queue profile changes (never waits; other events are ignored)."""
        if isinstance(event, ProfileChanged):
            self._offer(event)

    def friend_changed(self, kind: Literal["added", "removed"], uid: str, friend: str, at: float) -> None:
        """Queue a friend change: both users' online devices get a ``FRIEND_EVENT``."""
        self._offer(FriendChanged(kind, uid, friend, at))

    def _offer(self, change: _Change) -> None:
        try:
            self._send.send_nowait(change)
        except anyio.WouldBlock:
            self._m_dropped.inc()
            log.warning("profile push queue full: dropped a %s", type(change).__name__)

    # -- running ---------------------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Push queued changes one after another (so a friend never sees two changes reordered)."""
        task_status.started()
        async for change in self._receive:
            try:
                if isinstance(change, ProfileChanged):
                    await self.push_profile(change)
                else:
                    await self.push_friend_change(change)
            except Exception:
                log.exception("profile push failed for %r", change)

    async def push_profile(self, change: ProfileChanged) -> int:
        """Push one profile change to every online device of the friends it names; returns frames sent."""
        self._m_changes["profile"].inc()
        profile = change.profile
        body = profile_updated_body(profile)
        return await self._push(
            change.friends, lambda uid, device: _frame(ProfileFunc.UPDATED, profile.uid, uid, device, body)
        )

    async def push_friend_change(self, change: FriendChanged) -> int:
        """Push one friend change to every online device of both users; returns frames sent."""
        self._m_changes["friend"].inc()
        body = friend_event_body(change.kind, change.uid, change.friend, change.at)
        return await self._push(
            (change.uid, change.friend),
            lambda uid, device: _frame(ProfileFunc.FRIEND_EVENT, change.uid, uid, device, body),
        )

    async def _push(self, uids: Iterable[str], make: Callable[[str, str], bytes]) -> int:
        started = anyio.current_time()
        wanted = list(dict.fromkeys(uids))
        if not wanted:
            return 0
        try:
            online = await self.presence.query(wanted)
        except Exception as exc:
            # Presence is unreachable: nobody is told now; everyone reads the profile on their next read.
            self._m_presence_errors.inc()
            log.warning("profile push: presence look-up failed: %r", exc)
            return 0
        targets = [(p.server, p.uid, p.device) for uid in wanted for p in online.get(uid, ())]
        self._m_offline.inc(sum(1 for uid in wanted if not online.get(uid)))
        sent = 0

        async def one(server: int, uid: str, device: str) -> None:
            nonlocal sent
            async with self._limiter:
                try:
                    with anyio.fail_after(self.config.send_timeout):
                        await self.downstream.send(server, uid, device, make(uid, device))
                except Exception as exc:
                    self._m_failed.inc()
                    log.info("profile push to %s/%s at access server %d failed: %r", uid, device, server, exc)
                    return
            sent += 1
            self._m_frames.inc()

        async with anyio.create_task_group() as tg:
            for target in targets:
                tg.start_soon(one, *target)
        self._m_latency.observe(anyio.current_time() - started)
        return sent

    async def aclose(self) -> None:
        """Stop taking changes; :meth:`run` returns once the queued ones are pushed."""
        self._send.close()
