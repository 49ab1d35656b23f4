"""N authenticated idle connections to one access server: memory per connection and handshake rate.

Run from the repository root::

    python -m bench.connections [--connections 10000] [--concurrency 256]

The access server runs in a subprocess pinned to CPU 0 (uvloop when installed); this process, pinned to
CPU 1, is the load generator. Tokens are real v2 tokens, issued beforehand and verified by the server. Client
source addresses are spread over 127.0.0.2 … 127.0.0.251, and the soft open-file limit is raised to the hard
one (both processes inherit it). The server's memory is its resident set size read from ``/proc`` before the
first connection and once all N connections are established and idle.

The last line is exactly::

    connections: <N> idle, <K> KiB per connection, <H> handshakes/s
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._report import table
from imsdk_proto._frame import FrameDecoder, encode_frame
from imsdk_proto._header import Header
from imsdk_proto.codes import Biz, Codec, SystemFunc
from imsdk_proto.messages import Handshake, NetworkType, Platform

# -------------------------------------------------------------------------------------------------- server


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})


def _serve(ring_path: str) -> None:
    """The server process: an access server verifying v2 tokens locally. Prints its port; stops at the end
    of its stdin."""
    import anyio

    from imsdk_server.access import AccessConfig, AccessServer, LocalTokenVerifier
    from imsdk_server.auth import KeyRing, TokenVerifier

    _pin(0)

    async def main() -> None:
        verifier = LocalTokenVerifier(TokenVerifier(KeyRing.load(ring_path)))
        server = AccessServer(AccessConfig(server_id=1, host="127.0.0.1", port=0), verifier)
        async with anyio.create_task_group() as tg:
            _host, port = await tg.start(server.serve)
            print(port, flush=True)
            # Stop when the parent closes our stdin.
            await anyio.to_thread.run_sync(sys.stdin.read)
            tg.cancel_scope.cancel()

    try:
        import uvloop  # noqa: F401

        options = {"use_uvloop": True}
    except ImportError:
        options = {}
    anyio.run(main, backend="asyncio", backend_options=options)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc status")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


# -------------------------------------------------------------------------------------------------- clients


class _Handshaker(asyncio.Protocol):
    """One idle client: sends its handshake, waits for the reply, then stays connected and silent."""

    __slots__ = ("_buf", "_done", "_payload", "transport")

    def __init__(self, payload: bytes, done: asyncio.Future[bool]) -> None:
        self._payload = payload
        self._done = done
        self._buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses
        transport.write(self._payload)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self._done.done():
            return
        self._buf += data
        decoder = FrameDecoder()
        decoder.feed(self._buf)
        frame = decoder.next_frame()
        if frame is not None:
            ok = frame.header.code == (Biz.SYSTEM, SystemFunc.HANDSHAKE_ACK)
            self._done.set_result(ok)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._done.done():
            self._done.set_result(False)


async def _connect_all(
    port: int, payloads: list[bytes], concurrency: int
) -> tuple[list[asyncio.Transport], float, int]:
    """Open one connection per payload, ``concurrency`` handshakes at a time; returns the transports of the
    accepted ones, the time it took and the number of failures."""
    loop = asyncio.get_running_loop()
    transports: list[asyncio.Transport] = []
    failures = 0
    todo = iter(enumerate(payloads))

    async def worker() -> None:
        nonlocal failures
        for i, payload in todo:
            done: asyncio.Future[bool] = loop.create_future()
            source = f"127.0.0.{2 + i % 250}"
            try:
                transport, _ = await loop.create_connection(
                    functools.partial(_Handshaker, payload, done), "127.0.0.1", port, local_addr=(source, 0)
                )
            except OSError:
                failures += 1
                continue
            try:
                ok = await asyncio.wait_for(done, 30)
            except TimeoutError:
                ok = False
            if ok:
                transports.append(transport)
            else:
                failures += 1
                transport.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return transports, time.perf_counter() - start, failures


# -------------------------------------------------------------------------------------------------- main


def _raise_nofile(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if needed + 200 > soft:
        raise SystemExit(f"need about {needed + 200} open files, the limit is {soft}")
    return soft


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.connections", description=__doc__.split("\n")[0])
    parser.add_argument("--connections", "-n", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=256, help="handshakes in flight at once")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds idle before the memory reading")
    parser.add_argument("--serve", metavar="RING", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        _serve(args.serve)
        return 0

    n = args.connections
    limit = _raise_nofile(n)

    from imsdk_server.auth import KeyRing, TokenCodec

    ring = KeyRing.generate(time.time())
    codec = TokenCodec(ring)
    now = time.time()
    payloads = []
    for i in range(n):
        device = f"d{i % 3}"
        token, _ = codec.issue(f"user{i // 3}", device, now=now, lifetime=3600)
        body = Handshake(
            token=token,
            device_id=device,
            platform=Platform.PLATFORM_ANDROID,
            client_version="1.0.0",
            network=NetworkType.NETWORK_TYPE_WIFI,
            codec=int(Codec.PROTOBUF),
        )
        payloads.append(encode_frame(Header(Biz.SYSTEM, SystemFunc.HANDSHAKE, seq=1), body))

    with tempfile.TemporaryDirectory() as tmp:
        ring_path = str(Path(tmp) / "ring.json")
        ring.save(ring_path)
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        server_cmd = os.environ.get("IMSDK_BENCH_SERVER_CMD", "").split() or [
            "-m",
            "bench.connections",
            "--serve",
        ]
        server = subprocess.Popen(
            [sys.executable, *server_cmd, ring_path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=root,
            env=env,
        )
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            _pin(1)
            time.sleep(0.5)
            rss_before = _rss_kib(server.pid)
            cpu_before = _cpu_seconds(server.pid)

            async def run() -> tuple[float, int, int, float]:
                transports, elapsed, failures = await _connect_all(port, payloads, args.concurrency)
                cpu_mid = _cpu_seconds(server.pid)
                await asyncio.sleep(args.settle)
                rss_after = _rss_kib(server.pid)
                for t in transports:
                    t.abort()
                return elapsed, failures, rss_after, cpu_mid

            try:
                import uvloop

                elapsed, failures, rss_after, cpu_mid = uvloop.run(run())
            except ImportError:
                elapsed, failures, rss_after, cpu_mid = asyncio.run(run())
        finally:
            if server.stdin is not None:
                server.stdin.close()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()

    ok = n - failures
    per_conn = (rss_after - rss_before) / max(ok, 1)
    rate = ok / elapsed if elapsed > 0 else 0.0
    cpu_per_hs = (cpu_mid - cpu_before) / max(ok, 1) * 1e6
    rows = [
        ("connections asked / established", f"{n} / {ok}"),
        ("open-file limit", limit),
        ("handshakes in flight", args.concurrency),
        ("time to establish all", f"{elapsed:.2f} s"),
        ("server RSS before", f"{rss_before} KiB"),
        ("server RSS with all idle", f"{rss_after} KiB"),
        ("server CPU per handshake", f"{cpu_per_hs:.0f} µs"),
    ]
    print(table(["figure", "value"], rows))
    print(f"connections: {ok} idle, {per_conn:.1f} KiB per connection, {rate:.0f} handshakes/s")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
