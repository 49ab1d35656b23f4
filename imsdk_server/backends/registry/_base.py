"""The registry interface: server entries, their lifecycle states, configuration parameters, errors.

Every implementation (embedded, ZooKeeper, or a third party's) provides :class:`Registry` and must pass
:mod:`imsdk_server.backends.registry.conformance`.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar, runtime_checkable

from imsdk_proto.codes import ErrorCode
from imsdk_proto.errors import CodedError

__all__ = [
    "MAX_CONFIG_VALUE",
    "MAX_SERVER_ID",
    "SERVER_STATE_TRANSITIONS",
    "AlreadyRegistered",
    "ConfigWatch",
    "IllegalStateTransition",
    "InvalidRegistryData",
    "NotRegistered",
    "Registry",
    "RegistryClosed",
    "RegistryError",
    "RegistryUnavailable",
    "ServerInfo",
    "ServerKey",
    "ServerState",
    "ServerWatch",
    "check_transition",
    "get_config_json",
    "set_config_json",
    "validate_config_key",
    "validate_name",
]

#: Largest server id: ids travel in frame headers as unsigned 32-bit numbers (0 means "no server").
MAX_SERVER_ID = 2**32 - 1
#: Largest configuration value in bytes (ZooKeeper's own per-znode limit is 1 MiB).
MAX_CONFIG_VALUE = 512 * 1024

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


# --------------------------------------------------------------------------------------------- errors


class RegistryError(CodedError):
    """Base of every error a registry raises; foreign (kazoo, network) errors are mapped to these.

    :attr:`code` is the wire error code it maps to.
    """


class RegistryUnavailable(RegistryError):
    """The backing store cannot be reached now (connection down, session suspended or lost); retry later."""

    code = ErrorCode.STORAGE_UNAVAILABLE


class RegistryClosed(RegistryError):
    """This registry client was closed (its server is stopping); it can no longer be used."""

    code = ErrorCode.SERVER_SHUTTING_DOWN


class AlreadyRegistered(RegistryError):
    """An entry with the same domain, role and server id exists already."""

    code = ErrorCode.DUPLICATE


class NotRegistered(RegistryError):
    """This client owns no entry with that key (never registered, deregistered, or another client's)."""

    code = ErrorCode.NOT_FOUND


class IllegalStateTransition(RegistryError):
    """The requested state change is not in :data:`SERVER_STATE_TRANSITIONS`."""

    code = ErrorCode.UNEXPECTED_MESSAGE


class InvalidRegistryData(RegistryError, ValueError):
    """A bad role, domain, configuration key, server id, port, value, or an unparsable stored entry."""

    code = ErrorCode.MALFORMED_BODY


# ------------------------------------------------------------------------------------------ lifecycle


class ServerState(enum.Enum):
    """Where a registered server is in its lifecycle (see docs/registry.md for the diagram)."""

    #: Registered and accepting links; peers must not send traffic yet.
    REGISTERED = "registered"
    #: Serving: links may carry traffic once both ends have said ready.
    READY = "ready"
    #: Draining before it stops or restarts: peers send no new traffic.
    NOT_READY = "not_ready"


#: The lifecycle as data: for each state, the states it may move to. Staying put is always allowed.
SERVER_STATE_TRANSITIONS: Mapping[ServerState, frozenset[ServerState]] = {
    ServerState.REGISTERED: frozenset({ServerState.READY, ServerState.NOT_READY}),
    ServerState.READY: frozenset({ServerState.NOT_READY}),
    ServerState.NOT_READY: frozenset(),
}


def check_transition(old: ServerState, new: ServerState) -> None:
    """Raise :class:`IllegalStateTransition` unless ``old → new`` is allowed (or ``old == new``)."""
    if old is not new and new not in SERVER_STATE_TRANSITIONS[old]:
        raise IllegalStateTransition(f"a server cannot go from {old.value} to {new.value}")


# ------------------------------------------------------------------------------------------ entries


def validate_name(kind: str, value: str) -> str:
    """Check that a role or domain name is path-safe; return it unchanged."""
    if not isinstance(value, str) or _NAME.fullmatch(value) is None:
        raise InvalidRegistryData(
            f"bad {kind} {value!r}: use a letter or digit, then up to 63 letters, digits, '.', '_' or '-'"
        )
    return value


def validate_config_key(key: str) -> str:
    """Check that a configuration key is path-safe segments joined by ``/``; return it unchanged."""
    if not isinstance(key, str) or not key or len(key) > 255:
        raise InvalidRegistryData(f"bad configuration key {key!r}")
    for part in key.split("/"):
        if _NAME.fullmatch(part) is None:
            raise InvalidRegistryData(f"bad configuration key {key!r}: segment {part!r} is not path-safe")
    return key


@dataclass(frozen=True)
class ServerKey:
    """What identifies a registry entry: its domain, its role and its server id."""

    domain: str
    role: str
    server_id: int


def _check_port(what: str, port: int | None, *, optional: bool) -> None:
    if port is None and optional:
        return
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise InvalidRegistryData(f"bad {what} {port!r}")


@dataclass(frozen=True)
class ServerInfo:
    """One running server as the registry knows it. Construction validates every field."""

    #: What the server does: "access", "access-manager", "router", "location", "notify", "auth", ...
    role: str
    #: Unique number (1 … 2³²−1) carried in frame headers; see :meth:`Registry.allocate_server_id`.
    server_id: int
    #: Human-readable name for logs and dashboards.
    name: str
    #: The logical deployment unit the server belongs to.
    domain: str
    #: Link address: where other servers open server-to-server links.
    host: str
    port: int
    #: Optional client-facing address (what clients dial, for access servers).
    client_host: str | None = None
    client_port: int | None = None
    #: Where the server sits, for the access manager's ranking.
    region: str = ""
    isp: str = ""
    #: Lifecycle state.
    state: ServerState = ServerState.REGISTERED
    #: Free-form string pairs (build version, weights, ...).
    meta: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        validate_name("role", self.role)
        validate_name("domain", self.domain)
        sid = self.server_id
        if not isinstance(sid, int) or isinstance(sid, bool) or not 1 <= sid <= MAX_SERVER_ID:
            raise InvalidRegistryData(f"bad server id {sid!r}: must be 1 … {MAX_SERVER_ID}")
        if not isinstance(self.host, str) or not self.host:
            raise InvalidRegistryData(f"bad host {self.host!r}")
        _check_port("port", self.port, optional=False)
        _check_port("client port", self.client_port, optional=True)
        if (self.client_host is None) != (self.client_port is None):
            raise InvalidRegistryData("client_host and client_port go together")
        if not isinstance(self.state, ServerState):
            raise InvalidRegistryData(f"bad state {self.state!r}")
        for text in (self.name, self.region, self.isp):
            if not isinstance(text, str):
                raise InvalidRegistryData(f"expected a string, got {text!r}")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.meta.items()):
            raise InvalidRegistryData("meta maps strings to strings")

    @property
    def key(self) -> ServerKey:
        return ServerKey(self.domain, self.role, self.server_id)

    def with_state(self, state: ServerState) -> ServerInfo:
        """A copy in ``state``; raises :class:`IllegalStateTransition` if the lifecycle forbids it."""
        check_transition(self.state, state)
        return replace(self, state=state)

    def to_json(self) -> bytes:
        """The entry's stored form: a UTF-8 JSON object (see docs/registry.md)."""
        doc = {
            "v": 1,
            "role": self.role,
            "server_id": self.server_id,
            "name": self.name,
            "domain": self.domain,
            "host": self.host,
            "port": self.port,
            "client_host": self.client_host,
            "client_port": self.client_port,
            "region": self.region,
            "isp": self.isp,
            "state": self.state.value,
            "meta": dict(self.meta),
        }
        return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ServerInfo:
        """Parse :meth:`to_json` output; anything else raises :class:`InvalidRegistryData`."""
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidRegistryData(f"server entry is not JSON: {exc}") from None
        if not isinstance(doc, dict) or doc.get("v") != 1:
            raise InvalidRegistryData("server entry is not a version-1 object")
        try:
            return cls(
                role=doc["role"],
                server_id=doc["server_id"],
                name=doc["name"],
                domain=doc["domain"],
                host=doc["host"],
                port=doc["port"],
                client_host=doc.get("client_host"),
                client_port=doc.get("client_port"),
                region=doc.get("region", ""),
                isp=doc.get("isp", ""),
                state=ServerState(doc["state"]),
                meta=dict(doc.get("meta", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, InvalidRegistryData):
                raise
            raise InvalidRegistryData(f"bad server entry: {exc!r}") from None


# ---------------------------------------------------------------------------------------- interface

_T_co = TypeVar("_T_co", covariant=True)


class _Watch(Protocol[_T_co]):
    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def __aiter__(self) -> AsyncIterator[_T_co]: ...

    async def __anext__(self) -> _T_co: ...

    async def aclose(self) -> None: ...


class ServerWatch(_Watch[tuple[ServerInfo, ...]], Protocol):
    """Snapshots of one (domain, role): the current one first, then one per change (latest wins)."""


class ConfigWatch(_Watch[bytes | None], Protocol):
    """Values of one configuration key (``None`` when absent): the current one first, then one per change."""


@runtime_checkable
class Registry(Protocol):
    """Server registration, discovery and configuration parameters.

    Entries are ephemeral: they vanish when the client that registered them closes or dies. Every method may
    raise :class:`RegistryUnavailable` (store unreachable) or :class:`RegistryClosed` (after :meth:`aclose`).
    """

    async def allocate_server_id(self) -> int:
        """A server id (1 … 2³²−1) never handed out before by this backend."""
        ...

    async def register(self, info: ServerInfo) -> None:
        """Add an ephemeral entry owned by this client; :class:`AlreadyRegistered` if its key exists."""
        ...

    async def set_state(self, key: ServerKey, state: ServerState) -> ServerInfo:
        """Move an entry this client owns to ``state``; returns the updated entry."""
        ...

    async def deregister(self, key: ServerKey) -> None:
        """Remove an entry this client owns; :class:`NotRegistered` otherwise."""
        ...

    async def list_servers(self, domain: str, role: str) -> tuple[ServerInfo, ...]:
        """Every entry of ``role`` in ``domain``, sorted by server id."""
        ...

    def watch_servers(self, domain: str, role: str) -> ServerWatch:
        """Watch the entries of ``role`` in ``domain``; use as ``async with … as w: async for snap in w``."""
        ...

    async def get_config(self, key: str) -> bytes | None:
        """A configuration parameter's value, or ``None`` when it is not set."""
        ...

    async def set_config(self, key: str, value: bytes) -> None:
        """Set a configuration parameter (at most :data:`MAX_CONFIG_VALUE` bytes); watchers are told."""
        ...

    async def delete_config(self, key: str) -> None:
        """Remove a configuration parameter (no error when absent); watchers see ``None``."""
        ...

    def watch_config(self, key: str) -> ConfigWatch:
        """Watch one configuration parameter's value."""
        ...

    async def aclose(self) -> None:
        """Remove this client's entries, end its watches and release its connection. Idempotent."""
        ...


def check_config_value(value: bytes) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise InvalidRegistryData(f"configuration values are bytes, not {type(value).__name__}")
    if len(value) > MAX_CONFIG_VALUE:
        raise InvalidRegistryData(f"configuration value of {len(value)} bytes exceeds {MAX_CONFIG_VALUE}")
    return bytes(value)


async def get_config_json(registry: Registry, key: str, default: Any = None) -> Any:
    """A configuration parameter decoded from UTF-8 JSON (``default`` when absent)."""
    raw = await registry.get_config(key)
    if raw is None:
        return default
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRegistryData(f"configuration {key!r} is not JSON: {exc}") from None


async def set_config_json(registry: Registry, key: str, value: Any) -> None:
    """Store a configuration parameter as compact UTF-8 JSON."""
    try:
        raw = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidRegistryData(f"configuration {key!r} cannot be JSON-encoded: {exc}") from None
    await registry.set_config(key, raw)
