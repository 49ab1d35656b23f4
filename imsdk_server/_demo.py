"""``imsdk demo``: the all-in-one server and a few simulated users chatting through the real client SDK.

The demo starts :class:`~imsdk_server.allinone.AllInOne` in this process on the embedded defaults (free
loopback ports, a temporary data directory: no MySQL, Redis or ZooKeeper), registers a few users, makes them
friends and connects each with :class:`imsdk_client.Client`. Then, for ``--seconds``, they chat (text,
image, voice, location; the media go through the real media service), one of them switches networks in the
middle of a burst (wifi → 4g → 2g → wifi), one goes offline and comes back (catching up on what was stored,
and on the notifications that merged while away), the notification endpoint sends an announcement, and a
friend changes their profile. Every event is printed as it happens, one line each.

The summary is a real check, not a claim: :class:`Tally` holds every message the server acknowledged to its
sender (by sender and client message id) and every message each receiver's client handed to the app, and
counts what was delivered, lost (acknowledged, never received) and received more than once, and whether
each conversation arrived in sequence order. The last line is always
``demo: sent <S>, delivered <D>, lost <L>, duplicates <U>``; the exit status is non-zero when anything was
lost, duplicated, out of order or unexpected. See ``docs/demo.md``.
"""

from __future__ import annotations

import io
import logging
import random
import secrets
import signal
import struct
import sys
import tempfile
import time
import wave
import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    import anyio
    from anyio.abc import TaskStatus

    from imsdk_client import Client, Event
    from imsdk_client._core.events import ChatContent

__all__ = [
    "DEMO_NAMES",
    "DemoOptions",
    "DemoResult",
    "Tally",
    "demo_main",
    "describe_content",
    "make_png",
    "make_wav",
    "run_demo",
    "summary_line",
]

#: The simulated users, in order; ``--users N`` takes the first N.
DEMO_NAMES: tuple[str, ...] = (
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
    "ivan", "judy", "mallory", "niaj", "olivia", "peggy", "rupert", "sybil",
)  # fmt: skip
MIN_USERS = 3
PASSWORD = "demo-password"
EXIT_INTERRUPTED = 130

_TEXTS = (
    "hi!", "how are you?", "lunch at noon?", "running late, sorry", "did you see the game?",
    "sending the photos now", "ok", "sounds good", "on my way", "call me when you can",
    "the meeting moved to 3pm", "thanks!", "where are you?", "see you tomorrow", "haha",
)  # fmt: skip
_PLACES = (
    (48.8584, 2.2945, "Eiffel Tower"),
    (40.6892, -74.0445, "Statue of Liberty"),
    (35.6586, 139.7454, "Tokyo Tower"),
    (-33.8568, 151.2153, "Opera House"),
    (51.5007, -0.1246, "Big Ben"),
)
_CAPTIONS = ("", "look at this", "the view from here", "new haircut", "")
#: Share of ticks that send each content type.
_KIND_WEIGHTS = {"text": 6, "image": 2, "voice": 2, "location": 1}


@dataclass(frozen=True)
class DemoOptions:
    """What ``imsdk demo`` was asked for."""

    seconds: float = 10.0
    """How long the users chat (server start-up and shutdown come on top: a second or two each)."""
    users: int = 4
    """How many simulated users (3 to 16)."""
    seed: int | None = None
    """Seed of the scenario's random choices (who writes to whom, what); ``None`` picks one and prints it."""
    quiet: bool = False
    """Print only the summary, not every event."""

    def __post_init__(self) -> None:
        if not 1.0 <= self.seconds <= 600.0:
            raise ValueError(f"--seconds must be between 1 and 600, not {self.seconds:g}")
        if not MIN_USERS <= self.users <= len(DEMO_NAMES):
            raise ValueError(f"--users must be between {MIN_USERS} and {len(DEMO_NAMES)}, not {self.users}")


# ---------------------------------------------------------------------------------------------------- media


def make_png(width: int, height: int, shade: int = 0) -> bytes:
    """A valid grey-scale PNG of ``width`` × ``height`` pixels (a diagonal gradient)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes((x + y + shade) & 0xFF for x in range(width)) for y in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def make_wav(milliseconds: int, rate: int = 8000, pitch: int = 440) -> bytes:
    """A valid mono 16-bit WAV clip of ``milliseconds`` (a square wave at ``pitch`` Hz)."""
    frames = rate * milliseconds // 1000
    half = max(1, rate // (2 * pitch))
    samples = b"".join(struct.pack("<h", 8000 if (i // half) % 2 else -8000) for i in range(frames))
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples)
    return out.getvalue()


def describe_content(content: ChatContent) -> str:
    """One short, readable description of a message's content."""
    from imsdk_proto.messages import ChatImage, ChatLocation, ChatText, ChatVoice

    if isinstance(content, ChatText):
        return f"text      {content.text!r}"
    if isinstance(content, ChatImage):
        ref = content.image
        caption = f" {content.caption!r}" if content.caption else ""
        return f"image     {ref.width}x{ref.height} {ref.mime}, {ref.size} bytes{caption}"
    if isinstance(content, ChatVoice):
        return (
            f"voice     {content.duration_ms / 1000:.1f} s {content.voice.mime}, {content.voice.size} bytes"
        )
    if isinstance(content, ChatLocation):
        label = f" {content.label!r}" if content.label else ""
        return f"location  {content.lat:.4f}, {content.lng:.4f}{label}"
    return type(content).__name__  # pragma: no cover - the four above are every content type


def _kind(content: ChatContent) -> str:
    return describe_content(content).split(" ", 1)[0]


# ---------------------------------------------------------------------------------------------------- tally


@dataclass
class _Sent:
    sender: str
    receiver: str
    kind: str
    server_msg_id: int
    conv_seq: int


@dataclass
class Tally:
    """What senders got acknowledged and what receivers were handed, compared by message id.

    A message is keyed by ``(sender uid, client msg_id)``: the id every resend carries. ``sent`` counts
    messages the server acknowledged; ``delivered`` those the intended receiver's client handed to the app
    at least once; ``lost`` the rest; ``duplicates`` every hand-over beyond the first. A message handed to
    an app but never acknowledged to its sender (or handed to someone else) is ``unexpected``; a
    conversation whose sequences do not increase at the receiver is ``out_of_order``.
    """

    sent_messages: dict[tuple[str, int], _Sent] = field(default_factory=dict)
    received: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    """(receiver, sender, msg_id) → how many times the receiver's app got it."""
    unacked_receptions: list[tuple[str, str, int]] = field(default_factory=list)
    out_of_order: int = 0
    resent_duplicates: int = 0
    """Acks with status ``DUPLICATE``: resends the store recognised (the same id stored once)."""
    _last_seq: dict[tuple[str, str], int] = field(default_factory=dict)

    def acked(
        self,
        sender: str,
        receiver: str,
        msg_id: int,
        server_msg_id: int,
        conv_seq: int,
        kind: str,
        duplicate: bool = False,
    ) -> None:
        """The server acknowledged ``msg_id`` to ``sender``."""
        self.sent_messages[(sender, msg_id)] = _Sent(sender, receiver, kind, server_msg_id, conv_seq)
        if duplicate:
            self.resent_duplicates += 1

    def got(self, receiver: str, sender: str, msg_id: int, conversation: str, conv_seq: int) -> None:
        """``receiver``'s client handed ``msg_id`` from ``sender`` to the app."""
        self.received[(receiver, sender, msg_id)] += 1
        if conv_seq:  # instant messages carry no sequence
            last = self._last_seq.get((receiver, conversation), 0)
            if conv_seq <= last:
                self.out_of_order += 1
            self._last_seq[(receiver, conversation)] = max(last, conv_seq)

    def _delivered(self, key: tuple[str, int], sent: _Sent) -> bool:
        return self.received[(sent.receiver, key[0], key[1])] > 0

    @property
    def sent(self) -> int:
        return len(self.sent_messages)

    @property
    def delivered(self) -> int:
        return sum(1 for key, s in self.sent_messages.items() if self._delivered(key, s))

    @property
    def lost(self) -> int:
        return self.sent - self.delivered

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.received.values() if n > 1)

    @property
    def unexpected(self) -> int:
        """Receptions of messages that no sender had acknowledged for that receiver."""
        expected = {(s.receiver, key[0], key[1]) for key, s in self.sent_messages.items()}
        return sum(n for k, n in self.received.items() if k not in expected)

    def missing(self) -> list[tuple[str, int]]:
        """Acknowledged messages their receiver has not got (yet)."""
        return [key for key, s in self.sent_messages.items() if not self._delivered(key, s)]

    def kinds(self) -> Counter[str]:
        return Counter(s.kind for s in self.sent_messages.values())

    @property
    def ok(self) -> bool:
        return self.ok_for(interrupted=False)

    def ok_for(self, *, interrupted: bool) -> bool:
        """:attr:`ok`, except that an interrupted run may have cut a send off between the receiver's copy
        and the sender's ack: such a reception is not a fault then."""
        unexpected = self.unexpected and not interrupted
        return not (self.lost or self.duplicates or unexpected or self.out_of_order)


def summary_line(tally: Tally) -> str:
    """The demo's last line."""
    return (
        f"demo: sent {tally.sent}, delivered {tally.delivered}, lost {tally.lost}, "
        f"duplicates {tally.duplicates}"
    )


@dataclass
class DemoResult:
    """What a run of the demo saw."""

    tally: Tally
    interrupted: bool = False
    notifications_posted: int = 0
    notifications_expected: int = 0
    notifications_received: Counter[str] = field(default_factory=Counter)
    merged_ok: bool = True
    profile_updates_seen: int = 0
    network_switches: int = 0
    stored_caught_up: int = 0
    instant_refused: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        if not self.tally.ok_for(interrupted=self.interrupted) or self.problems:
            return 1
        return EXIT_INTERRUPTED if self.interrupted else 0


# ---------------------------------------------------------------------------------------------------- running


class _Printer:
    def __init__(self, out: TextIO, quiet: bool) -> None:
        self.out = out
        self.quiet = quiet
        self.start = time.monotonic()

    def event(self, who: str, text: str) -> None:
        if not self.quiet:
            self.line(f"{time.monotonic() - self.start:6.2f}  {who:<8} {text}")

    def info(self, text: str) -> None:
        if not self.quiet:
            self.line(text)

    def line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


class _NoEvent:
    """Stands for the settle wait's event before there is one."""

    def set(self) -> None:
        pass


class _User:
    def __init__(self, uid: str) -> None:
        self.uid = uid
        self.client: Client | None = None
        self.online = False
        self.offline_since_ms = 0
        self.back_at_ms = 0
        self.stop: anyio.Event
        self.stopped: anyio.Event


class _Demo:
    def __init__(self, options: DemoOptions, out: TextIO) -> None:
        self.options = options
        self.seed = options.seed if options.seed is not None else secrets.randbelow(1_000_000)
        self.rng = random.Random(self.seed)
        self.p = _Printer(out, options.quiet)
        self.result = DemoResult(Tally())
        self.users = [_User(uid) for uid in DEMO_NAMES[: options.users]]
        self.switcher = self.users[0]
        self.profiler = self.users[1]
        self.away = self.users[-1]
        self.url = ""
        self.admin_key = secrets.token_hex(16)
        self.closing = False
        self.progress: anyio.Event | _NoEvent = _NoEvent()

    # -- server and clients

    async def run(self) -> None:
        import anyio

        from imsdk_server.allinone import AllInOne, AllInOneConfig
        from imsdk_server.config import HostPort

        with tempfile.TemporaryDirectory(prefix="imsdk-demo-") as data:
            config = AllInOneConfig(
                http=HostPort("127.0.0.1", 0),
                tcp=HostPort("127.0.0.1", 0),
                data=Path(data),
                admin_key=self.admin_key,
                components={
                    # A lower password-hashing cost than a real deployment, so that the demo starts fast.
                    "auth": {"scrypt_log2_n": 12},
                    # Offline after half a second instead of five, so the away user is offline quickly.
                    "location": {"grace": 0.5, "burst_window": 0.5},
                },
            )
            async with AllInOne(config) as server:
                assert server.http_address is not None
                assert server.tcp_address is not None
                host, port = server.http_address
                self.url = f"http://{host}:{port}"
                tcp_host, tcp_port = server.tcp_address
                self.p.info(
                    f"demo: all-in-one server on {self.url} (clients on tcp {tcp_host}:{tcp_port}), "
                    f"data in {data}"
                )
                names = ", ".join(u.uid for u in self.users)
                self.p.info(
                    f"demo: {len(self.users)} users ({names}), chatting for {self.options.seconds:g} s, "
                    f"seed {self.seed}"
                )
                await self._register()
                async with anyio.create_task_group() as tg:
                    self.tg = tg
                    try:
                        for user in self.users:
                            await self._connect(user)
                        with anyio.CancelScope() as self.scenario_scope:
                            await self._scenario()
                        await self._settle(5.0 if not self.result.interrupted else 2.0)
                    finally:
                        self.closing = True
                        with anyio.CancelScope(shield=True):
                            for user in self.users:
                                await self._disconnect(user)
                self.p.info("demo: stopping the server")

    async def _register(self) -> None:
        from imsdk_client import AuthClient

        async with AuthClient(self.url) as auth:
            for user in self.users:
                await auth.register(user.uid, PASSWORD, nickname=user.uid.title())
        # Everyone is a friend of everyone: profile changes reach friends.
        for user in self.users:
            async with AuthClient(self.url) as auth:
                await auth.login(user.uid, PASSWORD, "setup")
                for other in self.users:
                    if other.uid > user.uid:
                        await auth.add_friend(other.uid)
        self.p.info("demo: users registered and friends with each other")

    async def _connect(self, user: _User, network: str = "wifi") -> None:
        """Open ``user``'s app: a task of its own holds the client (entered and closed in that task)."""
        import anyio

        user.stop = anyio.Event()
        user.stopped = anyio.Event()
        await self.tg.start(self._session, user, network)

    async def _disconnect(self, user: _User) -> None:
        """Close ``user``'s app (waits until the client is closed and its last events are read)."""
        if user.client is not None:
            user.stop.set()
            await user.stopped.wait()

    async def _session(self, user: _User, network: str, *, task_status: TaskStatus[None]) -> None:
        import anyio

        from imsdk_client import Client

        try:
            async with Client(
                self.url, user.uid, password=PASSWORD, device="phone", platform="android", network=network
            ) as client:
                user.client = client
                user.online = True
                reading = anyio.Event()
                self.tg.start_soon(self._read, user, client, reading)
                task_status.started()
                await user.stop.wait()
                user.online = False
            await reading.wait()
        finally:
            user.client = None
            user.online = False
            user.stopped.set()

    async def _read(self, user: _User, client: Client, done: anyio.Event) -> None:
        try:
            async for event in client.events():
                self._on_event(user, event)
        finally:
            done.set()

    def _on_event(self, user: _User, event: Event) -> None:
        self.progress.set()
        from imsdk_client import (
            ConnectionState,
            MessageReceived,
            NetworkChanged,
            NotificationReceived,
            PresenceChanged,
            ProfileUpdated,
            StateChanged,
        )

        uid = user.uid
        if isinstance(event, MessageReceived):
            self.result.tally.got(uid, event.sender_uid, event.msg_id, event.conversation, event.conv_seq)
            stored = ""
            if user.offline_since_ms <= event.sent_at_ms < user.back_at_ms and not event.instant:
                stored = "  (stored while away)"
                self.result.stored_caught_up += 1
            seq = "instant" if event.instant else f"#{event.conv_seq}"
            self.p.event(uid, f"<- {event.sender_uid:<8} {describe_content(event.content)}  {seq}{stored}")
        elif isinstance(event, NotificationReceived):
            n = event.notification
            self.result.notifications_received[uid] += 1
            payload = n.payload.decode("utf-8", "replace")
            self.p.event(uid, f"notification  {n.type}: {payload!r}")
            if uid == self.away.uid and n.type == "friend_request" and payload != self._latest_request:
                self.result.merged_ok = False
        elif isinstance(event, ProfileUpdated):
            self.result.profile_updates_seen += 1
            prof = event.profile
            self.p.event(uid, f"profile   {prof.uid} is now {prof.nickname!r} ({prof.signature!r})")
        elif isinstance(event, PresenceChanged):
            state = "online" if event.online else "offline"
            self.p.event(uid, f"presence  {event.uid} ({event.device}) {state}")
        elif isinstance(event, NetworkChanged):
            self.p.event(uid, f"network   {event.old.value} -> {event.new.value}")
        elif isinstance(event, StateChanged):
            if self.closing or (event.new is ConnectionState.CLOSED and not user.online):
                return
            if event.new in (ConnectionState.BACKOFF, ConnectionState.NO_NETWORK, ConnectionState.CLOSED):
                reason = f" ({event.reason})" if event.reason else ""
                self.p.event(uid, f"line      {event.old.value} -> {event.new.value}{reason}")
            elif event.new is ConnectionState.READY:
                where = client_endpoint(user.client)
                self.p.event(uid, f"line      ready{where}")

    _latest_request = ""

    # -- the scenario

    def _online(self) -> list[_User]:
        return [u for u in self.users if u.online]

    async def _scenario(self) -> None:
        import anyio

        seconds = self.options.seconds
        start = anyio.current_time()
        # (fraction of the run, step), in order
        steps: list[tuple[float, Callable[[], object]]] = [
            (0.15, self._network_burst),
            (0.30, self._go_away),
            (0.40, self._notify_away),
            (0.45, self._instant_to_away),
            (0.70, self._come_back),
            (0.80, self._profile_change),
        ]
        tick = min(0.25, max(0.05, seconds / 60))
        while True:
            now = anyio.current_time() - start
            if steps and now >= steps[0][0] * seconds:
                await steps.pop(0)[1]()  # type: ignore[misc]
                continue
            if now >= seconds:
                break
            await self._chat_once()
            await anyio.sleep(tick)
        while steps:  # a short run still plays every step
            await steps.pop(0)[1]()  # type: ignore[misc]

    async def _chat_once(self) -> None:
        senders = self._online()
        sender = self.rng.choice(senders)
        others = [u for u in self.users if u is not sender]
        if not self.away.online and self.away is not sender and self.rng.random() < 0.4:
            receiver = self.away  # write to the away user often: stored for later
        else:
            receiver = self.rng.choice(others)
        kind = self.rng.choices(list(_KIND_WEIGHTS), weights=list(_KIND_WEIGHTS.values()))[0]
        await self._send(sender, receiver.uid, kind)

    async def _send(self, sender: _User, to: str, kind: str) -> None:
        from imsdk_proto.messages import SendStatus

        client = sender.client
        assert client is not None
        rng = self.rng
        if kind == "text":
            ack = await client.send_text(to, rng.choice(_TEXTS))
        elif kind == "image":
            w, h = rng.randrange(16, 97, 8), rng.randrange(16, 97, 8)
            ack = await client.send_image(
                to, make_png(w, h, rng.randrange(256)), caption=rng.choice(_CAPTIONS)
            )
        elif kind == "voice":
            ms = rng.randrange(400, 2001, 100)
            ack = await client.send_voice(to, make_wav(ms, pitch=rng.choice((220, 330, 440))), duration_ms=ms)
        else:
            lat, lng, label = rng.choice(_PLACES)
            ack = await client.send_location(
                to, lat, lng, accuracy_m=rng.choice((5.0, 20.0, 50.0)), label=label
            )
        dup = ack.status == SendStatus.SEND_STATUS_DUPLICATE
        self.result.tally.acked(sender.uid, to, ack.msg_id, ack.server_msg_id, ack.conv_seq, kind, dup)

    async def _network_burst(self) -> None:
        """The switcher sends a burst and changes networks three times in the middle of it."""
        import anyio.lowlevel

        from imsdk_proto.messages import ChatText, SendStatus

        user = self.switcher
        client = user.client
        assert client is not None
        to = self.users[1].uid
        self.p.event(user.uid, f"burst     12 texts to {to}, switching wifi -> 4g -> 2g -> wifi on the way")
        handles = []
        for i in range(12):
            if i in (3, 6, 9):
                client.set_network({3: "4g", 6: "2g", 9: "wifi"}[i])
                self.result.network_switches += 1
            handles.append(client.post(to, ChatText(text=f"burst {i + 1}/12")))
            await anyio.lowlevel.checkpoint()  # the bytes leave: some are stored before their line drops
        dups = 0
        for handle in handles:
            ack = await handle.wait()
            dup = ack.status == SendStatus.SEND_STATUS_DUPLICATE
            dups += dup
            self.result.tally.acked(user.uid, to, ack.msg_id, ack.server_msg_id, ack.conv_seq, "text", dup)
        self.p.event(
            user.uid,
            f"burst     all 12 acknowledged ({dups} resends recognised by the store as already stored)",
        )

    async def _go_away(self) -> None:
        user = self.away
        client = user.client
        assert client is not None
        self.p.event(user.uid, "goes offline (closes the app)")
        user.offline_since_ms = int(time.time() * 1000)
        await self._disconnect(user)

    async def _notify_away(self) -> None:
        """An announcement to everyone (dropped for offline users), and two friend requests to the away user
        (stored; the second replaces the first)."""
        import anyio
        import httpx

        # Past the presence grace (0.5 s): the away user is offline by now.
        await anyio.sleep(max(0.0, self.away.offline_since_ms / 1000 + 1.2 - time.time()))
        others = [u for u in self.users if u is not self.away]
        requests = [
            (others[1].uid, f"{others[1].uid} wants to be your friend"),
            (others[2 % len(others)].uid, f"{others[2 % len(others)].uid} sent you a friend request too"),
        ]
        headers = {"Authorization": f"Bearer {self.admin_key}"}
        async with httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10.0) as http:
            body = {
                "uids": [u.uid for u in self.users],
                "type": "announcement",
                "payload": "maintenance tonight at 03:00",
                "policy": "drop",
            }
            outcomes = await self._post_notification(http, body)
            self.result.notifications_posted += 1
            # Pushed to the online users; a push to the away user (were he still thought online) goes nowhere.
            delivered = sum(1 for uid, o in outcomes.items() if o == "delivered" and uid != self.away.uid)
            self.result.notifications_expected += delivered
            self.p.event("server", f"notify    announcement to everyone: {_outcomes(outcomes)}")
            for sender, text in requests:
                self._latest_request = text
                body = {
                    "uid": self.away.uid,
                    "type": "friend_request",
                    "payload": text,
                    "policy": "keep_latest",
                }
                outcomes = await self._post_notification(http, body)
                self.result.notifications_posted += 1
                self.p.event(
                    "server",
                    f"notify    friend_request from {sender} to {self.away.uid}: {_outcomes(outcomes)}",
                )
            self.result.notifications_expected += 1  # the two friend requests merge into the latest

    async def _post_notification(self, http: object, body: Mapping[str, object]) -> dict[str, str]:
        import httpx

        assert isinstance(http, httpx.AsyncClient)
        response = await http.post("/v1/notifications", json=body)
        if response.status_code != 200:
            self.result.problems.append(
                f"POST /v1/notifications answered {response.status_code}: {response.text}"
            )
            return {}
        results = response.json()["results"]
        return {uid: str(r.get("outcome", r.get("error", "?"))) for uid, r in results.items()}

    async def _instant_to_away(self) -> None:
        from imsdk_client import ReceiverOffline

        sender = self.users[1]
        assert sender.client is not None
        try:
            ack = await sender.client.send_text(self.away.uid, "are you there?", instant=True)
        except ReceiverOffline as exc:
            self.result.instant_refused += 1
            code = exc.code.name if exc.code is not None else "refused"
            self.p.event(
                sender.uid,
                f"-> {self.away.uid:<8} instant   'are you there?' not delivered: offline ({code})",
            )
        else:
            self.result.problems.append(f"an instant message to offline {self.away.uid} was accepted")
            self.result.tally.acked(sender.uid, self.away.uid, ack.msg_id, ack.server_msg_id, 0, "text")

    async def _come_back(self) -> None:
        user = self.away
        self.p.event(user.uid, "comes back online (opens the app)")
        user.back_at_ms = int(time.time() * 1000)
        await self._connect(user, network="4g")

    async def _profile_change(self) -> None:
        user = self.profiler
        assert user.client is not None
        nickname = f"{user.uid.title()} the Builder"
        self.p.event(user.uid, f"profile   changes nickname to {nickname!r}")
        await user.client.update_profile(nickname=nickname, signature="can we fix it?")

    async def _settle(self, limit: float) -> None:
        """Wait (at most ``limit`` seconds) until every acknowledged message and expected notification has
        arrived."""
        import anyio

        with anyio.move_on_after(limit):
            while self.result.tally.missing() or (
                sum(self.result.notifications_received.values()) < self.result.notifications_expected
            ):
                self.progress = anyio.Event()
                await self.progress.wait()
        await anyio.sleep(0.3)  # anything arriving twice would arrive now


def client_endpoint(client: Client | None) -> str:
    if client is None or client.endpoint is None:
        return ""
    ep = client.endpoint
    return f" on access server {ep.server_id} ({ep.host}:{ep.port}), network {client.network.value}"


def _outcomes(outcomes: dict[str, str]) -> str:
    return ", ".join(f"{uid} {o}" for uid, o in sorted(outcomes.items())) or "no answer"


def _summary(demo: _Demo) -> list[str]:
    r = demo.result
    t = r.tally
    kinds = t.kinds()
    kinds_text = ", ".join(f"{kinds[k]} {k}" for k in _KIND_WEIGHTS if kinds[k])
    lines = [
        "summary:",
        f"  users         {len(demo.users)} ({', '.join(u.uid for u in demo.users)}), seed {demo.seed}"
        + (" (interrupted)" if r.interrupted else ""),
        f"  messages      {t.sent} acknowledged ({kinds_text}); {t.delivered} delivered, "
        f"{t.lost} lost, {t.duplicates} shown twice, order "
        + ("kept" if not t.out_of_order else f"broken {t.out_of_order} times"),
        f"  resends       {t.resent_duplicates} recognised by the store (same message id, stored once)",
        f"  network       {r.network_switches} switches by {demo.switcher.uid} during a burst",
        f"  offline       {demo.away.uid} caught up on {r.stored_caught_up} stored messages; "
        f"{r.instant_refused} instant message refused while away",
        f"  notifications {r.notifications_posted} posted (an announcement to all, 2 friend requests to "
        f"{demo.away.uid} while away), {sum(r.notifications_received.values())} received, "
        f"{r.notifications_expected} expected; same-type merge: "
        + ("only the latest reached " + demo.away.uid if r.merged_ok else "FAILED"),
        f"  profile       {r.profile_updates_seen} friends saw {demo.profiler.uid}'s change",
    ]
    if t.unexpected and r.interrupted:
        lines.append(f"  in flight     {t.unexpected} messages received whose ack the interruption cut off")
    elif t.unexpected:
        lines.append(f"  problem       {t.unexpected} messages received that no sender had acknowledged")
    for key in t.missing()[:10]:
        sent = t.sent_messages[key]
        lines.append(
            f"  lost          {sent.kind} {key[1]:#x} from {sent.sender} to {sent.receiver} "
            f"(#{sent.conv_seq})"
        )
    lines.extend(f"  problem       {p}" for p in r.problems)
    return lines


async def run_demo(options: DemoOptions, out: TextIO) -> DemoResult:
    """Run the demo, printing to ``out``; Ctrl-C (SIGINT) or SIGTERM ends the chatting early."""
    import anyio

    demo = _Demo(options, out)

    async def on_signal(signals: object, scope: anyio.CancelScope) -> None:
        async for _ in signals:  # type: ignore[attr-defined]
            demo.result.interrupted = True
            demo.p.line("demo: interrupted, shutting down")
            s = getattr(demo, "scenario_scope", None)
            if s is not None:
                s.cancel()
            else:
                scope.cancel()
            return

    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with anyio.create_task_group() as tg:
            tg.start_soon(on_signal, signals, tg.cancel_scope)
            await demo.run()
            tg.cancel_scope.cancel()
    r = demo.result
    if sum(r.notifications_received.values()) != r.notifications_expected and not r.interrupted:
        r.problems.append(
            f"{sum(r.notifications_received.values())} notifications received, "
            f"{r.notifications_expected} expected"
        )
    if not r.merged_ok:
        r.problems.append(f"{demo.away.uid} did not get the latest friend request only")
    for line in _summary(demo):
        demo.p.line(line)
    demo.p.line(summary_line(r.tally))
    return r


def demo_main(options: DemoOptions, out: TextIO | None = None) -> int:
    """Run the demo on asyncio; returns the exit status: 0 when every message arrived once and in order, 1
    otherwise, 130 when interrupted."""
    import anyio

    logging.basicConfig(level=logging.ERROR, format="imsdk demo: %(name)s: %(message)s", stream=sys.stderr)
    result = anyio.run(run_demo, options, out or sys.stdout, backend="asyncio")
    return result.exit_status
