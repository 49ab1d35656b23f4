"""Shared fixtures: anyio backends and the real services (MySQL, Redis, ZooKeeper).

Each real-service fixture gives the test a namespace of its own (a fresh database, a key prefix, a znode
path) and removes it afterwards, so tests can run side by side against one server.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from tests import _services as services

if TYPE_CHECKING:
    from imsdk_server.backends.sql import MySQLDatabase


@pytest.fixture
def anyio_backend() -> str:
    """Servers run on asyncio; client tests parametrize over asyncio and trio themselves."""
    return "asyncio"


@dataclass(frozen=True)
class MySQLTarget:
    host: str
    port: int
    user: str
    password: str
    database: str

    def open(self, **options: Any) -> MySQLDatabase:
        """The suite's SQL connection abstraction on this database (``options`` as for MySQLDatabase)."""
        from imsdk_server.backends.sql import MySQLDatabase

        return MySQLDatabase(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=self.database,
            **options,
        )


@pytest.fixture
def mysql_db() -> Iterator[MySQLTarget]:
    """A fresh, empty MySQL database for one test, dropped afterwards."""
    try:
        import pymysql
    except ImportError:  # pragma: no cover - dev extras install it
        services.unavailable("pymysql")
        raise
    if not services.tcp_reachable(services.MYSQL_HOST, services.MYSQL_PORT):
        services.unavailable(f"MySQL at {services.MYSQL_HOST}:{services.MYSQL_PORT}")
    name = f"imsdk_t_{secrets.token_hex(6)}"
    conn = pymysql.connect(
        host=services.MYSQL_HOST,
        port=services.MYSQL_PORT,
        user=services.MYSQL_USER,
        password=services.MYSQL_PASSWORD,
        autocommit=True,
    )
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        yield MySQLTarget(
            services.MYSQL_HOST, services.MYSQL_PORT, services.MYSQL_USER, services.MYSQL_PASSWORD, name
        )
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


@dataclass(frozen=True)
class RedisTarget:
    url: str
    prefix: str


@pytest.fixture
def redis_target() -> Iterator[RedisTarget]:
    """The Redis URL and a key prefix of this test's own; its keys are deleted afterwards."""
    try:
        import redis
    except ImportError:  # pragma: no cover
        services.unavailable("redis-py")
        raise
    client = redis.Redis.from_url(services.REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        services.unavailable(f"Redis at {services.REDIS_URL}")
    prefix = f"imsdk-t-{secrets.token_hex(6)}:"
    try:
        yield RedisTarget(services.REDIS_URL, prefix)
    finally:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


@dataclass(frozen=True)
class ZooKeeperTarget:
    hosts: str
    root: str


@pytest.fixture
def zookeeper_target() -> Iterator[ZooKeeperTarget]:
    """ZooKeeper hosts and a root znode path of this test's own, deleted afterwards."""
    if not services.zookeeper_ok():
        services.unavailable(f"ZooKeeper at {services.ZOOKEEPER_HOSTS}")
    root = f"/imsdk-test-{secrets.token_hex(6)}"
    yield ZooKeeperTarget(services.ZOOKEEPER_HOSTS, root)
    try:
        from kazoo.client import KazooClient

        zk = KazooClient(hosts=services.ZOOKEEPER_HOSTS, timeout=5)
        zk.start(timeout=5)
        zk.delete(root, recursive=True)
        zk.stop()
        zk.close()
    except Exception:  # best-effort cleanup
        pass
