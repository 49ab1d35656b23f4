"""Back-off: ceilings per attempt, exact delays with a seeded random source, reset, bad configuration."""

from __future__ import annotations

import random

import pytest

from imsdk_client._core.backoff import Backoff, BackoffConfig


@pytest.mark.parametrize(
    ("config", "attempt", "ceiling"),
    [
        (BackoffConfig(), 1, 0.5),
        (BackoffConfig(), 2, 1.0),
        (BackoffConfig(), 3, 2.0),
        (BackoffConfig(), 8, 60.0),  # 0.5 * 2**7 = 64 > cap
        (BackoffConfig(), 10_000, 60.0),  # no overflow for absurd counts
        (BackoffConfig(base=1.0, cap=10.0, multiplier=3.0), 3, 9.0),
        (BackoffConfig(base=1.0, cap=10.0, multiplier=3.0), 4, 10.0),
        (BackoffConfig(base=2.0, cap=2.0, multiplier=1.0), 5, 2.0),
    ],
)
def test_ceiling(config: BackoffConfig, attempt: int, ceiling: float) -> None:
    assert config.ceiling(attempt) == ceiling


def test_delays_are_full_jitter_of_the_ceiling_with_the_injected_rng() -> None:
    backoff = Backoff(BackoffConfig(base=1.0, cap=8.0), random.Random(42))
    draws = random.Random(42)
    expected = [draws.random() * c for c in (1.0, 2.0, 4.0, 8.0, 8.0, 8.0)]
    assert [backoff.next_delay() for _ in range(6)] == expected
    assert backoff.attempts == 6


def test_delays_stay_within_bounds() -> None:
    backoff = Backoff(BackoffConfig(base=0.5, cap=30.0), random.Random(7))
    for attempt in range(1, 200):
        delay = backoff.next_delay()
        assert 0.0 <= delay <= backoff.config.ceiling(attempt)


def test_reset_starts_again_from_the_first_ceiling() -> None:
    backoff = Backoff(BackoffConfig(base=1.0, cap=100.0), random.Random(1))
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.attempts == 0
    draws = random.Random(1)
    for _ in range(5):
        draws.random()
    assert backoff.next_delay() == draws.random() * 1.0


def test_two_clients_with_different_seeds_spread_out() -> None:
    delays = {Backoff(rng=random.Random(seed)).next_delay() for seed in range(50)}
    assert len(delays) == 50


@pytest.mark.parametrize(
    "kwargs",
    [{"base": 0.0}, {"base": -1.0}, {"base": 5.0, "cap": 1.0}, {"multiplier": 0.5}],
)
def test_bad_configuration_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff needs"):
        BackoffConfig(**kwargs)


def test_attempt_zero_has_no_ceiling() -> None:
    with pytest.raises(ValueError, match="counted from 1"):
        BackoffConfig().ceiling(0)
