"""Every number that travels in a frame header: codecs, flags, business and function codes, error codes.

The access layer routes on ``(biz, func)`` alone, so these two numbers are the routing key of the suite.
Each business owns one :class:`Biz` value and an ``IntEnum`` of function codes. The registry at the bottom
maps ``(biz, func)`` to the protobuf message class that forms the body (or to ``None`` for codes that carry
no body) and back again; businesses built on the SDK may :func:`register` codes of their own.

:class:`ErrorCode` is the single table of wire error codes for the suite, grouped in ranges of one hundred
(protocol 100, auth 200, session 300, routing 400, storage 500, limits 600, business 700, internal 900). All
codes stay below 16384 so they cost at most two bytes in a v2 header.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from google.protobuf.message import Message

__all__ = [
    "Biz",
    "ChatFunc",
    "Codec",
    "DomainFunc",
    "ErrorCode",
    "EventFunc",
    "Flags",
    "LinkFunc",
    "NotifyFunc",
    "PresenceFunc",
    "ProfileFunc",
    "PushFunc",
    "SyncFunc",
    "SystemFunc",
    "VoipFunc",
    "codes_of",
    "func_enum",
    "has_body",
    "message_type",
    "register",
    "registered_codes",
]


class Codec(IntEnum):
    """How the header and the body of a frame are encoded; fixed per connection by its first frame."""

    BSON_JSON = 1
    """v1, the talk's original: BSON header, JSON body (field names as in the .proto)."""
    PROTOBUF = 2
    """v2: protobuf header and protobuf body; the compact one, required for VoIP signaling."""


class Flags(IntFlag):
    """Per-frame bits in the header's ``flags`` field."""

    ACK_WANTED = 0x01
    """The sender wants a response frame for this one (matched by ``seq``/``msg_id``)."""
    RESPONSE = 0x02
    """This frame answers an earlier one with the same ``seq`` and ``msg_id``."""
    ERROR = 0x04
    """This response reports a failure; the header's ``error`` holds the :class:`ErrorCode`."""
    NO_STORE = 0x08
    """Instant class: drop the message if the receiver is offline instead of storing it."""
    RETRY = 0x10
    """The client resends a frame it sent before (after a reconnect); receivers dedup by ``msg_id``."""
    COMPRESSED = 0x20
    """Reserved: the body is compressed. No codec sets it yet; decoders reject nothing because of it."""


class Biz(IntEnum):
    """Business codes: which back-end business a frame belongs to (the first routing key)."""

    SYSTEM = 1
    """Session control between client and access server: handshake, heartbeat, error, kick."""
    CHAT = 2
    """Point-to-point chat: text, image, voice, location, send acks and receipts."""
    SYNC = 3
    """Offline message sync: pull by conversation and sequence range, batches, cumulative ack."""
    PRESENCE = 4
    """Location server: presence query, reply, subscribe, events."""
    PROFILE = 5
    """Profiles and friends: read, update, update events; add, remove, list friends."""
    NOTIFY = 6
    """Notifications: one per type is kept for an offline user (same-type merge)."""
    PUSH = 7
    """Reach: business servers push content to chosen users."""
    VOIP = 8
    """Internet telephony call signaling (the six signals of the talk)."""
    LINK = 9
    """Server-to-server link control: hello, ready, not-ready, heartbeat, probe."""
    EVENT = 10
    """Events on the message queue: online/offline, load reports."""
    DOMAIN = 11
    """Cross-domain gateway envelope carrying a whole inner frame."""


class SystemFunc(IntEnum):
    """Function codes of :attr:`Biz.SYSTEM`."""

    HANDSHAKE = 1
    """Client → access: the first frame of a connection (auth token, device, codec, resume info)."""
    HANDSHAKE_ACK = 2
    """Access → client: session id, sequence base, heartbeat interval, server ids, server time."""
    PING = 3
    """Heartbeat probe (either direction)."""
    PONG = 4
    """Heartbeat answer."""
    ERROR = 5
    """An error report with a code, a message and an optional retry-after."""
    KICK = 6
    """Access → client: the server closes the session (replaced, shutting down, idle...); then closes."""


class ChatFunc(IntEnum):
    """Function codes of :attr:`Biz.CHAT`."""

    TEXT = 1
    IMAGE = 2
    VOICE = 3
    LOCATION = 4
    SEND_ACK = 5
    """Message server → sender: accepted, with server message id and conversation sequence."""
    DELIVERED = 6
    """Receiver → sender: delivery receipt."""
    READ = 7
    """Receiver → sender: read receipt."""


class SyncFunc(IntEnum):
    """Function codes of :attr:`Biz.SYNC`."""

    PULL = 1
    BATCH = 2
    DONE = 3
    """No more stored messages for this pull."""
    ACK = 4
    """Cumulative ack: everything up to a sequence has been received; the server may remove it."""


class PresenceFunc(IntEnum):
    """Function codes of :attr:`Biz.PRESENCE`."""

    QUERY = 1
    REPLY = 2
    SUBSCRIBE = 3
    UNSUBSCRIBE = 4
    EVENT = 5


class ProfileFunc(IntEnum):
    """Function codes of :attr:`Biz.PROFILE`."""

    GET = 1
    PROFILE = 2
    """Reply to :attr:`GET` (a list of profiles)."""
    UPDATE = 3
    UPDATED = 4
    """Event pushed to online friends when a profile changes."""
    FRIEND_ADD = 5
    FRIEND_REMOVE = 6
    FRIEND_LIST_REQ = 7
    FRIEND_LIST = 8
    FRIEND_EVENT = 9


class NotifyFunc(IntEnum):
    """Function codes of :attr:`Biz.NOTIFY`."""

    NOTIFY = 1
    ACK = 2


class PushFunc(IntEnum):
    """Function codes of :attr:`Biz.PUSH`."""

    REQUEST = 1
    """Business server → push server: content and target users."""
    PUSH = 2
    """Push server → client: the content itself."""
    RESULT = 3
    """Push server → business server: how many users were reached, stored, missed."""


class VoipFunc(IntEnum):
    """Function codes of :attr:`Biz.VOIP`: the talk's six signals."""

    CALL_REQ = 1
    """Caller → callee: call request with the caller's media description."""
    CALL_REQ_ACK = 2
    """Server → caller: the request was received. No body (the header's seq/msg_id match the request)."""
    RING_RSP = 3
    """Callee → caller: ringing."""
    CALL_RSP = 4
    """Callee → caller: answered, with the callee's media description."""
    CALL_ACK = 5
    """Caller → callee: answer confirmed; media may flow."""
    BYE_REQ = 6
    """Either side: hang up."""


class LinkFunc(IntEnum):
    """Function codes of :attr:`Biz.LINK` (server-to-server link lifecycle)."""

    HELLO = 1
    READY = 2
    NOT_READY = 3
    NOT_READY_ACK = 4
    HEARTBEAT = 5
    PROBE = 6
    PROBE_ACK = 7


class EventFunc(IntEnum):
    """Function codes of :attr:`Biz.EVENT` (messages carried on the queue)."""

    ONLINE = 1
    OFFLINE = 2
    LOAD_REPORT = 3


class DomainFunc(IntEnum):
    """Function codes of :attr:`Biz.DOMAIN`."""

    ENVELOPE = 1


_FUNC_ENUMS: dict[int, type[IntEnum]] = {
    Biz.SYSTEM: SystemFunc,
    Biz.CHAT: ChatFunc,
    Biz.SYNC: SyncFunc,
    Biz.PRESENCE: PresenceFunc,
    Biz.PROFILE: ProfileFunc,
    Biz.NOTIFY: NotifyFunc,
    Biz.PUSH: PushFunc,
    Biz.VOIP: VoipFunc,
    Biz.LINK: LinkFunc,
    Biz.EVENT: EventFunc,
    Biz.DOMAIN: DomainFunc,
}


def func_enum(biz: int) -> type[IntEnum] | None:
    """The function-code enum of a business, or ``None`` for a business the suite does not define."""
    return _FUNC_ENUMS.get(biz)


class ErrorCode(IntEnum):
    """The wire error codes of the whole suite (header ``error`` field, ``Error`` bodies, close reasons).

    Each member has a one-line :attr:`doc`; :attr:`category` names its range.
    """

    doc: str

    def __new__(cls, value: int, doc: str = "") -> ErrorCode:
        member = int.__new__(cls, value)
        member._value_ = value
        member.doc = doc
        return member

    OK = 0, "No error."

    # -- protocol (100-199): the peer sent bytes we cannot accept; the connection closes.
    BAD_PREAMBLE = 100, "The frame preamble is malformed (zero header length, overlong varint)."
    UNSUPPORTED_VERSION = 101, "The frame format version in the preamble is not supported."
    UNKNOWN_CODEC = 102, "The codec id in the preamble is unknown."
    FRAME_TOO_LARGE = 103, "The announced frame length exceeds the connection's maximum frame size."
    MALFORMED_HEADER = (
        104,
        "The header does not decode, or a field is of the wrong type or out of range.",
    )
    MALFORMED_BODY = 105, "The body does not decode as the message its (biz, func) code names."
    UNKNOWN_CODE = 106, "No message is registered for the frame's (biz, func) code."
    HANDSHAKE_REQUIRED = 107, "The first frame of a connection must be a handshake."
    HANDSHAKE_TIMEOUT = 108, "No handshake arrived in time after the connection opened."
    CODEC_CHANGED = 109, "A frame used a codec other than the one the connection's first frame chose."
    UNEXPECTED_MESSAGE = 110, "The message is valid but not allowed in the session's current state."

    # -- auth (200-299)
    TOKEN_INVALID = 200, "The token is not one we issued (bad format, bad signature, unknown key)."
    TOKEN_EXPIRED = 201, "The token was valid but has expired; log in again."
    TOKEN_REVOKED = 202, "The token was revoked (logout, password change, ban)."
    BAD_CREDENTIALS = 203, "Unknown user or wrong password."
    AUTH_THROTTLED = 204, "Too many failed logins; wait before trying again."
    FORBIDDEN = 205, "The authenticated peer may not use this code (e.g. a client sending link control)."

    # -- session (300-399): why a live session ends.
    IDLE_TIMEOUT = 300, "The line was idle longer than the idle limit (5 minutes by default)."
    HEARTBEAT_TIMEOUT = 301, "The peer missed its heartbeats."
    SLOW_CONSUMER = 302, "The peer does not read fast enough; its send queue overflowed."
    SESSION_REPLACED = 303, "The same user and device logged in on another connection."
    SERVER_SHUTTING_DOWN = 304, "The server is deregistering or restarting; reconnect elsewhere."
    SESSION_UNKNOWN = 305, "The session to resume does not exist any more; start a fresh one."
    LINK_NOT_READY = 306, "The server-to-server link is not in the ready state; no traffic may flow."

    # -- routing (400-499)
    NO_BACKEND = 400, "No back-end server handles this (biz, func) code."
    BACKEND_NOT_READY = 401, "The back-end server exists but its link is not ready."
    RECEIVER_OFFLINE = 402, "The receiver is offline and the message is of the instant class (dropped)."
    UNKNOWN_RECEIVER = 403, "The receiver uid or device does not exist."
    WRONG_MESSAGE_SERVER = (
        404,
        "Missing or wrong message-server id; the response header names the right one.",
    )
    FORGED_SENDER = 405, "The header's sender does not match the authenticated session."
    UNKNOWN_DOMAIN = 406, "No gateway serves the receiver's domain."
    BACKEND_TIMEOUT = 407, "The back-end server did not answer in time."
    HOP_LIMIT = 408, "The frame crossed too many gateways (routing loop)."
    NO_ACCESS_POINTS = 409, "No access server is available to offer; ask the access manager again later."

    # -- storage (500-599)
    STORAGE_UNAVAILABLE = 500, "The store (database, cache) is unavailable; retry later."
    DUPLICATE = 501, "This msg_id was already accepted; the original result stands."
    NOT_FOUND = 502, "The requested record does not exist."

    # -- limits (600-699)
    PAYLOAD_TOO_LARGE = 600, "The body or one of its fields exceeds the allowed size."
    RATE_LIMITED = 601, "Too many requests; honour retry-after."
    TOO_MANY_SUBSCRIPTIONS = 602, "The subscription or friend list limit is reached."

    # -- business (700-799)
    CALL_BUSY = 700, "The callee is in another call."
    CALL_UNKNOWN = 701, "No call with this call id exists (already ended)."
    CALLEE_UNREACHABLE = 702, "The callee is offline or on a network too weak for calls (2G)."
    CALL_REJECTED = 703, "The callee declined the call."
    NOT_FRIENDS = 710, "The operation needs the two users to be friends."

    # -- internal (900-999)
    INTERNAL = 900, "An unexpected server failure; the request may be retried."

    @property
    def category(self) -> str:
        """The range this code belongs to: ``ok``, ``protocol``, ``auth``, ``session``, ``routing``..."""
        return _CATEGORIES.get(self.value // 100, "internal") if self.value else "ok"

    @classmethod
    def from_wire(cls, value: int) -> ErrorCode:
        """The member for a received number; unknown numbers map to :attr:`INTERNAL` (newer peers)."""
        try:
            return cls(value)
        except ValueError:
            return cls.INTERNAL


_CATEGORIES = {
    1: "protocol",
    2: "auth",
    3: "session",
    4: "routing",
    5: "storage",
    6: "limits",
    7: "business",
    9: "internal",
}


# ----------------------------------------------------------------------------------------------------
# (biz, func) <-> message class registry. The table of the suite's own codes lives in ``_registry`` (it
# imports the generated classes); this module stays importable without them.


def message_type(biz: int, func: int) -> type[Message] | None:
    """The body class of ``(biz, func)``, or ``None`` if that code carries no body.

    Raises :class:`~imsdk_proto.errors.UnknownMessageCode` for a code nobody registered.
    """
    from imsdk_proto import _registry

    return _registry.message_type(biz, func)


def has_body(biz: int, func: int) -> bool:
    """Whether frames of ``(biz, func)`` carry a body (raises ``UnknownMessageCode`` for unknown codes)."""
    return message_type(biz, func) is not None


def codes_of(message: Message | type[Message]) -> tuple[int, int]:
    """The ``(biz, func)`` code of a message instance or class.

    Raises :class:`~imsdk_proto.errors.UnknownMessageCode` if the class is not registered.
    """
    from imsdk_proto import _registry

    return _registry.codes_of(message)


def register(biz: int, func: int, message_class: type[Message] | None) -> None:
    """Register a business's own code; ``None`` declares a code without body.

    A code may be registered once; a class may name one code only (so :func:`codes_of` is unambiguous).
    Raises ``ValueError`` on a conflict.
    """
    from imsdk_proto import _registry

    _registry.register(biz, func, message_class)


def registered_codes() -> dict[tuple[int, int], type[Message] | None]:
    """A copy of the whole registry, for docs, tests and routing tables."""
    from imsdk_proto import _registry

    return _registry.registered_codes()
