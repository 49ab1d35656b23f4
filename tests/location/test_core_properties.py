"""Properties of the core over random event sequences, and the state tables as data."""

from __future__ import annotations

import ast
import pathlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import imsdk_server.location._core as core_module
from imsdk_server.location import (
    DEVICE_TRANSITIONS,
    NETWORK_CLASSES,
    SERVER_TRANSITIONS,
    VOIP,
    BatchNotice,
    Deliver,
    DeviceNotice,
    DeviceState,
    InvalidPresenceEvent,
    LocationConfig,
    Network,
    Notice,
    NoticeKind,
    PresenceCore,
    PresenceStateError,
    ServerDownNotice,
    ServerState,
    ServerStatus,
    StorePut,
    StoreRemove,
    Subscription,
)
from imsdk_server.location._core import DeviceInput, Guard, ServerInput

from ._helpers import Status, feed, off, on

CONFIG = LocationConfig(
    grace=5.0,
    burst_threshold=3,
    burst_window=2.0,
    hold_timeout=30.0,
    recovery_window=20.0,
    batch_interval=1.0,
)
SUBS = [
    Subscription("chat"),
    Subscription("voip", classes=VOIP, network_changes=True),
    Subscription("a-only", uids=frozenset({"a"})),
]

uids = st.sampled_from(["a", "b", "c"])
servers = st.sampled_from([1, 2, 3])
sessions = st.integers(1, 3)
networks = st.sampled_from([n.value for n in Network])
ops = st.one_of(
    st.tuples(st.just("on"), uids, servers, networks, sessions),
    st.tuples(st.just("off"), uids, servers, sessions),
    st.tuples(st.just("status"), servers, st.sampled_from(list(ServerStatus))),
    st.tuples(st.just("wait"), st.floats(0, 12)),
)

View = dict[tuple[str, str], tuple[int, object]]


def apply_notice(view: View, notice: Notice, track_class: bool) -> None:
    """A subscriber's own picture, built only from what it heard; each notice must make sense in it."""
    if isinstance(notice, BatchNotice):
        assert len(notice.items) > 1
        for item in notice.items:
            apply_notice(view, item, track_class)
        return
    if isinstance(notice, ServerDownNotice):
        assert notice.devices
        for key in notice.devices:
            assert view.pop(key)[0] == notice.server
        return
    assert isinstance(notice, DeviceNotice)
    key = (notice.uid, notice.device)
    if notice.kind is NoticeKind.ONLINE:
        assert key not in view
    else:
        assert key in view
    if notice.kind is NoticeKind.OFFLINE:
        del view[key]
        return
    assert notice.presence is not None
    view[key] = (notice.presence.server, notice.presence.network_class if track_class else None)


@settings(max_examples=300, deadline=None)
@given(st.lists(ops, max_size=40))
def test_subscriber_views_converge_to_the_truth(script: list[tuple[object, ...]]) -> None:
    core = PresenceCore(CONFIG)
    for sub in SUBS:
        core.subscribe(sub)
    views: dict[str, View] = {s.subscriber: {} for s in SUBS}
    store: dict[tuple[str, str], object] = {}
    now = 0.0

    def drain() -> None:
        for action in core.pop_actions():
            if isinstance(action, Deliver):
                apply_notice(views[action.subscriber], action.notice, action.subscriber == "voip")
            elif isinstance(action, StorePut):
                store[action.presence.key] = action.presence
            elif isinstance(action, StoreRemove):
                store.pop((action.uid, action.device), None)

    def advance(to: float) -> None:
        while (d := core.next_deadline()) is not None and d <= to:
            assert d >= now - 1e-9  # deadlines never lie in the past
            core.handle_timer(d)
            drain()

    for op in script:
        if op[0] == "wait":
            assert isinstance(op[1], float)
            advance(now + op[1])
            now += op[1]
            continue
        if op[0] == "on":
            _, uid, server, network, session = op
            feed(core, now, on(str(uid), int(str(server)), str(network), int(str(session))))
        elif op[0] == "off":
            _, uid, server, session = op
            feed(core, now, off(str(uid), int(str(server)), int(str(session))))
        else:
            _, server, status = op
            assert isinstance(status, ServerStatus)
            feed(core, now, Status(int(str(server)), status))
        drain()
        assert store == {p.key: p for p in core.snapshot()}
        assert core.connected_count == len(store)

    # Quiescence: every suspected server turns out fine, and all timers run out.
    for server in (1, 2, 3):
        if core.server_state(server) is ServerState.HOLD:
            core.server_status(server, ServerStatus.ALIVE, now)
            drain()
    advance(now + 1e6)
    assert core.next_deadline() is None
    assert core.held_count == 0
    truth = list(core.snapshot())
    for sub in SUBS:
        expected = {
            p.key: (p.server, p.network_class if sub.subscriber == "voip" else None)
            for p in truth
            if p.network_class in sub.classes and (sub.uids is None or p.uid in sub.uids)
        }
        assert views[sub.subscriber] == expected, sub.subscriber
    for p in truth:
        assert core.device_state(p.uid, p.device) is DeviceState.ONLINE


def test_every_table_pair_is_legal_or_raises() -> None:
    """Each listed pair ends in a catch-all (or two complementary guards); unlisted pairs raise."""
    for (state, inp), rules in DEVICE_TRANSITIONS.items():
        guards = [r.guard for r in rules]
        assert guards[-1] is Guard.ALWAYS or {Guard.CONNECTED, Guard.DISCONNECTED} <= set(guards), (
            state,
            inp,
        )
    core = PresenceCore(CONFIG)
    core.device_online(on("a", 1), 0)
    dev = core._devices[("a", "d")]
    illegal = [inp for inp in DeviceInput if (DeviceState.ONLINE, inp) not in DEVICE_TRANSITIONS]
    assert illegal
    for inp in illegal:
        with pytest.raises(PresenceStateError):
            core._apply(dev, inp)
    missing = [(s, i) for s in ServerState for i in ServerInput if (s, i) not in SERVER_TRANSITIONS]
    assert missing == [
        (ServerState.NORMAL, ServerInput.HOLD_TIMEOUT),
        (ServerState.DOWN, ServerInput.HOLD_TIMEOUT),
    ]
    with pytest.raises(PresenceStateError):
        core._server_input(1, ServerInput.HOLD_TIMEOUT, 1)


def test_network_classes_partition_and_voip_excludes_2g() -> None:
    assert set(NETWORK_CLASSES) == set(Network)
    assert NETWORK_CLASSES[Network.G3] is NETWORK_CLASSES[Network.G4] is NETWORK_CLASSES[Network.G5]
    assert NETWORK_CLASSES[Network.G2] not in VOIP
    assert NETWORK_CLASSES[Network.WIFI] in VOIP


@pytest.mark.parametrize(
    "bad",
    [
        on("", 1),
        on("a", -1),
        on("a", 1, device=""),
        on("x" * 300, 1),
        on("a", 1, session=-2),
        off("", 1),
        off("a", 1, session=-1),
    ],
)
def test_bad_events_raise_typed_errors_and_the_core_goes_on(bad: object) -> None:
    core = PresenceCore(CONFIG)
    with pytest.raises(InvalidPresenceEvent):
        feed(core, 0, bad)  # type: ignore[arg-type]
    core.device_online(on("a", 1), 1)
    assert core.is_online("a")
    assert core.metrics.value("location_events", kind="invalid") == 1


def test_bad_network_and_status_and_subscription() -> None:
    core = PresenceCore(CONFIG)
    ev = on("a", 1)
    with pytest.raises(InvalidPresenceEvent):
        core.device_online(type(ev)("a", "d", 1, 1, "4g"), 0)  # type: ignore[arg-type]
    with pytest.raises(InvalidPresenceEvent):
        core.server_status(1, "down", 0)  # type: ignore[arg-type]
    with pytest.raises(InvalidPresenceEvent):
        Subscription("")
    with pytest.raises(InvalidPresenceEvent):
        Subscription("s", classes=frozenset())
    with pytest.raises(InvalidPresenceEvent):
        LocationConfig(burst_window=10, grace=5)


def test_the_core_imports_no_io() -> None:
    tree = ast.parse(pathlib.Path(core_module.__file__).read_text())
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    for name in imported:
        assert name.split(".")[0] not in {
            "anyio",
            "redis",
            "httpx",
            "pymysql",
            "asyncio",
            "trio",
            "time",
            "socket",
        }
