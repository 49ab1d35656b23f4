"""Heartbeat schedule on virtual time: exact ping and pong deadlines, adaptive learning per network type."""

from __future__ import annotations

import pytest

from imsdk_client._core.heartbeat import Heartbeat, HeartbeatConfig, HeartbeatDue

FIXED = HeartbeatConfig(adaptive=False, pong_timeout=10.0)
ADAPT = HeartbeatConfig(min_interval=30.0, max_interval=120.0, step=30.0, grow_after=2, pong_timeout=10.0)


def run_round(hb: Heartbeat, *, answered: bool) -> tuple[float, HeartbeatDue | None]:
    """Advance to the next deadline; ping if due; then pong (0.1 s later) or let the pong deadline pass."""
    at = hb.next_deadline()
    assert at is not None
    assert hb.handle_timer(at) is HeartbeatDue.PING
    hb.ping_sent(at)
    if answered:
        hb.received(at + 0.1, pong=True)
        return at, None
    dead_at = hb.next_deadline()
    assert dead_at == at + hb.config.pong_timeout
    return at, hb.handle_timer(dead_at)


# (what happens, expected next deadline): a fixed-interval session started at t=0 with a 60 s interval.
@pytest.mark.parametrize(
    ("steps", "deadline"),
    [
        ([], 60.0),
        ([("rx", 20.0)], 60.0),  # sending side idle since 0: ping at 60 anyway
        ([("rx", 20.0), ("tx", 25.0)], 80.0),  # both directions busy until 20: ping at 80
        ([("ping", 60.0)], 70.0),  # pong deadline
        ([("ping", 60.0), ("pong", 60.2)], 120.0),  # next ping one interval after the ping
        ([("ping", 60.0), ("rx", 61.0)], 120.0),  # any frame proves life; ping at 60 + 60
    ],
)
def test_fixed_schedule_deadlines(steps: list[tuple[str, float]], deadline: float) -> None:
    hb = Heartbeat(FIXED)
    hb.start(0.0, "wifi", server_interval=60.0, idle_timeout=300.0)
    for kind, t in steps:
        if kind == "rx":
            hb.received(t)
        elif kind == "tx":
            hb.sent(t)
        elif kind == "ping":
            assert hb.handle_timer(t) is HeartbeatDue.PING
            hb.ping_sent(t)
        else:
            hb.received(t, pong=True)
    assert hb.next_deadline() == deadline


def test_nothing_is_due_before_the_deadline() -> None:
    hb = Heartbeat(FIXED)
    hb.start(5.0, "4g", server_interval=60.0, idle_timeout=300.0)
    assert hb.handle_timer(64.999) is None
    assert hb.handle_timer(65.0) is HeartbeatDue.PING
    hb.ping_sent(65.0)
    assert hb.handle_timer(74.999) is None
    assert hb.handle_timer(75.0) is HeartbeatDue.DEAD
    assert hb.next_deadline() is None
    assert not hb.running


def test_fixed_interval_is_kept_below_the_idle_timeout() -> None:
    hb = Heartbeat(FIXED)
    hb.start(0.0, "wifi", server_interval=400.0, idle_timeout=300.0)
    assert hb.interval == 290.0


def test_stopped_heartbeat_has_no_deadline_and_ignores_traffic() -> None:
    hb = Heartbeat(FIXED)
    assert hb.next_deadline() is None
    hb.received(1.0, pong=True)
    hb.ping_sent(1.0)
    assert hb.handle_timer(1000.0) is None


def test_adaptive_grows_until_a_probe_fails_then_settles_one_step_back() -> None:
    hb = Heartbeat(ADAPT)
    hb.start(0.0, "4g", server_interval=60.0, idle_timeout=300.0)
    intervals = []
    for _ in range(4):  # two pongs at 30, two at 60
        intervals.append(hb.interval)
        run_round(hb, answered=True)
    assert intervals == [30.0, 30.0, 60.0, 60.0]
    assert hb.interval == 90.0
    _at, verdict = run_round(hb, answered=False)  # the operator's NAT forgets us somewhere in 60..90
    assert verdict is HeartbeatDue.DEAD
    assert hb.learnt("4g") == 60.0
    assert hb.is_settled("4g")
    hb.start(200.0, "4g", server_interval=60.0, idle_timeout=300.0)
    for _ in range(5):
        run_round(hb, answered=True)
    assert hb.interval == 60.0  # settled: no more growth


def test_adaptive_is_capped_by_max_interval_and_idle_timeout() -> None:
    hb = Heartbeat(ADAPT)
    hb.start(0.0, "wifi", server_interval=60.0, idle_timeout=100.0)
    for _ in range(20):
        run_round(hb, answered=True)
    assert hb.interval == 90.0  # min(max_interval 120, idle 100 - pong 10)


def test_what_was_learnt_is_kept_per_network_type() -> None:
    hb = Heartbeat(ADAPT)
    hb.start(0.0, "wifi", server_interval=60.0, idle_timeout=300.0)
    for _ in range(4):
        run_round(hb, answered=True)
    assert hb.interval == 90.0
    hb.start(1000.0, "2g", server_interval=60.0, idle_timeout=300.0)
    assert hb.interval == 30.0
    assert hb.next_deadline() == 1030.0
    hb.start(2000.0, "wifi", server_interval=60.0, idle_timeout=300.0)
    assert hb.interval == 90.0
    assert hb.next_deadline() == 2090.0


def test_a_failure_at_a_settled_interval_needs_two_in_a_row_to_step_down() -> None:
    hb = Heartbeat(ADAPT)
    hb.start(0.0, "3g", server_interval=60.0, idle_timeout=300.0)
    run_round(hb, answered=True)
    run_round(hb, answered=True)  # -> 60
    run_round(hb, answered=False)  # probe at 60 fails -> settled at 30
    assert hb.learnt("3g") == 30.0
    hb.start(500.0, "3g", server_interval=60.0, idle_timeout=300.0)
    run_round(hb, answered=False)  # one outage at the settled interval: kept
    assert hb.learnt("3g") == 30.0


def test_busy_line_pongs_do_not_teach_anything() -> None:
    hb = Heartbeat(ADAPT)
    hb.start(0.0, "wifi", server_interval=60.0, idle_timeout=300.0)
    for t in range(0, 300, 5):  # something arrives every 5 s; only the sending side is idle
        hb.received(float(t))
        due = hb.handle_timer(float(t))
        if due is HeartbeatDue.PING:
            hb.ping_sent(float(t))
            hb.received(float(t) + 0.1, pong=True)
    assert hb.interval == 30.0


@pytest.mark.parametrize(
    "kwargs",
    [{"min_interval": 0.0}, {"min_interval": 50.0, "max_interval": 40.0}, {"step": 0.0}, {"grow_after": 0}],
)
def test_bad_configuration_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"must be|heartbeat needs"):
        HeartbeatConfig(**kwargs)  # type: ignore[arg-type]
