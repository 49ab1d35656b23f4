"""The sans-IO race plan: scripted event sequences on explicit time, and the state table itself."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from imsdk_client._core.race import (
    TRANSITIONS,
    Abandon,
    AttemptFailure,
    AttemptState,
    Connect,
    Endpoint,
    Exhausted,
    RaceEvent,
    RacePlan,
    RaceStateError,
    Won,
)

A, B, C = Endpoint("10.0.0.1", 1), Endpoint("10.0.0.2", 2), Endpoint("10.0.0.3", 3)
S = AttemptState


def plan3(timeout: float = 5.0) -> RacePlan:
    return RacePlan([A, B, C], attempt_timeout=timeout)


def test_start_connects_to_all_at_once_with_one_deadline() -> None:
    plan = plan3()
    assert plan.start(100.0) == [Connect(0, A), Connect(1, B), Connect(2, C)]
    assert [plan.state(i) for i in range(3)] == [S.CONNECTING] * 3
    assert plan.next_deadline() == 105.0
    assert not plan.done


def test_first_handshake_wins_and_abandons_the_others() -> None:
    plan = plan3()
    plan.start(0.0)
    assert plan.connected(1, 0.1) == []
    assert plan.connected(0, 0.2) == []
    assert plan.handshake_done(1, 0.3) == [Won(1, B), Abandon(0), Abandon(2)]
    assert plan.winner == 1
    assert plan.done
    assert [plan.state(i) for i in range(3)] == [S.ABANDONED, S.WON, S.ABANDONED]
    assert plan.next_deadline() is None
    # The loser finishes in the same instant: it is told to close, the winner stands.
    assert plan.handshake_done(0, 0.3) == [Abandon(0)]
    assert plan.connected(2, 0.4) == [Abandon(2)]
    assert plan.failed(2, "reset", 0.5) == []
    assert plan.winner == 1
    assert plan.failures == ()


def test_failures_do_not_stop_the_race_until_all_failed() -> None:
    plan = plan3()
    plan.start(0.0)
    assert plan.failed(2, "ConnectionRefusedError", 0.01) == []
    plan.connected(0, 0.02)
    assert plan.failed(0, "HandshakeRejected: bad token", 0.03) == []
    assert not plan.done
    expected = (
        AttemptFailure(A, "HandshakeRejected: bad token"),
        AttemptFailure(B, "ConnectionRefusedError"),
        AttemptFailure(C, "ConnectionRefusedError"),
    )
    assert plan.failed(1, "ConnectionRefusedError", 0.04) == [Exhausted(expected)]
    assert plan.done
    assert plan.winner is None
    assert plan.failures == expected


def test_a_failed_winner_candidate_leaves_the_slower_one_to_win() -> None:
    plan = plan3()
    plan.start(0.0)
    plan.connected(0, 0.1)
    plan.connected(1, 0.2)
    plan.failed(2, "refused", 0.2)
    plan.failed(0, "rejected", 0.3)
    assert plan.handshake_done(1, 0.9) == [Won(1, B)]  # nobody left to abandon
    assert plan.failures == (AttemptFailure(A, "rejected"), AttemptFailure(C, "refused"))


def test_deadlines_fail_live_attempts_only() -> None:
    plan = plan3(timeout=2.0)
    plan.start(10.0)
    plan.failed(0, "refused", 10.5)
    plan.connected(1, 11.0)
    assert plan.handle_timer(11.999) == []
    assert plan.handle_timer(12.0) == [
        Abandon(1),
        Abandon(2),
        Exhausted((AttemptFailure(A, "refused"), AttemptFailure(B, "timeout"), AttemptFailure(C, "timeout"))),
    ]
    assert plan.handle_timer(13.0) == []
    # A connect that returns after its deadline is closed at once.
    assert plan.connected(2, 12.0) == [Abandon(2)]


def test_timer_after_a_win_does_nothing() -> None:
    plan = plan3(timeout=1.0)
    plan.start(0.0)
    plan.connected(0, 0.1)
    plan.handshake_done(0, 0.2)
    assert plan.handle_timer(5.0) == []
    assert plan.failures == ()


def test_duplicates_are_raced_once() -> None:
    plan = RacePlan([A, A, B, Endpoint("10.0.0.1", 1, server_id=9)], attempt_timeout=1.0)
    assert plan.endpoints == (A, B)


@pytest.mark.parametrize(("endpoints", "timeout"), [([], 1.0), ([A], 0.0), ([A], -1.0)])
def test_bad_arguments(endpoints: list[Endpoint], timeout: float) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - which argument is in the message
        RacePlan(endpoints, attempt_timeout=timeout)


@pytest.mark.parametrize(
    ("state", "event"),
    [pair for pair in itertools.product(AttemptState, RaceEvent) if pair not in TRANSITIONS],
    ids=lambda v: v.value,
)
def test_every_move_outside_the_table_raises(state: AttemptState, event: RaceEvent) -> None:
    plan = RacePlan([A], attempt_timeout=1.0)
    plan._states[0] = state  # put the attempt straight into the state under test
    with pytest.raises(RaceStateError):
        plan._move(0, event)
    assert plan.state(0) is state


def test_the_winner_cannot_change() -> None:
    plan = plan3()
    plan.start(0.0)
    plan.connected(0, 0.0)
    plan.handshake_done(0, 0.0)
    with pytest.raises(RaceStateError):
        plan.failed(0, "late", 0.1)
    with pytest.raises(RaceStateError):
        plan.handshake_done(0, 0.1)


def test_events_before_start_raise() -> None:
    plan = plan3()
    with pytest.raises(RaceStateError):
        plan.connected(0, 0.0)


def test_the_core_does_no_io() -> None:
    import imsdk_client._core.race as core

    source = Path(core.__file__).read_text(encoding="utf-8")
    for module in ("anyio", "trio", "asyncio", "socket", "time", "httpx"):
        assert f"import {module}" not in source
        assert f"from {module}" not in source
