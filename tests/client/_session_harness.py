"""A scripted server side for session-core tests (no tests of its own): builds the frames an access server
and a router send, and decodes what the client sent. Time is a number the test moves by hand."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from google.protobuf.message import Message

from imsdk_client._core.events import StateChanged
from imsdk_client._core.heartbeat import HeartbeatConfig
from imsdk_client._core.race import Endpoint
from imsdk_client._core.reorder import conversation_id
from imsdk_client._core.session import (
    Action,
    CloseConnection,
    Deliver,
    OpenConnection,
    SendBytes,
    Session,
    SessionConfig,
)
from imsdk_proto._frame import Frame, FrameDecoder, encode_frame
from imsdk_proto._header import Header
from imsdk_proto.codes import Biz, ChatFunc, Codec, ErrorCode, Flags, SyncFunc, SystemFunc
from imsdk_proto.messages import (
    ChatText,
    ErrorReport,
    HandshakeAck,
    Kick,
    SendAck,
    SendStatus,
    StoredMessage,
    SyncBatch,
    SyncDone,
)

ME = "alice"
PEER = "bob"
DEVICE = "phone"
CONV = conversation_id(ME, PEER)
A = Endpoint("10.0.0.1", 9000, 1)
B = Endpoint("10.0.0.2", 9000, 2)
C = Endpoint("10.0.0.3", 9000, 3)
D = Endpoint("10.0.0.4", 9000, 4)
TOKEN_LIFE = 3600.0
T = TypeVar("T")


def config(**changes: Any) -> SessionConfig:
    base: dict[str, Any] = {
        "device_id": DEVICE,
        "heartbeat": HeartbeatConfig(adaptive=False, pong_timeout=10.0),
    }
    base.update(changes)
    return SessionConfig(**base)


def frame_bytes(header: Header, body: Message | None = None) -> bytes:
    return encode_frame(header, body, Codec.PROTOBUF)


def handshake_ack(session: int = 1, base: int = 1000, msg_server: int = 7, access: int = 1) -> bytes:
    ack = HandshakeAck(
        session=session,
        seq_base=base,
        heartbeat_interval_ms=60_000,
        access_id=access,
        server_time_ms=1,
        msg_server_id=msg_server,
        uid=ME,
        idle_timeout_ms=300_000,
    )
    return frame_bytes(Header(Biz.SYSTEM, SystemFunc.HANDSHAKE_ACK, flags=Flags.RESPONSE), ack)


def send_ack(sent: Frame, conv_seq: int, *, duplicate: bool = False, server: int = 7) -> bytes:
    h = sent.header
    ack = SendAck(
        msg_id=h.msg_id,
        server_msg_id=500 + conv_seq,
        conv_seq=conv_seq,
        timestamp_ms=1,
        status=cast("SendStatus", 4 if duplicate else 1),
    )
    header = Header(Biz.CHAT, ChatFunc.SEND_ACK, h.seq, h.msg_id, msg_server_id=server, flags=Flags.RESPONSE)
    return frame_bytes(header, ack)


def refusal(sent: Frame, code: ErrorCode, *, server: int = 0, retry_after_ms: int = 0) -> bytes:
    h = sent.header
    func = ChatFunc.SEND_ACK if h.biz == Biz.CHAT else h.func
    header = Header(
        h.biz,
        func,
        h.seq,
        h.msg_id,
        msg_server_id=server,
        flags=Flags.RESPONSE | Flags.ERROR,
        error=int(code),
    )
    return frame_bytes(header, ErrorReport(code=int(code), retry_after_ms=retry_after_ms))


def push(conv_seq: int, text: str | None = None, *, sender: str = PEER, msg_id: int | None = None) -> bytes:
    body = ChatText(
        text=text or f"b{conv_seq}", server_msg_id=500 + conv_seq, conv_seq=conv_seq, sent_at_ms=conv_seq
    )
    header = Header(
        Biz.CHAT,
        ChatFunc.TEXT,
        msg_id=msg_id if msg_id is not None else 9000 + conv_seq,
        msg_server_id=7,
        sender_uid=sender,
        sender_device="pc",
        receiver_uid=ME,
        receiver_device=DEVICE,
    )
    return frame_bytes(header, body)


def stored(conv_seq: int, *, sender: str = PEER, device: str = "pc") -> StoredMessage:
    m = StoredMessage(
        conversation=CONV,
        sender_uid=sender,
        sender_device=device,
        msg_id=9000 + conv_seq,
        server_msg_id=500 + conv_seq,
        conv_seq=conv_seq,
        sent_at_ms=conv_seq,
    )
    m.text.text = f"b{conv_seq}"
    return m


def batch(
    seqs: Sequence[int], *, conversation: str = CONV, reply_to: Frame | None = None, more: bool = False
) -> bytes:
    body = SyncBatch(conversation=conversation, messages=[stored(s) for s in seqs], more=more)
    return frame_bytes(_sync_header(SyncFunc.BATCH, reply_to), body)


def done(conversation: str = "", last_seq: int = 0, *, reply_to: Frame | None = None) -> bytes:
    return frame_bytes(
        _sync_header(SyncFunc.DONE, reply_to), SyncDone(conversation=conversation, last_seq=last_seq)
    )


def _sync_header(func: int, reply_to: Frame | None) -> Header:
    if reply_to is None:
        return Header(Biz.SYNC, func, msg_server_id=7)
    return Header(
        Biz.SYNC, func, reply_to.header.seq, reply_to.header.msg_id, msg_server_id=7, flags=Flags.RESPONSE
    )


def kick(code: ErrorCode, reconnect_after_ms: int = 0) -> bytes:
    body = Kick(code=int(code), reconnect_after_ms=reconnect_after_ms)
    return frame_bytes(Header(Biz.SYSTEM, SystemFunc.KICK, error=int(code)), body)


@dataclass
class Harness:
    """Drives one :class:`Session` and remembers every action it asked for."""

    session: Session
    now: float = 0.0
    actions: list[Action] = field(default_factory=list)
    log: list[Action] = field(default_factory=list)

    @classmethod
    def create(cls, seed: int = 1, network: str = "wifi", **changes: Any) -> Harness:
        session = Session(
            config(**changes), network=network, rng=random.Random(seed), backoff_rng=random.Random(seed)
        )
        return cls(session)

    def do(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> list[Action]:
        result = call(*args, **kwargs)
        actions: list[Action] = result[1] if isinstance(result, tuple) else result
        self.actions = actions
        self.log += actions
        return actions

    def send(self, text: str, **kwargs: Any) -> int:
        """The app sends a text to the peer; returns its msg_id (the actions are in :attr:`actions`)."""
        msg_id, actions = self.session.send_message(ChatText(text=text), PEER, self.now, **kwargs)
        self.actions = actions
        self.log += actions
        return msg_id

    def at(self, now: float) -> Harness:
        self.now = now
        return self

    # -- shortcuts

    @property
    def state(self) -> str:
        return self.session.state.value

    @property
    def conn(self) -> int:
        conn = self.session._conn_id
        assert conn is not None
        return conn

    def start(
        self, endpoints: Sequence[Endpoint] = (A, B, C), expires_in: float = TOKEN_LIFE
    ) -> list[Action]:
        return self.do(
            self.session.start,
            self.now,
            token="t1",
            token_expires_at=self.now + expires_in,
            endpoints=endpoints,
        )

    def opened(self) -> OpenConnection:
        opens = [a for a in self.actions if isinstance(a, OpenConnection)]
        assert len(opens) == 1, self.actions
        return opens[0]

    def connect(self, endpoint: Endpoint | None = None) -> list[Action]:
        open_ = [a for a in self.log if isinstance(a, OpenConnection)][-1]
        return self.do(self.session.connected, open_.conn_id, endpoint or open_.endpoints[0], self.now)

    def recv(self, *chunks: bytes) -> list[Action]:
        return self.do(self.session.data_received, self.conn, b"".join(chunks), self.now)

    def timer(self) -> list[Action]:
        return self.do(self.session.handle_timer, self.now)

    def lost(self, reason: str = "reset") -> list[Action]:
        return self.do(self.session.connection_lost, self.conn, reason, self.now)

    def connect_ready(
        self, endpoint: Endpoint | None = None, *, session: int = 1, base: int = 1000, msg_server: int = 7
    ) -> None:
        """Connect, handshake and finish the catch-up with nothing pending."""
        self.connect(endpoint)
        self.recv(handshake_ack(session, base, msg_server))
        pull = self.sent_frames(Biz.SYNC, SyncFunc.PULL)[0]
        self.recv(done(reply_to=pull))
        assert self.state == "ready"

    def sent_frames(self, biz: int | None = None, func: int | None = None) -> list[Frame]:
        frames: list[Frame] = []
        for action in self.actions:
            if isinstance(action, SendBytes):
                decoder = FrameDecoder()
                decoder.feed(action.data)
                frames.extend(decoder)
        return [
            f
            for f in frames
            if (biz is None or f.header.biz == biz) and (func is None or f.header.func == func)
        ]

    def events(self, kind: type[T]) -> list[T]:
        """Events of type ``kind`` delivered by the last call."""
        return [a.event for a in self.actions if isinstance(a, Deliver) and isinstance(a.event, kind)]

    def all_events(self, kind: type[T]) -> list[T]:
        """Events of type ``kind`` delivered since the start."""
        return [a.event for a in self.log if isinstance(a, Deliver) and isinstance(a.event, kind)]

    def states(self) -> list[str]:
        return [e.new.value for e in self.events(StateChanged)]

    def closed(self) -> list[int]:
        return [a.conn_id for a in self.actions if isinstance(a, CloseConnection)]
