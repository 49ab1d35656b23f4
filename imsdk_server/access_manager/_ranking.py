"""Which access points a user gets: pure ranking and selection, no I/O and no clock.

A server's place is decided by, in order: region match, ISP match, whether it still has room, then load. The
load is the busier of its two resources (connections against capacity, CPU). Among *near-equals* (servers
whose load is within a tolerance of the least loaded one of the same tier) one is drawn at random, weighted by
free room, so that clients asking in the same second spread over them instead of piling onto one server. The
random source is passed in, so a test pins every draw.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["RandomSource", "RankingPolicy", "ServerStatus", "load_of", "rank_access_points"]


class RandomSource(Protocol):
    """What the ranking needs from a random generator (``random.Random`` fits)."""

    def random(self) -> float:
        """A float in [0, 1)."""
        ...


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """The latest known state of one access server, as its last load report described it."""

    server_id: int
    """The access server's id (unique in the deployment; the id stamped into frame headers)."""
    host: str
    """Host name or IP address clients connect to."""
    port: int
    """TCP port clients connect to."""
    region: str
    """Region the server sits in (e.g. ``"cn-north"``); empty when unknown."""
    isp: str
    """Network operator the server is reachable through best (e.g. ``"telecom"``); empty when unknown."""
    connections: int
    """Open client connections."""
    send_queue_depth: int
    """Frames waiting in all its connections' send queues together."""
    cpu: float
    """CPU share used, 0.0 to 1.0 (of one core, the one the server runs on)."""
    reported_at: float
    """When the manager received the report, on the manager's own monotonic clock."""
    capacity: int = 0
    """Connections the server is sized for, as reported; 0 means unknown (the policy's capacity applies)."""
    sent_at_ms: int = 0
    """The report's timestamp (sender's clock, ms); only compared with earlier reports of the same server."""
    name: str = ""
    """Human-readable name, for the ops view."""


@dataclass(frozen=True, slots=True)
class RankingPolicy:
    """The knobs of the ranking."""

    capacity: int = 10_000
    """Connections one access server is sized for; ``connections / capacity`` is its connection load."""
    tie_tolerance: float = 0.05
    """Loads within this distance of the least loaded server of a tier are equal, and drawn at random."""
    min_weight: float = 0.02
    """Smallest draw weight, so that a nearly full near-equal still gets an occasional client."""
    count: int = 3
    """How many access points to return."""

    def __post_init__(self) -> None:
        if self.capacity <= 0:
            raise ValueError("capacity must be positive")
        if self.tie_tolerance < 0:
            raise ValueError("tie_tolerance must not be negative")
        if not 0 < self.min_weight <= 1:
            raise ValueError("min_weight must be in (0, 1]")
        if self.count <= 0:
            raise ValueError("count must be positive")


def load_of(server: ServerStatus, capacity: int) -> float:
    """The server's load: its busier resource, ``max(connections / capacity, cpu)``; 1.0 and above is full.

    ``capacity`` applies when the server did not report its own.
    """
    return max(server.connections / (server.capacity or capacity), server.cpu, 0.0)


def _matches(wanted: str | None, have: str) -> bool:
    return not wanted or wanted.casefold() == have.casefold()


@dataclass(frozen=True, slots=True)
class _Candidate:
    tier: tuple[bool, bool, bool]  # region miss, ISP miss, full: False sorts first
    load: float
    server: ServerStatus


def rank_access_points(
    servers: Iterable[ServerStatus],
    *,
    region: str | None,
    isp: str | None,
    policy: RankingPolicy,
    rng: RandomSource,
) -> list[ServerStatus]:
    """Up to ``policy.count`` servers for a user in ``region`` on ``isp``, best first.

    ``servers`` must already be the available ones (registered and fresh); this only orders and picks.
    ``None`` or an empty string for region or ISP expresses no preference. Fewer servers than ``policy.count``
    give a shorter list; none gives an empty list.
    """
    pool = sorted(
        (
            _Candidate(
                (
                    not _matches(region, s.region),
                    not _matches(isp, s.isp),
                    load_of(s, policy.capacity) >= 1.0,
                ),
                load_of(s, policy.capacity),
                s,
            )
            for s in servers
        ),
        key=lambda c: (c.tier, c.load, c.server.server_id),
    )
    chosen: list[ServerStatus] = []
    while pool and len(chosen) < policy.count:
        best = pool[0]
        band = [c for c in pool if c.tier == best.tier and c.load <= best.load + policy.tie_tolerance]
        pick = _weighted_pick(band, policy.min_weight, rng)
        chosen.append(pick.server)
        pool.remove(pick)
    return chosen


def _weighted_pick(band: Sequence[_Candidate], min_weight: float, rng: RandomSource) -> _Candidate:
    if len(band) == 1:
        return band[0]
    weights = [max(1.0 - c.load, min_weight) for c in band]
    point = rng.random() * sum(weights)
    for candidate, weight in zip(band, weights, strict=True):
        if point < weight:
            return candidate
        point -= weight
    return band[-1]  # only reached through float rounding at the very top of the range
