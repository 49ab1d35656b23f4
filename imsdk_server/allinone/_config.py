"""Configuration of ``imsdk serve``: the options every role shares, and the per-component tables.

A configuration file is TOML. The ``[server]`` table holds :class:`AllInOneConfig` (the same names as the
command-line options); each component may have a table of its own whose keys are the fields of that
component's configuration dataclass (``[auth]`` → :class:`~imsdk_server.auth.AuthConfig`, ``[access]`` →
:class:`~imsdk_server.access.AccessConfig`, ``[access_manager]``, ``[location]``, ``[router]``, ``[notify]``
→ :class:`~imsdk_server.notify.NotifyConfig`; ``[links]`` → :class:`~imsdk_server.links.LinkConfig`, the
timing of every server-to-server link of the process, failure detector included). Options
given on the command line win over the file. See ``docs/deployment.md``.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from imsdk_server.backends._open import parse_backend_url
from imsdk_server.config import ConfigError, HostPort, load_config

__all__ = ["COMPONENT_TABLES", "AllInOneConfig", "check_base_url", "component_config", "load_serve_config"]

T = TypeVar("T")

#: Component tables a configuration file may hold besides ``[server]``.
COMPONENT_TABLES: tuple[str, ...] = (
    "auth",
    "media",
    "access",
    "access_manager",
    "location",
    "router",
    "notify",
    "links",
)


@dataclass
class AllInOneConfig:
    """What ``imsdk serve <role>`` needs to run: addresses, where state lives, and identity."""

    http: HostPort = field(default_factory=lambda: HostPort("127.0.0.1", 8080))
    """``--http``: where the HTTP services (auth, access manager, ``/metrics``, ``/healthz``) listen."""

    tcp: HostPort = field(default_factory=lambda: HostPort("127.0.0.1", 9000))
    """``--tcp``: where the access server accepts client connections."""

    data: Path | None = None
    """``--data``: directory of the embedded stores (SQLite database, token key ring). ``None`` keeps
    everything in memory: users and messages are gone when the process stops."""

    queue: str = "memory"
    """``--queue``: the message queue, ``memory`` or ``redis://host:port/db?prefix=…``."""

    registry: str = "memory"
    """``--registry``: registration and configuration, ``memory`` or ``zookeeper://host:port/root``."""

    cache: str = "memory"
    """``--cache``: the cache in front of storage (tokens, revocations, recent messages), ``memory`` or
    ``redis://host:port/db?prefix=…``."""

    database: str | None = None
    """``--database``: ``sqlite:///path``, a file path or ``mysql://user:password@host:port/db``. ``None``
    uses ``<data>/imsdk.sqlite3`` (or memory without ``--data``)."""

    auth: str = ""
    """``--auth``: base URL of the auth server, for roles running without one in the process (the access
    server verifies v1 tokens there). Empty: the ``--http`` address."""

    key_file: Path | None = None
    """``--key-file``: the auth server's v2 key ring (JSON) for roles that verify tokens locally without
    running the auth server, and for a router that mints its own token for the media service
    (``media_url``). Default ``<data>/auth-keys.json``."""

    media_url: str = ""
    """``--media``: base URL of the media service, for a router running without the media role in its
    process: it checks every image and voice reference there (``GET <media_url>/v1/media/{id}/meta``) with
    a short-lived token it mints from the key ring. Empty: such a router cannot check references and lets
    them through (it warns once at start). Unused when the process runs the media role (the router reads
    the store itself)."""

    domain: str = "default"
    """The deployment domain every server registers in."""

    name: str = ""
    """A name for this process in the registry and logs; empty derives one from the role and id."""

    access_id: int = 0
    """Server id of the access server; 0 allocates one from the registry."""

    router_id: int = 0
    """Server id of the message router; 0 allocates one from the registry."""

    notify_id: int = 0
    """Server id of the notification server; 0 allocates one from the registry."""

    admin_key: str = field(default="", repr=False)
    """The key trusted back-ends present (``Authorization: Bearer <key>``) to ``POST /v1/notifications``;
    empty turns that endpoint off. ``imsdk serve`` also reads it from ``$IMSDK_ADMIN_KEY``."""

    link_host: str = "127.0.0.1"
    """Address that server-to-server links listen on (registered so that peers can dial it)."""

    advertised: str = ""
    """``HOST:PORT`` clients should dial for the access server; empty uses the bound ``--tcp`` address."""

    region: str = ""
    """Region of this access server, for the access manager's ranking."""

    isp: str = ""
    """Network operator of this access server, for the access manager's ranking."""

    drain_timeout: float = 10.0
    """On shutdown, how long each server waits for its peers to ack not-ready before closing anyway."""

    components: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The per-component tables of the file (``auth``, ``access``, …), applied when each is built."""

    def __post_init__(self) -> None:
        parse_backend_url("queue", self.queue)
        parse_backend_url("registry", self.registry)
        parse_backend_url("cache", self.cache)
        if self.database is not None:
            parse_backend_url("database", self.database)
        if self.media_url:
            check_base_url("media", self.media_url)
        for name in ("access_id", "router_id", "notify_id"):
            if not 0 <= getattr(self, name) <= 0xFFFF_FFFF:
                raise ConfigError(f"{name} must be 0 (allocate) or 1..4294967295")
        if self.drain_timeout <= 0:
            raise ConfigError("drain_timeout must be positive")
        unknown = sorted(set(self.components) - set(COMPONENT_TABLES))
        if unknown:
            raise ConfigError(f"unknown table(s) [{'], ['.join(unknown)}]; known: [server], "
                              f"[{'], ['.join(COMPONENT_TABLES)}]")  # fmt: skip

    def database_location(self) -> str:
        """The database that every SQL store of this process uses."""
        if self.database is not None:
            return parse_backend_url("database", self.database).url
        if self.data is not None:
            return str(Path(self.data) / "imsdk.sqlite3")
        return ":memory:"

    def key_file_path(self) -> Path | None:
        """Where the v2 key ring is, or ``None`` when there is none on disk."""
        if self.key_file is not None:
            return Path(self.key_file)
        if self.data is not None:
            return Path(self.data) / "auth-keys.json"
        return None

    def auth_url(self) -> str:
        """Base URL of the auth server."""
        if self.auth:
            return self.auth.rstrip("/")
        host = "127.0.0.1" if self.http.host in ("0.0.0.0", "::", "") else self.http.host
        return f"http://{HostPort(host, self.http.port)}"


def check_base_url(option: str, url: str) -> str:
    """``url`` without a trailing slash if it is an ``http://`` or ``https://`` base URL naming a host (no
    query, no fragment); else a :class:`~imsdk_server.config.ConfigError` naming ``--<option>``."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number or out of range
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or url != url.strip()
    ):
        raise ConfigError(
            f"--{option} {url!r}: expected the {option} service's base URL, http://host[:port][/path]"
        )
    return url.rstrip("/")


def load_serve_config(path: Path | str | None, overrides: Mapping[str, Any] | None = None) -> AllInOneConfig:
    """Read ``[server]`` and the component tables of ``path`` (if given), then apply ``overrides``."""
    components: dict[str, dict[str, Any]] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                document = tomllib.load(f)
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        unknown = sorted(set(document) - {"server", *COMPONENT_TABLES})
        if unknown:
            raise ConfigError(
                f"{path}: unknown table(s) or key(s) {', '.join(unknown)}; "
                f"expected [server] and any of [{'], ['.join(COMPONENT_TABLES)}]"
            )
        for name in COMPONENT_TABLES:
            table = document.get(name)
            if table is not None:
                if not isinstance(table, dict):
                    raise ConfigError(f"{path}: [{name}] must be a table")
                components[name] = table
    config = load_config(AllInOneConfig, path=path, section="server", overrides=overrides)
    config.components = components
    return config


def component_config(config: AllInOneConfig, cls: type[T], table: str, **forced: Any) -> T:
    """Build a component's configuration from its table in ``config``, with ``forced`` values on top.

    ``forced`` holds what this process decides for the component (addresses, ids); a file naming one of
    those keys too is overridden, except by a forced ``None`` (nothing decided: the table's value stays).
    Errors (unknown key, wrong type, a value the component refuses) are a
    :class:`~imsdk_server.config.ConfigError` naming the table.
    """
    values = dict(config.components.get(table, {}))
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values.update({k: v for k, v in forced.items() if k in names and v is not None})
    try:
        return load_config(cls, section=table, overrides=values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{table}]: {exc}") from None
