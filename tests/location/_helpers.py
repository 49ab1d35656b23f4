"""Scenario runner for the presence core on virtual time, and a compact notation for notices."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from imsdk_server.location import (
    BatchNotice,
    Deliver,
    DeviceNotice,
    DeviceOffline,
    DeviceOnline,
    Network,
    Notice,
    NoticeKind,
    PresenceCore,
    ServerDownNotice,
    ServerStatus,
    StorePut,
    StoreRemove,
    Subscription,
)


def on(uid: str, server: int, net: str = "4g", session: int = 1, device: str = "d") -> DeviceOnline:
    return DeviceOnline(uid, device, server, session, Network(net), "android", "1.0", 1000.0)


def off(uid: str, server: int, session: int = 1, device: str = "d") -> DeviceOffline:
    return DeviceOffline(uid, device, server, session)


@dataclass(frozen=True)
class Status:
    server: int
    status: ServerStatus


def suspect(server: int) -> Status:
    return Status(server, ServerStatus.SUSPECT)


def alive(server: int) -> Status:
    return Status(server, ServerStatus.ALIVE)


def down(server: int) -> Status:
    return Status(server, ServerStatus.DOWN)


Input = DeviceOnline | DeviceOffline | Status | Subscription


def fmt_device(n: DeviceNotice) -> str:
    who = f"{n.uid}" if n.device == "d" else f"{n.uid}/{n.device}"
    if n.kind is NoticeKind.MOVED:
        assert n.previous is not None
        assert n.presence is not None
        return f"moved {who} {n.previous.server}->{n.presence.server}"
    if n.kind is NoticeKind.NETWORK_CHANGED:
        assert n.previous is not None
        assert n.presence is not None
        return f"network {who} {n.previous.network.value}->{n.presence.network.value}"
    if n.kind is NoticeKind.OFFLINE:
        return f"offline {who} {n.reason}"
    assert n.presence is not None
    return f"online {who} @{n.presence.server}"


def fmt(notice: Notice, limit: int = 8) -> str:
    """One line per notice: easy to compare in a table."""
    if isinstance(notice, ServerDownNotice):
        if len(notice.devices) > limit:
            return f"server_down {notice.server} x{len(notice.devices)}"
        return f"server_down {notice.server} [{','.join(u for u, _ in notice.devices)}]"
    if isinstance(notice, BatchNotice):
        if len(notice.items) > limit:
            kinds = sorted({i.kind.value for i in notice.items})
            return f"batch {notice.reason} x{len(notice.items)} {'/'.join(kinds)}"
        return f"batch {notice.reason} [{'; '.join(fmt_device(i) for i in notice.items)}]"
    return fmt_device(notice)


@dataclass
class Run:
    """What a scenario produced: ``(time, subscriber, notice line)`` and the raw deliveries."""

    heard: list[tuple[float, str, str]]
    deliveries: list[tuple[float, Deliver]]
    store: dict[tuple[str, str], object]


def feed(core: PresenceCore, t: float, item: Input) -> None:
    if isinstance(item, DeviceOnline):
        core.device_online(item, t)
    elif isinstance(item, DeviceOffline):
        core.device_offline(item, t)
    elif isinstance(item, Status):
        core.server_status(item.server, item.status, t)
    else:
        core.subscribe(item)


def run(
    core: PresenceCore,
    steps: Sequence[tuple[float, Input]] | Iterable[tuple[float, Input]],
    until: float = 1e9,
    store: dict[tuple[str, str], object] | None = None,
) -> Run:
    """Feed timed inputs; fire every timer exactly at its deadline in between; stop at ``until``."""
    result = Run([], [], {} if store is None else store)

    def collect(t: float) -> None:
        for action in core.pop_actions():
            if isinstance(action, Deliver):
                result.deliveries.append((t, action))
                result.heard.append((t, action.subscriber, fmt(action.notice)))
            elif isinstance(action, StorePut):
                result.store[action.presence.key] = action.presence
            elif isinstance(action, StoreRemove):
                result.store.pop((action.uid, action.device), None)

    def timers_until(t: float) -> None:
        while (d := core.next_deadline()) is not None and d <= t:
            core.handle_timer(d)
            collect(d)

    for t, item in steps:
        timers_until(t)
        feed(core, t, item)
        collect(t)
    timers_until(until)
    return result


def heard_by(r: Run, subscriber: str) -> list[tuple[float, str]]:
    return [(t, line) for t, s, line in r.heard if s == subscriber]
