"""Backend URLs (``--queue``, ``--cache``, ``--registry``, ``--database``): parsing, refusals, and opening."""

from __future__ import annotations

from pathlib import Path

import pytest

from imsdk_server.backends._open import (
    BackendKind,
    BackendURLError,
    open_cache,
    open_database,
    open_queue,
    open_registry,
    parse_backend_url,
)
from imsdk_server.backends.registry import MemoryRegistryHub, ServerInfo
from imsdk_server.config import ConfigError
from tests.conftest import MySQLTarget, RedisTarget, ZooKeeperTarget

# (kind, text, engine, url handed to the client, extra attribute checks)
GOOD: list[tuple[BackendKind, str, str, str, dict[str, str]]] = [
    ("queue", "memory", "memory", "memory", {}),
    ("queue", "redis://127.0.0.1:6379/0", "redis", "redis://127.0.0.1:6379/0", {"prefix": "imsdk:"}),
    ("queue", "redis://h:6380/2?prefix=app:", "redis", "redis://h:6380/2", {"prefix": "app:"}),
    ("queue", "rediss://user:pw@h/1", "redis", "rediss://user:pw@h/1", {}),
    ("cache", "memory", "memory", "memory", {}),
    ("cache", "redis://h?prefix=", "redis", "redis://h", {"prefix": ""}),
    ("registry", "memory", "memory", "memory", {}),
    (
        "registry",
        "zookeeper://h:2181/im",
        "zookeeper",
        "zookeeper://h:2181/im",
        {"hosts": "h:2181", "root": "/im"},
    ),
    (
        "registry",
        "zookeeper://a:1,b:2",
        "zookeeper",
        "zookeeper://a:1,b:2",
        {"hosts": "a:1,b:2", "root": "/imsdk"},
    ),
    ("registry", "zk://h/a/b/", "zookeeper", "zk://h/a/b/", {"root": "/a/b"}),
    ("database", "sqlite:///data/im.db", "sqlite", "data/im.db", {}),
    ("database", "sqlite:////abs/im.db", "sqlite", "/abs/im.db", {}),
    ("database", "/var/lib/im.sqlite3", "sqlite", "/var/lib/im.sqlite3", {}),
    ("database", ":memory:", "sqlite", ":memory:", {}),
    ("database", "mysql://root:@127.0.0.1:3306/test", "mysql", "mysql://root:@127.0.0.1:3306/test", {}),
]

# (kind, text, fragment of the message)
BAD: list[tuple[BackendKind, str, str]] = [
    ("queue", "", "empty"),
    ("queue", "kafka://h:9092", "unknown scheme 'kafka'"),
    ("queue", "redis://", "no host"),
    ("queue", "redis://h:0/0", "bad port '0'"),
    ("queue", "redis://h:http/0", "bad port"),
    ("queue", "redis://h/zero", "database must be a number"),
    ("queue", "redis://h/0?prefix=a&db=1", "unknown parameter(s) db"),
    ("cache", "memcached://h", "unknown scheme 'memcached'"),
    ("cache", "memoryy", "unknown scheme"),
    ("registry", "etcd://h", "unknown scheme 'etcd'"),
    ("registry", "zookeeper:///root", "no host"),
    ("registry", "zookeeper://h:99999/r", "bad port '99999'"),
    ("registry", "zookeeper://h/r?x=1", "takes no parameters"),
    ("database", "postgres://h/db", "unknown scheme 'postgres'"),
    ("database", "mysql://h/", "names no database"),
    ("database", "mysql://h:port/db", "Port could not be cast"),
    ("database", "sqlite:///", "no path"),
]


@pytest.mark.parametrize(
    ("kind", "text", "engine", "url", "attrs"), GOOD, ids=[f"{c[0]}:{c[1]}" for c in GOOD]
)
def test_good_urls(kind: BackendKind, text: str, engine: str, url: str, attrs: dict[str, str]) -> None:
    parsed = parse_backend_url(kind, text)
    assert (parsed.kind, parsed.engine, parsed.url) == (kind, engine, url)
    for name, value in attrs.items():
        assert getattr(parsed, name) == value
    assert parsed.embedded == (engine in ("memory", "sqlite"))


@pytest.mark.parametrize(("kind", "text", "fragment"), BAD, ids=[f"{c[0]}:{c[1]}" for c in BAD])
def test_bad_urls(kind: BackendKind, text: str, fragment: str) -> None:
    with pytest.raises(BackendURLError) as caught:
        parse_backend_url(kind, text)
    message = str(caught.value)
    assert message.startswith(f"--{kind} ")
    assert fragment in message
    assert "expected" in message
    assert isinstance(caught.value, ConfigError)


@pytest.mark.anyio
async def test_memory_backends_share_their_hub() -> None:
    hub = MemoryRegistryHub()
    first = await open_registry("memory", hub=hub)
    second = await open_registry("memory", hub=hub)
    try:
        await first.register(ServerInfo("router", 7, "r", "default", "127.0.0.1", 4000))
        assert [s.server_id for s in await second.list_servers("default", "router")] == [7]
    finally:
        await first.aclose()
        await second.aclose()
    queue = open_queue("memory")
    cache = open_cache("memory")
    try:
        await queue.publish("t", b"x")
        await cache.set("k", b"v")
        assert await cache.get("k") == b"v"
    finally:
        await queue.aclose()
        await cache.aclose()


@pytest.mark.anyio
async def test_sqlite_file(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path}/x.sqlite3")
    try:
        assert await db.fetchone("SELECT 1") == (1,)
    finally:
        await db.aclose()
    assert (tmp_path / "x.sqlite3").exists()


@pytest.mark.anyio
@pytest.mark.redis
async def test_redis_queue_and_cache_use_the_prefix(redis_target: RedisTarget) -> None:
    import redis

    url = f"{redis_target.url}?prefix={redis_target.prefix}"
    queue = open_queue(url)
    cache = open_cache(url)
    try:
        await queue.publish("events", b"payload")
        await cache.set("key", b"value")
        assert await cache.get("key") == b"value"
    finally:
        await queue.aclose()
        await cache.aclose()
    client = redis.Redis.from_url(redis_target.url)
    try:
        keys = {k.decode() for k in client.scan_iter(match=redis_target.prefix + "*")}
    finally:
        client.close()
    assert f"{redis_target.prefix}key" in keys
    assert any(k.endswith("events") for k in keys)


@pytest.mark.anyio
@pytest.mark.zookeeper
async def test_zookeeper_registry_under_the_root(zookeeper_target: ZooKeeperTarget) -> None:
    registry = await open_registry(f"zookeeper://{zookeeper_target.hosts}{zookeeper_target.root}")
    try:
        await registry.register(ServerInfo("router", 9, "r", "default", "127.0.0.1", 4000))
        assert [s.server_id for s in await registry.list_servers("default", "router")] == [9]
    finally:
        await registry.aclose()


@pytest.mark.anyio
@pytest.mark.mysql
async def test_mysql_database(mysql_db: MySQLTarget) -> None:
    t = mysql_db
    db = open_database(f"mysql://{t.user}:{t.password}@{t.host}:{t.port}/{t.database}")
    try:
        assert await db.fetchone("SELECT 1") == (1,)
    finally:
        await db.aclose()
