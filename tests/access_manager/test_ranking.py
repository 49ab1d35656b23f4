"""Ranking of access points: region, then ISP, then room, then load; near-equals drawn by weighted chance."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

import pytest

from imsdk_server.access_manager import RankingPolicy, ServerStatus, load_of, rank_access_points


def server(
    name: str, region: str = "north", isp: str = "tel", connections: int = 0, cpu: float = 0.0
) -> ServerStatus:
    return ServerStatus(
        server_id=int.from_bytes(name.encode(), "big"),
        name=name,
        host="10.0.0.1",
        port=7000,
        region=region,
        isp=isp,
        connections=connections,
        send_queue_depth=0,
        cpu=cpu,
        reported_at=0.0,
    )


class FixedRandom:
    """A random source returning the given values in turn (then the last one again)."""

    def __init__(self, *values: float) -> None:
        self.values = list(values)

    def random(self) -> float:
        return self.values.pop(0) if len(self.values) > 1 else self.values[0]


POLICY = RankingPolicy(capacity=1000, tie_tolerance=0.05)

# (case name, servers, region, isp, expected ids in order). Loads differ by more than the tolerance unless the
# case is about ties, so the draw does not matter here.
CASES: list[tuple[str, list[ServerStatus], str | None, str | None, list[str]]] = [
    (
        "region beats load",
        [server("a", "south", connections=0), server("b", "north", connections=900)],
        "north",
        "tel",
        ["b", "a"],
    ),
    (
        "isp beats load within a region",
        [server("a", isp="mob", connections=0), server("b", isp="tel", connections=800)],
        "north",
        "tel",
        ["b", "a"],
    ),
    (
        "region beats isp",
        [server("a", "south", "tel"), server("b", "north", "mob")],
        "north",
        "tel",
        ["b", "a"],
    ),
    (
        "load orders within a tier",
        [server("a", connections=500), server("b", connections=100), server("c", connections=300)],
        "north",
        "tel",
        ["b", "c", "a"],
    ),
    (
        "cpu counts as load",
        [server("a", connections=100, cpu=0.9), server("b", connections=400, cpu=0.1)],
        "north",
        "tel",
        ["b", "a"],
    ),
    (
        "full servers go after every server with room in the tier",
        [server("full", connections=1000), server("busy", connections=900)],
        None,
        None,
        ["busy", "full"],
    ),
    (
        "a full server in the right region still beats a free one elsewhere",
        [server("full", "north", connections=5000), server("free", "south")],
        "north",
        None,
        ["full", "free"],
    ),
    (
        "matching is case-insensitive",
        [server("a", "South"), server("b", "NORTH", "TEL", connections=900)],
        "north",
        "tel",
        ["b", "a"],
    ),
    (
        "no preference: pure load order",
        [server("a", "south", "mob", connections=600), server("b", "north", "tel", connections=200)],
        None,
        "",
        ["b", "a"],
    ),
    (
        "at most three",
        [server(s, connections=i * 100) for i, s in enumerate("abcde")],
        "north",
        "tel",
        ["a", "b", "c"],
    ),
    ("fewer than three: what there is", [server("a")], "north", "tel", ["a"]),
    ("none: empty", [], "north", "tel", []),
]


@pytest.mark.parametrize(
    ("servers", "region", "isp", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_ranking_table(
    servers: list[ServerStatus], region: str | None, isp: str | None, expected: list[str]
) -> None:
    for draw in (0.0, 0.5, 0.999):
        ranked = rank_access_points(servers, region=region, isp=isp, policy=POLICY, rng=FixedRandom(draw))
        assert [s.name for s in ranked] == expected


def test_input_order_does_not_matter() -> None:
    servers = [server("a", connections=100), server("b", "south"), server("c", isp="mob", connections=50)]
    results = {
        tuple(
            s.name
            for s in rank_access_points(p, region="north", isp="tel", policy=POLICY, rng=FixedRandom(0.3))
        )
        for p in (servers, servers[::-1], servers[1:] + servers[:1])
    }
    assert results == {("a", "c", "b")}


def test_near_equals_are_drawn_by_the_rng() -> None:
    # Loads 0.10 and 0.12 are near-equal (tolerance 0.05); weights 0.90 and 0.88.
    servers = [server("a", connections=100), server("b", connections=120), server("c", connections=500)]
    low = rank_access_points(servers, region=None, isp=None, policy=POLICY, rng=FixedRandom(0.0))
    high = rank_access_points(servers, region=None, isp=None, policy=POLICY, rng=FixedRandom(0.99))
    assert [s.name for s in low] == ["a", "b", "c"]
    assert [s.name for s in high] == ["b", "a", "c"]
    # Either side of the boundary of a's share of the total weight.
    edge = 0.90 / (0.90 + 0.88)
    for draw, first in ((edge - 1e-9, "a"), (edge + 1e-9, "b")):
        ranked = rank_access_points(servers, region=None, isp=None, policy=POLICY, rng=FixedRandom(draw))
        assert ranked[0].name == first


def test_ties_never_cross_tiers() -> None:
    # Same load, but b is on the wrong ISP: the draw may never put b first.
    servers = [server("a"), server("b", isp="mob")]
    for draw in (0.0, 0.4, 0.6, 0.999):
        ranked = rank_access_points(servers, region="north", isp="tel", policy=POLICY, rng=FixedRandom(draw))
        assert [s.name for s in ranked] == ["a", "b"]


def test_load_spreads_over_near_equals() -> None:
    servers = [server("a", connections=100), server("b", connections=110), server("c", connections=120)]
    rng = random.Random(7)
    firsts = Counter(
        rank_access_points(servers, region=None, isp=None, policy=POLICY, rng=rng)[0].name
        for _ in range(3000)
    )
    # Weights 0.90 : 0.89 : 0.88, so each gets about a third; strict load order would give "a" every time.
    assert set(firsts) == {"a", "b", "c"}
    assert all(800 < n < 1200 for n in firsts.values()), firsts


def test_nearly_full_near_equal_keeps_a_floor_weight() -> None:
    policy = RankingPolicy(capacity=1000, tie_tolerance=0.5, min_weight=0.1)
    servers = [server("a", connections=600), server("b", connections=999)]  # weights 0.4 and max(0.001, 0.1)
    ranked = rank_access_points(servers, region=None, isp=None, policy=policy, rng=FixedRandom(0.85))
    assert ranked[0].name == "b"


def test_load_of() -> None:
    s = server("a", connections=250, cpu=0.1)
    assert load_of(s, 1000) == 0.25
    assert load_of(replace(s, cpu=0.75), 1000) == 0.75
    assert load_of(replace(s, connections=0, cpu=0.0), 1000) == 0.0
    assert load_of(replace(s, capacity=500), 1000) == 0.5  # the server's own capacity wins


def test_reported_capacity_changes_the_order() -> None:
    small = replace(server("small", connections=300), capacity=400)  # 0.75 full
    big = replace(server("big", connections=600), capacity=6000)  # 0.10 full
    ranked = rank_access_points([small, big], region=None, isp=None, policy=POLICY, rng=FixedRandom(0.0))
    assert [s.name for s in ranked] == ["big", "small"]


@pytest.mark.parametrize(
    "kwargs",
    [{"capacity": 0}, {"tie_tolerance": -0.1}, {"min_weight": 0.0}, {"min_weight": 1.5}, {"count": 0}],
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message names the field; the type is what matters
        RankingPolicy(**kwargs)  # type: ignore[arg-type]
