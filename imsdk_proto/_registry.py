"""The ``(biz, func) <-> body class`` table of the suite's own codes; :mod:`imsdk_proto.codes` fronts it."""

from __future__ import annotations

from google.protobuf.message import Message

from imsdk_proto import messages as m
from imsdk_proto.codes import (
    Biz,
    ChatFunc,
    DomainFunc,
    EventFunc,
    LinkFunc,
    NotifyFunc,
    PresenceFunc,
    ProfileFunc,
    PushFunc,
    SyncFunc,
    SystemFunc,
    VoipFunc,
)
from imsdk_proto.errors import UnknownMessageCode

__all__ = ["codes_of", "message_type", "register", "registered_codes"]

_BY_CODE: dict[tuple[int, int], type[Message] | None] = {}
_BY_CLASS: dict[type[Message], tuple[int, int]] = {}


def register(biz: int, func: int, message_class: type[Message] | None) -> None:
    if not (0 < biz <= 0xFFFF_FFFF and 0 < func <= 0xFFFF_FFFF):
        raise ValueError(f"codes must be in 1..2**32-1, got ({biz}, {func})")
    key = (int(biz), int(func))
    if key in _BY_CODE:
        raise ValueError(f"code {key} is already registered to {_BY_CODE[key]!r}")
    if message_class is not None:
        if message_class in _BY_CLASS:
            raise ValueError(f"{message_class.__name__} already has code {_BY_CLASS[message_class]}")
        _BY_CLASS[message_class] = key
    _BY_CODE[key] = message_class


def message_type(biz: int, func: int) -> type[Message] | None:
    try:
        return _BY_CODE[(biz, func)]
    except KeyError:
        raise UnknownMessageCode(f"no message is registered for code ({biz}, {func})") from None


def codes_of(message: Message | type[Message]) -> tuple[int, int]:
    cls = message if isinstance(message, type) else type(message)
    try:
        return _BY_CLASS[cls]
    except KeyError:
        raise UnknownMessageCode(f"{cls.__name__} has no registered (biz, func) code") from None


def registered_codes() -> dict[tuple[int, int], type[Message] | None]:
    return dict(_BY_CODE)


_SUITE: dict[tuple[int, int], type[Message] | None] = {
    (Biz.SYSTEM, SystemFunc.HANDSHAKE): m.Handshake,
    (Biz.SYSTEM, SystemFunc.HANDSHAKE_ACK): m.HandshakeAck,
    (Biz.SYSTEM, SystemFunc.PING): m.Ping,
    (Biz.SYSTEM, SystemFunc.PONG): m.Pong,
    (Biz.SYSTEM, SystemFunc.ERROR): m.ErrorReport,
    (Biz.SYSTEM, SystemFunc.KICK): m.Kick,
    (Biz.CHAT, ChatFunc.TEXT): m.ChatText,
    (Biz.CHAT, ChatFunc.IMAGE): m.ChatImage,
    (Biz.CHAT, ChatFunc.VOICE): m.ChatVoice,
    (Biz.CHAT, ChatFunc.LOCATION): m.ChatLocation,
    (Biz.CHAT, ChatFunc.SEND_ACK): m.SendAck,
    (Biz.CHAT, ChatFunc.DELIVERED): m.DeliveryReceipt,
    (Biz.CHAT, ChatFunc.READ): m.ReadReceipt,
    (Biz.SYNC, SyncFunc.PULL): m.SyncPull,
    (Biz.SYNC, SyncFunc.BATCH): m.SyncBatch,
    (Biz.SYNC, SyncFunc.DONE): m.SyncDone,
    (Biz.SYNC, SyncFunc.ACK): m.SyncAck,
    (Biz.PRESENCE, PresenceFunc.QUERY): m.PresenceQuery,
    (Biz.PRESENCE, PresenceFunc.REPLY): m.PresenceReply,
    (Biz.PRESENCE, PresenceFunc.SUBSCRIBE): m.PresenceSubscribe,
    (Biz.PRESENCE, PresenceFunc.UNSUBSCRIBE): m.PresenceUnsubscribe,
    (Biz.PRESENCE, PresenceFunc.EVENT): m.PresenceEvent,
    (Biz.PROFILE, ProfileFunc.GET): m.ProfileGet,
    (Biz.PROFILE, ProfileFunc.PROFILE): m.ProfileList,
    (Biz.PROFILE, ProfileFunc.UPDATE): m.ProfileUpdate,
    (Biz.PROFILE, ProfileFunc.UPDATED): m.ProfileUpdated,
    (Biz.PROFILE, ProfileFunc.FRIEND_ADD): m.FriendAdd,
    (Biz.PROFILE, ProfileFunc.FRIEND_REMOVE): m.FriendRemove,
    (Biz.PROFILE, ProfileFunc.FRIEND_LIST_REQ): m.FriendListRequest,
    (Biz.PROFILE, ProfileFunc.FRIEND_LIST): m.FriendList,
    (Biz.PROFILE, ProfileFunc.FRIEND_EVENT): m.FriendEvent,
    (Biz.NOTIFY, NotifyFunc.NOTIFY): m.Notification,
    (Biz.NOTIFY, NotifyFunc.ACK): m.NotifyAck,
    (Biz.PUSH, PushFunc.REQUEST): m.PushRequest,
    (Biz.PUSH, PushFunc.PUSH): m.Push,
    (Biz.PUSH, PushFunc.RESULT): m.PushResult,
    (Biz.VOIP, VoipFunc.CALL_REQ): m.CallRequest,
    (Biz.VOIP, VoipFunc.CALL_REQ_ACK): None,
    (Biz.VOIP, VoipFunc.RING_RSP): m.RingResponse,
    (Biz.VOIP, VoipFunc.CALL_RSP): m.CallResponse,
    (Biz.VOIP, VoipFunc.CALL_ACK): m.CallAck,
    (Biz.VOIP, VoipFunc.BYE_REQ): m.ByeRequest,
    (Biz.LINK, LinkFunc.HELLO): m.LinkHello,
    (Biz.LINK, LinkFunc.READY): m.LinkReady,
    (Biz.LINK, LinkFunc.NOT_READY): m.LinkNotReady,
    (Biz.LINK, LinkFunc.NOT_READY_ACK): m.LinkNotReadyAck,
    (Biz.LINK, LinkFunc.HEARTBEAT): m.LinkHeartbeat,
    (Biz.LINK, LinkFunc.PROBE): m.LinkProbe,
    (Biz.LINK, LinkFunc.PROBE_ACK): m.LinkProbeAck,
    (Biz.EVENT, EventFunc.ONLINE): m.OnlineEvent,
    (Biz.EVENT, EventFunc.OFFLINE): m.OfflineEvent,
    (Biz.EVENT, EventFunc.LOAD_REPORT): m.LoadReport,
    (Biz.DOMAIN, DomainFunc.ENVELOPE): m.DomainEnvelope,
}

for (_biz, _func), _cls in _SUITE.items():
    register(_biz, _func, _cls)
