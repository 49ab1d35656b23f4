"""The access manager's table of access servers: sans-IO, every time-dependent method takes ``now``.

Two sources feed it: load reports (which create and refresh rows) and the registry's membership of the
``access`` role (which says who may be offered at all). A row is *available* when its last report is no older
than the staleness window and, when registration is required, its server is registered right now.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from imsdk_server.access_manager._ranking import ServerStatus, load_of

__all__ = ["AccessServerTable", "Forgotten", "ServerRow"]

ForgetReason = Literal["stale", "deregistered"]


@dataclass(frozen=True, slots=True)
class Forgotten:
    """A server the table dropped, and why."""

    server_id: int
    reason: ForgetReason


@dataclass(frozen=True, slots=True)
class ServerRow:
    """One server as the ops view shows it."""

    status: ServerStatus
    registered: bool
    age: float
    """Seconds since its last report."""
    load: float
    available: bool


class AccessServerTable:
    """Access servers known from load reports, filtered by registry membership and report age."""

    def __init__(self, *, staleness: float, require_registration: bool, capacity: int = 10_000) -> None:
        if staleness <= 0:
            raise ValueError("staleness must be positive")
        self.staleness = staleness
        """A row whose last report is older than this (seconds) is neither offered nor kept."""
        self.require_registration = require_registration
        """When true, only servers currently registered in the registry are offered."""
        self.capacity = capacity
        """Connections per server, used for the load shown in :meth:`rows`."""
        self._rows: dict[int, ServerStatus] = {}
        self._registered: set[int] = set()

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, server_id: object) -> bool:
        return server_id in self._rows

    # -- inputs

    def report(self, status: ServerStatus) -> None:
        """A load report arrived (at ``status.reported_at``): create or refresh the row."""
        self._rows[status.server_id] = status

    def register(self, server_id: int) -> None:
        """The server appeared in the registry."""
        self._registered.add(server_id)

    def deregister(self, server_id: int) -> list[Forgotten]:
        """The server left the registry: forget it at once (its row, if any, and its membership)."""
        self._registered.discard(server_id)
        if self._rows.pop(server_id, None) is not None:
            return [Forgotten(server_id, "deregistered")]
        return []

    def set_registered(self, server_ids: Iterable[int]) -> list[Forgotten]:
        """The registry's whole membership of the ``access`` role: register the new, forget the departed."""
        now_registered = set(server_ids)
        forgotten: list[Forgotten] = []
        for gone in sorted(self._registered - now_registered):
            forgotten.extend(self.deregister(gone))
        self._registered = now_registered
        return forgotten

    def expire(self, now: float) -> list[Forgotten]:
        """Drop the rows whose last report is older than the staleness window."""
        stale = [sid for sid, s in self._rows.items() if now - s.reported_at > self.staleness]
        for sid in stale:
            del self._rows[sid]
        return [Forgotten(sid, "stale") for sid in sorted(stale)]

    # -- outputs

    def get(self, server_id: int) -> ServerStatus | None:
        """The row of one server, fresh or not."""
        return self._rows.get(server_id)

    def is_available(self, status: ServerStatus, now: float) -> bool:
        fresh = now - status.reported_at <= self.staleness
        return fresh and (not self.require_registration or status.server_id in self._registered)

    def available(self, now: float) -> list[ServerStatus]:
        """The servers that may be offered to clients right now."""
        return [s for s in self._rows.values() if self.is_available(s, now)]

    def next_expiry(self) -> float | None:
        """When the oldest row goes stale (``None`` for an empty table); the driver sleeps until then."""
        if not self._rows:
            return None
        return min(s.reported_at for s in self._rows.values()) + self.staleness

    def registered(self) -> frozenset[int]:
        """The server ids the registry currently lists."""
        return frozenset(self._registered)

    def rows(self, now: float) -> list[ServerRow]:
        """Every tracked server with its registration, report age, load and availability, by server id."""
        return [
            ServerRow(
                status=s,
                registered=s.server_id in self._registered,
                age=max(now - s.reported_at, 0.0),
                load=load_of(s, self.capacity),
                available=self.is_available(s, now),
            )
            for _, s in sorted(self._rows.items())
        ]
