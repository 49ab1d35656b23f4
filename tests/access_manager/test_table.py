"""The sans-IO table of access servers: staleness and registry membership, on explicit time."""

from __future__ import annotations

import pytest

from imsdk_server.access_manager import AccessServerTable, ServerStatus
from imsdk_server.access_manager._table import Forgotten


def status(sid: int, at: float, connections: int = 0) -> ServerStatus:
    return ServerStatus(sid, "127.0.0.1", 7000 + sid, "north", "tel", connections, 0, 0.0, at)


def ids(servers: list[ServerStatus]) -> list[int]:
    return sorted(s.server_id for s in servers)


# (case, require_registration, registered ids, report times by id, now, expected available ids)
STALENESS_CASES = [
    ("fresh", False, set(), {1: 100.0}, 105.0, [1]),
    ("exactly at the window is still fresh", False, set(), {1: 100.0}, 110.0, [1]),
    ("past the window", False, set(), {1: 100.0}, 110.001, []),
    ("mixed ages", False, set(), {1: 100.0, 2: 95.0, 3: 108.0}, 109.0, [1, 3]),
    ("registration required, not registered", True, set(), {1: 100.0}, 101.0, []),
    ("registration required, registered", True, {1}, {1: 100.0, 2: 100.0}, 101.0, [1]),
    ("registered but stale", True, {1}, {1: 100.0}, 111.0, []),
    ("registration not required ignores membership", False, {2}, {1: 100.0}, 101.0, [1]),
]


@pytest.mark.parametrize(
    ("required", "registered", "reports", "now", "expected"),
    [c[1:] for c in STALENESS_CASES],
    ids=[c[0] for c in STALENESS_CASES],
)
def test_availability_table(
    required: bool, registered: set[int], reports: dict[int, float], now: float, expected: list[int]
) -> None:
    table = AccessServerTable(staleness=10.0, require_registration=required)
    table.set_registered(registered)
    for sid, at in reports.items():
        table.report(status(sid, at))
    assert ids(table.available(now)) == expected


def test_expire_forgets_stale_rows_only() -> None:
    table = AccessServerTable(staleness=10.0, require_registration=False)
    table.report(status(1, 100.0))
    table.report(status(2, 105.0))
    assert table.next_expiry() == 110.0
    assert table.expire(110.0) == []
    assert table.expire(112.0) == [Forgotten(1, "stale")]
    assert 1 not in table
    assert 2 in table
    assert table.next_expiry() == 115.0
    table.report(status(2, 114.0))  # a fresh report pushes the expiry out
    assert table.expire(120.0) == []
    assert table.expire(124.5) == [Forgotten(2, "stale")]
    assert table.next_expiry() is None
    assert len(table) == 0


def test_leaving_the_registry_forgets_at_once() -> None:
    table = AccessServerTable(staleness=10.0, require_registration=True)
    assert table.set_registered({1, 2}) == []
    table.report(status(1, 100.0))
    table.report(status(2, 100.0))
    assert ids(table.available(101.0)) == [1, 2]
    assert table.set_registered({2}) == [Forgotten(1, "deregistered")]
    assert ids(table.available(101.0)) == [2]
    # Still reporting while it drains: tracked again, but never offered until it registers again.
    table.report(status(1, 102.0))
    assert ids(table.available(102.0)) == [2]
    assert [(r.status.server_id, r.registered, r.available) for r in table.rows(102.0)] == [
        (1, False, False),
        (2, True, True),
    ]
    table.register(1)
    assert ids(table.available(102.0)) == [1, 2]
    assert table.deregister(1) == [Forgotten(1, "deregistered")]
    assert table.deregister(1) == []  # twice is harmless
    assert table.registered() == frozenset({2})


def test_report_before_registration_counts_once_registered() -> None:
    table = AccessServerTable(staleness=10.0, require_registration=True)
    table.report(status(7, 100.0))
    assert table.available(100.0) == []
    table.set_registered({7})
    assert ids(table.available(100.5)) == [7]


def test_rows_show_age_and_load() -> None:
    table = AccessServerTable(staleness=10.0, require_registration=False, capacity=100)
    table.report(status(3, 100.0, connections=25))
    (row,) = table.rows(104.0)
    assert row.age == 4.0
    assert row.load == 0.25
    assert row.available
    assert not row.registered


def test_staleness_must_be_positive() -> None:
    with pytest.raises(ValueError, match="staleness"):
        AccessServerTable(staleness=0, require_registration=False)
