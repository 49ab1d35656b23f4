"""Scripted scenarios on virtual time: exact notices, to exact subscribers, at exact times."""

from __future__ import annotations

import pytest

from imsdk_server.location import (
    VOIP,
    Deliver,
    DeviceState,
    InvalidPresenceEvent,
    LocationConfig,
    PresenceCore,
    ServerState,
    Subscription,
)
from imsdk_server.metrics import Metrics

from ._helpers import Input, alive, down, fmt, off, on, run, suspect

CONFIG = LocationConfig(
    grace=5.0,
    burst_threshold=3,
    burst_window=2.0,
    hold_timeout=30.0,
    recovery_window=60.0,
    batch_interval=1.0,
)

CHAT = Subscription("chat")
VOIP_SUB = Subscription("voip", classes=VOIP, network_changes=True)
BOB = Subscription("bob", uids=frozenset({"bob"}))
ZED = Subscription("zed", uids=frozenset({"z"}))

Steps = list[tuple[float, Input]]
Heard = list[tuple[float, str, str]]

SCENARIOS: list[tuple[str, Steps, Heard]] = [
    (
        "the documented timeline",
        [
            (0, CHAT),
            (0, VOIP_SUB),
            (0, on("alice", 7, "4g", 1)),
            (10, off("alice", 7, 1)),
            (12, on("alice", 7, "3g", 2)),  # quick reconnect, same server, similar network
            (20, off("alice", 7, 2)),
            (21, on("alice", 7, "2g", 3)),  # back, but on 2G
            (30, on("alice", 7, "4g", 3)),  # network switch reported on the same session
            (40, off("alice", 7, 3)),
            (42, on("alice", 9, "4g", 4)),  # back on another server
            (50, off("alice", 9, 4)),
        ],
        [
            (0, "chat", "online alice @7"),
            (0, "voip", "online alice @7"),
            (21, "voip", "offline alice network"),
            (30, "voip", "online alice @7"),
            (42, "chat", "moved alice 7->9"),
            (42, "voip", "moved alice 7->9"),
            (55, "chat", "offline alice disconnected"),
            (55, "voip", "offline alice disconnected"),
        ],
    ),
    (
        "dissimilar networks on one server",
        [
            (0, on("alice", 1, "wifi", 1)),
            (0, CHAT),
            (0, VOIP_SUB),
            (0, BOB),
            (5, on("alice", 1, "4g", 1)),
            (6, off("alice", 1, 1)),
            (8, on("alice", 1, "wifi", 2)),
            (9, off("alice", 1, 2)),
            (10, on("alice", 1, "none", 3)),
        ],
        [
            (5, "voip", "network alice wifi->4g"),
            (8, "voip", "network alice 4g->wifi"),
            (10, "voip", "offline alice network"),
        ],
    ),
    (
        "uid filter, direct move, stale offline, offline before online",
        [
            (0, CHAT),
            (0, BOB),
            (0, on("bob", 1, "4g", 1)),
            (1, on("bob", 2, "4g", 2)),  # turns up elsewhere before server 1 noticed
            (2, off("bob", 1, 1)),  # server 1 notices: stale, bob is on 2 now
            (3, off("carol", 1, 5)),  # the offline event overtook its online event
            (3.5, on("carol", 1, "4g", 5)),  # ... which must not leave a ghost
            (4, on("carol", 1, "4g", 6)),
        ],
        [
            (0, "chat", "online bob @1"),
            (0, "bob", "online bob @1"),
            (1, "chat", "moved bob 1->2"),
            (1, "bob", "moved bob 1->2"),
            (4, "chat", "online carol @1"),
        ],
    ),
    (
        "grace windows ending together coalesce",
        [
            (0, on("a", 1)),
            (0, on("b", 2)),
            (0, CHAT),
            (1, off("a", 1)),
            (1, off("b", 2)),
        ],
        [(6, "chat", "batch coalesced [offline a disconnected; offline b disconnected]")],
    ),
    (
        "suspect, then alive: jitter",
        [
            (0, on("a", 1)),
            (0, on("b", 1)),
            (0, on("c", 1)),
            (0, on("e", 1)),
            (0, CHAT),
            (0, VOIP_SUB),
            (10, suspect(1)),
            (11, off("a", 1)),
            (11, off("b", 1)),
            (11, off("c", 1)),
            (11, off("e", 1)),
            (12, on("a", 1, "3g", 2)),  # same server, similar network
            (12, on("b", 1, "wifi", 2)),  # same server, another class
            (12, on("c", 2, "4g", 2)),  # another server
            (15, alive(1)),  # e is still gone: a fresh grace window starts now
        ],
        [
            (15, "chat", "moved c 1->2"),
            (15, "voip", "batch release [network b 4g->wifi; moved c 1->2]"),
            (20, "chat", "offline e disconnected"),
            (20, "voip", "offline e disconnected"),
        ],
    ),
    (
        "suspect, then down: one notice per subscriber, filtered; then recovery batches",
        [
            (0, on("a", 1, "4g")),
            (0, on("b", 1, "2g")),
            (0, on("bob", 1, "wifi")),
            (0, on("z", 2, "4g")),
            (0, CHAT),
            (0, VOIP_SUB),
            (0, BOB),
            (0, ZED),
            (10, suspect(1)),
            (11, on("a", 3, "4g", 2)),  # already elsewhere when the verdict comes
            (13, down(1)),
            (13.2, on("bob", 2, "wifi", 2)),
            (13.5, on("b", 2, "2g", 2)),
            (20, on("a", 3, "3g", 2)),
        ],
        [
            (13, "chat", "server_down 1 [a,b,bob]"),
            (13, "chat", "online a @3"),
            (13, "voip", "server_down 1 [a,bob]"),
            (13, "voip", "online a @3"),
            (13, "bob", "server_down 1 [bob]"),
            (14.2, "chat", "batch recovery [online b @2; online bob @2]"),
            (14.2, "voip", "online bob @2"),
            (14.2, "bob", "online bob @2"),
        ],
    ),
    (
        "a burst without a verdict holds until the hold times out",
        [
            (0, on("a", 1)),
            (0, on("b", 1)),
            (0, on("c", 1)),
            (0, on("e", 1)),
            (0, CHAT),
            (5, off("a", 1)),
            (5.5, off("b", 1)),
            (6, off("c", 1)),  # third departure within 2 s: server 1 is on hold
            (6.5, off("e", 1)),  # the hold now ends at 36.5
            (12, on("a", 1, "4g", 2)),  # back after their grace would have ended
            (12, on("b", 1, "3g", 2)),
            (12, on("c", 1, "5g", 2)),
        ],
        [(41.5, "chat", "offline e disconnected")],
    ),
    (
        "late news after down: online events from the dead server are accepted, repeated down cleans",
        [
            (0, on("a", 1)),
            (0, CHAT),
            (1, down(1)),
            (3, on("a", 1, "4g", 2)),  # server 1 is back before the detector says so
            (4.5, alive(1)),
            (10, down(1)),
        ],
        [
            (1, "chat", "server_down 1 [a]"),
            (4, "chat", "online a @1"),
            (10, "chat", "server_down 1 [a]"),
        ],
    ),
]


@pytest.mark.parametrize(
    ("steps", "expected"), [(s, e) for _, s, e in SCENARIOS], ids=[n for n, _, _ in SCENARIOS]
)
def test_scenario(steps: Steps, expected: Heard) -> None:
    core = PresenceCore(CONFIG)
    result = run(core, steps)
    assert result.heard == expected
    assert core.next_deadline() is None
    # The store mirrors the actual presence exactly.
    assert result.store == {p.key: p for p in core.snapshot()}


def test_queries_answer_the_truth_while_the_notice_waits() -> None:
    core = PresenceCore(CONFIG)
    run(
        core, [(0, on("alice", 1, "4g", 1, "phone")), (0, on("alice", 2, "2g", 1, "pad")), (1, CHAT)], until=1
    )
    assert [p.device for p in core.devices("alice")] == ["pad", "phone"]
    assert core.is_online("alice")
    assert core.is_online("alice", VOIP)
    core.device_offline(off("alice", 1, 1, "phone"), 2)
    assert core.pop_actions()[0].__class__.__name__ == "StoreRemove"
    assert [p.device for p in core.devices("alice")] == ["pad"]
    assert core.is_online("alice")
    assert not core.is_online("alice", VOIP)
    assert core.device_state("alice", "phone") is DeviceState.LINGERING
    assert core.devices_many(["alice", "nobody"]) == {"alice": core.devices("alice"), "nobody": []}
    assert core.next_deadline() == 7


def test_hold_timeout_and_server_states() -> None:
    core = PresenceCore(CONFIG)
    run(core, [(0, on("a", 1)), (1, suspect(1))], until=1)
    assert core.server_state(1) is ServerState.HOLD
    assert core.next_deadline() == 31
    core.server_status(1, suspect(1).status, 5)  # a second suspicion extends the hold
    assert core.next_deadline() == 35
    core.handle_timer(35)
    assert core.server_state(1) is ServerState.NORMAL
    assert core.next_deadline() is None


def test_metrics_count_what_happened() -> None:
    metrics = Metrics()
    core = PresenceCore(CONFIG, metrics=metrics)
    run(
        core,
        [
            (0, CHAT),
            (0, on("a", 1)),
            (0, on("b", 1)),
            (1, off("a", 1)),
            (2, on("a", 1, "3g", 2)),  # quick reconnect: suppressed
            (3, off("zzz", 1, 9)),  # stale
            (4, suspect(1)),
            (5, off("b", 1)),
        ],
        until=5,
    )
    v = metrics.value
    assert v("location_events", kind="online") == 3
    assert v("location_events", kind="offline") == 3
    assert v("location_events", kind="stale") == 1
    assert v("location_events", kind="status") == 1
    assert v("location_notices", kind="online") == 2
    assert v("location_suppressed", reason="quick_reconnect") == 1
    assert v("location_entries") == 1
    assert v("location_held") == 1
    assert v("location_subscribers") == 1
    core.server_status(1, down(1).status, 6)
    assert v("location_notices", kind="server_down") == 1
    assert v("location_suppressed", reason="server_down") == 2
    assert v("location_entries") == 0
    assert v("location_held") == 0


def test_unsubscribe_and_replace() -> None:
    core = PresenceCore(CONFIG)
    r = run(
        core,
        [
            (0, CHAT),
            (0, Subscription("chat", uids=frozenset({"b"}))),  # replaces the first
            (1, on("a", 1)),
            (2, on("b", 1)),
        ],
    )
    assert r.heard == [(2, "chat", "online b @1")]
    core.unsubscribe("chat")
    core.unsubscribe("never-there")
    core.device_online(on("c", 1), 3)
    assert [a for a in core.pop_actions() if a.__class__.__name__ == "Deliver"] == []
    assert core.subscriptions() == []


def test_restore_is_silent_and_sync_server_rebuilds() -> None:
    core = PresenceCore(CONFIG)
    run(core, [(0, on("a", 1)), (0, on("b", 1)), (0, on("c", 2))], until=0)
    saved = list(core.snapshot())
    fresh = PresenceCore(CONFIG)
    fresh.restore(saved, 100)
    assert fresh.pop_actions() == []
    assert sorted(p.key for p in fresh.snapshot()) == [("a", "d"), ("b", "d"), ("c", "d")]
    fresh.subscribe(CHAT)
    # Server 1 now lists only b (new session) and d: a is gone, b reconnected quietly, d is new.
    fresh.sync_server(1, [on("b", 1, "4g", 7), on("d", 1)], 101)
    assert [fmt(a.notice) for a in fresh.pop_actions() if isinstance(a, Deliver)] == ["online d @1"]
    r = run(fresh, [], until=200)
    assert r.heard == [(106, "chat", "offline a disconnected")]
    assert sorted(p.key for p in fresh.snapshot()) == [("b", "d"), ("c", "d"), ("d", "d")]


def test_sync_server_notices() -> None:
    core = PresenceCore(CONFIG)
    run(core, [(0, on("a", 1)), (0, CHAT)], until=0)
    with pytest.raises(InvalidPresenceEvent):
        core.sync_server(1, [on("b", 2)], 1)
    core.sync_server(1, [on("b", 1)], 1)
    assert [fmt(a.notice) for a in core.pop_actions() if isinstance(a, Deliver)] == ["online b @1"]
    assert run(core, [], until=10).heard == [(6, "chat", "offline a disconnected")]
