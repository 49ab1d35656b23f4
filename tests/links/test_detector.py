"""The failure detector on virtual time: exact probe times, the single down decision, jitter, late answers."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imsdk_server.links._detector import (
    TRANSITIONS,
    DetectorAction,
    DetectorConfig,
    DetectorEvent,
    FailureDetector,
    Health,
    LateAfterDown,
    PeerAlive,
    PeerDown,
    PeerSuspect,
    SendHeartbeat,
    SendProbe,
    next_health,
)
from imsdk_server.links._errors import IllegalTransition

A, SU, D, ST = Health.ALIVE, Health.SUSPECT, Health.DOWN, Health.STOPPED
HEARD, SILENCE, PT, LPT, STOP, DEAF = (
    DetectorEvent.HEARD,
    DetectorEvent.SILENCE,
    DetectorEvent.PROBE_TIMEOUT,
    DetectorEvent.LAST_PROBE_TIMEOUT,
    DetectorEvent.STOP,
    DetectorEvent.DEAF,
)

#: The table as docs/links.md states it, written out independently of the code.
EXPECTED = {
    (A, HEARD): A,
    (A, SILENCE): SU,
    (A, STOP): ST,
    (SU, HEARD): A,
    (SU, PT): SU,
    (SU, LPT): D,
    (SU, STOP): ST,
    (D, HEARD): D,
    (D, STOP): D,
    (ST, HEARD): ST,
    (ST, STOP): ST,
    (A, DEAF): A,
    (SU, DEAF): SU,
    (D, DEAF): D,
    (ST, DEAF): ST,
}

CFG = DetectorConfig(heartbeat_interval=3.0, grace=1.5, probe_timeout=1.0, probes=3)
TICK = 0.25  # exact in binary floating point, so tick times compare exactly


def test_table_is_exactly_the_documented_one() -> None:
    assert TRANSITIONS == EXPECTED


@pytest.mark.parametrize("health", list(Health))
@pytest.mark.parametrize("event", list(DetectorEvent))
def test_every_pair_is_either_a_transition_or_raises(health: Health, event: DetectorEvent) -> None:
    if (health, event) in EXPECTED:
        assert next_health(health, event) is EXPECTED[(health, event)]
    else:
        with pytest.raises(IllegalTransition) as info:
            next_health(health, event)
        assert info.value.code.name == "UNEXPECTED_MESSAGE"


def run_ticks(
    det: FailureDetector, until: float, heard_at: tuple[float, ...] = (), start: float = 0.0
) -> list[tuple[float, DetectorAction]]:
    """Advance virtual time by TICK, feeding 'heard' at the given times; collect (time, action)."""
    log: list[tuple[float, DetectorAction]] = []
    now = start
    pending = sorted(heard_at)
    while now <= until:
        while pending and pending[0] <= now:
            pending.pop(0)
            log += [(now, a) for a in det.heard(now)]
        log += [(now, a) for a in det.handle_timer(now)]
        now += TICK
    return log


def test_silent_peer_gets_three_probes_then_one_down_decision() -> None:
    det = FailureDetector(CFG, now=0.0)
    log = run_ticks(det, until=20.0)
    assert log == [
        (3.0, SendHeartbeat()),
        (4.5, PeerSuspect(since=0.0)),
        (4.5, SendProbe(1)),
        (5.5, SendProbe(2)),
        (6.5, SendProbe(3)),
        (7.5, PeerDown(last_heard=0.0)),
    ]
    assert det.health is Health.DOWN
    assert det.next_deadline() is None
    assert CFG.down_after == 7.5


def test_jumping_straight_to_each_deadline_gives_the_same_times() -> None:
    det = FailureDetector(CFG, now=100.0)
    times: list[tuple[float, str]] = []
    while (deadline := det.next_deadline()) is not None:
        times += [(deadline, type(a).__name__) for a in det.handle_timer(deadline)]
    assert times == [
        (103.0, "SendHeartbeat"),
        (104.5, "PeerSuspect"),
        (104.5, "SendProbe"),
        (105.5, "SendProbe"),
        (106.5, "SendProbe"),
        (107.5, "PeerDown"),
    ]


def test_early_and_repeated_timer_calls_do_nothing() -> None:
    det = FailureDetector(CFG, now=0.0)
    for now in (0.0, 1.0, 2.999, 2.999):
        assert det.handle_timer(now) == []
    assert det.handle_timer(3.0) == [SendHeartbeat()]
    assert det.handle_timer(3.0) == []


def test_a_late_probe_answer_within_the_window_keeps_the_peer_up() -> None:
    det = FailureDetector(CFG, now=0.0)
    # Probe 2 goes out at 5.5; the answer arrives at 6.25, before probe 2's timeout at 6.5.
    log = run_ticks(det, until=12.0, heard_at=(6.25,))
    assert (6.25, PeerAlive(probes_sent=2)) in log
    assert not any(isinstance(a, PeerDown) for _, a in log)
    # Suspicion starts again from the answer: 6.25 + 4.5 = 10.75.
    assert (10.75, PeerSuspect(since=6.25)) in log
    assert (10.75, SendProbe(1)) in log
    assert det.health is Health.SUSPECT


def test_an_answer_in_the_last_probe_window_still_counts() -> None:
    det = FailureDetector(CFG, now=0.0)
    log = run_ticks(det, until=7.25, heard_at=(7.25,))
    assert log[-1] == (7.25, PeerAlive(probes_sent=3))
    assert det.health is Health.ALIVE


def test_a_late_probe_ack_after_down_does_not_resurrect() -> None:
    det = FailureDetector(CFG, now=0.0)
    run_ticks(det, until=7.5)
    assert det.health is Health.DOWN
    assert det.heard(8.0) == [LateAfterDown(after=0.5)]
    assert det.heard(9.5) == [LateAfterDown(after=2.0)]
    assert det.health is Health.DOWN
    # No second decision and no more probes, however long time runs.
    assert run_ticks(det, until=60.0, start=8.0) == []
    det.stop()
    assert det.health is Health.DOWN


def test_regular_heartbeats_keep_the_peer_alive_and_jitter_within_grace_costs_nothing() -> None:
    det = FailureDetector(CFG, now=0.0)
    # Heartbeats every 3 s, one of them 1.25 s late (inside the 1.5 s grace).
    heard = (3.0, 6.0, 10.25, 12.0, 15.0, 18.0)
    log = run_ticks(det, until=20.0, heard_at=heard)
    assert [a for _, a in log if not isinstance(a, SendHeartbeat)] == []


def test_jitter_beyond_grace_costs_one_probe_and_no_down() -> None:
    det = FailureDetector(CFG, now=0.0)
    log = run_ticks(det, until=8.0, heard_at=(3.0, 8.0))
    events = [(t, a) for t, a in log if not isinstance(a, SendHeartbeat)]
    assert events == [
        (7.5, PeerSuspect(since=3.0)),
        (7.5, SendProbe(1)),
        (8.0, PeerAlive(probes_sent=1)),
    ]


def test_our_own_traffic_replaces_heartbeats() -> None:
    det = FailureDetector(CFG, now=0.0)
    det.sent(2.0)
    det.heard(2.0)
    assert det.next_deadline() == 5.0
    assert det.handle_timer(5.0) == [SendHeartbeat()]
    assert det.next_deadline() == 6.5  # silence deadline: heard at 2.0 + 4.5


def test_while_we_are_deaf_the_silence_is_not_the_peers() -> None:
    det = FailureDetector(CFG, now=0.0)
    # Our handler keeps us from reading from 1.0 to 9.0; the timer fires on schedule meanwhile.
    log: list[tuple[float, DetectorAction]] = []
    now = 1.0
    while now <= 9.0:
        det.deaf(now)
        log += [(now, a) for a in det.handle_timer(now)]
        now += TICK
    assert all(isinstance(a, SendHeartbeat) for _, a in log)
    assert det.health is Health.ALIVE
    # Reading again from 9.0; a peer that really is silent is probed from 9.0 + 4.5 on, down at 9.0 + 7.5.
    log = run_ticks(det, until=20.0, start=9.25)
    assert [(t, a) for t, a in log if not isinstance(a, SendHeartbeat)] == [
        (13.5, PeerSuspect(since=9.0)),
        (13.5, SendProbe(1)),
        (14.5, SendProbe(2)),
        (15.5, SendProbe(3)),
        (16.5, PeerDown(last_heard=9.0)),
    ]


def test_deaf_changes_nothing_once_suspect_down_or_stopped() -> None:
    det = FailureDetector(CFG, now=0.0)
    det.handle_timer(4.5)
    det.deaf(5.0)
    assert (det.health, det.next_deadline(), det.last_heard) == (Health.SUSPECT, 5.5, 0.0)
    run_ticks(det, until=7.5, start=5.5)
    det.deaf(8.0)
    assert (det.health, det.next_deadline()) == (Health.DOWN, None)
    det2 = FailureDetector(CFG, now=0.0)
    det2.stop()
    det2.deaf(1.0)
    assert (det2.health, det2.next_deadline()) == (Health.STOPPED, None)


def test_deaf_only_moves_the_last_heard_time_forward() -> None:
    # deaf() runs once per frame handled and consults no table: that holds because DEAF keeps every health
    assert all(TRANSITIONS[(h, DEAF)] is h for h in Health)
    det = FailureDetector(CFG, now=0.0)
    det.heard(3.0)
    det.deaf(2.0)  # an older time (e.g. read before the frame) changes nothing
    assert (det.health, det.last_heard) == (Health.ALIVE, 3.0)
    det.deaf(3.5)
    assert (det.health, det.last_heard, det.next_deadline()) == (Health.ALIVE, 3.5, 3.0)
    assert det.handle_timer(3.0) == [SendHeartbeat()]
    assert det.next_deadline() == 6.0


def test_stop_ends_all_deadlines() -> None:
    det = FailureDetector(CFG, now=0.0)
    det.handle_timer(4.5)
    assert det.health is Health.SUSPECT
    det.stop()
    assert (det.health, det.next_deadline()) == (Health.STOPPED, None)
    assert det.handle_timer(100.0) == []
    assert det.heard(100.0) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"heartbeat_interval": 0},
        {"heartbeat_interval": -1},
        {"grace": -0.1},
        {"probe_timeout": 0},
        {"probes": 0},
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        DetectorConfig(**kwargs)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=1, max_value=40), min_size=0, max_size=12),
    probes=st.integers(min_value=1, max_value=4),
)
def test_down_exactly_when_a_silence_outlasts_the_probes(gaps: list[int], probes: int) -> None:
    """Heard at arbitrary times (multiples of TICK); the timer fires at every tick.

    The peer is declared down exactly once, at last_heard + H + G + probes*P, if and only if some
    silence lasts that long; before that it is never down.
    """
    cfg = DetectorConfig(heartbeat_interval=3.0, grace=1.5, probe_timeout=1.0, probes=probes)
    heard: list[float] = []
    t = 0.0
    for gap in gaps:
        t += gap * TICK
        heard.append(t)
    end = t + 20.0
    det = FailureDetector(cfg, now=0.0)
    log = run_ticks(det, until=end, heard_at=tuple(heard))
    downs = [(when, a) for when, a in log if isinstance(a, PeerDown)]
    marks = [0.0, *heard]
    expected_down = math.inf
    for before, after in zip(marks, [*heard, math.inf], strict=True):
        if after - before > cfg.down_after:  # a frame read at the very deadline still counts
            expected_down = before + cfg.down_after
            break
    assert len(downs) == 1  # the trailing 20 s of silence always outlasts the probes
    assert downs[0] == (expected_down, PeerDown(last_heard=expected_down - cfg.down_after))
    probe_times = [when for when, a in log if isinstance(a, SendProbe) and when <= expected_down]
    assert all(when < expected_down for when in probe_times)
    # Every frame heard after the decision is reported late, never as alive.
    assert not any(isinstance(a, PeerAlive) for when, a in log if when >= expected_down)
