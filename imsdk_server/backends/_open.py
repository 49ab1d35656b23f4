"""Opening a backend from a URL: what ``--queue``, ``--cache``, ``--registry`` and ``--database`` accept.

========== ================================================ =================================================
part       embedded                                         real
========== ================================================ =================================================
queue      ``memory``                                       ``redis://host:port/db?prefix=imsdk:``
cache      ``memory``                                       ``redis://host:port/db?prefix=imsdk:``
registry   ``memory``                                       ``zookeeper://host:port[,host:port…]/root``
database   ``sqlite:///path``, a bare path, ``:memory:``    ``mysql://user:password@host:port/database``
========== ================================================ =================================================

:func:`parse_backend_url` checks a URL without opening anything (so that a bad option is reported before a
server starts); the ``open_*`` functions then make the backend. The embedded queue and registry live in one
process: several components of that process share them through the ``hub`` arguments. A URL that cannot be
used is a :class:`BackendURLError`, a :class:`~imsdk_server.config.ConfigError` whose message names the
option and the accepted forms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from imsdk_server.config import ConfigError
from imsdk_server.metrics import Metrics

if TYPE_CHECKING:
    from imsdk_server.backends.cache import Cache
    from imsdk_server.backends.queue import MemoryQueueHub, Queue
    from imsdk_server.backends.registry import MemoryRegistryHub, Registry
    from imsdk_server.backends.sql import SQLDatabase

__all__ = [
    "BackendKind",
    "BackendURL",
    "BackendURLError",
    "open_cache",
    "open_database",
    "open_queue",
    "open_registry",
    "parse_backend_url",
]

BackendKind = Literal["queue", "cache", "registry", "database"]

_FORMS: dict[str, str] = {
    "queue": "'memory' or 'redis://host:port/db?prefix=…'",
    "cache": "'memory' or 'redis://host:port/db?prefix=…'",
    "registry": "'memory' or 'zookeeper://host:port[,host:port]/root'",
    "database": "'sqlite:///path', a file path, ':memory:' or 'mysql://user:password@host:port/database'",
}
_DEFAULT_PREFIX = "imsdk:"


class BackendURLError(ConfigError):
    """A backend URL has an unknown scheme, a bad host, port or path, or an unknown parameter."""


@dataclass(frozen=True)
class BackendURL:
    """A checked backend URL. ``engine`` is ``memory``, ``redis``, ``zookeeper``, ``sqlite`` or ``mysql``."""

    kind: BackendKind
    engine: str
    url: str
    """The URL to hand to the engine's client (query parameters removed for Redis)."""
    prefix: str = _DEFAULT_PREFIX
    """Redis: the key prefix (``?prefix=``)."""
    hosts: str = ""
    """ZooKeeper: ``host:port[,host:port]``."""
    root: str = "/imsdk"
    """ZooKeeper: the root path every znode lives under."""

    @property
    def embedded(self) -> bool:
        """Whether the backend lives in this process (memory, SQLite)."""
        return self.engine in ("memory", "sqlite")


def _fail(kind: str, text: str, why: str) -> BackendURLError:
    return BackendURLError(f"--{kind} {text!r}: {why}; expected {_FORMS[kind]}")


def _check_port(kind: str, text: str, netloc: str) -> None:
    for part in netloc.split(","):
        host, sep, port = part.rpartition(":")
        if not sep:
            host, port = part, ""
        if not host.strip("[]"):
            raise _fail(kind, text, "no host")
        if port and (not port.isdigit() or not 0 < int(port) <= 65535):
            raise _fail(kind, text, f"bad port {port!r}")


def parse_backend_url(kind: BackendKind, text: str) -> BackendURL:
    """Check ``text`` as a URL for a backend of ``kind``; :class:`BackendURLError` when it is unusable."""
    if kind not in _FORMS:
        raise ValueError(f"unknown backend kind {kind!r}")
    if not isinstance(text, str) or not text.strip():
        raise _fail(kind, str(text), "empty")
    text = text.strip()
    if text == "memory" and kind != "database":
        return BackendURL(kind, "memory", "memory")
    if kind == "database":
        return _parse_database(text)
    parts = urlsplit(text)
    if kind in ("queue", "cache"):
        if parts.scheme not in ("redis", "rediss"):
            raise _fail(kind, text, f"unknown scheme {parts.scheme or text!r}")
        if not parts.hostname:
            raise _fail(kind, text, "no host")
        _check_port(kind, text, parts.netloc.rpartition("@")[2])
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise _fail(kind, text, f"the database must be a number, not {path!r}")
        query = parse_qs(parts.query, keep_blank_values=True)
        unknown = sorted(set(query) - {"prefix"})
        if unknown:
            raise _fail(kind, text, f"unknown parameter(s) {', '.join(unknown)}")
        prefix = query.get("prefix", [_DEFAULT_PREFIX])[-1]
        plain = parts._replace(query="", fragment="").geturl()
        return BackendURL(kind, "redis", plain, prefix=prefix)
    # registry
    if parts.scheme not in ("zookeeper", "zk"):
        raise _fail(kind, text, f"unknown scheme {parts.scheme or text!r}")
    if not parts.netloc:
        raise _fail(kind, text, "no host")
    _check_port(kind, text, parts.netloc)
    if parts.query:
        raise _fail(kind, text, "takes no parameters")
    root = "/" + parts.path.strip("/") if parts.path.strip("/") else "/imsdk"
    return BackendURL(kind, "zookeeper", text, hosts=parts.netloc, root=root)


def _parse_database(text: str) -> BackendURL:
    if text.startswith(("mysql://", "mysql+pymysql://", "mariadb://")):
        from imsdk_server.backends.sql import parse_mysql_dsn

        parts = urlsplit(text)
        if not parts.hostname:
            raise _fail("database", text, "no host")
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
            parse_mysql_dsn(text)
        except ValueError as exc:
            raise _fail("database", text, str(exc)) from None
        return BackendURL("database", "mysql", text)
    if text.startswith("sqlite:///"):
        path = unquote(text[len("sqlite:///") :])
        if not path:
            raise _fail("database", text, "no path")
        return BackendURL("database", "sqlite", path)
    if "://" in text:
        raise _fail("database", text, f"unknown scheme {text.split('://', 1)[0]!r}")
    return BackendURL("database", "sqlite", text)


def open_queue(text: str, *, hub: MemoryQueueHub | None = None, metrics: Metrics | None = None) -> Queue:
    """A queue client for ``text``. ``memory`` opens a client of ``hub`` (a private hub when ``None``)."""
    url = parse_backend_url("queue", text)
    if url.engine == "memory":
        from imsdk_server.backends.queue import MemoryQueue

        return MemoryQueue(hub, metrics=metrics)
    from imsdk_server.backends.queue import RedisQueue

    return RedisQueue.from_url(url.url, prefix=url.prefix, metrics=metrics)


def open_cache(text: str) -> Cache:
    """A cache for ``text``: an in-process LRU for ``memory``, else Redis."""
    url = parse_backend_url("cache", text)
    if url.engine == "memory":
        from imsdk_server.backends.cache import MemoryCache

        return MemoryCache()
    from imsdk_server.backends.cache import RedisCache

    return RedisCache(url.url, prefix=url.prefix)


async def open_registry(
    text: str, *, hub: MemoryRegistryHub | None = None, metrics: Metrics | None = None
) -> Registry:
    """A registry client for ``text``; ``memory`` connects to ``hub`` (a private hub when ``None``).

    Raises :class:`~imsdk_server.backends.registry.RegistryUnavailable` when ZooKeeper cannot be reached.
    """
    url = parse_backend_url("registry", text)
    if url.engine == "memory":
        from imsdk_server.backends.registry import MemoryRegistryHub

        return await (hub if hub is not None else MemoryRegistryHub(metrics)).connect(metrics)
    from imsdk_server.backends.registry import ZooKeeperRegistry

    return await ZooKeeperRegistry.connect(url.hosts, root=url.root, metrics=metrics)


def open_database(text: str) -> SQLDatabase:
    """A SQL database for ``text`` (SQLite file or ``:memory:``, or MySQL/MariaDB)."""
    url = parse_backend_url("database", text)
    from imsdk_server.backends.sql import open_database as _open

    return _open(url.url)
