"""1:1 text relay through the access server and the message router: throughput, server CPU and latency.

Run from the repository root::

    python -m bench.relay [--pairs 200] [--window 10] [--duration 8] [--rate 5000] [--quick]

For each message class (``instant``: ``Flags.NO_STORE``; ``offline``: stored durably first) a fresh server
process (:mod:`bench._relay_server`: access server + router + location on the embedded defaults, SQLite in a
temporary directory, uvloop) is pinned to CPU 0; this process, the load generator, is pinned to CPU 1. It
opens one sender and one receiver connection per pair, with real v2 handshakes and real tokens, waits for
every line's login catch-up marker, learns the router's id from one ``WRONG_MESSAGE_SERVER`` redirect per
sender (as a client SDK does), and then runs two phases:

*max rate*
    closed loop: each pair keeps ``--window`` messages in flight (a message leaves the window once the
    receiver got it and the sender got its ack); after ``--warmup`` seconds, ``--duration`` seconds are
    measured: delivered messages per second and server CPU (user + system, all threads, from
    ``/proc/<pid>/stat``) per 1,000 delivered messages.
*fixed rate*
    open loop at ``--rate`` messages per second in total, round-robin over the pairs; after a one-second
    lead-in, ``--rate-duration`` seconds are measured: end-to-end latency from the send on this process's
    monotonic clock to the receiver reading the push, as p50 and p99.

Payloads are 100-character texts. Receivers of offline messages ack cumulatively every ``--ack-every``
messages, as a client does. While measuring, every message is checked: delivered exactly once, in order per
pair, answered once with the expected status (and for the offline class carrying conversation sequence =
the sender's numbering). Losses, duplicates, reorderings and error answers are printed; any non-zero count
is printed loudly and makes the exit status 1.

The output is a table per class, then one line per class, exactly::

    relay <class>: <N> msgs/s max, server CPU <c> ms per 1k msgs, p50 <a> ms, p99 <b> ms at 5000 msgs/s
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench._relay_server import pin
from bench._report import table
from imsdk_proto._frame import Frame, FrameDecoder, encode_frame, encode_raw
from imsdk_proto._header import Header
from imsdk_proto.codes import Biz, ChatFunc, Codec, ErrorCode, Flags, SyncFunc, SystemFunc
from imsdk_proto.messages import (
    ChatText,
    ConversationCursor,
    Handshake,
    HandshakeAck,
    NetworkType,
    Platform,
    SendAck,
    SendStatus,
    SyncAck,
)

_ROOT = Path(__file__).resolve().parent.parent
_CHAT, _TEXT, _SEND_ACK = int(Biz.CHAT), int(ChatFunc.TEXT), int(ChatFunc.SEND_ACK)
_SYNC, _DONE = int(Biz.SYNC), int(SyncFunc.DONE)
_ERROR = int(Flags.ERROR)
_STATUS_NAMES = {v: SendStatus.Name(v) for v in SendStatus.values()}
_CLASSES = ("instant", "offline")


def _conversation(a: str, b: str) -> str:
    lo, hi = sorted((a, b))
    return f"p2p:{len(lo)}:{lo}:{hi}"


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of every thread of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _runqueue_seconds(pid: int) -> float:
    """Time the threads of ``pid`` spent runnable but waiting for a CPU (others' load on the server's CPU);
    0 where the kernel does not report it."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return total / 1e9


# -------------------------------------------------------------------------------------------------- clients


class _Line(asyncio.Protocol):
    """One client connection: decodes frames and hands them to ``on_frame``."""

    def __init__(self, name: str, on_frame: Callable[[_Line, Frame], None]) -> None:
        self.name = name
        self.on_frame = on_frame
        self.decoder = FrameDecoder(1 << 20)
        self.transport: asyncio.Transport | None = None
        self.session = 0
        self.seq_base = 0
        self.handshaken = asyncio.get_running_loop().create_future()
        self.synced = asyncio.get_running_loop().create_future()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        decoder = self.decoder
        decoder.feed(data)
        on_frame = self.on_frame
        while (frame := decoder.next_frame()) is not None:
            on_frame(self, frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for fut in (self.handshaken, self.synced):
            if not fut.done():
                fut.set_exception(ConnectionError(f"{self.name}: the server closed the line"))

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)


@dataclass(eq=False)
class _Pair:
    """One sender and its receiver, with everything the checks need."""

    index: int
    sender_uid: str
    receiver_uid: str
    sender: _Line
    receiver: _Line
    conversation: str
    sent: int = 0
    """Messages sent: they carry msg_id 1..sent."""
    send_times: list[float] = field(default_factory=list)
    answered: int = 0
    failed: int = 0
    next_delivery: int = 1
    skipped: set[int] = field(default_factory=set)
    duplicates: int = 0
    late: int = 0
    ack_order_errors: int = 0
    seq_mismatches: int = 0
    acked_to_server: int = 0

    def in_flight(self) -> int:
        return self.sent - min(self.answered, self.next_delivery - 1 + self.failed)

    def lost(self) -> int:
        return len(self.skipped) + self.sent - (self.next_delivery - 1)


class _Bench:
    """The load generator: the lines, the pairs, the checks and the counters of one message class."""

    def __init__(self, args: argparse.Namespace, klass: str, port: int) -> None:
        self.args = args
        self.klass = klass
        self.port = port
        self.instant = klass == "instant"
        self.flags = Flags.NO_STORE if self.instant else Flags(0)
        self.body = ChatText(text="x" * args.payload).SerializeToString()
        self.router_id = 0
        self.pairs: list[_Pair] = []
        self.delivered = 0
        self.statuses: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.unexpected: collections.Counter[str] = collections.Counter()
        self.latencies: list[float] = []
        self.record_from = float("inf")
        self.record_to = float("inf")
        self.closed_loop = False
        self.window = args.window

    # -- set-up ----------------------------------------------------------------------------------------------

    async def connect(self, ring: object) -> None:
        from imsdk_server.auth import TokenCodec

        codec = TokenCodec(ring)  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(64)
        now = time.time()

        async def line(uid: str, on_frame: Callable[[_Line, Frame], None], i: int) -> _Line:
            token, _ = codec.issue(uid, "phone", now=now, lifetime=3600)
            hs = Handshake(
                token=token, device_id="phone", platform=Platform.PLATFORM_ANDROID, client_version="1.0.0",
                network=NetworkType.NETWORK_TYPE_WIFI, codec=int(Codec.PROTOBUF),
            )  # fmt: skip
            async with gate:
                _, proto = await loop.create_connection(
                    lambda: _Line(uid, on_frame),
                    "127.0.0.1",
                    self.port,
                    local_addr=(f"127.0.0.{2 + i % 250}", 0),
                )
                proto.write(encode_frame(Header(Biz.SYSTEM, SystemFunc.HANDSHAKE, seq=1), hs))
                await proto.handshaken
            return proto

        tag = f"{os.getpid()}{self.klass[0]}"
        n = self.args.pairs
        senders = await asyncio.gather(*(line(f"s{tag}{i}", self._sender_frame, 2 * i) for i in range(n)))
        receivers = await asyncio.gather(
            *(line(f"r{tag}{i}", self._receiver_frame, 2 * i + 1) for i in range(n))
        )
        for i, (s, r) in enumerate(zip(senders, receivers, strict=True)):
            pair = _Pair(i, s.name, r.name, s, r, _conversation(s.name, r.name))
            s.pair = r.pair = pair  # type: ignore[attr-defined]
            self.pairs.append(pair)
        # every line's login catch-up ends with a sync-done marker: then the router knows it is online
        await asyncio.wait_for(asyncio.gather(*(ln.synced for ln in senders + receivers)), 30)
        # the first message is redirected with the router's id, which the client stamps from then on
        self.redirects: asyncio.Future[int] = loop.create_future()
        self.redirects_left = n
        for pair in self.pairs:
            h = Header(Biz.CHAT, ChatFunc.TEXT, seq=pair.sender.seq_base, receiver_uid=pair.receiver_uid)
            pair.sender.write(encode_raw(h, self.body))
        self.router_id = await asyncio.wait_for(self.redirects, 10)

    def _common(self, line: _Line, frame: Frame) -> bool:
        """Frames every line may get: handshake reply, sync-done, kicks. True when handled."""
        h = frame.header
        if h.biz == Biz.SYSTEM:
            if h.func == SystemFunc.HANDSHAKE_ACK:
                ack = frame.body_as(HandshakeAck)
                line.session, line.seq_base = ack.session, ack.seq_base
                line.handshaken.set_result(None)
            else:
                self.unexpected[f"system {SystemFunc(h.func).name} {ErrorCode(h.error).name}"] += 1
            return True
        if h.biz == _SYNC and h.func == _DONE:
            if not line.synced.done():
                line.synced.set_result(None)
            return True
        return False

    # -- frames ----------------------------------------------------------------------------------------------

    def _sender_frame(self, line: _Line, frame: Frame) -> None:
        h = frame.header
        if h.biz != _CHAT or h.func != _SEND_ACK:
            if not self._common(line, frame):
                self.unexpected[f"sender got ({h.biz}, {h.func})"] += 1
            return
        pair: _Pair = line.pair  # type: ignore[attr-defined]
        if h.flags & _ERROR:
            if h.error == ErrorCode.WRONG_MESSAGE_SERVER and h.msg_id == 0:
                self.redirects_left -= 1
                if self.redirects_left == 0:
                    self.redirects.set_result(h.msg_server_id)
                return
            pair.answered += 1
            pair.failed += 1
            self.errors[ErrorCode(h.error).name] += 1
        else:
            pair.answered += 1
            self.statuses[_STATUS_NAMES[SendAck.FromString(frame.raw_body).status]] += 1
        if h.msg_id != pair.answered:
            pair.ack_order_errors += 1
        if self.closed_loop:
            self._fill(pair)

    def _receiver_frame(self, line: _Line, frame: Frame) -> None:
        h = frame.header
        if h.biz != _CHAT or h.func != _TEXT:
            if not self._common(line, frame):
                self.unexpected[f"receiver got ({h.biz}, {h.func})"] += 1
            return
        now = time.monotonic()
        pair: _Pair = line.pair  # type: ignore[attr-defined]
        n = h.msg_id
        if n == pair.next_delivery:
            pair.next_delivery = n + 1
            self.delivered += 1
        elif n < pair.next_delivery:
            if n in pair.skipped:
                pair.skipped.discard(n)
                pair.late += 1
            else:
                pair.duplicates += 1
            return
        else:
            pair.skipped.update(range(pair.next_delivery, n))
            pair.next_delivery = n + 1
            self.delivered += 1
        sent_at = pair.send_times[n - 1]
        if self.record_from <= sent_at < self.record_to:
            self.latencies.append(now - sent_at)
        if not self.instant:
            body = ChatText.FromString(frame.raw_body)
            if body.conv_seq != n:
                pair.seq_mismatches += 1
            if n - pair.acked_to_server >= self.args.ack_every:
                self._ack(pair, body.conv_seq)
        if self.closed_loop:
            self._fill(pair)

    def _ack(self, pair: _Pair, seq: int) -> None:
        pair.acked_to_server = seq
        cursor = ConversationCursor(conversation=pair.conversation, seq=seq)
        h = Header(Biz.SYNC, SyncFunc.ACK, msg_server_id=self.router_id)
        pair.receiver.write(encode_frame(h, SyncAck(cursors=[cursor])))

    # -- sending ---------------------------------------------------------------------------------------------

    def _message(self, pair: _Pair, now: float) -> bytes:
        n = pair.sent = pair.sent + 1
        pair.send_times.append(now)
        h = Header(
            _CHAT, _TEXT, seq=pair.sender.seq_base + n, msg_id=n, msg_server_id=self.router_id,
            flags=self.flags, receiver_uid=pair.receiver_uid,
        )  # fmt: skip
        return encode_raw(h, self.body)

    def _fill(self, pair: _Pair) -> None:
        room = self.window - pair.in_flight()
        if room <= 0:
            return
        now = time.monotonic()
        pair.sender.write(b"".join([self._message(pair, now) for _ in range(room)]))

    async def max_rate(self, warmup: float, duration: float, pid: int) -> dict[str, float]:
        self.closed_loop = True
        for pair in self.pairs:
            self._fill(pair)
        await asyncio.sleep(warmup)
        start = time.monotonic()
        self.record_from, self.record_to = start, start + duration
        d0, c0, g0, w0 = self.delivered, _cpu_seconds(pid), time.process_time(), _runqueue_seconds(pid)
        await asyncio.sleep(duration)
        d1, c1, g1, w1 = self.delivered, _cpu_seconds(pid), time.process_time(), _runqueue_seconds(pid)
        elapsed = time.monotonic() - start
        self.closed_loop = False
        await self.drain()
        lat, self.latencies = self.latencies, []
        return {
            "delivered": d1 - d0,
            "rate": (d1 - d0) / elapsed,
            "server_cpu": c1 - c0,
            "gen_cpu": g1 - g0,
            "server_wait": w1 - w0,
            "elapsed": elapsed,
            **_quantiles(lat),
        }

    async def fixed_rate(self, rate: float, lead_in: float, duration: float, pid: int) -> dict[str, float]:
        pairs = self.pairs
        t0 = time.monotonic()
        self.record_from, self.record_to = t0 + lead_in, t0 + lead_in + duration
        total = i = 0
        c0 = d0 = g0 = w0 = 0.0
        marked = False
        while True:
            now = time.monotonic()
            elapsed = now - t0
            if not marked and elapsed >= lead_in:
                marked = True
                c0, d0, g0, w0 = (
                    _cpu_seconds(pid),
                    self.delivered,
                    time.process_time(),
                    _runqueue_seconds(pid),
                )
            if elapsed >= lead_in + duration:
                break
            due = int(elapsed * rate)
            if due > total:
                batch: dict[_Pair, list[bytes]] = {}
                while total < due:
                    pair = pairs[i]
                    i = (i + 1) % len(pairs)
                    batch.setdefault(pair, []).append(self._message(pair, now))
                    total += 1
                for pair, frames in batch.items():
                    pair.sender.write(b"".join(frames))
            await asyncio.sleep(0.001)  # uvloop's timers count whole milliseconds: less would spin
        c1, d1, g1, w1 = _cpu_seconds(pid), self.delivered, time.process_time(), _runqueue_seconds(pid)
        await self.drain()
        lat, self.latencies = self.latencies, []
        return {
            "delivered": d1 - d0,
            "rate": (d1 - d0) / duration,
            "server_cpu": c1 - c0,
            "gen_cpu": g1 - g0,
            "server_wait": w1 - w0,
            "elapsed": duration,
            **_quantiles(lat),
        }

    async def drain(self, within: float = 15.0) -> None:
        """Wait until every message sent has been answered and delivered (or ``within`` passes)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if all(p.answered == p.sent and p.next_delivery - 1 + p.failed >= p.sent for p in self.pairs):
                return
            await asyncio.sleep(0.02)

    def close(self) -> None:
        for pair in self.pairs:
            for line in (pair.sender, pair.receiver):
                if line.transport is not None:
                    line.transport.abort()


def _quantiles(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    lat = sorted(latencies)

    def q(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000

    return {"p50": q(0.50), "p99": q(0.99), "max": lat[-1] * 1000}


# -------------------------------------------------------------------------------------------------- driver


@dataclass
class _Result:
    klass: str
    max_rate: dict[str, float]
    fixed: dict[str, float]
    checks: dict[str, int]
    statuses: dict[str, int]
    problems: int


def _server(ring_path: str, data_dir: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(
        [sys.executable, "-m", "bench._relay_server", ring_path, data_dir, "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=_ROOT,
        env=env,
        text=True,
    )


def _command(server: subprocess.Popen[str], line: str) -> None:
    assert server.stdin is not None
    assert server.stdout is not None
    server.stdin.write(line + "\n")
    server.stdin.flush()
    if server.stdout.readline().strip() != "ok":
        raise RuntimeError(f"the server did not acknowledge {line!r}")


def _run_class(args: argparse.Namespace, klass: str, ring: object, ring_path: str) -> _Result:
    with tempfile.TemporaryDirectory() as data_dir:
        server = _server(ring_path, data_dir)
        try:
            assert server.stdout is not None
            _, port = server.stdout.readline().split()

            async def go() -> _Result:
                bench = _Bench(args, klass, int(port))
                try:
                    await bench.connect(ring)
                    if args.profile:
                        _command(server, "profile on")
                    if args.sample:
                        _command(server, "sample on")
                    top = await bench.max_rate(args.warmup, args.duration, server.pid)
                    if args.profile:
                        _command(server, f"profile off {Path(args.profile) / f'relay-{klass}.prof'}")
                    if args.sample:
                        _command(server, f"sample off {Path(args.sample) / f'relay-{klass}.txt'}")
                    if args.sample:
                        _command(server, "sample on")
                    fixed = await bench.fixed_rate(args.rate, args.lead_in, args.rate_duration, server.pid)
                    if args.sample:
                        _command(server, f"sample off {Path(args.sample) / f'relay-{klass}-fixed.txt'}")
                    if args.metrics:
                        _command(server, f"metrics {Path(args.metrics) / f'relay-{klass}.txt'}")
                    pairs = bench.pairs
                    checks = {
                        "messages sent": sum(p.sent for p in pairs),
                        "lost": sum(p.lost() for p in pairs),
                        "duplicates": sum(p.duplicates for p in pairs),
                        "out of order": sum(p.late for p in pairs),
                        "unanswered": sum(p.sent - p.answered for p in pairs),
                        "answers out of order": sum(p.ack_order_errors for p in pairs),
                        "error answers": sum(bench.errors.values()),
                        "unexpected frames": sum(bench.unexpected.values()),
                    }
                    if not bench.instant:
                        checks["conv_seq mismatches"] = sum(p.seq_mismatches for p in pairs)
                    wanted = "SEND_STATUS_DELIVERED"
                    checks["answers not DELIVERED"] = sum(n for s, n in bench.statuses.items() if s != wanted)
                    problems = sum(v for k, v in checks.items() if k != "messages sent")
                    statuses = dict(bench.statuses) | {f"error {k}": v for k, v in bench.errors.items()}
                    statuses |= {f"unexpected: {k}": v for k, v in bench.unexpected.items()}
                    return _Result(klass, top, fixed, checks, statuses, problems)
                finally:
                    bench.close()

            try:
                import uvloop

                return uvloop.run(go())
            except ImportError:
                return asyncio.run(go())
        finally:
            if server.stdin is not None:
                server.stdin.close()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _per_1k(m: dict[str, float], key: str = "server_cpu") -> float:
    return m[key] * 1000 / (m["delivered"] / 1000) if m["delivered"] else float("nan")


def _row(name: str, m: dict[str, float]) -> tuple[str, ...]:
    t = m["elapsed"]
    return (
        name, f"{t:.1f}", f"{m['delivered']:.0f}", f"{m['rate']:.0f}", f"{_per_1k(m):.1f}",
        f"{m['server_cpu'] / t:.0%}", f"{m['server_wait'] / t:.0%}", f"{_per_1k(m, 'gen_cpu'):.1f}",
        f"{m['p50']:.2f}", f"{m['p99']:.2f}",
    )  # fmt: skip


_HEADS = (
    "phase", "s", "delivered", "msgs/s", "srv CPU ms/1k", "srv CPU", "srv CPU wait", "gen CPU ms/1k",
    "p50 ms", "p99 ms",
)  # fmt: skip


def _report(args: argparse.Namespace, r: _Result) -> None:
    rows = [
        _row("max rate (closed loop)", r.max_rate),
        _row(f"fixed {args.rate:.0f} msgs/s (open loop)", r.fixed),
    ]
    print(f"\n== {r.klass} class: {args.pairs} pairs, {args.window} in flight per pair (max rate), "
          f"{args.payload}-char texts")  # fmt: skip
    print(table(_HEADS, rows))
    print(table(["check", "count"], list(r.checks.items())))
    print(table(["answer", "count"], sorted(r.statuses.items())))
    if r.problems:
        print(f"!!!!!!!! {r.klass}: {r.problems} PROBLEMS: lost, duplicated, reordered or refused !!!!!!!!")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=200, help="sender/receiver pairs (2 connections each)")
    parser.add_argument("--window", type=int, default=10, help="messages in flight per pair at max rate")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds at max rate before measuring")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured at max rate")
    parser.add_argument("--rate", type=float, default=5000.0, help="msgs/s in the fixed-rate phase")
    parser.add_argument("--lead-in", type=float, default=1.0, help="seconds at the fixed rate unmeasured")
    parser.add_argument("--rate-duration", type=float, default=5.0, help="seconds measured at the fixed rate")
    parser.add_argument("--payload", type=int, default=100, help="characters of text per message")
    parser.add_argument("--ack-every", type=int, default=10, help="offline receivers ack every N messages")
    parser.add_argument("--classes", default=",".join(_CLASSES), help="instant,offline or one of them")
    parser.add_argument("--quick", action="store_true", help="short phases (0.5 s warm-up, 2 s measured)")
    parser.add_argument("--profile", metavar="DIR", help="cProfile the server's max-rate window into DIR")
    parser.add_argument(
        "--sample",
        metavar="DIR",
        help="sample the server's stack in both phases, report in DIR (relay-<class>[-fixed].txt)",
    )
    parser.add_argument("--metrics", metavar="DIR", help="write the server's metrics after each class to DIR")
    args = parser.parse_args(argv)
    if args.quick:
        args.warmup, args.duration, args.lead_in, args.rate_duration = 0.5, 2.0, 0.5, 2.0
    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    if not classes or set(classes) - set(_CLASSES):
        parser.error(f"--classes takes {', '.join(_CLASSES)}")

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    pin(1)

    from imsdk_server.auth import KeyRing

    results: list[_Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        ring = KeyRing.generate(time.time())
        ring_path = str(Path(tmp) / "ring.json")
        ring.save(ring_path)
        for klass in classes:
            result = _run_class(args, klass, ring, ring_path)
            _report(args, result)
            results.append(result)
    print()
    for r in results:
        top, fixed = r.max_rate, r.fixed
        print(
            f"relay {r.klass}: {top['rate']:.0f} msgs/s max, server CPU {_per_1k(top):.0f} ms per 1k msgs, "
            f"p50 {fixed['p50']:.1f} ms, p99 {fixed['p99']:.1f} ms at {args.rate:.0f} msgs/s"
        )
    return 1 if any(r.problems for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
