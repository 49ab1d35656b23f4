"""The message router's sans-IO core: inputs and the current time in, actions out.

The core never touches a socket, a database or a clock. Every input carries ``now``, seconds on a monotonic
clock, which deadlines are measured on; :meth:`RouterCore.frame_received` also takes ``wall``, the wall-clock
time that stamps a new message. The two are kept apart so that a wall clock stepped backwards or forwards
neither stalls nor fires a deadline. Its driver feeds it:

* :meth:`RouterCore.frame_received` — an upstream ``CHAT``/``SYNC`` frame as the access server stamped it;
* :meth:`RouterCore.presence_answered` — the answer to a :class:`QueryPresence`;
* :meth:`RouterCore.media_checked` / :meth:`RouterCore.media_check_failed` — the answer to a
  :class:`CheckMedia` (a core built with ``verify_media=True`` asks before an image or voice message);
* :meth:`RouterCore.append_committed` / :meth:`RouterCore.append_failed` — the outcome of an
  :class:`AppendMessage` (through the group-commit writer);
* :meth:`RouterCore.records_loaded` / :meth:`RouterCore.load_failed` — the outcome of a :class:`LoadPending`
  or :class:`LoadRange`;
* :meth:`RouterCore.device_online` / :meth:`RouterCore.device_offline` — online notices from the queue;
* :meth:`RouterCore.handle_timer` — when :meth:`RouterCore.next_deadline` has passed.

and carries out the actions each call returns, in order: :class:`SendFrame`, :class:`QueryPresence`,
:class:`CheckMedia`, :class:`AppendMessage`, :class:`LoadPending`, :class:`LoadRange`, :class:`StoreAck`.
Answers to actions carry the action's ``token``; an answer for a token the core no longer knows (a cancelled
catch-up) is ignored.
The protocol is in ``docs/delivery.md``.
"""

from __future__ import annotations

import enum
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError, Message

from imsdk_proto import messages as pb
from imsdk_proto._header import Header
from imsdk_proto.codes import Biz, ChatFunc, ErrorCode, Flags, SyncFunc
from imsdk_proto.errors import CodedError
from imsdk_proto.messages import SendStatus
from imsdk_server.media._errors import MediaValidationError
from imsdk_server.media._info import MediaInfo, check_media_ref, media_id_of
from imsdk_server.media._sniff import Kind
from imsdk_server.metrics import Counter, Metrics
from imsdk_server.routing._config import RouterConfig
from imsdk_server.routing._store import (
    AppendResult,
    NewMessage,
    PendingCursor,
    StoredRecord,
    conversation_id,
    conversation_members,
)

__all__ = [
    "Action",
    "AppendMessage",
    "CheckMedia",
    "DeviceLocation",
    "LoadPending",
    "LoadRange",
    "QueryPresence",
    "RouterCore",
    "SendFrame",
    "StoreAck",
    "stamp_body",
]

# -- inputs and actions --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceLocation:
    """One online device of a user, as the location service (or an online notice) reports it."""

    uid: str
    device: str
    access_id: int


@dataclass(slots=True, unsafe_hash=True)
class SendFrame:
    """Send a frame (header + v2 body) to access server ``access_id``, which delivers it by the header's
    receiver."""

    access_id: int
    header: Header
    body: bytes


@dataclass(slots=True, unsafe_hash=True)
class QueryPresence:
    """Ask the location service whether ``uid`` exists and which of its devices are online; answer with
    :meth:`RouterCore.presence_answered`."""

    token: int
    uid: str


@dataclass(frozen=True, slots=True)
class CheckMedia:
    """Ask the media catalog whether blob ``media_id`` exists and what it is; answer with
    :meth:`RouterCore.media_checked` or :meth:`RouterCore.media_check_failed`."""

    token: int
    media_id: str


@dataclass(slots=True, unsafe_hash=True)
class AppendMessage:
    """Store ``message`` durably (group commit, in submission order); answer with
    :meth:`RouterCore.append_committed` or :meth:`RouterCore.append_failed`."""

    token: int
    message: NewMessage


@dataclass(frozen=True, slots=True)
class LoadPending:
    """Read a page of a device's pending messages (``MessageStore.pending``); answer with
    :meth:`RouterCore.records_loaded`."""

    token: int
    uid: str
    device: str
    after: PendingCursor | None
    limit: int


@dataclass(frozen=True, slots=True)
class LoadRange:
    """Read a range of a conversation (``MessageStore.pull``); answer with
    :meth:`RouterCore.records_loaded`."""

    token: int
    conversation: str
    from_seq: int
    to_seq: int
    limit: int


@dataclass(frozen=True, slots=True)
class StoreAck:
    """Record a device's cumulative ack (``MessageStore.ack``); nothing is answered."""

    uid: str
    device: str
    conversation: str
    up_to_seq: int


# The three actions every relayed message produces are plain slots dataclasses (equal and hashable by value as
# the others, but built without the per-field object.__setattr__ of a frozen one); nothing mutates an action.
Action = SendFrame | QueryPresence | CheckMedia | AppendMessage | LoadPending | LoadRange | StoreAck

# -- body helpers --------------------------------------------------------------------------------------------

_CONTENT: dict[int, tuple[type[Message], str]] = {
    ChatFunc.TEXT: (pb.ChatText, "text"),
    ChatFunc.IMAGE: (pb.ChatImage, "image"),
    ChatFunc.VOICE: (pb.ChatVoice, "voice"),
    ChatFunc.LOCATION: (pb.ChatLocation, "location"),
}
_RECEIPTS: dict[int, type[Message]] = {ChatFunc.DELIVERED: pb.DeliveryReceipt, ChatFunc.READ: pb.ReadReceipt}

# Flag and status values as constants: operators on ``Flags`` members and attribute look-ups on protobuf enum
# wrappers cost microseconds each, and every message needs several of them.
_int_and = int.__and__
_NO_STORE = int(Flags.NO_STORE)
_NO_FLAGS = Flags(0)
_NO_STORE_FLAGS = Flags.NO_STORE
_RESPONSE_FLAGS = Flags.RESPONSE
_ERROR_RESPONSE_FLAGS = Flags.RESPONSE | Flags.ERROR
_DELIVERED = SendStatus.SEND_STATUS_DELIVERED
_STORED = SendStatus.SEND_STATUS_STORED
_DUPLICATE = SendStatus.SEND_STATUS_DUPLICATE
_CHAT = Biz.CHAT
_SEND_ACK = ChatFunc.SEND_ACK


def _varint(value: int) -> bytes:
    if value <= 0x7F:
        return _SMALL_VARINTS[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL_VARINTS = [bytes((i,)) for i in range(0x80)]


def stamp_body(body: bytes, server_msg_id: int, conv_seq: int, sent_at_ms: int) -> bytes:
    """The sender's chat body with fields 13-15 (``server_msg_id``, ``conv_seq``, ``sent_at_ms``) set.

    Protobuf keeps the last occurrence of a scalar field, so appending the three fields overrides anything
    the sender put there without decoding the body. Zero values are left out, as protobuf would.
    """
    tail = b""
    if server_msg_id:
        tail += b"\x68" + _varint(server_msg_id)
    if conv_seq:
        tail += b"\x70" + _varint(conv_seq)
    if sent_at_ms:
        tail += b"\x78" + _varint(sent_at_ms & 0xFFFF_FFFF_FFFF_FFFF)
    return body + tail


class _Reject(CodedError):
    """Internal: refuse the frame being handled with :attr:`code` (always given by the raiser)."""


# -- state ---------------------------------------------------------------------------------------------------


class _Step(enum.Enum):
    """Where an upstream message is in its sender session's pipeline."""

    AWAIT_PRESENCE = "await-presence"
    """Waiting for the presence answer, and for the media checks of an image or voice message."""
    READY = "ready"
    STORING = "storing"
    DONE = "done"


@dataclass(slots=True)
class _Entry:
    token: int
    session: tuple[str, str, int]
    header: Header
    body: bytes
    kind: str  # "offline" | "instant" | "receipt"
    target_uid: str
    created_ms: int
    deadline: float
    step: _Step = _Step.AWAIT_PRESENCE
    known: bool = True
    devices: tuple[DeviceLocation, ...] = ()
    answered: bool = False
    """The presence answer is in."""
    media: dict[str, list[tuple[pb.MediaRef, Kind]]] | None = None
    """Media checks not answered yet: blob id → the references to it (and the kind each must be)."""
    refusal: tuple[ErrorCode, str] | None = None
    """Why a media check refused the message (answered when the message reaches the head of its queue)."""
    asked: int = 0
    """How many online notices had arrived when presence was asked: later ones add devices to the answer."""


@dataclass(slots=True, eq=False)
class _Session:
    """One sender session's messages in flight.

    ``inflight`` counts every message not yet answered (the ``RATE_LIMITED`` bound). ``queue`` holds, in
    arrival order, the messages not yet dispatched (awaiting presence, or answered and waiting for an earlier
    one); dispatched messages (storing) have left it, so moving the session on looks at its head only. A
    message finished while still queued (a presence timeout) is marked ``DONE`` and skipped when it reaches
    the head.
    """

    inflight: int = 0
    queue: deque[_Entry] = field(default_factory=deque)


@dataclass(slots=True)
class _Load:
    """A store read in flight: a login catch-up / pull-all (``conversation is None``) or a range pull."""

    uid: str
    device: str
    access_id: int
    generation: int
    conversation: str | None
    request: Header | None
    limit: int = 0
    sent: int = 0


class RouterCore:
    """The router's state as data: sender pipelines, catch-ups in flight, online devices it heard of."""

    def __init__(
        self, config: RouterConfig, *, metrics: Metrics | None = None, verify_media: bool = False
    ) -> None:
        self.config = config
        self.verify_media = verify_media
        """Whether image and voice messages wait for a :class:`CheckMedia` per referenced blob (set when the
        driver has a media catalog to answer them)."""
        self._m = (metrics or Metrics()).child("routing")
        self._next_token = 1
        self._sessions: dict[tuple[str, str, int], _Session] = {}
        self._entries: dict[int, _Entry] = {}
        self._waiting: OrderedDict[int, _Entry] = OrderedDict()  # awaiting presence, in deadline order
        self._online: dict[str, dict[str, int]] = {}
        self._online_at: dict[tuple[str, str], int] = {}  # (uid, device) -> number of its online notice
        self._notices = 0
        self._syncs: dict[tuple[str, str], int] = {}  # (uid, device) -> generation of its live catch-up
        self._generation = 0
        self._loads: dict[int, _Load] = {}
        self._instant_seen: OrderedDict[tuple[str, str, int], None] = OrderedDict()
        self._m_stored = self._m.counter("messages_stored_total")
        self._m_dups = self._m.counter("messages_duplicate_total")
        self._m_pushed = self._m.counter("messages_pushed_total")
        self._m_dropped = self._m.counter("messages_dropped_total")
        self._m_redirects = self._m.counter("redirects_total")
        self._m_sender_copies = self._m.counter("sender_copies_total")
        # series by label, looked up once each: a labelled look-up costs more than the rest of a counter bump
        self._m_frames_in: dict[tuple[int, int], Counter] = {}
        self._m_frames_out: dict[tuple[int, int], Counter] = {}
        self._m_errors: dict[ErrorCode, Counter] = {}
        self._m.gauge("inflight_messages", lambda: float(len(self._entries)))
        self._m.gauge("loads_inflight", lambda: float(len(self._loads)))

    # -- bookkeeping -----------------------------------------------------------------------------------------

    def _token(self) -> int:
        token = self._next_token
        self._next_token += 1
        return token

    def online_devices(self, uid: str) -> dict[str, int]:
        """Devices of ``uid`` this router heard come online (device → access-server id)."""
        return dict(self._online.get(uid, {}))

    @property
    def inflight(self) -> int:
        """Upstream messages not yet answered."""
        return len(self._entries)

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must next be called (on the monotonic clock of ``now``), or ``None``."""
        for entry in self._waiting.values():
            return entry.deadline
        return None

    def _out(self, access_id: int, header: Header, body: bytes) -> SendFrame:
        key = (header.biz, header.func)
        counter = self._m_frames_out.get(key)
        if counter is None:
            counter = self._m_frames_out[key] = self._m.counter("frames_out_total", biz=key[0], func=key[1])
        counter.value += 1
        return SendFrame(access_id, header, body)

    def _count_error(self, code: ErrorCode) -> None:
        counter = self._m_errors.get(code)
        if counter is None:
            counter = self._m_errors[code] = self._m.counter("errors_total", code=code.name)
        counter.value += 1

    def _response(self, req: Header, func: int, body: bytes, *, error: ErrorCode | None = None) -> SendFrame:
        flags = _ERROR_RESPONSE_FLAGS if error else _RESPONSE_FLAGS
        header = Header(
            biz=req.biz,
            func=func,
            seq=req.seq,
            msg_id=req.msg_id,
            access_id=req.access_id,
            msg_server_id=self.config.server_id,
            flags=flags,
            error=int(error or 0),
            receiver_uid=req.sender_uid,
            receiver_device=req.sender_device,
            session=req.session,
        )
        return self._out(req.access_id, header, body)

    def _error(self, req: Header, code: ErrorCode, message: str) -> list[Action]:
        self._count_error(code)
        if req.access_id == 0 or not req.sender_uid:
            return []  # nobody to answer
        func = _SEND_ACK if req.biz == _CHAT and req.func in _CONTENT else req.func
        body = pb.ErrorReport(code=int(code), message=message).SerializeToString()
        return [self._response(req, func, body, error=code)]

    # -- upstream frames -------------------------------------------------------------------------------------

    def frame_received(
        self, header: Header, body: bytes, now: float, *, wall: float | None = None
    ) -> list[Action]:
        """An upstream frame from an access server (already stamped with sender and ``access_id``).

        ``now`` (monotonic seconds) starts the message's presence deadline; ``wall`` (wall-clock seconds)
        is its timestamp, ``created_ms``. A driver whose one clock serves both (a test) may leave ``wall``
        out: it then defaults to ``now``.
        """
        if wall is None:
            wall = now
        key = (header.biz, header.func)
        counter = self._m_frames_in.get(key)
        if counter is None:
            counter = self._m_frames_in[key] = self._m.counter("frames_in_total", biz=key[0], func=key[1])
        counter.value += 1
        try:
            if not header.sender_uid or not header.sender_device or header.access_id == 0:
                raise _Reject("the frame carries no authenticated sender", ErrorCode.FORGED_SENDER)
            if header.is_response:
                raise _Reject("the router takes requests, not responses", ErrorCode.UNEXPECTED_MESSAGE)
            if header.biz == _CHAT and header.func in _CONTENT:
                return self._chat_message(header, body, now, wall)
            if header.biz == _CHAT and header.func in _RECEIPTS:
                return self._receipt(header, body, now, wall)
            if header.biz == Biz.SYNC and header.func == SyncFunc.PULL:
                return self._pull(header, body)
            if header.biz == Biz.SYNC and header.func == SyncFunc.ACK:
                return self._sync_ack(header, body)
            raise _Reject(
                f"code ({header.biz}, {header.func}) is not for the router", ErrorCode.UNEXPECTED_MESSAGE
            )
        except _Reject as exc:
            return self._error(header, exc.code, str(exc))

    def _decode(self, cls: type[Message], body: bytes) -> Message:
        if len(body) > self.config.max_body_bytes:
            raise _Reject(f"body over {self.config.max_body_bytes} bytes", ErrorCode.PAYLOAD_TOO_LARGE)
        try:
            return cls.FromString(body)
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise _Reject(f"body does not decode as {cls.__name__}", ErrorCode.MALFORMED_BODY) from exc

    def _check_content(self, func: int, message: Message) -> None:
        limit = self.config.max_text_chars
        if isinstance(message, pb.ChatText):
            if not message.text:
                raise _Reject("empty text", ErrorCode.MALFORMED_BODY)
            if len(message.text) > limit:
                raise _Reject(f"text over {limit} characters", ErrorCode.PAYLOAD_TOO_LARGE)
        elif isinstance(message, pb.ChatImage):
            if len(message.image.sha256) != 32 or not message.image.mime:
                raise _Reject("an image needs a media reference (sha256, mime)", ErrorCode.MALFORMED_BODY)
            if len(message.caption) > limit:
                raise _Reject(f"caption over {limit} characters", ErrorCode.PAYLOAD_TOO_LARGE)
        elif isinstance(message, pb.ChatVoice):
            if len(message.voice.sha256) != 32 or not message.voice.mime or message.duration_ms == 0:
                raise _Reject("a voice clip needs a media reference and a duration", ErrorCode.MALFORMED_BODY)
        elif isinstance(message, pb.ChatLocation):
            if not (-90.0 <= message.lat <= 90.0 and -180.0 <= message.lng <= 180.0):
                raise _Reject("latitude/longitude out of range", ErrorCode.MALFORMED_BODY)
            if message.accuracy_m < 0 or message.accuracy_m != message.accuracy_m:
                raise _Reject("accuracy must be a non-negative number", ErrorCode.MALFORMED_BODY)
            if len(message.label) > limit:
                raise _Reject(f"label over {limit} characters", ErrorCode.PAYLOAD_TOO_LARGE)

    def _admit(
        self,
        header: Header,
        body: bytes,
        kind: str,
        target: str,
        now: float,
        wall: float,
        media: dict[str, list[tuple[pb.MediaRef, Kind]]] | None = None,
    ) -> list[Action]:
        key = (header.sender_uid, header.sender_device, header.session)
        session = self._sessions.get(key)
        if session is not None and session.inflight >= self.config.max_inflight_per_sender:
            raise _Reject("too many messages in flight for this session", ErrorCode.RATE_LIMITED)
        entry = _Entry(
            token=self._token(),
            session=key,
            header=header,
            body=body,
            kind=kind,
            target_uid=target,
            created_ms=int(wall * 1000),
            deadline=now + self.config.presence_timeout,
            media=media,
            asked=self._notices,
        )
        if session is None:
            session = self._sessions[key] = _Session()
        session.inflight += 1
        session.queue.append(entry)
        self._entries[entry.token] = entry
        self._waiting[entry.token] = entry
        if not media:
            return [QueryPresence(entry.token, target)]
        return [QueryPresence(entry.token, target), *(CheckMedia(entry.token, m) for m in media)]

    def _media_refs(self, message: Message) -> dict[str, list[tuple[pb.MediaRef, Kind]]] | None:
        """The blobs an image or voice message references, each with the references to check against it:
        the image (and its thumbnail, when it names one) or the voice clip."""
        refs: list[tuple[pb.MediaRef, Kind]]
        if isinstance(message, pb.ChatImage):
            refs = [(message.image, Kind.IMAGE)]
            if message.HasField("thumbnail") and message.thumbnail.sha256:
                refs.append((message.thumbnail, Kind.IMAGE))
        elif isinstance(message, pb.ChatVoice):
            refs = [(message.voice, Kind.VOICE)]
        else:
            return None
        out: dict[str, list[tuple[pb.MediaRef, Kind]]] = {}
        for ref, kind in refs:
            try:
                media_id = media_id_of(ref)
            except MediaValidationError as exc:
                raise _Reject(exc.message, exc.code) from None
            out.setdefault(media_id, []).append((ref, kind))
        return out

    def _chat_message(self, header: Header, body: bytes, now: float, wall: float) -> list[Action]:
        if header.msg_server_id != self.config.server_id:
            self._m_redirects.inc()
            raise _Reject("stamp this router's msg_server_id and resend", ErrorCode.WRONG_MESSAGE_SERVER)
        if not header.receiver_uid:
            raise _Reject("no receiver", ErrorCode.UNKNOWN_RECEIVER)
        cls, _ = _CONTENT[header.func]
        content = self._decode(cls, body)
        self._check_content(header.func, content)
        media = self._media_refs(content) if self.verify_media else None
        if len(header.receiver_uid) > 128 or len(header.sender_uid) > 128 or len(header.sender_device) > 128:
            raise _Reject("uid or device id over 128 characters", ErrorCode.MALFORMED_HEADER)
        instant = bool(_int_and(header.flags, _NO_STORE))
        if instant:
            key = (header.sender_uid, header.sender_device, header.msg_id)
            if key in self._instant_seen:
                self._m_dups.inc()
                ack = pb.SendAck(msg_id=header.msg_id, status=_DUPLICATE)
                return [self._response(header, _SEND_ACK, ack.SerializeToString())]
        kind = "instant" if instant else "offline"
        return self._admit(header, body, kind, header.receiver_uid, now, wall, media)

    def _receipt(self, header: Header, body: bytes, now: float, wall: float) -> list[Action]:
        receipt = self._decode(_RECEIPTS[header.func], body)
        peer = str(getattr(receipt, "peer_uid", ""))
        if not peer:
            raise _Reject("a receipt needs a peer_uid", ErrorCode.UNKNOWN_RECEIVER)
        return self._admit(header, body, "receipt", peer, now, wall)

    # -- the pipeline ----------------------------------------------------------------------------------------

    def presence_answered(
        self, token: int, known: bool, devices: Iterable[DeviceLocation], now: float
    ) -> list[Action]:
        """The location service's answer to :class:`QueryPresence` ``token``."""
        entry = self._waiting.get(token)
        if entry is None or entry.answered:
            return []
        entry.answered = True
        entry.known = known
        entry.devices = tuple(d for d in devices if d.uid == entry.target_uid)
        return self._looked_up(entry, now)

    def _looked_up(self, entry: _Entry, now: float) -> list[Action]:
        """An answer came in: once presence and every media check have answered, the message is ready."""
        if not entry.answered or entry.media:
            return []
        del self._waiting[entry.token]
        entry.step = _Step.READY
        return self._advance(entry.session, now)

    def media_checked(self, token: int, media_id: str, info: MediaInfo | None, now: float) -> list[Action]:
        """The media catalog's answer to :class:`CheckMedia` ``token`` for blob ``media_id``: its metadata,
        or ``None`` when there is no such blob (the sender gets ``NOT_FOUND``). A reference whose type, size
        or dimensions are not the blob's is refused with ``MALFORMED_BODY``."""
        entry = self._waiting.get(token)
        refs = entry.media.pop(media_id, None) if entry is not None and entry.media else None
        if entry is None or refs is None:
            return []
        if entry.refusal is None:
            if info is None:
                entry.refusal = (ErrorCode.NOT_FOUND, f"no media {media_id}: upload it first")
            else:
                for ref, kind in refs:
                    try:
                        check_media_ref(ref, info, kind)
                    except MediaValidationError as exc:
                        entry.refusal = (exc.code, exc.message)
                        break
        return self._looked_up(entry, now)

    def media_check_failed(self, token: int, media_id: str, code: ErrorCode, now: float) -> list[Action]:
        """The media catalog could not answer :class:`CheckMedia` ``token`` (the media service or its disk is
        unavailable): the message is refused with ``code`` (a retryable one), never stored unverified."""
        entry = self._waiting.get(token)
        refs = entry.media.pop(media_id, None) if entry is not None and entry.media else None
        if entry is None or refs is None:
            return []
        if entry.refusal is None:
            entry.refusal = (code, "the media could not be checked; resend the message")
        return self._looked_up(entry, now)

    def _targets(self, entry: _Entry) -> dict[str, int]:
        """Devices to push to: the presence answer plus devices whose online notice reached us since it was
        asked. Not every device the notices say is online: a device whose line dropped stays published as
        online for the location's grace window (jitter must not flap its friends' presence), but a push to
        it would be lost while its sender is told it was delivered; the answer holds connected devices."""
        targets = {d.device: d.access_id for d in entry.devices}
        later = self._online.get(entry.target_uid)
        if later:
            uid, asked, since = entry.target_uid, entry.asked, self._online_at
            for device, access in later.items():
                if since[(uid, device)] > asked:
                    targets[device] = access
        return targets

    def _finish(self, entry: _Entry) -> None:
        if entry.step is _Step.DONE:
            return
        entry.step = _Step.DONE
        del self._entries[entry.token]
        self._waiting.pop(entry.token, None)
        session = self._sessions[entry.session]
        session.inflight -= 1
        if not session.inflight:
            del self._sessions[entry.session]  # whatever is still queued is DONE

    def _advance(self, key: tuple[str, str, int], now: float) -> list[Action]:
        """Move a sender session's messages on, strictly in arrival order: dispatch from the head of its
        queue every message whose presence answer is in, up to the first still waiting for one."""
        session = self._sessions.get(key)
        if session is None:
            return []
        queue = session.queue
        actions: list[Action] = []
        while queue:
            step = queue[0].step
            if step is _Step.AWAIT_PRESENCE:
                break
            entry = queue.popleft()
            if step is _Step.READY:
                actions += self._dispatch(entry)
        return actions

    def _dispatch(self, entry: _Entry) -> list[Action]:
        h = entry.header
        if not entry.known:
            self._finish(entry)
            return self._error(h, ErrorCode.UNKNOWN_RECEIVER, f"no user {entry.target_uid!r}")
        if entry.refusal is not None:
            self._finish(entry)
            return self._error(h, *entry.refusal)
        if entry.kind == "offline":
            entry.step = _Step.STORING
            message = NewMessage(
                conversation=conversation_id(h.sender_uid, h.receiver_uid),
                sender_uid=h.sender_uid,
                sender_device=h.sender_device,
                client_msg_id=h.msg_id,
                receiver_uid=h.receiver_uid,
                content_type=h.func,
                body=entry.body,
                created_ms=entry.created_ms,
            )
            return [AppendMessage(entry.token, message)]
        self._finish(entry)
        targets = self._targets(entry)
        if entry.kind == "receipt":
            return [self._push(entry, device, access, entry.body) for device, access in targets.items()]
        if not targets:
            self._m_dropped.inc()
            return self._error(h, ErrorCode.RECEIVER_OFFLINE, "not delivered: the receiver is offline")
        self._remember_instant(h)
        body = stamp_body(entry.body, 0, 0, entry.created_ms)
        actions: list[Action] = [
            self._push(entry, device, access, body) for device, access in targets.items()
        ]
        ack = pb.SendAck(msg_id=h.msg_id, timestamp_ms=entry.created_ms, status=_DELIVERED)
        actions.append(self._response(h, _SEND_ACK, ack.SerializeToString()))
        return actions

    def _remember_instant(self, h: Header) -> None:
        self._instant_seen[(h.sender_uid, h.sender_device, h.msg_id)] = None
        while len(self._instant_seen) > self.config.instant_dedup_entries:
            self._instant_seen.popitem(last=False)

    def _push(self, entry: _Entry, device: str, access_id: int, body: bytes) -> SendFrame:
        h = entry.header
        self._m_pushed.inc()
        header = Header(
            biz=h.biz,
            func=h.func,
            msg_id=h.msg_id,
            access_id=access_id,
            msg_server_id=self.config.server_id,
            flags=_NO_STORE_FLAGS if _int_and(h.flags, _NO_STORE) else _NO_FLAGS,
            sender_uid=h.sender_uid,
            sender_device=h.sender_device,
            receiver_uid=entry.target_uid,
            receiver_device=device,
        )
        return self._out(access_id, header, body)

    def append_committed(self, token: int, result: AppendResult, now: float) -> list[Action]:
        """The store committed :class:`AppendMessage` ``token``: ack the sender, push to online devices."""
        entry = self._entries.get(token)
        if entry is None or entry.step is not _Step.STORING:
            return []
        self._finish(entry)
        h = entry.header
        targets = {} if result.duplicate else self._targets(entry)
        if result.duplicate:
            status = _DUPLICATE
            self._m_dups.inc()
        else:
            self._m_stored.inc()
            status = _DELIVERED if targets else _STORED
        ack = pb.SendAck(
            msg_id=h.msg_id,
            server_msg_id=result.server_msg_id,
            conv_seq=result.conv_seq,
            timestamp_ms=result.created_ms,
            status=status,
        )
        actions: list[Action] = [self._response(h, _SEND_ACK, ack.SerializeToString())]
        if targets:
            body = stamp_body(entry.body, result.server_msg_id, result.conv_seq, result.created_ms)
            actions += [self._push(entry, device, access, body) for device, access in targets.items()]
        if not result.duplicate:
            own = self._online.get(h.sender_uid)
            if own is not None and (len(own) > 1 or h.sender_device not in own):
                actions += self._sender_copies(entry, result, own)
        return actions

    def _sender_copies(self, entry: _Entry, result: AppendResult, own: dict[str, int]) -> list[Action]:
        """The committed message for the sender's *other* online devices (multi-device sync): a
        ``SYNC/BATCH`` of the one stored message, which names its conversation, so each device files it
        under the conversation with the peer and shows it as sent by its user, in ``conv_seq`` order."""
        h = entry.header
        batch = pb.SyncBatch(conversation=conversation_id(h.sender_uid, h.receiver_uid))
        stored = batch.messages.add(
            conversation=batch.conversation,
            sender_uid=h.sender_uid,
            sender_device=h.sender_device,
            msg_id=h.msg_id,
            server_msg_id=result.server_msg_id,
            conv_seq=result.conv_seq,
            sent_at_ms=result.created_ms,
        )
        getattr(stored, _CONTENT[h.func][1]).MergeFromString(
            stamp_body(entry.body, result.server_msg_id, result.conv_seq, result.created_ms)
        )
        body = batch.SerializeToString()
        actions: list[Action] = []
        for device, access_id in own.items():
            if device == h.sender_device:
                continue
            self._m_sender_copies.inc()
            header = Header(
                biz=Biz.SYNC,
                func=SyncFunc.BATCH,
                access_id=access_id,
                msg_server_id=self.config.server_id,
                receiver_uid=h.sender_uid,
                receiver_device=device,
            )
            actions.append(self._out(access_id, header, body))
        return actions

    def append_failed(self, token: int, code: ErrorCode, now: float) -> list[Action]:
        """The store could not commit :class:`AppendMessage` ``token``: the sender gets ``code``, no ack."""
        entry = self._entries.get(token)
        if entry is None or entry.step is not _Step.STORING:
            return []
        self._finish(entry)
        return self._error(entry.header, code, "the message was not stored; resend it")

    def handle_timer(self, now: float) -> list[Action]:
        """Time out presence queries whose deadline has passed."""
        actions: list[Action] = []
        expired: list[_Entry] = []
        for entry in self._waiting.values():
            if entry.deadline > now:
                break
            expired.append(entry)
        sessions: list[tuple[str, str, int]] = []
        for entry in expired:
            self._finish(entry)
            who = "media catalog" if entry.answered else "location service"
            actions += self._error(entry.header, ErrorCode.BACKEND_TIMEOUT, f"the {who} did not answer")
            sessions.append(entry.session)
        for session in dict.fromkeys(sessions):
            actions += self._advance(session, now)
        return actions

    # -- online notices and catch-up -------------------------------------------------------------------------

    def device_online(self, uid: str, device: str, access_id: int, now: float) -> list[Action]:
        """An online notice: remember the device and push its pending messages, then a sync-done marker."""
        self._online.setdefault(uid, {})[device] = access_id
        self._notices += 1
        self._online_at[(uid, device)] = self._notices
        return self._start_catch_up(uid, device, access_id, None)

    def device_offline(self, uid: str, device: str, now: float) -> list[Action]:
        """An offline notice: forget the device and cancel its catch-up."""
        devices = self._online.get(uid)
        if devices is not None:
            devices.pop(device, None)
            self._online_at.pop((uid, device), None)
            if not devices:
                del self._online[uid]
        self._syncs.pop((uid, device), None)
        return []

    def _start_catch_up(self, uid: str, device: str, access_id: int, request: Header | None) -> list[Action]:
        self._generation += 1
        self._syncs[(uid, device)] = self._generation
        token = self._token()
        self._loads[token] = _Load(uid, device, access_id, self._generation, None, request)
        return [LoadPending(token, uid, device, None, self.config.pending_page)]

    def _pull(self, header: Header, body: bytes) -> list[Action]:
        pull = self._decode(pb.SyncPull, body)
        assert isinstance(pull, pb.SyncPull)
        if not pull.conversation:
            return self._start_catch_up(header.sender_uid, header.sender_device, header.access_id, header)
        members = conversation_members(pull.conversation)
        if members is None or header.sender_uid not in members:
            raise _Reject("not a conversation of this user", ErrorCode.FORBIDDEN)
        if pull.to_seq and pull.to_seq < pull.from_seq:
            raise _Reject("to_seq below from_seq", ErrorCode.MALFORMED_BODY)
        limit = min(pull.limit or self.config.max_pull, self.config.max_pull)
        token = self._token()
        self._loads[token] = _Load(
            header.sender_uid, header.sender_device, header.access_id, 0, pull.conversation, header, limit
        )
        return [LoadRange(token, pull.conversation, pull.from_seq, pull.to_seq, limit)]

    def _sync_ack(self, header: Header, body: bytes) -> list[Action]:
        ack = self._decode(pb.SyncAck, body)
        assert isinstance(ack, pb.SyncAck)
        actions: list[Action] = []
        for cursor in ack.cursors:
            members = conversation_members(cursor.conversation)
            if members is None or header.sender_uid not in members:
                raise _Reject(
                    f"not a conversation of this user: {cursor.conversation!r}", ErrorCode.FORBIDDEN
                )
            actions.append(StoreAck(header.sender_uid, header.sender_device, cursor.conversation, cursor.seq))
        return actions

    def records_loaded(self, token: int, records: Sequence[StoredRecord], now: float) -> list[Action]:
        """The answer to a :class:`LoadPending` or :class:`LoadRange`."""
        load = self._loads.pop(token, None)
        if load is None:
            return []
        if load.conversation is not None:
            actions = self._batches(load, records, more=len(records) >= load.limit)
            last = records[-1].conv_seq if records else 0
            done = pb.SyncDone(conversation=load.conversation, last_seq=last)
            actions.append(self._sync_frame(load, SyncFunc.DONE, done.SerializeToString()))
            return actions
        if self._syncs.get((load.uid, load.device)) != load.generation:
            return []  # the device went offline or a newer catch-up replaced this one
        actions = self._batches(load, records, more=False)
        load.sent += len(records)
        if len(records) >= self.config.pending_page:
            tail = records[-1]
            next_token = self._token()
            self._loads[next_token] = load
            actions.append(
                LoadPending(
                    next_token,
                    load.uid,
                    load.device,
                    (tail.conversation, tail.conv_seq),
                    self.config.pending_page,
                )
            )
            return actions
        del self._syncs[(load.uid, load.device)]
        actions.append(self._sync_frame(load, SyncFunc.DONE, pb.SyncDone().SerializeToString()))
        return actions

    def load_failed(self, token: int, code: ErrorCode, now: float) -> list[Action]:
        """A store read failed; a pull is answered with ``code``; a login catch-up ends without a done marker
        (the client pulls later)."""
        load = self._loads.pop(token, None)
        if load is None:
            return []
        if load.conversation is None and self._syncs.get((load.uid, load.device)) == load.generation:
            del self._syncs[(load.uid, load.device)]
        if load.request is not None:
            return self._error(load.request, code, "the store could not be read")
        self._count_error(code)
        return []

    def _sync_frame(self, load: _Load, func: int, body: bytes) -> SendFrame:
        req = load.request
        flags = Flags.RESPONSE if req is not None else Flags(0)
        header = Header(
            biz=Biz.SYNC,
            func=func,
            seq=req.seq if req is not None else 0,
            msg_id=req.msg_id if req is not None else 0,
            access_id=load.access_id,
            msg_server_id=self.config.server_id,
            flags=flags,
            receiver_uid=load.uid,
            receiver_device=load.device,
            session=req.session if req is not None else 0,
        )
        return self._out(load.access_id, header, body)

    def _batches(self, load: _Load, records: Sequence[StoredRecord], *, more: bool) -> list[Action]:
        """``SYNC/BATCH`` frames for ``records``: one conversation each, within the count and byte limits."""
        actions: list[Action] = []
        batch: pb.SyncBatch | None = None
        size = 0
        max_msgs, max_bytes = self.config.batch_max_messages, self.config.batch_max_bytes
        for rec in records:
            rec_size = len(rec.body) + 64
            if batch is not None and (
                batch.conversation != rec.conversation
                or len(batch.messages) >= max_msgs
                or size + rec_size > max_bytes
            ):
                actions.append(self._sync_frame(load, SyncFunc.BATCH, batch.SerializeToString()))
                batch = None
            if batch is None:
                batch = pb.SyncBatch(conversation=rec.conversation)
                size = 0
            entry = _CONTENT.get(rec.content_type)
            stored = batch.messages.add(
                conversation=rec.conversation,
                sender_uid=rec.sender_uid,
                sender_device=rec.sender_device,
                msg_id=rec.client_msg_id,
                server_msg_id=rec.server_msg_id,
                conv_seq=rec.conv_seq,
                sent_at_ms=rec.created_ms,
            )
            if entry is not None:
                getattr(stored, entry[1]).MergeFromString(
                    stamp_body(rec.body, rec.server_msg_id, rec.conv_seq, rec.created_ms)
                )
            size += rec_size
        if batch is not None:
            batch.more = more
            actions.append(self._sync_frame(load, SyncFunc.BATCH, batch.SerializeToString()))
        return actions
