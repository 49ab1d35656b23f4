"""Helpers for testing an app that uses the SDK, without running the imsdk servers.

:class:`FakeServer` stands in for a whole deployment inside the test process:

* **access points**: real loopback TCP listeners (three by default) that speak the wire protocol: the
  handshake (tokens checked), heartbeats, kicks; a line can be dropped or a whole access point killed;
* **a small message router** behind them: offline messages stored with per-conversation sequences and
  de-duplicated by client message id (a resend gets ``DUPLICATE`` and the original ids), instant messages
  dropped with ``RECEIVER_OFFLINE`` when the receiver has no device online, pushes, catch-up on login,
  gap pulls, cumulative acks, receipts, message-server stickiness;
* **the HTTP services** as an ``httpx`` transport (:meth:`FakeServer.http_transport`): register, login,
  token refresh, access points, media upload and download, friends and profiles (a profile change is pushed
  to online friends, and friends hear of each other's devices going online and offline).

Every frame a client sends is recorded (:meth:`FakeServer.frames`), and a test may answer frames its own way
with :meth:`FakeServer.script`. It runs on asyncio and trio::

    async with FakeServer() as server:
        server.add_user("alice", "pw")
        server.add_user("bob", "pw")
        transport = server.http_transport()
        async with Client(server.url, "alice", password="pw", http_transport=transport) as alice:
            await alice.send_text("bob", "hi")
            ...

The fake follows the protocol of ``docs/delivery.md`` and ``docs/access-server.md`` closely enough for an
app's tests; the real servers remain the reference.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import secrets
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, cast
from urllib.parse import unquote

import anyio
import anyio.abc
import httpx
from google.protobuf.message import Message

from imsdk_client._core.race import Endpoint
from imsdk_client._core.reorder import conversation_id
from imsdk_proto._frame import Frame, FrameDecoder, encode_frame
from imsdk_proto._header import Header
from imsdk_proto.codes import (
    Biz,
    ChatFunc,
    Codec,
    ErrorCode,
    Flags,
    NotifyFunc,
    PresenceFunc,
    ProfileFunc,
    SyncFunc,
    SystemFunc,
)
from imsdk_proto.errors import ProtocolError
from imsdk_proto.messages import (
    ChatImage,
    ChatLocation,
    ChatText,
    ChatVoice,
    DevicePresence,
    ErrorReport,
    Handshake,
    HandshakeAck,
    Kick,
    Notification,
    Pong,
    PresenceEvent,
    PresenceEventKind,
    Profile,
    ProfileUpdated,
    SendAck,
    SendStatus,
    StoredMessage,
    SyncAck,
    SyncBatch,
    SyncDone,
    SyncPull,
)

__all__ = ["FakeAccessPoint", "FakeConnection", "FakeServer", "ScriptHandler"]

_CONTENT_FIELDS: dict[int, str] = {
    ChatFunc.TEXT: "text",
    ChatFunc.IMAGE: "image",
    ChatFunc.VOICE: "voice",
    ChatFunc.LOCATION: "location",
}
_RESPONSE_ERROR = Flags.RESPONSE | Flags.ERROR


@dataclass(eq=False)
class FakeConnection:
    """One client connection to a fake access point. ``uid`` and ``device`` are known after the handshake."""

    access_point: FakeAccessPoint
    stream: anyio.abc.ByteStream = field(repr=False)
    uid: str = ""
    device: str = ""
    session: int = 0
    network: int = 0
    handshake: Handshake | None = field(default=None, repr=False)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope, repr=False)
    _outgoing: deque[bytes] = field(default_factory=deque, repr=False)
    _wake: anyio.Event | None = field(default=None, repr=False)
    closed: bool = False
    muted: bool = False
    """While true, frames for the client are thrown away: the server still reads and answers, but the
    answers are lost on the way, as on a line that died downstream."""

    def send(self, data: bytes) -> None:
        """Queue encoded frame bytes for the client (written in order by the connection's writer)."""
        if self.closed or self.muted:
            return
        self._outgoing.append(data)
        if self._wake is not None:
            self._wake.set()

    def send_frame(self, header: Header, body: Message | None = None) -> None:
        self.send(encode_frame(header, body, Codec.PROTOBUF))

    def drop(self) -> None:
        """Cut the line without a word (the client sees the connection end, as when a network dies)."""
        self.closed = True
        self.scope.cancel()

    def kick(self, code: ErrorCode, reconnect_after_ms: int = 0) -> None:
        """Send a ``KICK`` with ``code``, then close the line."""
        self.send_frame(
            Header(Biz.SYSTEM, SystemFunc.KICK, error=int(code)),
            Kick(code=int(code), reconnect_after_ms=reconnect_after_ms),
        )
        self.close_after_flush()

    def close_after_flush(self) -> None:
        """Close the line once everything queued so far is written."""
        if not self.closed:
            self._outgoing.append(b"")  # the marker the writer stops at
            if self._wake is not None:
                self._wake.set()

    async def _writer(self) -> None:
        while True:
            if not self._outgoing:
                self._wake = anyio.Event()
                await self._wake.wait()
                continue
            data = self._outgoing.popleft()
            if not data:
                self.drop()
                return
            await self.stream.send(data)


#: A test's own answer to a frame: ``True`` when it handled the frame (the fake then does nothing more).
ScriptHandler = Callable[[FakeConnection, Frame], bool]


class FakeAccessPoint:
    """One loopback access point of a :class:`FakeServer`."""

    def __init__(self, server: FakeServer, server_id: int) -> None:
        self.server = server
        self.server_id = server_id
        self.host = server.host
        self.port = 0
        self.connections: set[FakeConnection] = set()
        self.accepted = 0
        self.alive = False
        self._scope: anyio.CancelScope | None = None
        self._stopped = anyio.Event()

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.host, self.port, self.server_id)

    async def _serve(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        listener = await anyio.create_tcp_listener(local_host=self.host, local_port=self.port)
        self.port = int(listener.extra(anyio.abc.SocketAttribute.local_port))
        self.alive = True
        self._stopped = anyio.Event()
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                async with listener, anyio.create_task_group() as tg:
                    task_status.started()
                    await listener.serve(self._handle, tg)
        finally:
            self.alive = False
            self._stopped.set()

    async def _handle(self, stream: anyio.abc.ByteStream) -> None:
        conn = FakeConnection(self, stream)
        self.accepted += 1
        self.connections.add(conn)
        try:
            with conn.scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(conn._writer)
                    decoder = FrameDecoder()
                    while not conn.closed:
                        try:
                            data = await stream.receive()
                        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                            break
                        try:
                            decoder.feed(data)
                            for frame in decoder:
                                self.server._on_frame(conn, frame)
                        except ProtocolError:
                            break
                    tg.cancel_scope.cancel()
        finally:
            conn.closed = True
            self.connections.discard(conn)
            self.server._gone(conn)
            await anyio.aclose_forcefully(stream)

    def kill(self) -> None:
        """Crash: stop listening (new connects are refused) and cut every line at once."""
        for conn in list(self.connections):
            conn.drop()
        if self._scope is not None:
            self._scope.cancel()

    async def wait_stopped(self) -> None:
        """Wait until a killed access point has stopped listening."""
        if self.alive:
            await self._stopped.wait()

    async def restart(self) -> None:
        """Listen again on the same port (after :meth:`kill`)."""
        if not self.alive:
            await self.server._start_access_point(self)


@dataclass
class _User:
    password: str
    nickname: str
    signature: str = ""
    avatar: str = ""
    friends: set[str] = field(default_factory=set)
    updated_at: float = 0.0


class FakeServer:
    """An in-process stand-in for an imsdk deployment (see the module's documentation).

    ``access_points`` loopback listeners are started on ``host``; ``router_id`` is the message server id
    the handshake hints and chat frames must carry; tokens live ``token_lifetime`` seconds.
    """

    def __init__(
        self,
        *,
        access_points: int = 3,
        router_id: int = 7,
        token_lifetime: float = 3600.0,
        heartbeat_interval: float = 60.0,
        idle_timeout: float = 300.0,
        host: str = "127.0.0.1",
        url: str = "http://imsdk.test",
    ) -> None:
        if access_points < 1:
            raise ValueError("a fake server needs at least one access point")
        self.host = host
        self.url = url.rstrip("/")
        self.router_id = router_id
        self.token_lifetime = token_lifetime
        self.heartbeat_interval = heartbeat_interval
        self.idle_timeout = idle_timeout
        self.access_points = [FakeAccessPoint(self, i + 1) for i in range(access_points)]
        self.users: dict[str, _User] = {}
        self.media: dict[str, tuple[str, bytes]] = {}
        self.received: list[tuple[FakeConnection, Frame]] = []
        """Every frame clients sent, in arrival order, with the connection it came on."""
        self._tokens: dict[str, tuple[str, str, float]] = {}
        self._online: dict[tuple[str, str], FakeConnection] = {}
        self._messages: dict[str, list[StoredMessage]] = {}
        self._receivers: dict[str, str] = {}
        self._by_client_id: dict[tuple[str, str, int], StoredMessage] = {}
        self._acked: dict[tuple[str, str, str], int] = {}
        self._server_ids = itertools.count(1)
        self._sessions = itertools.count(1)
        self._notify_ids = itertools.count(1)
        self._scripts: list[ScriptHandler] = []
        self._changed: anyio.Event | None = None
        self._tg: anyio.abc.TaskGroup | None = None

    # ------------------------------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FakeServer:
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        try:
            for ap in self.access_points:
                await self._start_access_point(ap)
        except BaseException as exc:
            tg.cancel_scope.cancel()
            await tg.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        tg, self._tg = self._tg, None
        assert tg is not None
        tg.cancel_scope.cancel()
        return await tg.__aexit__(exc_type, exc, tb)

    async def _start_access_point(self, ap: FakeAccessPoint) -> None:
        assert self._tg is not None
        await self._tg.start(ap._serve)

    # ------------------------------------------------------------------------------------------ test API

    def add_user(self, uid: str, password: str = "password", nickname: str = "") -> None:
        """Create an account (as ``POST /v1/users`` would)."""
        self.users[uid] = _User(password, nickname or uid, updated_at=time.time())

    def make_friends(self, a: str, b: str) -> None:
        self.users[a].friends.add(b)
        self.users[b].friends.add(a)

    def script(self, handler: ScriptHandler) -> Callable[[], None]:
        """Let ``handler`` see every client frame first (after it is recorded); it returns ``True`` when it
        answered the frame itself. Returns a function that removes the handler."""
        self._scripts.append(handler)
        return lambda: self._scripts.remove(handler)

    def frames(self, uid: str | None = None, biz: int | None = None, func: int | None = None) -> list[Frame]:
        """Frames clients sent (of ``uid``, with that code), in arrival order."""
        return [
            f
            for c, f in self.received
            if (uid is None or c.uid == uid)
            and (biz is None or f.header.biz == biz)
            and (func is None or f.header.func == func)
        ]

    def connections(self, uid: str) -> list[FakeConnection]:
        """The live connections of ``uid`` (one per online device)."""
        return [c for (u, _), c in self._online.items() if u == uid]

    def stored(self, uid_a: str, uid_b: str) -> list[StoredMessage]:
        """The stored messages of the conversation between two users, in sequence order."""
        return list(self._messages.get(conversation_id(uid_a, uid_b), ()))

    def issue_token(self, uid: str, device: str, lifetime: float | None = None) -> str:
        token = "fake." + secrets.token_hex(16)
        self._tokens[token] = (uid, device, time.time() + (lifetime or self.token_lifetime))
        return token

    def revoke_tokens(self, uid: str) -> None:
        """Every token of ``uid`` stops working (the next handshake with one is refused)."""
        for token, (owner, _, _) in list(self._tokens.items()):
            if owner == uid:
                del self._tokens[token]

    def deliver(self, uid: str, header: Header, body: Message | None = None) -> int:
        """Send a frame to every online device of ``uid``; returns how many got it."""
        targets = self.connections(uid)
        for conn in targets:
            conn.send_frame(header.replace(receiver_uid=uid, receiver_device=conn.device), body)
        return len(targets)

    def notify(self, uid: str, type: str, payload: bytes = b"") -> int:
        """Send a notification to the online devices of ``uid``."""
        note = Notification(
            type=type, payload=payload, notify_id=next(self._notify_ids), created_at_ms=_now_ms()
        )
        return self.deliver(uid, Header(Biz.NOTIFY, NotifyFunc.NOTIFY), note)

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds (checked whenever a client frame arrives or a line ends); bound
        the wait with ``anyio.fail_after``."""
        while not condition():
            self._changed = self._changed or anyio.Event()
            await self._changed.wait()

    def _touch(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    # ------------------------------------------------------------------------------------------ frames

    def _on_frame(self, conn: FakeConnection, frame: Frame) -> None:
        self.received.append((conn, frame))
        try:
            h = frame.header
            if conn.handshake is None:
                self._on_handshake(conn, frame)
                return
            for handler in list(self._scripts):
                if handler(conn, frame):
                    return
            if h.code == (Biz.SYSTEM, SystemFunc.PING):
                reply = Header(Biz.SYSTEM, SystemFunc.PONG, h.seq, h.msg_id, flags=Flags.RESPONSE)
                conn.send_frame(reply, Pong(time_ms=_now_ms()))
            elif h.biz == Biz.CHAT and h.func in _CONTENT_FIELDS:
                self._on_chat(conn, frame)
            elif h.biz == Biz.CHAT and h.func in (ChatFunc.DELIVERED, ChatFunc.READ):
                body = frame.body
                peer = str(getattr(body, "peer_uid", ""))
                self.deliver(peer, h.replace(sender_uid=conn.uid, sender_device=conn.device, seq=0), body)
            elif h.code == (Biz.SYNC, SyncFunc.PULL):
                self._on_pull(conn, h, frame.body_as(SyncPull))
            elif h.code == (Biz.SYNC, SyncFunc.ACK):
                for cursor in frame.body_as(SyncAck).cursors:
                    key = (conn.uid, conn.device, cursor.conversation)
                    self._acked[key] = max(self._acked.get(key, 0), cursor.seq)
        finally:
            self._touch()

    def _on_handshake(self, conn: FakeConnection, frame: Frame) -> None:
        h = frame.header
        if h.code != (Biz.SYSTEM, SystemFunc.HANDSHAKE):
            _refuse(conn, Header(Biz.SYSTEM, SystemFunc.ERROR), ErrorCode.HANDSHAKE_REQUIRED, close=True)
            return
        hs = frame.body_as(Handshake)
        grant = self._tokens.get(hs.token)
        if grant is None or grant[2] < time.time() or grant[1] != hs.device_id:
            code = (
                ErrorCode.TOKEN_EXPIRED
                if grant is not None and grant[2] < time.time()
                else ErrorCode.TOKEN_INVALID
            )
            _refuse(conn, Header(Biz.SYSTEM, SystemFunc.ERROR), code, close=True)
            return
        conn.uid, conn.device = grant[0], grant[1]
        conn.handshake = hs
        conn.session = next(self._sessions)
        conn.network = hs.network
        old = self._online.get((conn.uid, conn.device))
        self._online[(conn.uid, conn.device)] = conn
        if old is not None and old is not conn:
            old.kick(ErrorCode.SESSION_REPLACED)
        ack = HandshakeAck(
            session=conn.session,
            seq_base=random.getrandbits(30) << 32,
            heartbeat_interval_ms=int(self.heartbeat_interval * 1000),
            access_id=conn.access_point.server_id,
            server_time_ms=_now_ms(),
            msg_server_id=self.router_id,
            uid=conn.uid,
            idle_timeout_ms=int(self.idle_timeout * 1000),
        )
        conn.send_frame(
            Header(Biz.SYSTEM, SystemFunc.HANDSHAKE_ACK, h.seq, h.msg_id, flags=Flags.RESPONSE), ack
        )
        self._presence(conn, PresenceEventKind.PRESENCE_EVENT_KIND_ONLINE, online=True)

    def _gone(self, conn: FakeConnection) -> None:
        if conn.uid and self._online.get((conn.uid, conn.device)) is conn:
            del self._online[(conn.uid, conn.device)]
            self._presence(conn, PresenceEventKind.PRESENCE_EVENT_KIND_OFFLINE, online=False)
        self._touch()

    def _presence(self, conn: FakeConnection, kind: int, *, online: bool) -> None:
        user = self.users.get(conn.uid)
        if user is None:
            return
        presence = DevicePresence(
            uid=conn.uid,
            device=conn.device,
            online=online,
            access_id=conn.access_point.server_id,
            network=cast(Any, conn.network),
            since_ms=_now_ms(),
        )
        event = PresenceEvent(kind=cast(Any, kind), presence=presence, time_ms=_now_ms())
        for friend in sorted(user.friends):
            self.deliver(friend, Header(Biz.PRESENCE, PresenceFunc.EVENT), event)

    def _on_chat(self, conn: FakeConnection, frame: Frame) -> None:
        h = frame.header
        if h.msg_server_id != self.router_id:
            _refuse(conn, h, ErrorCode.WRONG_MESSAGE_SERVER, msg_server_id=self.router_id)
            return
        receiver = h.receiver_uid
        if receiver not in self.users:
            _refuse(conn, h, ErrorCode.UNKNOWN_RECEIVER)
            return
        body = frame.body
        if not isinstance(body, ChatText | ChatImage | ChatVoice | ChatLocation):
            _refuse(conn, h, ErrorCode.MALFORMED_BODY)
            return
        targets = self.connections(receiver)
        push = h.replace(
            seq=0,
            sender_uid=conn.uid,
            sender_device=conn.device,
            access_id=0,
            flags=h.flags & Flags.NO_STORE,
        )
        if h.flags & Flags.NO_STORE:
            if not targets:
                _refuse(conn, h, ErrorCode.RECEIVER_OFFLINE)
                return
            body.sent_at_ms = _now_ms()
            for target in targets:
                target.send_frame(push.replace(receiver_uid=receiver, receiver_device=target.device), body)
            self._ack(conn, h, SendAck(msg_id=h.msg_id, timestamp_ms=body.sent_at_ms, status=_DELIVERED))
            return
        key = (conn.uid, conn.device, h.msg_id)
        known = self._by_client_id.get(key)
        if known is not None:
            self._ack(
                conn,
                h,
                SendAck(
                    msg_id=h.msg_id,
                    server_msg_id=known.server_msg_id,
                    conv_seq=known.conv_seq,
                    timestamp_ms=known.sent_at_ms,
                    status=SendStatus.SEND_STATUS_DUPLICATE,
                ),
            )
            return
        conv = conversation_id(conn.uid, receiver)
        log = self._messages.setdefault(conv, [])
        body.server_msg_id = next(self._server_ids)
        body.conv_seq = len(log) + 1
        body.sent_at_ms = _now_ms()
        stored = StoredMessage(
            conversation=conv,
            sender_uid=conn.uid,
            sender_device=conn.device,
            msg_id=h.msg_id,
            server_msg_id=body.server_msg_id,
            conv_seq=body.conv_seq,
            sent_at_ms=body.sent_at_ms,
        )
        getattr(stored, _CONTENT_FIELDS[h.func]).CopyFrom(body)
        log.append(stored)
        self._receivers[f"{conv}#{body.conv_seq}"] = receiver
        self._by_client_id[key] = stored
        status = _DELIVERED if targets else SendStatus.SEND_STATUS_STORED
        ack = SendAck(
            msg_id=h.msg_id,
            server_msg_id=body.server_msg_id,
            conv_seq=body.conv_seq,
            timestamp_ms=body.sent_at_ms,
            status=status,
        )
        self._ack(conn, h, ack)
        for target in targets:
            target.send_frame(push.replace(receiver_uid=receiver, receiver_device=target.device), body)

    def _ack(self, conn: FakeConnection, h: Header, ack: SendAck) -> None:
        header = Header(
            Biz.CHAT, ChatFunc.SEND_ACK, h.seq, h.msg_id, msg_server_id=self.router_id, flags=Flags.RESPONSE
        )
        conn.send_frame(header, ack)

    def _on_pull(self, conn: FakeConnection, h: Header, pull: SyncPull) -> None:
        reply = Header(
            Biz.SYNC, SyncFunc.BATCH, h.seq, h.msg_id, msg_server_id=self.router_id, flags=Flags.RESPONSE
        )
        if not pull.conversation:
            for conv in sorted(self._messages):
                pending = [
                    m
                    for m in self._messages[conv]
                    if self._receivers.get(f"{conv}#{m.conv_seq}") == conn.uid
                    and m.conv_seq > self._acked.get((conn.uid, conn.device, conv), 0)
                ]
                if pending:
                    conn.send_frame(reply, SyncBatch(conversation=conv, messages=pending))
            conn.send_frame(reply.replace(func=SyncFunc.DONE), SyncDone())
            return
        conv = pull.conversation
        log = self._messages.get(conv, [])
        if log and conn.uid not in (log[0].sender_uid, self._receivers.get(f"{conv}#1")):
            _refuse(conn, h, ErrorCode.FORBIDDEN)
            return
        to_seq = pull.to_seq or math.inf
        picked = [m for m in log if pull.from_seq <= m.conv_seq <= to_seq]
        limit = pull.limit or len(picked) or 1
        more = len(picked) > limit
        picked = picked[:limit]
        if picked:
            conn.send_frame(reply, SyncBatch(conversation=conv, messages=picked, more=more))
        last = picked[-1].conv_seq if picked else 0
        conn.send_frame(reply.replace(func=SyncFunc.DONE), SyncDone(conversation=conv, last_seq=last))

    # ------------------------------------------------------------------------------------------ HTTP

    def http_transport(self) -> httpx.MockTransport:
        """The HTTP services (auth, access manager, media), answered in process."""
        return httpx.MockTransport(self._http)

    def _http(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        method = request.method
        try:
            for (m, prefix), handler in self._routes().items():
                if method == m and (path == prefix or (prefix.endswith("/") and path.startswith(prefix))):
                    return handler(request, unquote(path[len(prefix) :]))
            return _error(404, ErrorCode.NOT_FOUND, "no such endpoint")
        except _HTTPError as exc:
            return _error(exc.status, exc.code, str(exc))

    def _routes(self) -> dict[tuple[str, str], Callable[[httpx.Request, str], httpx.Response]]:
        return {
            ("POST", "/v1/users"): self._register,
            ("POST", "/v1/login"): self._login,
            ("POST", "/v1/tokens/refresh"): self._refresh,
            ("POST", "/v1/logout"): self._logout,
            ("GET", "/v1/access-points"): self._access_points,
            ("POST", "/v1/media"): self._upload,
            ("GET", "/v1/media/"): self._download,
            ("GET", "/v1/friends"): lambda r, _: _json(200, {"friends": sorted(self._user(r)[1].friends)}),
            ("PUT", "/v1/friends/"): self._add_friend,
            ("DELETE", "/v1/friends/"): self._remove_friend,
            ("GET", "/v1/profile"): lambda r, _: _json(200, self._profile(self._user(r)[0])),
            ("GET", "/v1/profile/"): lambda r, uid: (self._user(r), _json(200, self._profile(uid)))[1],
            ("PATCH", "/v1/profile"): self._update_profile,
        }

    def _user(self, request: httpx.Request) -> tuple[str, _User]:
        auth = request.headers.get("authorization", "")
        grant = self._tokens.get(auth.removeprefix("Bearer ").strip())
        if grant is None or grant[2] < time.time():
            raise _HTTPError(401, ErrorCode.TOKEN_INVALID, "missing or bad token")
        return grant[0], self.users[grant[0]]

    def _token_body(self, uid: str, device: str) -> httpx.Response:
        now = int(time.time())
        token = self.issue_token(uid, device)
        expires = int(self._tokens[token][2])
        body = {
            "token": token,
            "token_kind": "v2",
            "uid": uid,
            "device": device,
            "issued_at": now,
            "expires_at": expires,
        }
        return _json(200, body)

    def _register(self, request: httpx.Request, _: str) -> httpx.Response:
        body = _body(request)
        uid, password = str(body.get("uid", "")), str(body.get("password", ""))
        if not uid or not password:
            raise _HTTPError(400, ErrorCode.MALFORMED_BODY, "uid and password are required")
        if uid in self.users:
            raise _HTTPError(409, ErrorCode.DUPLICATE, "uid taken")
        self.add_user(uid, password, str(body.get("nickname", "")))
        return _json(201, {"uid": uid})

    def _login(self, request: httpx.Request, _: str) -> httpx.Response:
        body = _body(request)
        user = self.users.get(str(body.get("uid", "")))
        if user is None or user.password != body.get("password"):
            raise _HTTPError(401, ErrorCode.BAD_CREDENTIALS, "unknown user or wrong password")
        return self._token_body(str(body["uid"]), str(body.get("device", "")))

    def _refresh(self, request: httpx.Request, _: str) -> httpx.Response:
        uid, _user = self._user(request)
        token = request.headers["authorization"].removeprefix("Bearer ").strip()
        device = self._tokens[token][1]
        return self._token_body(uid, device)

    def _logout(self, request: httpx.Request, _: str) -> httpx.Response:
        self._user(request)
        self._tokens.pop(request.headers["authorization"].removeprefix("Bearer ").strip(), None)
        return _json(200, {"revoked": True})

    def _access_points(self, request: httpx.Request, _: str) -> httpx.Response:
        self._user(request)
        points = [
            {"host": ap.host, "port": ap.port, "server_id": ap.server_id, "region": "", "isp": ""}
            for ap in self.access_points
            if ap.alive
        ][:3]
        if not points:
            raise _HTTPError(503, ErrorCode.NO_BACKEND, "no access server is available")
        return _json(200, {"access_points": points, "ttl": 60})

    def _upload(self, request: httpx.Request, _: str) -> httpx.Response:
        self._user(request)
        data = request.read()
        kind = request.url.params.get("kind")
        sniffed = _sniff(data)
        if sniffed is None or (kind and sniffed[0] != kind):
            raise _HTTPError(
                415, ErrorCode.MALFORMED_BODY, "not an image or voice format the service accepts"
            )
        media_id = hashlib.sha256(data).hexdigest()
        existed = media_id in self.media
        self.media[media_id] = (sniffed[1], data)
        kind_, mime, width, height = sniffed
        body = {"id": media_id, "kind": kind_, "mime": mime, "size": len(data)}
        if kind_ == "image":
            body.update(width=width, height=height)
        return _json(200 if existed else 201, body)

    def _download(self, request: httpx.Request, media_id: str) -> httpx.Response:
        self._user(request)
        blob = self.media.get(media_id)
        if blob is None:
            raise _HTTPError(404, ErrorCode.NOT_FOUND, "unknown media id")
        return httpx.Response(200, content=blob[1], headers={"content-type": blob[0]})

    def _add_friend(self, request: httpx.Request, other: str) -> httpx.Response:
        uid, user = self._user(request)
        if other not in self.users or other == uid:
            raise _HTTPError(404, ErrorCode.NOT_FOUND, "no such user")
        added = other not in user.friends
        self.make_friends(uid, other)
        return _json(200, {"added": added})

    def _remove_friend(self, request: httpx.Request, other: str) -> httpx.Response:
        uid, user = self._user(request)
        removed = other in user.friends
        user.friends.discard(other)
        if other in self.users:
            self.users[other].friends.discard(uid)
        return _json(200, {"removed": removed})

    def _profile(self, uid: str) -> dict[str, Any]:
        user = self.users.get(uid)
        if user is None:
            raise _HTTPError(404, ErrorCode.NOT_FOUND, "no such user")
        return {
            "uid": uid,
            "nickname": user.nickname,
            "signature": user.signature,
            "avatar": user.avatar,
            "updated_at": user.updated_at,
        }

    def _update_profile(self, request: httpx.Request, _: str) -> httpx.Response:
        uid, user = self._user(request)
        changes = _body(request)
        for name in ("nickname", "signature", "avatar"):
            if isinstance(changes.get(name), str):
                setattr(user, name, changes[name])
        user.updated_at = time.time()
        profile = Profile(
            uid=uid,
            nickname=user.nickname,
            signature=user.signature,
            updated_at_ms=int(user.updated_at * 1000),
        )
        for friend in sorted(user.friends):
            self.deliver(friend, Header(Biz.PROFILE, ProfileFunc.UPDATED), ProfileUpdated(profile=profile))
        return _json(200, self._profile(uid))


# ---------------------------------------------------------------------------------------------------- helpers

_DELIVERED = SendStatus.SEND_STATUS_DELIVERED


class _HTTPError(Exception):
    def __init__(self, status: int, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _now_ms() -> int:
    return int(time.time() * 1000)


def _refuse(
    conn: FakeConnection, h: Header, code: ErrorCode, *, msg_server_id: int = 0, close: bool = False
) -> None:
    func = ChatFunc.SEND_ACK if h.biz == Biz.CHAT else h.func
    header = Header(
        h.biz, func, h.seq, h.msg_id, msg_server_id=msg_server_id, flags=_RESPONSE_ERROR, error=int(code)
    )
    conn.send_frame(header, ErrorReport(code=int(code), message=code.doc))
    if close:
        conn.close_after_flush()


def _json(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body)


def _error(status: int, code: ErrorCode, message: str) -> httpx.Response:
    return _json(status, {"error": {"code": int(code), "name": code.name, "message": message}})


def _body(request: httpx.Request) -> dict[str, Any]:
    try:
        body = json.loads(request.read() or b"{}")
    except ValueError:
        raise _HTTPError(400, ErrorCode.MALFORMED_BODY, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise _HTTPError(400, ErrorCode.MALFORMED_BODY, "the body is not a JSON object")
    return body


def _sniff(data: bytes) -> tuple[str, str, int, int] | None:
    """(kind, mime, width, height) from the first bytes, for the formats a test is likely to use."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return "image", "image/png", width, height
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return "image", "image/gif", width, height
    if data.startswith(b"\xff\xd8\xff"):
        return "image", "image/jpeg", 1, 1
    if data.startswith(b"#!AMR-WB\n"):
        return "voice", "audio/amr-wb", 0, 0
    if data.startswith(b"#!AMR\n"):
        return "voice", "audio/amr", 0, 0
    if data.startswith(b"OggS"):
        return "voice", "audio/ogg", 0, 0
    if data.startswith(b"RIFF") and data[8:12] == b"WAVE":
        return "voice", "audio/wav", 0, 0
    return None
