"""The embedded registry: every client of one :class:`MemoryRegistryHub` shares its entries and configuration.

A client that closes loses its entries exactly as a ZooKeeper client whose session dies loses its ephemeral
nodes, so failure scenarios test the same way against both. Runs on any anyio backend, in one thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from imsdk_server.backends.registry._base import (
    MAX_SERVER_ID,
    AlreadyRegistered,
    ConfigWatch,
    NotRegistered,
    RegistryUnavailable,
    ServerInfo,
    ServerKey,
    ServerState,
    ServerWatch,
    check_config_value,
    validate_config_key,
    validate_name,
)
from imsdk_server.backends.registry._watch import LatestWatch, closed_error
from imsdk_server.metrics import Metrics

__all__ = ["MemoryRegistry", "MemoryRegistryHub"]


@dataclass
class _Entry:
    info: ServerInfo
    owner: MemoryRegistry


@dataclass
class _HubState:
    servers: dict[ServerKey, _Entry] = field(default_factory=dict)
    config: dict[str, bytes] = field(default_factory=dict)
    server_watches: dict[tuple[str, str], set[LatestWatch[tuple[ServerInfo, ...]]]] = field(
        default_factory=dict
    )
    config_watches: dict[str, set[LatestWatch[bytes | None]]] = field(default_factory=dict)
    last_id: int = 0


class MemoryRegistryHub:
    """The shared in-process store. Open one client per simulated server with :meth:`connect`."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self._state = _HubState()
        self._metrics = metrics if metrics is not None else Metrics()
        self._available = True

    async def connect(self, metrics: Metrics | None = None) -> MemoryRegistry:
        """A new client of this hub (a new "session")."""
        return MemoryRegistry(self, metrics if metrics is not None else self._metrics)

    def set_available(self, available: bool) -> None:
        """Simulate the store going away (every call raises :class:`RegistryUnavailable`) and coming back."""
        self._available = available

    # ----------------------------------------------------------------------- internals used by clients

    def _check(self) -> None:
        if not self._available:
            raise RegistryUnavailable("the in-process registry is marked unavailable")

    def _snapshot(self, domain: str, role: str) -> tuple[ServerInfo, ...]:
        found = [e.info for k, e in self._state.servers.items() if k.domain == domain and k.role == role]
        return tuple(sorted(found, key=lambda i: i.server_id))

    def _servers_changed(self, domain: str, role: str) -> None:
        watches = self._state.server_watches.get((domain, role))
        if watches:
            snap = self._snapshot(domain, role)
            for w in watches:
                w.put(snap)

    def _config_changed(self, key: str) -> None:
        for w in self._state.config_watches.get(key, ()):
            w.put(self._state.config.get(key))


class MemoryRegistry:
    """One client of a :class:`MemoryRegistryHub`; a :class:`~imsdk_server.backends.registry.Registry`.

    Build it with ``await hub.connect()``, or ``MemoryRegistry()`` for a client with a private hub.
    """

    def __init__(self, hub: MemoryRegistryHub | None = None, metrics: Metrics | None = None) -> None:
        self._hub = hub if hub is not None else MemoryRegistryHub(metrics)
        self._metrics = metrics if metrics is not None else self._hub._metrics
        self._owned: set[ServerKey] = set()
        self._watches: dict[object, Callable[[], None]] = {}
        self._closed = False
        self._ops = {
            op: self._metrics.counter("registry_operations", op=op)
            for op in ("allocate", "register", "set_state", "deregister", "list", "get", "set", "delete")
        }
        self._metrics.gauge("registry_available").set(1)

    @property
    def hub(self) -> MemoryRegistryHub:
        return self._hub

    def _check(self, op: str) -> _HubState:
        if self._closed:
            raise closed_error()
        try:
            self._hub._check()
        except RegistryUnavailable:
            self._metrics.counter("registry_errors", error="RegistryUnavailable").inc()
            raise
        self._ops[op].inc()
        return self._hub._state

    async def allocate_server_id(self) -> int:
        state = self._check("allocate")
        if state.last_id >= MAX_SERVER_ID:
            raise RegistryUnavailable("server ids are exhausted")
        state.last_id += 1
        return state.last_id

    async def register(self, info: ServerInfo) -> None:
        state = self._check("register")
        if info.key in state.servers:
            raise AlreadyRegistered(f"{info.key} is registered already")
        state.servers[info.key] = _Entry(info, self)
        self._owned.add(info.key)
        self._hub._servers_changed(info.domain, info.role)

    def _owned_entry(self, state: _HubState, key: ServerKey) -> _Entry:
        entry = state.servers.get(key)
        if entry is None or entry.owner is not self:
            raise NotRegistered(f"this client has not registered {key}")
        return entry

    async def set_state(self, key: ServerKey, state: ServerState) -> ServerInfo:
        hub_state = self._check("set_state")
        entry = self._owned_entry(hub_state, key)
        new = entry.info.with_state(state)
        if new != entry.info:
            entry.info = new
            self._hub._servers_changed(key.domain, key.role)
        return new

    async def deregister(self, key: ServerKey) -> None:
        state = self._check("deregister")
        self._owned_entry(state, key)
        del state.servers[key]
        self._owned.discard(key)
        self._hub._servers_changed(key.domain, key.role)

    async def list_servers(self, domain: str, role: str) -> tuple[ServerInfo, ...]:
        validate_name("domain", domain)
        validate_name("role", role)
        self._check("list")
        return self._hub._snapshot(domain, role)

    def watch_servers(self, domain: str, role: str) -> ServerWatch:
        validate_name("domain", domain)
        validate_name("role", role)
        where = (domain, role)

        async def on_open(w: LatestWatch[tuple[ServerInfo, ...]]) -> None:
            state = self._check("list")
            state.server_watches.setdefault(where, set()).add(w)
            self._watches[w] = lambda: on_close(w)
            w.put(self._hub._snapshot(domain, role))

        def on_close(w: LatestWatch[tuple[ServerInfo, ...]]) -> None:
            self._hub._state.server_watches.get(where, set()).discard(w)
            self._watches.pop(w, None)

        return LatestWatch(on_open=on_open, on_close=on_close)

    async def get_config(self, key: str) -> bytes | None:
        validate_config_key(key)
        return self._check("get").config.get(key)

    async def set_config(self, key: str, value: bytes) -> None:
        validate_config_key(key)
        value = check_config_value(value)
        self._check("set").config[key] = value
        self._hub._config_changed(key)

    async def delete_config(self, key: str) -> None:
        validate_config_key(key)
        if self._check("delete").config.pop(key, None) is not None:
            self._hub._config_changed(key)

    def watch_config(self, key: str) -> ConfigWatch:
        validate_config_key(key)

        async def on_open(w: LatestWatch[bytes | None]) -> None:
            state = self._check("get")
            state.config_watches.setdefault(key, set()).add(w)
            self._watches[w] = lambda: on_close(w)
            w.put(state.config.get(key))

        def on_close(w: LatestWatch[bytes | None]) -> None:
            self._hub._state.config_watches.get(key, set()).discard(w)
            self._watches.pop(w, None)

        return LatestWatch(on_open=on_open, on_close=on_close)

    async def aclose(self) -> None:
        """Drop this client's entries (as a dead session would) and end its watches."""
        if self._closed:
            return
        self._closed = True
        state = self._hub._state
        touched = set()
        for key in self._owned:
            entry = state.servers.get(key)
            if entry is not None and entry.owner is self:
                del state.servers[key]
                touched.add((key.domain, key.role))
        self._owned.clear()
        for domain, role in touched:
            self._hub._servers_changed(domain, role)
        for w, forget in list(self._watches.items()):
            assert isinstance(w, LatestWatch)
            w.end(closed_error())
            forget()

    async def __aenter__(self) -> MemoryRegistry:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
