"""Token verification: v2 locally (what an access server does) against v1 through the HTTP verify API.

Run from the repository root::

    python -m bench.tokens [--seconds 3] [--connections 32]

v2: :meth:`imsdk_server.auth.TokenVerifier.verify` on one core (this process, one thread), over 1,000
distinct tokens, CPU time measured. v1: the auth server runs under uvicorn in a subprocess pinned to CPU 0
(uvloop when installed) with the embedded backends; this process, pinned to CPU 1, keeps ``--connections``
keep-alive HTTP/1.1 connections busy with ``POST /v1/tokens/verify`` for ``--seconds`` of wall time and
counts the 200 answers. The last line is exactly::

    tokens: v2 local <N>/s, v1 http <M>/s, ratio <R>x
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import anyio

from bench._report import rate, table
from imsdk_server.auth import KeyRing, TokenCodec, TokenVerifier

_SERVER = r"""
import sys, anyio
from imsdk_server.auth import AuthConfig, serve_auth

async def main() -> None:
    config = AuthConfig(port=0, token_kind="v1", scrypt_log2_n=12, throttle_window=1.0)
    async with anyio.create_task_group() as tg:
        host, port = await tg.start(serve_auth, config)
        print(port, flush=True)
        await anyio.to_thread.run_sync(sys.stdin.read)  # until the parent closes our stdin
        tg.cancel_scope.cancel()

try:
    import uvloop  # noqa: F401
    options = {"use_uvloop": True}
except ImportError:
    options = {}
anyio.run(main, backend_options=options)
"""


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})


def bench_v2() -> float:
    """v2 local verifications per second of CPU time, on this thread."""
    now = time.time()
    ring = KeyRing.generate(now)
    codec = TokenCodec(ring)
    tokens = [codec.issue(f"user{i}", f"device{i % 3}", now=now, lifetime=3600)[0] for i in range(1000)]
    verifier = TokenVerifier(ring)

    def run(n: int) -> None:
        verify = verifier.verify
        for _ in range(n):
            for token in tokens:
                verify(token, now)

    return rate(run, items_per_call=len(tokens), repeat=5)


async def _http(stream: anyio.abc.ByteStream, request: bytes) -> tuple[int, bytes]:
    await stream.send(request)
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += await stream.receive()
    head, _, body = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += await stream.receive()
    return int(head.split(b" ", 2)[1]), body


def _post(path: str, payload: dict[str, object], token: str | None = None) -> bytes:
    body = json.dumps(payload).encode()
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n{auth}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def bench_v1(port: int, seconds: float, connections: int) -> tuple[float, int]:
    """v1 verifications per second through the HTTP API, and the number of failed answers."""
    async with await anyio.connect_tcp("127.0.0.1", port) as s:
        status, _ = await _http(
            s, _post("/v1/users", {"uid": "bench", "password": "bench-password", "nickname": "B"})
        )
        assert status == 201, status
        status, body = await _http(
            s, _post("/v1/login", {"uid": "bench", "password": "bench-password", "device": "d"})
        )
        assert status == 200, status
    token = json.loads(body)["token"]
    request = _post("/v1/tokens/verify", {"token": token, "uid": "bench"})
    ok = failed = 0
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal ok, failed
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            while time.monotonic() < deadline:
                status, _ = await _http(stream, request)
                if status == 200:
                    ok += 1
                else:
                    failed += 1

    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        for _ in range(connections):
            tg.start_soon(worker)
    return ok / (time.monotonic() - started), failed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="wall time of the v1 HTTP run")
    parser.add_argument("--connections", type=int, default=32, help="concurrent keep-alive connections")
    args = parser.parse_args(argv)

    _pin(1)
    v2 = bench_v2()
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: _pin(0),
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        v1, failed = anyio.run(bench_v1, port, args.seconds, args.connections)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    print(
        table(
            ["measurement", "per second", "notes"],
            [
                ["v2 local verify", f"{v2:,.0f}", "TokenVerifier.verify, one thread, CPU time"],
                [
                    "v1 HTTP verify",
                    f"{v1:,.0f}",
                    f"uvicorn on CPU 0, {args.connections} connections, {failed} failed",
                ],
            ],
        )
    )
    print(f"tokens: v2 local {v2:.0f}/s, v1 http {v1:.0f}/s, ratio {v2 / v1:.1f}x")


if __name__ == "__main__":
    main()
