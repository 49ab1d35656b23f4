"""Configuration of the access manager: one dataclass, a docstring per field. Times are in seconds."""

from __future__ import annotations

from dataclasses import dataclass

from imsdk_server.access_manager._ranking import RankingPolicy

__all__ = ["AccessManagerConfig"]


@dataclass(slots=True)
class AccessManagerConfig:
    """Everything that shapes an access manager. Load it from the ``[access_manager]`` table of a TOML file
    with ``imsdk_server.config.load_config(AccessManagerConfig, path=..., section="access_manager")``."""

    host: str = "127.0.0.1"
    """Address the HTTP listener binds to."""

    port: int = 8200
    """TCP port of the HTTP listener; 0 lets the OS choose (the runner reports the bound port)."""

    domain: str = "default"
    """Registry domain whose ``access`` servers this manager offers."""

    load_topic: str = "load"
    """Queue topic the access servers publish their load reports on."""

    consumer_group: str = ""
    """Consumer group of this manager on :attr:`load_topic`. Every manager of a deployment needs *all*
    reports, so each instance reads in a group of its own: empty picks ``access-manager-<consumer name>``.
    Set a stable name (e.g. ``access-manager-2``) so that a restarted manager reuses its group."""

    consumer_name: str = ""
    """Consumer name within the group; empty picks ``<hostname>-<pid>``."""

    staleness: float = 15.0
    """A server whose last load report is older than this is no longer offered, and is forgotten. Keep it at
    about three report intervals so that one lost report does not drop a healthy server."""

    require_registration: bool = True
    """When a registry is given, offer only servers registered under the ``access`` role right now. Without a
    registry this has no effect and staleness alone decides."""

    capacity: int = 10_000
    """Connections one access server is sized for; ``connections / capacity`` is its connection load."""

    tie_tolerance: float = 0.05
    """Servers whose loads are within this distance of the least loaded one of their tier are drawn at random
    (weighted by free room), so that clients asking at the same moment spread out."""

    count: int = 3
    """How many access points a client gets."""

    ttl: int = 60
    """Seconds a client may reuse a list before asking again (the ``ttl`` of every answer)."""

    retry_after: int = 5
    """``Retry-After`` seconds sent with a 503 when no access server is available."""

    admin_key: str | None = None
    """Secret for the ops view ``GET /v1/access-servers`` (header ``X-Admin-Key``). When unset, any valid user
    token may read the ops view; set it in production."""

    consume_retry_interval: float = 1.0
    """Pause before the load-report consumer reconnects after the queue failed."""

    max_report_age: float = 60.0
    """A report whose own timestamp is older than this (by the manager's wall clock) is skipped: after a
    restart the manager must not take a backlog of old reports for live servers. It must exceed the clock
    skew between machines; 0 disables the check."""

    def ranking_policy(self) -> RankingPolicy:
        """The ranking knobs of this configuration."""
        return RankingPolicy(capacity=self.capacity, tie_tolerance=self.tie_tolerance, count=self.count)

    def __post_init__(self) -> None:
        if self.staleness <= 0:
            raise ValueError("staleness must be positive")
        if self.ttl < 0 or self.retry_after < 0 or self.max_report_age < 0:
            raise ValueError("ttl, retry_after and max_report_age must not be negative")
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be 0-65535")
        self.ranking_policy()  # validates capacity, tie_tolerance and count
