"""The sans-IO presence core: events and the current time in, store writes and notices out.

The core keeps, per device, its *actual* presence (what the access servers last said; queries and the store
see this) and its *published* presence (what subscribers were last told). The state tables below decide when
the published presence catches up with the actual one: at once, after a grace window, never (a quick
reconnect), or in one batch or one server-down notice when a whole access server fails.

Nothing here reads a clock, sleeps, or touches the network: every input takes ``now`` (seconds on a monotonic
clock), :meth:`PresenceCore.next_deadline` says when :meth:`PresenceCore.handle_timer` is due, and
:meth:`PresenceCore.pop_actions` hands the driver what to write and whom to tell. See ``docs/location.md``.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TypeAlias

from imsdk_server.location._config import LocationConfig
from imsdk_server.location._errors import InvalidPresenceEvent, PresenceStateError
from imsdk_server.metrics import Counter, Metrics

__all__ = [
    "ANY_NETWORK",
    "CHAT",
    "DEVICE_TRANSITIONS",
    "NETWORK_CLASSES",
    "SERVER_TRANSITIONS",
    "VOIP",
    "Action",
    "BatchNotice",
    "Deliver",
    "DeviceInput",
    "DeviceKey",
    "DeviceNotice",
    "DeviceOffline",
    "DeviceOnline",
    "DeviceState",
    "Effect",
    "Guard",
    "Network",
    "NetworkClass",
    "Notice",
    "NoticeKind",
    "Presence",
    "PresenceCore",
    "Rule",
    "ServerDownNotice",
    "ServerInput",
    "ServerState",
    "ServerStatus",
    "StorePut",
    "StoreRemove",
    "Subscription",
    "network_class",
]

DeviceKey: TypeAlias = tuple[str, str]
"""``(uid, device)``: one device of one user."""


# ------------------------------------------------------------------------------------------- networks


class _Enum(Enum):
    """An enum hashed by identity: members are singletons, and ``Enum.__hash__`` (a Python-level hash of the
    name) dominated the core's hot path, where states, inputs and networks key every table look-up."""

    __hash__ = object.__hash__


class Network(_Enum):
    """The network a device is connected over, as its client reports it."""

    WIFI = "wifi"
    G5 = "5g"
    G4 = "4g"
    G3 = "3g"
    G2 = "2g"
    NONE = "none"
    """Not reported (or no network); online only for subscribers accepting :attr:`NetworkClass.UNKNOWN`."""


class NetworkClass(_Enum):
    """Networks that are alike. A reconnect within one class is a *similar* network."""

    WIFI = "wifi"
    MOBILE = "mobile"
    SLOW = "slow"
    UNKNOWN = "unknown"


#: The one table of network similarity: quick reconnects and subscriber filters both read it.
NETWORK_CLASSES: Mapping[Network, NetworkClass] = {
    Network.WIFI: NetworkClass.WIFI,
    Network.G5: NetworkClass.MOBILE,
    Network.G4: NetworkClass.MOBILE,
    Network.G3: NetworkClass.MOBILE,
    Network.G2: NetworkClass.SLOW,
    Network.NONE: NetworkClass.UNKNOWN,
}

#: Every class: a chat subscriber counts a device online on any network.
CHAT: frozenset[NetworkClass] = frozenset(NetworkClass)
#: Same as :data:`CHAT`.
ANY_NETWORK: frozenset[NetworkClass] = CHAT
#: Networks good enough for calls: 2G (and an unreported network) do not count.
VOIP: frozenset[NetworkClass] = frozenset({NetworkClass.WIFI, NetworkClass.MOBILE})


def network_class(network: Network) -> NetworkClass:
    """The similarity class of a network."""
    return NETWORK_CLASSES[network]


# ------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class Presence:
    """Where one device is connected and how."""

    uid: str
    device: str
    server: int
    """The access-server id."""
    session: int
    """The access server's session id of this connection (0: unknown)."""
    network: Network
    platform: str = ""
    client_version: str = ""
    since: float = 0.0
    """Wall-clock seconds when this connection started (from the access server's event)."""

    @property
    def key(self) -> DeviceKey:
        return (self.uid, self.device)

    @property
    def network_class(self) -> NetworkClass:
        return NETWORK_CLASSES[self.network]


@dataclass(frozen=True, slots=True)
class DeviceOnline:
    """An access server says: this device's session started (or its network changed)."""

    uid: str
    device: str
    server: int
    session: int
    network: Network
    platform: str = ""
    client_version: str = ""
    at: float = 0.0
    """Wall-clock seconds of the event at the access server; becomes :attr:`Presence.since`."""

    def presence(self) -> Presence:
        return Presence(
            self.uid,
            self.device,
            self.server,
            self.session,
            self.network,
            self.platform,
            self.client_version,
            self.at,
        )


@dataclass(frozen=True, slots=True)
class DeviceOffline:
    """An access server says: this device's session ended."""

    uid: str
    device: str
    server: int
    session: int = 0
    """The session that ended; 0 matches any session on that server."""


class ServerStatus(_Enum):
    """The failure detector's verdict about an access server (same values as the links' ``Health``)."""

    ALIVE = "alive"
    SUSPECT = "suspect"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class Subscription:
    """What one business server wants to hear about."""

    subscriber: str
    uids: frozenset[str] | None = None
    """The users watched; ``None`` for every user."""
    classes: frozenset[NetworkClass] = CHAT
    """The network classes on which a device counts as available (e.g. :data:`VOIP`)."""
    network_changes: bool = False
    """Whether to hear ``NETWORK_CHANGED`` when an available device switches to another available class."""

    def __post_init__(self) -> None:
        if not self.subscriber:
            raise InvalidPresenceEvent("a subscription needs a subscriber id")
        if not self.classes:
            raise InvalidPresenceEvent("a subscription needs at least one network class")
        if self.uids is not None and not all(self.uids):
            raise InvalidPresenceEvent("a subscription's uids must not be empty strings")


# ------------------------------------------------------------------------------------------- outputs


class NoticeKind(_Enum):
    ONLINE = "online"
    OFFLINE = "offline"
    MOVED = "moved"
    NETWORK_CHANGED = "network_changed"
    SERVER_DOWN = "server_down"
    BATCH = "batch"


@dataclass(frozen=True, slots=True)
class DeviceNotice:
    """One device's availability changed for this subscriber."""

    kind: NoticeKind
    at: float
    uid: str
    device: str
    presence: Presence | None
    """The new presence (``None`` when the device is gone)."""
    previous: Presence | None
    """What the subscriber was last told."""
    reason: str = ""
    """For ``OFFLINE``: ``disconnected`` or ``network`` (its network is outside the subscriber's classes)."""


@dataclass(frozen=True, slots=True)
class ServerDownNotice:
    """An access server is down: every device of the subscriber's view that was there is offline."""

    at: float
    server: int
    devices: tuple[DeviceKey, ...]

    @property
    def kind(self) -> NoticeKind:
        return NoticeKind.SERVER_DOWN


@dataclass(frozen=True, slots=True)
class BatchNotice:
    """Many device notices of one step, delivered as one."""

    at: float
    reason: str
    """``release`` (a hold ended), ``recovery`` (users back after a server went down) or ``coalesced``."""
    items: tuple[DeviceNotice, ...]

    @property
    def kind(self) -> NoticeKind:
        return NoticeKind.BATCH


Notice: TypeAlias = DeviceNotice | ServerDownNotice | BatchNotice


@dataclass(frozen=True, slots=True)
class Deliver:
    """Give ``notice`` to subscriber ``subscriber``."""

    subscriber: str
    notice: Notice


@dataclass(frozen=True, slots=True)
class StorePut:
    """Write this device's presence to the store."""

    presence: Presence


@dataclass(frozen=True, slots=True)
class StoreRemove:
    """Remove this device from the store."""

    uid: str
    device: str


Action: TypeAlias = Deliver | StorePut | StoreRemove


# ------------------------------------------------------------------------------------------- state tables


class DeviceState(_Enum):
    ABSENT = "absent"
    ONLINE = "online"
    LINGERING = "lingering"
    HELD = "held"
    GONE = "gone"
    RECOVERING = "recovering"


class DeviceInput(_Enum):
    ONLINE = "online"
    """An online event for this device."""
    OFFLINE = "offline"
    """An offline event naming this device's current session."""
    GRACE_EXPIRED = "grace_expired"
    HOLD = "hold"
    """Its published server went on hold."""
    RELEASE = "release"
    """Its published server's hold ended without a down verdict."""
    DOWN = "down"
    """Its published server was declared down (its actual presence there already dropped)."""
    LOST = "lost"
    """Its actual server was declared down while it was published elsewhere (or nowhere)."""
    FLUSH = "flush"
    """The recovery batch it waits for is due."""
    RECOVERY_OVER = "recovery_over"


class Guard(_Enum):
    ALWAYS = "always"
    HOLDING = "holding"
    """The device's published server is on hold."""
    NOT_HOLDING = "not_holding"
    CONNECTED = "connected"
    """The device has an actual presence."""
    DISCONNECTED = "disconnected"


class Effect(_Enum):
    PUBLISH = "publish"
    """Publish the actual presence (subscribers derive their notices)."""
    PUBLISH_OFFLINE = "publish_offline"
    ARM_GRACE = "arm_grace"
    CANCEL_GRACE = "cancel_grace"
    CANCEL_GRACE_PUBLISH = "cancel_grace_publish"
    NONE = "none"
    SERVER_DOWN = "server_down"
    """Publish nothing per device: the device goes into its subscribers' server-down notices."""
    SERVER_DOWN_PUBLISH = "server_down_publish"
    """Into the server-down notices, then publish where it is now (batched ``ONLINE``)."""
    ARM_FLUSH = "arm_flush"
    UNQUEUE = "unqueue"
    """Leave the recovery batch it waited in."""
    FORGET = "forget"


@dataclass(frozen=True, slots=True)
class Rule:
    guard: Guard
    next: DeviceState
    effect: Effect


_S = DeviceState
_I = DeviceInput
_G = Guard
_E = Effect

#: ``(state, input) -> rules``; the first rule whose guard holds applies. Pairs not listed are illegal.
DEVICE_TRANSITIONS: Mapping[tuple[DeviceState, DeviceInput], tuple[Rule, ...]] = {
    (_S.ABSENT, _I.ONLINE): (Rule(_G.ALWAYS, _S.ONLINE, _E.PUBLISH),),
    (_S.ONLINE, _I.ONLINE): (
        Rule(_G.HOLDING, _S.HELD, _E.NONE),
        Rule(_G.ALWAYS, _S.ONLINE, _E.PUBLISH),
    ),
    (_S.ONLINE, _I.OFFLINE): (
        Rule(_G.HOLDING, _S.HELD, _E.NONE),
        Rule(_G.ALWAYS, _S.LINGERING, _E.ARM_GRACE),
    ),
    (_S.ONLINE, _I.HOLD): (Rule(_G.ALWAYS, _S.ONLINE, _E.NONE),),
    (_S.ONLINE, _I.DOWN): (Rule(_G.ALWAYS, _S.GONE, _E.SERVER_DOWN),),
    (_S.LINGERING, _I.ONLINE): (Rule(_G.ALWAYS, _S.ONLINE, _E.CANCEL_GRACE_PUBLISH),),
    (_S.LINGERING, _I.GRACE_EXPIRED): (Rule(_G.ALWAYS, _S.ABSENT, _E.PUBLISH_OFFLINE),),
    (_S.LINGERING, _I.HOLD): (Rule(_G.ALWAYS, _S.HELD, _E.CANCEL_GRACE),),
    (_S.LINGERING, _I.DOWN): (Rule(_G.ALWAYS, _S.GONE, _E.SERVER_DOWN),),
    (_S.HELD, _I.ONLINE): (Rule(_G.ALWAYS, _S.HELD, _E.NONE),),
    (_S.HELD, _I.OFFLINE): (Rule(_G.ALWAYS, _S.HELD, _E.NONE),),
    (_S.HELD, _I.HOLD): (Rule(_G.ALWAYS, _S.HELD, _E.NONE),),
    (_S.HELD, _I.RELEASE): (
        Rule(_G.CONNECTED, _S.ONLINE, _E.PUBLISH),
        Rule(_G.DISCONNECTED, _S.LINGERING, _E.ARM_GRACE),
    ),
    (_S.HELD, _I.DOWN): (
        Rule(_G.CONNECTED, _S.ONLINE, _E.SERVER_DOWN_PUBLISH),
        Rule(_G.DISCONNECTED, _S.GONE, _E.SERVER_DOWN),
    ),
    (_S.HELD, _I.LOST): (Rule(_G.ALWAYS, _S.HELD, _E.NONE),),
    (_S.GONE, _I.ONLINE): (Rule(_G.ALWAYS, _S.RECOVERING, _E.ARM_FLUSH),),
    (_S.GONE, _I.RECOVERY_OVER): (Rule(_G.ALWAYS, _S.ABSENT, _E.FORGET),),
    (_S.RECOVERING, _I.ONLINE): (Rule(_G.ALWAYS, _S.RECOVERING, _E.NONE),),
    (_S.RECOVERING, _I.OFFLINE): (Rule(_G.ALWAYS, _S.GONE, _E.UNQUEUE),),
    (_S.RECOVERING, _I.LOST): (Rule(_G.ALWAYS, _S.GONE, _E.UNQUEUE),),
    (_S.RECOVERING, _I.FLUSH): (Rule(_G.ALWAYS, _S.ONLINE, _E.PUBLISH),),
    (_S.RECOVERING, _I.RECOVERY_OVER): (Rule(_G.ALWAYS, _S.RECOVERING, _E.NONE),),
}


class ServerState(_Enum):
    NORMAL = "normal"
    HOLD = "hold"
    DOWN = "down"


class ServerInput(_Enum):
    ALIVE = "alive"
    SUSPECT = "suspect"
    DOWN = "down"
    BURST = "burst"
    HOLD_TIMEOUT = "hold_timeout"


class _ServerEffect(_Enum):
    NONE = "none"
    HOLD = "hold"
    EXTEND = "extend"
    RELEASE = "release"
    DOWN = "down"


_SS = ServerState
_SI = ServerInput
_SE = _ServerEffect

#: ``(server state, input) -> (next state, effect)``. Pairs not listed are illegal.
SERVER_TRANSITIONS: Mapping[tuple[ServerState, ServerInput], tuple[ServerState, _ServerEffect]] = {
    (_SS.NORMAL, _SI.ALIVE): (_SS.NORMAL, _SE.NONE),
    (_SS.NORMAL, _SI.SUSPECT): (_SS.HOLD, _SE.HOLD),
    (_SS.NORMAL, _SI.BURST): (_SS.HOLD, _SE.HOLD),
    (_SS.NORMAL, _SI.DOWN): (_SS.DOWN, _SE.DOWN),
    (_SS.HOLD, _SI.SUSPECT): (_SS.HOLD, _SE.EXTEND),
    (_SS.HOLD, _SI.BURST): (_SS.HOLD, _SE.EXTEND),
    (_SS.HOLD, _SI.ALIVE): (_SS.NORMAL, _SE.RELEASE),
    (_SS.HOLD, _SI.HOLD_TIMEOUT): (_SS.NORMAL, _SE.RELEASE),
    (_SS.HOLD, _SI.DOWN): (_SS.DOWN, _SE.DOWN),
    (_SS.DOWN, _SI.ALIVE): (_SS.NORMAL, _SE.NONE),
    (_SS.DOWN, _SI.SUSPECT): (_SS.DOWN, _SE.NONE),
    (_SS.DOWN, _SI.BURST): (_SS.DOWN, _SE.NONE),
    (_SS.DOWN, _SI.DOWN): (_SS.DOWN, _SE.DOWN),
}


# ------------------------------------------------------------------------------------------- records


class _Device:
    __slots__ = ("actual", "deadline", "key", "published", "recovery_server", "state")

    def __init__(self, key: DeviceKey) -> None:
        self.key = key
        self.state = DeviceState.ABSENT
        self.actual: Presence | None = None
        self.published: Presence | None = None
        self.deadline: float | None = None
        self.recovery_server: int | None = None


@dataclass
class _Server:
    state: ServerState = ServerState.NORMAL
    departures: deque[float] = field(default_factory=deque)
    hold_until: float | None = None
    recovery_until: float | None = None
    flush_at: float | None = None
    gone: set[DeviceKey] = field(default_factory=set)
    recovering: set[DeviceKey] = field(default_factory=set)


_GRACE, _HOLD, _FLUSH, _RECOVERY = "grace", "hold", "flush", "recovery"


# ------------------------------------------------------------------------------------------- the core


class PresenceCore:
    """Per-device presence, subscriptions and jitter recognition, driven by events and ``now``.

    Inputs: :meth:`device_online`, :meth:`device_offline`, :meth:`server_status`, :meth:`subscribe`,
    :meth:`unsubscribe`, :meth:`handle_timer`, :meth:`sync_server`, :meth:`restore`. Outputs:
    :meth:`pop_actions` (store writes in order, then deliveries) and :meth:`next_deadline`.
    """

    def __init__(self, config: LocationConfig | None = None, *, metrics: Metrics | None = None) -> None:
        self.config = config or LocationConfig()
        self._devices: dict[DeviceKey, _Device] = {}
        self._by_uid: dict[str, dict[str, _Device]] = {}
        self._by_actual: dict[int, set[DeviceKey]] = {}
        self._by_published: dict[int, set[DeviceKey]] = {}
        self._servers: dict[int, _Server] = {}
        self._subs_all: dict[str, Subscription] = {}
        self._subs_by_uid: dict[str, dict[str, Subscription]] = {}
        self._subs: dict[str, Subscription] = {}
        self._timers: list[tuple[float, int, str, object]] = []
        self._timer_seq = 0
        self._tombstones: dict[tuple[str, str, int, int], float] = {}
        self._tomb_order: deque[tuple[float, tuple[str, str, int, int]]] = deque()
        self._actions: list[Action] = []
        self._depth = 0
        self._now = 0.0
        self._step_reason = "coalesced"
        self._pending: dict[str, list[DeviceNotice]] = {}
        self._downs: dict[str, dict[int, list[DeviceKey]]] = {}
        self._connected = 0
        self._state_counts: dict[DeviceState, int] = dict.fromkeys(DeviceState, 0)
        self._down_server = 0

        m = (metrics if metrics is not None else Metrics()).child("location")
        self.metrics = m
        self._m_events: dict[str, Counter] = {
            k: m.counter("events", kind=k) for k in ("online", "offline", "status", "stale", "invalid")
        }
        self._m_notices: dict[NoticeKind, Counter] = {
            k: m.counter("notices", kind=k.value) for k in NoticeKind
        }
        self._m_suppressed: dict[str, Counter] = {
            k: m.counter("suppressed", reason=k) for k in ("quick_reconnect", "server_down", "held")
        }
        m.gauge("entries", fn=lambda: float(self._connected))
        m.gauge("held", fn=lambda: float(self._state_counts[DeviceState.HELD]))
        m.gauge("subscribers", fn=lambda: float(len(self._subs)))

    # --------------------------------------------------------------------------------- public: queries

    @property
    def connected_count(self) -> int:
        """Devices with an actual presence (what the store holds)."""
        return self._connected

    @property
    def held_count(self) -> int:
        """Devices whose news is held while their server is suspected."""
        return self._state_counts[DeviceState.HELD]

    def devices(self, uid: str) -> list[Presence]:
        """Every connected device of ``uid``, sorted by device id."""
        devs = self._by_uid.get(uid)
        if not devs:
            return []
        return [d.actual for _, d in sorted(devs.items()) if d.actual is not None]

    def devices_many(self, uids: Iterable[str]) -> dict[str, list[Presence]]:
        """:meth:`devices` for many users; every uid asked for is a key."""
        return {uid: self.devices(uid) for uid in uids}

    def is_online(self, uid: str, classes: frozenset[NetworkClass] = CHAT) -> bool:
        """Whether any device of ``uid`` is connected on a network of ``classes``."""
        return any(p.network_class in classes for p in self.devices(uid))

    def device_state(self, uid: str, device: str) -> DeviceState:
        dev = self._devices.get((uid, device))
        return DeviceState.ABSENT if dev is None else dev.state

    def server_state(self, server: int) -> ServerState:
        srv = self._servers.get(server)
        return ServerState.NORMAL if srv is None else srv.state

    def snapshot(self) -> Iterator[Presence]:
        """Every actual presence: what the store should hold."""
        for dev in self._devices.values():
            if dev.actual is not None:
                yield dev.actual

    def server_devices(self, server: int) -> list[Presence]:
        """The devices the core believes are connected to ``server``."""
        return [p for k in self._by_actual.get(server, ()) if (p := self._devices[k].actual) is not None]

    def subscriptions(self) -> list[Subscription]:
        return list(self._subs.values())

    # --------------------------------------------------------------------------------- public: outputs

    def pop_actions(self) -> list[Action]:
        """The store writes and deliveries produced so far, in order; the list is then empty."""
        out, self._actions = self._actions, []
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must be called next; ``None`` when nothing waits."""
        timers = self._timers
        while timers:
            when, _, kind, ref = timers[0]
            if self._timer_valid(when, kind, ref):
                return when
            heapq.heappop(timers)
        return None

    # --------------------------------------------------------------------------------- public: inputs

    def subscribe(self, subscription: Subscription) -> None:
        """Add (or replace) a subscription. It hears changes from now on; it should query for the present."""
        self.unsubscribe(subscription.subscriber)
        sid = subscription.subscriber
        self._subs[sid] = subscription
        if subscription.uids is None:
            self._subs_all[sid] = subscription
        else:
            for uid in subscription.uids:
                self._subs_by_uid.setdefault(uid, {})[sid] = subscription

    def unsubscribe(self, subscriber: str) -> None:
        """Remove a subscription (unknown ids are fine)."""
        old = self._subs.pop(subscriber, None)
        if old is None:
            return
        if old.uids is None:
            del self._subs_all[subscriber]
        else:
            for uid in old.uids:
                subs = self._subs_by_uid.get(uid)
                if subs is not None:
                    subs.pop(subscriber, None)
                    if not subs:
                        del self._subs_by_uid[uid]
        self._pending.pop(subscriber, None)
        self._downs.pop(subscriber, None)

    def device_online(self, event: DeviceOnline, now: float) -> None:
        """A device's session started on an access server (or its network changed)."""
        try:
            _validate_online(event)
        except InvalidPresenceEvent:
            self._m_events["invalid"].inc()
            raise
        self._m_events["online"].inc()
        self._begin(now)
        try:
            self._purge_tombstones(now)
            if event.session and (event.uid, event.device, event.server, event.session) in self._tombstones:
                self._m_events["stale"].inc()
                return
            self._online(event.presence(), now)
        finally:
            self._end()

    def device_offline(self, event: DeviceOffline, now: float) -> None:
        """A device's session ended. Stale events (another session, another server) are ignored."""
        try:
            _validate_offline(event)
        except InvalidPresenceEvent:
            self._m_events["invalid"].inc()
            raise
        self._m_events["offline"].inc()
        self._begin(now)
        try:
            self._purge_tombstones(now)
            self._offline(event, now)
        finally:
            self._end()

    def server_status(self, server: int, status: ServerStatus, now: float) -> None:
        """The failure detector's verdict about an access server."""
        if not isinstance(status, ServerStatus):
            self._m_events["invalid"].inc()
            raise InvalidPresenceEvent(f"not a server status: {status!r}")
        self._m_events["status"].inc()
        self._begin(now)
        try:
            self._server_input(server, ServerInput(status.value), now)
        finally:
            self._end()

    def handle_timer(self, now: float) -> None:
        """Run everything due at or before ``now``: grace windows, holds, recovery batches."""
        self._begin(now)
        try:
            timers = self._timers
            while timers and timers[0][0] <= now:
                when, _, kind, ref = heapq.heappop(timers)
                if not self._timer_valid(when, kind, ref):
                    continue
                if kind == _GRACE:
                    assert isinstance(ref, tuple)
                    dev = self._devices[ref]
                    dev.deadline = None
                    self._apply(dev, DeviceInput.GRACE_EXPIRED)
                elif kind == _HOLD:
                    assert isinstance(ref, int)
                    self._server_input(ref, ServerInput.HOLD_TIMEOUT, now)
                elif kind == _FLUSH:
                    assert isinstance(ref, int)
                    self._flush(ref)
                else:
                    assert isinstance(ref, int)
                    self._recovery_over(ref)
            self._purge_tombstones(now)
        finally:
            self._end()

    def sync_server(self, server: int, online: Iterable[DeviceOnline], now: float) -> None:
        """An access server's full list of connected devices replaces what the core believes about it.

        Devices the core has there but the list lacks are taken as offline; listed ones as online. Use it to
        rebuild presence after the location server lost its memory and its store.
        """
        events = list(online)
        for ev in events:
            _validate_online(ev)
            if ev.server != server:
                raise InvalidPresenceEvent(f"sync of server {server} lists a device on server {ev.server}")
        self._begin(now, "coalesced")
        try:
            listed = {(ev.uid, ev.device, ev.session) for ev in events}
            for p in self.server_devices(server):
                if (p.uid, p.device, p.session) not in listed:
                    self._offline(DeviceOffline(p.uid, p.device, p.server, p.session), now)
            for ev in events:
                self._online(ev.presence(), now)
        finally:
            self._end()

    def restore(self, presences: Iterable[Presence], now: float) -> None:
        """Load presence from the store after a restart: settled, published, with no notices and no writes."""
        for p in presences:
            key = p.key
            if key in self._devices:
                continue
            dev = self._new_device(key)
            self._set_actual(dev, p, write=False)
            self._set_published(dev, p)
            self._set_state(dev, DeviceState.ONLINE)

    # --------------------------------------------------------------------------------- steps

    def _begin(self, now: float, reason: str | None = None) -> None:
        if self._depth == 0:
            self._now = now
            self._step_reason = reason or "coalesced"
        elif reason is not None:
            self._step_reason = reason
        self._depth += 1

    def _end(self) -> None:
        self._depth -= 1
        if self._depth:
            return
        if not self._downs and not self._pending:
            return
        now = self._now
        downs, pending = self._downs, self._pending
        self._downs, self._pending = {}, {}
        # Subscribers in subscription order; for each, server-down notices first, then one device notice
        # or one batch.
        for sid in self._subs:
            for server, keys in downs.get(sid, {}).items():
                self._emit(sid, ServerDownNotice(now, server, tuple(keys)))
            items = pending.get(sid)
            if items and len(items) == 1:
                self._emit(sid, items[0])
            elif items:
                self._emit(sid, BatchNotice(now, self._step_reason, tuple(items)))

    def _emit(self, subscriber: str, notice: Notice) -> None:
        self._m_notices[notice.kind].inc()
        self._actions.append(Deliver(subscriber, notice))

    # --------------------------------------------------------------------------------- device events

    def _online(self, p: Presence, now: float) -> None:
        key = p.key
        dev = self._devices.get(key)
        if dev is None:
            dev = self._new_device(key)
        old = dev.actual
        if old is not None and old.server != p.server:
            self._departure(old.server, now)
        quick = dev.state is DeviceState.LINGERING
        self._set_actual(dev, p, write=old != p)
        before = dev.published
        self._apply(dev, DeviceInput.ONLINE)
        if quick and dev.state is DeviceState.ONLINE and before is not None and _silent(before, p):
            self._m_suppressed["quick_reconnect"].inc()

    def _offline(self, ev: DeviceOffline, now: float) -> None:
        dev = self._devices.get((ev.uid, ev.device))
        actual = dev.actual if dev is not None else None
        if actual is None or actual.server != ev.server or (ev.session and actual.session != ev.session):
            self._m_events["stale"].inc()
            if ev.session and (actual is None or actual.session != ev.session):
                tomb = (ev.uid, ev.device, ev.server, ev.session)
                if tomb not in self._tombstones:
                    expiry = now + self.config.tombstone_ttl
                    self._tombstones[tomb] = expiry
                    self._tomb_order.append((expiry, tomb))
            return
        assert dev is not None
        self._departure(actual.server, now)
        self._set_actual(dev, None, write=True)
        self._apply(dev, DeviceInput.OFFLINE)

    def _purge_tombstones(self, now: float) -> None:
        order = self._tomb_order
        while order and order[0][0] <= now:
            _, tomb = order.popleft()
            self._tombstones.pop(tomb, None)

    # --------------------------------------------------------------------------------- the device table

    def _apply(self, dev: _Device, inp: DeviceInput) -> None:
        rules = DEVICE_TRANSITIONS.get((dev.state, inp))
        if rules is None:
            raise PresenceStateError(f"device {dev.key}: no transition for ({dev.state.name}, {inp.name})")
        for rule in rules:
            if self._guard(dev, rule.guard):
                break
        else:  # pragma: no cover - every rule list ends with a guard that covers the rest
            raise PresenceStateError(f"device {dev.key}: no guard holds for ({dev.state.name}, {inp.name})")
        self._set_state(dev, rule.next)
        self._effect(dev, rule.effect)
        if dev.state is DeviceState.ABSENT and self._devices.get(dev.key) is dev:
            self._drop_device(dev)

    def _guard(self, dev: _Device, guard: Guard) -> bool:
        if guard is Guard.ALWAYS:
            return True
        if guard is Guard.CONNECTED:
            return dev.actual is not None
        if guard is Guard.DISCONNECTED:
            return dev.actual is None
        pub = dev.published
        holding = pub is not None and self.server_state(pub.server) is ServerState.HOLD
        return holding if guard is Guard.HOLDING else not holding

    def _effect(self, dev: _Device, effect: Effect) -> None:
        now = self._now
        if effect is Effect.NONE:
            return
        if effect is Effect.PUBLISH:
            if self._publish(dev, dev.actual) == 0 and self._step_reason == "release":
                self._m_suppressed["held"].inc()
        elif effect is Effect.PUBLISH_OFFLINE:
            self._publish(dev, None)
        elif effect is Effect.ARM_GRACE:
            dev.deadline = now + self.config.grace
            self._arm(dev.deadline, _GRACE, dev.key)
        elif effect is Effect.CANCEL_GRACE:
            dev.deadline = None
        elif effect is Effect.CANCEL_GRACE_PUBLISH:
            dev.deadline = None
            self._publish(dev, dev.actual)
        elif effect is Effect.SERVER_DOWN:
            self._publish_down(dev)
            self._mark_gone(dev)
        elif effect is Effect.SERVER_DOWN_PUBLISH:
            self._publish_down(dev)
            self._publish(dev, dev.actual)
        elif effect is Effect.ARM_FLUSH:
            srv = self._server(self._recovery_server(dev))
            srv.gone.discard(dev.key)
            srv.recovering.add(dev.key)
            if srv.flush_at is None:
                srv.flush_at = now + self.config.batch_interval
                self._arm(srv.flush_at, _FLUSH, self._recovery_server(dev))
        elif effect is Effect.UNQUEUE:
            srv = self._server(self._recovery_server(dev))
            srv.recovering.discard(dev.key)
            if srv.recovery_until is None:
                # Its server's recovery window is over: nothing remembers it any more.
                self._apply(dev, DeviceInput.RECOVERY_OVER)
            else:
                srv.gone.add(dev.key)
        elif effect is Effect.FORGET:
            pass
        else:  # pragma: no cover
            raise PresenceStateError(f"unknown effect {effect}")

    def _recovery_server(self, dev: _Device) -> int:
        if dev.recovery_server is None:
            raise PresenceStateError(f"device {dev.key} is recovering without a server")
        return dev.recovery_server

    def _mark_gone(self, dev: _Device) -> None:
        # The server whose recovery window remembers this device is the one that went down.
        server = self._down_server
        dev.recovery_server = server
        self._server(server).gone.add(dev.key)

    # --------------------------------------------------------------------------------- publishing

    def _subscribers_of(self, uid: str) -> Iterator[Subscription]:
        yield from self._subs_all.values()
        subs = self._subs_by_uid.get(uid)
        if subs:
            yield from subs.values()

    def _publish(self, dev: _Device, new: Presence | None) -> int:
        """Publish ``new`` as the device's presence; returns how many notices it made."""
        old = dev.published
        self._set_published(dev, new)
        if old == new:
            return 0
        made = 0
        now = self._now
        for sub in self._subscribers_of(dev.key[0]):
            notice = _derive(sub, old, new, now, dev.key)
            if notice is not None:
                self._pending.setdefault(sub.subscriber, []).append(notice)
                made += 1
        return made

    def _publish_down(self, dev: _Device) -> None:
        """The device's published server is down: it joins each watching subscriber's server-down notice."""
        old = dev.published
        self._set_published(dev, None)
        if old is None:
            return
        cls = old.network_class
        for sub in self._subscribers_of(dev.key[0]):
            if cls in sub.classes:
                self._downs.setdefault(sub.subscriber, {}).setdefault(old.server, []).append(dev.key)
                self._m_suppressed["server_down"].inc()

    # --------------------------------------------------------------------------------- servers

    def _server(self, server: int) -> _Server:
        srv = self._servers.get(server)
        if srv is None:
            srv = self._servers[server] = _Server()
        return srv

    def _departure(self, server: int, now: float) -> None:
        srv = self._server(server)
        window = srv.departures
        window.append(now)
        horizon = now - self.config.burst_window
        while window and window[0] <= horizon:
            window.popleft()
        if len(window) >= self.config.burst_threshold:
            self._server_input(server, ServerInput.BURST, now)

    def _server_input(self, server: int, inp: ServerInput, now: float) -> None:
        srv = self._server(server)
        entry = SERVER_TRANSITIONS.get((srv.state, inp))
        if entry is None:
            raise PresenceStateError(f"server {server}: no transition for ({srv.state.name}, {inp.name})")
        srv.state, effect = entry
        if effect is _ServerEffect.NONE:
            if srv.state is not ServerState.HOLD:
                srv.hold_until = None
            return
        if effect in (_ServerEffect.HOLD, _ServerEffect.EXTEND):
            srv.hold_until = now + self.config.hold_timeout
            self._arm(srv.hold_until, _HOLD, server)
            if effect is _ServerEffect.HOLD:
                for key in list(self._by_published.get(server, ())):
                    dev = self._devices[key]
                    if dev.state is DeviceState.LINGERING:
                        self._apply(dev, DeviceInput.HOLD)
            return
        srv.hold_until = None
        if effect is _ServerEffect.RELEASE:
            self._begin(now, "release")
            try:
                for key in sorted(self._by_published.get(server, ())):
                    dev = self._devices[key]
                    if dev.state is DeviceState.HELD:
                        self._apply(dev, DeviceInput.RELEASE)
            finally:
                self._end()
            return
        self._down(server, srv, now)

    def _down(self, server: int, srv: _Server, now: float) -> None:
        self._begin(now, "recovery")
        try:
            srv.departures.clear()
            self._down_server = server
            srv.recovery_until = now + self.config.recovery_window
            self._arm(srv.recovery_until, _RECOVERY, server)
            # Whatever claims to be connected there is stale: the detector says the server is gone.
            for key in sorted(self._by_actual.get(server, ())):
                dev = self._devices[key]
                self._set_actual(dev, None, write=True)
                pub = dev.published
                if pub is None or pub.server != server:
                    if dev.state in (DeviceState.RECOVERING, DeviceState.HELD):
                        self._apply(dev, DeviceInput.LOST)
                    else:  # pragma: no cover - ONLINE/LINGERING are published where they are
                        raise PresenceStateError(f"device {key} in {dev.state.name} lost its server")
            for key in sorted(self._by_published.get(server, ())):
                dev = self._devices[key]
                self._apply(dev, DeviceInput.DOWN)
        finally:
            self._end()

    def _flush(self, server: int) -> None:
        srv = self._server(server)
        srv.flush_at = None
        keys = sorted(srv.recovering)
        srv.recovering.clear()
        self._begin(self._now, "recovery")
        try:
            for key in keys:
                dev = self._devices[key]
                dev.recovery_server = None
                self._apply(dev, DeviceInput.FLUSH)
        finally:
            self._end()

    def _recovery_over(self, server: int) -> None:
        srv = self._server(server)
        srv.recovery_until = None
        keys = list(srv.gone)
        srv.gone.clear()
        for key in keys:
            dev = self._devices.get(key)
            if dev is not None and dev.state is DeviceState.GONE:
                self._apply(dev, DeviceInput.RECOVERY_OVER)

    # --------------------------------------------------------------------------------- timers

    def _arm(self, when: float, kind: str, ref: object) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (when, self._timer_seq, kind, ref))

    def _timer_valid(self, when: float, kind: str, ref: object) -> bool:
        if kind == _GRACE:
            dev = self._devices.get(ref) if isinstance(ref, tuple) else None
            return dev is not None and dev.state is DeviceState.LINGERING and dev.deadline == when
        srv = self._servers.get(ref) if isinstance(ref, int) else None
        if srv is None:
            return False
        if kind == _HOLD:
            return srv.state is ServerState.HOLD and srv.hold_until == when
        if kind == _FLUSH:
            return srv.flush_at == when
        return srv.recovery_until == when

    # --------------------------------------------------------------------------------- bookkeeping

    def _new_device(self, key: DeviceKey) -> _Device:
        dev = _Device(key)
        self._devices[key] = dev
        self._by_uid.setdefault(key[0], {})[key[1]] = dev
        self._state_counts[DeviceState.ABSENT] += 1
        return dev

    def _drop_device(self, dev: _Device) -> None:
        key = dev.key
        if dev.actual is not None or dev.published is not None:  # pragma: no cover - table invariant
            raise PresenceStateError(f"device {key} dropped while still known")
        del self._devices[key]
        devs = self._by_uid[key[0]]
        del devs[key[1]]
        if not devs:
            del self._by_uid[key[0]]
        self._state_counts[DeviceState.ABSENT] -= 1

    def _set_state(self, dev: _Device, state: DeviceState) -> None:
        self._state_counts[dev.state] -= 1
        self._state_counts[state] += 1
        dev.state = state

    def _set_actual(self, dev: _Device, p: Presence | None, *, write: bool) -> None:
        old = dev.actual
        if old is not None:
            _unindex(self._by_actual, old.server, dev.key)
            self._connected -= 1
        if p is not None:
            self._by_actual.setdefault(p.server, set()).add(dev.key)
            self._connected += 1
        dev.actual = p
        if write:
            if p is not None:
                self._actions.append(StorePut(p))
            elif old is not None:
                self._actions.append(StoreRemove(dev.key[0], dev.key[1]))

    def _set_published(self, dev: _Device, p: Presence | None) -> None:
        old = dev.published
        if old is not None:
            _unindex(self._by_published, old.server, dev.key)
        if p is not None:
            self._by_published.setdefault(p.server, set()).add(dev.key)
        dev.published = p


def _unindex(index: dict[int, set[DeviceKey]], server: int, key: DeviceKey) -> None:
    keys = index.get(server)
    if keys is not None:
        keys.discard(key)
        if not keys:
            del index[server]


def _silent(old: Presence, new: Presence) -> bool:
    """Same server, similar network: nobody is told."""
    return old.server == new.server and old.network_class is new.network_class


def _derive(
    sub: Subscription, old: Presence | None, new: Presence | None, now: float, key: DeviceKey
) -> DeviceNotice | None:
    """The notice one subscriber gets when a device's published presence goes from ``old`` to ``new``."""
    classes = sub.classes
    was = old is not None and old.network_class in classes
    now_av = new is not None and new.network_class in classes
    uid, device = key
    if now_av and not was:
        return DeviceNotice(NoticeKind.ONLINE, now, uid, device, new, old)
    if was and not now_av:
        reason = "disconnected" if new is None else "network"
        return DeviceNotice(NoticeKind.OFFLINE, now, uid, device, new, old, reason)
    if was and now_av:
        assert old is not None
        assert new is not None
        if old.server != new.server:
            return DeviceNotice(NoticeKind.MOVED, now, uid, device, new, old)
        if old.network_class is not new.network_class and sub.network_changes:
            return DeviceNotice(NoticeKind.NETWORK_CHANGED, now, uid, device, new, old)
    return None


_MAX_ID = 256


def _validate_ids(uid: object, device: object, server: object) -> None:
    if not isinstance(uid, str) or not uid or len(uid) > _MAX_ID:
        raise InvalidPresenceEvent(f"bad uid {uid!r}")
    if not isinstance(device, str) or not device or len(device) > _MAX_ID:
        raise InvalidPresenceEvent(f"bad device id {device!r}")
    if not isinstance(server, int) or isinstance(server, bool) or server < 0:
        raise InvalidPresenceEvent(f"bad access-server id {server!r}")


def _validate_online(ev: DeviceOnline) -> None:
    _validate_ids(ev.uid, ev.device, ev.server)
    if not isinstance(ev.network, Network):
        raise InvalidPresenceEvent(f"bad network {ev.network!r}")
    if not isinstance(ev.session, int) or ev.session < 0:
        raise InvalidPresenceEvent(f"bad session {ev.session!r}")


def _validate_offline(ev: DeviceOffline) -> None:
    _validate_ids(ev.uid, ev.device, ev.server)
    if not isinstance(ev.session, int) or ev.session < 0:
        raise InvalidPresenceEvent(f"bad session {ev.session!r}")
