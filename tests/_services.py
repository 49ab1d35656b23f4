"""Where the real services live in tests, and how a missing one is handled.

Locally a missing MySQL, Redis or ZooKeeper skips the tests that need it. With
``IMSDK_REQUIRE_SERVICES=1`` (set by ``.ci/run``) a missing service is a test failure instead.
"""

from __future__ import annotations

import os
import socket

import pytest

MYSQL_HOST = os.environ.get("IMSDK_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("IMSDK_TEST_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("IMSDK_TEST_MYSQL_USER", "root")
MYSQL_PASSWORD = os.environ.get("IMSDK_TEST_MYSQL_PASSWORD", "")
REDIS_URL = os.environ.get("IMSDK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ZOOKEEPER_HOSTS = os.environ.get("IMSDK_TEST_ZOOKEEPER", "127.0.0.1:2181")


def services_required() -> bool:
    return os.environ.get("IMSDK_REQUIRE_SERVICES", "") not in ("", "0", "false", "no")


def unavailable(what: str) -> None:
    """Skip locally; fail under CI, where every real service must be there."""
    message = f"{what} is not reachable"
    if services_required():
        pytest.fail(f"{message} (IMSDK_REQUIRE_SERVICES is set)", pytrace=False)
    pytest.skip(message)


def tcp_reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def zookeeper_ok(hosts: str = ZOOKEEPER_HOSTS, timeout: float = 1.0) -> bool:
    host, _, port = hosts.split(",")[0].partition(":")
    try:
        with socket.create_connection((host, int(port or 2181)), timeout=timeout) as s:
            s.sendall(b"ruok")
            return s.recv(4) == b"imok"
    except OSError:
        return False
