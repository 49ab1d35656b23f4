"""Shared pieces of the access-manager tests: real v2 tokens, load-report bytes, a manual clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import pytest

from imsdk_proto.messages import LoadReport
from imsdk_server.access_manager import LocalBearerVerifier
from imsdk_server.auth import KeyRing, TokenCodec, TokenVerifier
from imsdk_server.backends.registry import ServerInfo, ServerState


@dataclass
class Tokens:
    codec: TokenCodec
    verifier: LocalBearerVerifier

    def issue(self, uid: str = "alice", *, lifetime: int = 3600, issued_ago: float = 0.0) -> str:
        token, _ = self.codec.issue(uid, "phone", now=time.time() - issued_ago, lifetime=lifetime)
        return token


@pytest.fixture
def tokens() -> Tokens:
    ring = KeyRing.generate(time.time())
    return Tokens(TokenCodec(ring), LocalBearerVerifier(TokenVerifier(ring, leeway=0)))


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def load_report(
    server_id: int,
    *,
    port: int | None = None,
    host: str = "127.0.0.1",
    region: str = "north",
    isp: str = "tel",
    connections: int = 0,
    cpu: float = 0.0,
    time_ms: int | None = None,
    max_connections: int = 0,
) -> bytes:
    return LoadReport(
        server_id=server_id,
        connections=connections,
        send_queue_depth=0,
        cpu=cpu,
        address=f"{host}:{port if port is not None else 7000 + server_id}",
        region=region,
        isp=isp,
        time_ms=int(time.time() * 1000) if time_ms is None else time_ms,
        max_connections=max_connections,
        name=f"access-{server_id}",
    ).SerializeToString()


def access_entry(
    server_id: int, state: ServerState = ServerState.READY, domain: str = "default"
) -> ServerInfo:
    return ServerInfo(
        role="access",
        server_id=server_id,
        name=f"access-{server_id}",
        domain=domain,
        host="127.0.0.1",
        port=9000 + server_id,
        state=state,
    )


GUARD = 10.0  # seconds; only stops a broken test from hanging, never asserted on


async def eventually(condition: Callable[[], bool]) -> None:
    """Let the manager's tasks run until ``condition`` holds."""
    with anyio.fail_after(GUARD):
        while not condition():  # noqa: ASYNC110 - polls state owned by tasks under test
            await anyio.sleep(0.005)
