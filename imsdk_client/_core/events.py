"""The events an app receives from the client, and the network types it reports.

Every event is a frozen dataclass. Message contents stay the protobuf classes of
:mod:`imsdk_proto.messages` (``ChatText``, ``ChatImage``, ``ChatVoice``, ``ChatLocation``), so an app sees the
same fields the wire carries.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from imsdk_proto.codes import ErrorCode
from imsdk_proto.messages import (
    ChatImage,
    ChatLocation,
    ChatText,
    ChatVoice,
    NetworkType,
    Notification,
    Profile,
)

__all__ = [
    "ChatContent",
    "ConnectionState",
    "Event",
    "FriendChanged",
    "MessageReceived",
    "Network",
    "NetworkChanged",
    "NotificationReceived",
    "PresenceChanged",
    "ProfileUpdated",
    "PushReceived",
    "ReceiptReceived",
    "ReplyReceived",
    "RequestFailed",
    "SendAcked",
    "SendFailed",
    "StateChanged",
]

ChatContent = ChatText | ChatImage | ChatVoice | ChatLocation


class Network(enum.Enum):
    """The network the device is on, as the app reports it."""

    WIFI = "wifi"
    G5 = "5g"
    G4 = "4g"
    G3 = "3g"
    G2 = "2g"
    NONE = "none"

    @property
    def wire(self) -> int:
        """The ``NetworkType`` number the handshake carries."""
        return _WIRE[self]

    @classmethod
    def parse(cls, value: str | Network) -> Network:
        """``"wifi"``, ``"5G"``, ``Network.G4``… → the member; raises ``ValueError`` for anything else."""
        if isinstance(value, Network):
            return value
        try:
            return cls(value.strip().lower())
        except ValueError:
            names = ", ".join(m.value for m in cls)
            raise ValueError(f"unknown network type {value!r} (expected one of {names})") from None


_WIRE = {
    Network.WIFI: NetworkType.NETWORK_TYPE_WIFI,
    Network.G5: NetworkType.NETWORK_TYPE_5G,
    Network.G4: NetworkType.NETWORK_TYPE_4G,
    Network.G3: NetworkType.NETWORK_TYPE_3G,
    Network.G2: NetworkType.NETWORK_TYPE_2G,
    Network.NONE: NetworkType.NETWORK_TYPE_NONE,
}


class ConnectionState(enum.Enum):
    """Where the client's connection stands (the states of the session table)."""

    DISCONNECTED = "disconnected"
    """Not started yet."""
    NO_NETWORK = "no_network"
    """The app said there is no network: no attempts until it says one is back."""
    REFRESHING_TOKEN = "refreshing_token"
    """The token is about to expire (or was refused): getting a fresh one before connecting."""
    FETCHING = "fetching"
    """Asking the access manager for a fresh list of access points."""
    CONNECTING = "connecting"
    """Opening a transport to one access point (or racing several)."""
    HANDSHAKING = "handshaking"
    """Connected; waiting for the handshake reply."""
    CATCHING_UP = "catching_up"
    """The session is open; stored messages are being fetched. Sending already works."""
    READY = "ready"
    """Caught up: everything stored for this device has arrived."""
    BACKOFF = "backoff"
    """An attempt failed or the line dropped: waiting before the next attempt."""
    CLOSED = "closed"
    """Closed by the app, or for good (session replaced, token refused): no more attempts."""


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The connection moved from ``old`` to ``new``; ``reason`` says why (for logs and UIs)."""

    old: ConnectionState
    new: ConnectionState
    reason: str = ""
    code: ErrorCode | None = None
    """The wire error code behind the change, when there is one (a kick, a refused handshake)."""


@dataclass(frozen=True, slots=True)
class NetworkChanged:
    """The app reported a new network type."""

    old: Network
    new: Network


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A chat message, delivered in conversation order and only once."""

    conversation: str
    sender_uid: str
    sender_device: str
    msg_id: int
    """The sender's client message id."""
    server_msg_id: int
    conv_seq: int
    """The conversation sequence (0 for instant messages, which are not stored)."""
    sent_at_ms: int
    content: ChatContent
    instant: bool = False


@dataclass(frozen=True, slots=True)
class SendAcked:
    """The server accepted a message this client sent (``status`` is a ``SendStatus`` number)."""

    msg_id: int
    server_msg_id: int
    conv_seq: int
    timestamp_ms: int
    status: int
    conversation: str = ""


@dataclass(frozen=True, slots=True)
class SendFailed:
    """A message this client sent was refused for good (``code``), or the client closed before an answer
    (``code`` is ``None``)."""

    msg_id: int
    code: ErrorCode | None
    message: str = ""


@dataclass(frozen=True, slots=True)
class ReceiptReceived:
    """A delivery or read receipt from ``peer_uid``."""

    kind: str
    """``"delivered"`` or ``"read"``."""
    peer_uid: str
    server_msg_ids: tuple[int, ...]
    up_to_conv_seq: int
    time_ms: int


@dataclass(frozen=True, slots=True)
class NotificationReceived:
    """A notification (delivered once; acknowledged by the client automatically)."""

    notification: Notification


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    """A friend's device went online, offline, or changed network (``kind``: a ``PresenceEventKind``)."""

    kind: int
    uid: str
    device: str
    online: bool
    network: int
    access_id: int = 0
    time_ms: int = 0


@dataclass(frozen=True, slots=True)
class ProfileUpdated:
    """A friend (or this user, from another device) changed their profile."""

    profile: Profile


@dataclass(frozen=True, slots=True)
class FriendChanged:
    """A friend was added or removed (``kind``: a ``FriendEventKind``)."""

    kind: int
    uid: str
    friend_uid: str
    time_ms: int


@dataclass(frozen=True, slots=True)
class PushReceived:
    """Content pushed by a business server (reach)."""

    push_id: int
    title: str
    body: str
    payload: bytes
    sent_at_ms: int


@dataclass(frozen=True, slots=True)
class ReplyReceived:
    """The answer to a request the app made (:meth:`Session.request`), matched by ``msg_id``."""

    msg_id: int
    biz: int
    func: int
    body: object = field(repr=False)
    """The decoded body (a protobuf message) or ``None``."""


@dataclass(frozen=True, slots=True)
class RequestFailed:
    """A request the app made was refused (``code``) or lost with its connection (``code`` is ``None``)."""

    msg_id: int
    code: ErrorCode | None
    message: str = ""


Event = (
    StateChanged
    | NetworkChanged
    | MessageReceived
    | SendAcked
    | SendFailed
    | ReceiptReceived
    | NotificationReceived
    | PresenceChanged
    | ProfileUpdated
    | FriendChanged
    | PushReceived
    | ReplyReceived
    | RequestFailed
)
