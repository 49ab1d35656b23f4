"""Ten thousand users on one access server: a crash and a jitter, on virtual time."""

from __future__ import annotations

from imsdk_server.location import VOIP, LocationConfig, PresenceCore, Subscription
from imsdk_server.metrics import Metrics

from ._helpers import Input, alive, down, heard_by, off, on, run, suspect

N = 10_000
CONFIG = LocationConfig(
    grace=5.0, burst_threshold=100, burst_window=2.0, hold_timeout=30.0, batch_interval=1.0
)
SUBS = [
    Subscription("chat"),
    Subscription("voip", classes=VOIP, network_changes=True),
    Subscription("few", uids=frozenset({"u0", "u1", "u2"})),
]


def net(i: int) -> str:
    """Every tenth user is on 2G: invisible to VoIP."""
    return "2g" if i % 10 == 0 else "4g"


def settled_core(metrics: Metrics | None = None) -> PresenceCore:
    core = PresenceCore(CONFIG, metrics=metrics)
    for i in range(N):
        core.device_online(on(f"u{i}", 1, net(i), 1), 0.0)
    for sub in SUBS:
        core.subscribe(sub)
    core.pop_actions()
    return core


def r6(t: float) -> float:
    return round(t, 6)


def rounded(lines: list[tuple[float, str]]) -> list[tuple[float, str]]:
    return [(r6(t), line) for t, line in lines]


def test_crash_with_early_suspicion() -> None:
    """SUSPECT first; users turn up on servers 2-5; DOWN after the probes; the last 1,000 return later."""
    core = settled_core()
    steps: list[tuple[float, Input]] = [(0.05, suspect(1))]
    steps += [(0.1 + i * 0.0005, on(f"u{i}", 2 + i % 4, net(i), 2)) for i in range(9000)]
    steps.append((6.0, down(1)))
    steps += [(6.0003 + (i - 9000) * 0.0015, on(f"u{i}", 2 + i % 4, net(i), 2)) for i in range(9000, N)]
    result = run(core, steps)
    first, second = r6(6.0003 + 1.0), r6(6.0003 + 667 * 0.0015 + 1.0)
    assert rounded(heard_by(result, "chat")) == [
        (6.0, "server_down 1 x10000"),
        (6.0, "batch recovery x9000 online"),
        (first, "batch recovery x667 online"),
        (second, "batch recovery x333 online"),
    ]
    assert rounded(heard_by(result, "voip")) == [
        (6.0, "server_down 1 x9000"),
        (6.0, "batch recovery x8100 online"),
        (first, "batch recovery x600 online"),
        (second, "batch recovery x300 online"),
    ]
    assert heard_by(result, "few") == [
        (6.0, "server_down 1 [u0,u1,u2]"),
        (6.0, "batch recovery [online u0 @2; online u1 @3; online u2 @4]"),
    ]
    assert len(result.store) == N
    assert all(p.server != 1 for p in core.snapshot())


def test_crash_noticed_by_the_burst_first() -> None:
    """No early suspicion: the first 99 moves are announced, then the burst holds the rest."""
    core = settled_core()
    steps: list[tuple[float, Input]] = [
        (0.1 + i * 0.0005, on(f"u{i}", 2 + i % 4, net(i), 2)) for i in range(N)
    ]
    steps += [(5.5, suspect(1)), (6.0, down(1))]
    result = run(core, steps)
    chat = heard_by(result, "chat")
    assert [line for _, line in chat[:99]] == [f"moved u{i} 1->{2 + i % 4}" for i in range(99)]
    assert [r6(t) for t, _ in chat[:99]] == [r6(0.1 + i * 0.0005) for i in range(99)]
    assert chat[99:] == [(6.0, "server_down 1 x9901"), (6.0, "batch recovery x9901 online")]
    voip = heard_by(result, "voip")
    assert len(voip) == 89 + 2
    assert voip[89:] == [(6.0, "server_down 1 x8911"), (6.0, "batch recovery x8911 online")]
    assert heard_by(result, "few") == [
        (0.1, "moved u0 1->2"),
        (0.1005, "moved u1 1->3"),
        (0.101, "moved u2 1->4"),
    ]


def test_jitter_without_a_crash_is_silent() -> None:
    """Everybody drops and comes back to the same server: nobody hears anything for them."""
    metrics = Metrics()
    core = settled_core(metrics)
    steps: list[tuple[float, Input]] = [(i * 0.0001, off(f"u{i}", 1, 1)) for i in range(N)]
    steps.append((0.5, suspect(1)))
    for i in range(10, N):  # u0-u9 do not come back; u10-u14 come back elsewhere
        steps.append((1.5 + i * 0.0001, on(f"u{i}", 2 if i < 15 else 1, net(i), 2)))
    steps.append((3.0, alive(1)))
    result = run(core, steps)
    assert heard_by(result, "chat") == [
        (
            3.0,
            "batch release [moved u10 1->2; moved u11 1->2; moved u12 1->2; moved u13 1->2; moved u14 1->2]",
        ),
        (8.0, "batch coalesced x10 offline"),
    ]
    assert heard_by(result, "voip") == [
        (3.0, "batch release [moved u11 1->2; moved u12 1->2; moved u13 1->2; moved u14 1->2]"),
        (8.0, "batch coalesced x9 offline"),
    ]
    assert heard_by(result, "few") == [
        (8.0, "batch coalesced [offline u0 disconnected; offline u1 disconnected; offline u2 disconnected]")
    ]
    assert metrics.value("location_suppressed", reason="held") == N - 15
    assert metrics.value("location_entries") == N - 10
    assert metrics.value("location_held") == 0
