from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NetworkType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NETWORK_TYPE_UNSPECIFIED: _ClassVar[NetworkType]
    NETWORK_TYPE_WIFI: _ClassVar[NetworkType]
    NETWORK_TYPE_5G: _ClassVar[NetworkType]
    NETWORK_TYPE_4G: _ClassVar[NetworkType]
    NETWORK_TYPE_3G: _ClassVar[NetworkType]
    NETWORK_TYPE_2G: _ClassVar[NetworkType]
    NETWORK_TYPE_NONE: _ClassVar[NetworkType]

class Platform(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLATFORM_UNSPECIFIED: _ClassVar[Platform]
    PLATFORM_ANDROID: _ClassVar[Platform]
    PLATFORM_IOS: _ClassVar[Platform]
    PLATFORM_WEB: _ClassVar[Platform]
    PLATFORM_DESKTOP: _ClassVar[Platform]
    PLATFORM_SERVER: _ClassVar[Platform]

class SendStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEND_STATUS_UNSPECIFIED: _ClassVar[SendStatus]
    SEND_STATUS_STORED: _ClassVar[SendStatus]
    SEND_STATUS_DELIVERED: _ClassVar[SendStatus]
    SEND_STATUS_DROPPED: _ClassVar[SendStatus]
    SEND_STATUS_DUPLICATE: _ClassVar[SendStatus]

class PresenceEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRESENCE_EVENT_KIND_UNSPECIFIED: _ClassVar[PresenceEventKind]
    PRESENCE_EVENT_KIND_ONLINE: _ClassVar[PresenceEventKind]
    PRESENCE_EVENT_KIND_OFFLINE: _ClassVar[PresenceEventKind]
    PRESENCE_EVENT_KIND_NETWORK_CHANGED: _ClassVar[PresenceEventKind]
    PRESENCE_EVENT_KIND_ACCESS_DOWN: _ClassVar[PresenceEventKind]

class FriendEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FRIEND_EVENT_KIND_UNSPECIFIED: _ClassVar[FriendEventKind]
    FRIEND_EVENT_KIND_ADDED: _ClassVar[FriendEventKind]
    FRIEND_EVENT_KIND_REMOVED: _ClassVar[FriendEventKind]

class StorePolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STORE_POLICY_UNSPECIFIED: _ClassVar[StorePolicy]
    STORE_POLICY_DROP: _ClassVar[StorePolicy]
    STORE_POLICY_KEEP_LATEST: _ClassVar[StorePolicy]

class CallMedia(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CALL_MEDIA_AUDIO: _ClassVar[CallMedia]
    CALL_MEDIA_VIDEO: _ClassVar[CallMedia]

class AudioCodec(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_CODEC_UNSPECIFIED: _ClassVar[AudioCodec]
    AUDIO_CODEC_OPUS: _ClassVar[AudioCodec]
    AUDIO_CODEC_AMR_WB: _ClassVar[AudioCodec]
    AUDIO_CODEC_AMR_NB: _ClassVar[AudioCodec]
    AUDIO_CODEC_G722: _ClassVar[AudioCodec]
    AUDIO_CODEC_PCMU: _ClassVar[AudioCodec]
    AUDIO_CODEC_PCMA: _ClassVar[AudioCodec]
    AUDIO_CODEC_ILBC: _ClassVar[AudioCodec]

class CandidateType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CANDIDATE_TYPE_UNSPECIFIED: _ClassVar[CandidateType]
    CANDIDATE_TYPE_HOST: _ClassVar[CandidateType]
    CANDIDATE_TYPE_SRFLX: _ClassVar[CandidateType]
    CANDIDATE_TYPE_RELAY: _ClassVar[CandidateType]

class ByeReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BYE_REASON_HANGUP: _ClassVar[ByeReason]
    BYE_REASON_CANCEL: _ClassVar[ByeReason]
    BYE_REASON_REJECT: _ClassVar[ByeReason]
    BYE_REASON_BUSY: _ClassVar[ByeReason]
    BYE_REASON_TIMEOUT: _ClassVar[ByeReason]
    BYE_REASON_NETWORK: _ClassVar[ByeReason]

class ServerRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERVER_ROLE_UNSPECIFIED: _ClassVar[ServerRole]
    SERVER_ROLE_ACCESS: _ClassVar[ServerRole]
    SERVER_ROLE_ACCESS_MANAGER: _ClassVar[ServerRole]
    SERVER_ROLE_AUTH: _ClassVar[ServerRole]
    SERVER_ROLE_LOCATION: _ClassVar[ServerRole]
    SERVER_ROLE_INSTANT_ROUTER: _ClassVar[ServerRole]
    SERVER_ROLE_OFFLINE_ROUTER: _ClassVar[ServerRole]
    SERVER_ROLE_NOTIFY: _ClassVar[ServerRole]
    SERVER_ROLE_BUSINESS: _ClassVar[ServerRole]
    SERVER_ROLE_GATEWAY: _ClassVar[ServerRole]
NETWORK_TYPE_UNSPECIFIED: NetworkType
NETWORK_TYPE_WIFI: NetworkType
NETWORK_TYPE_5G: NetworkType
NETWORK_TYPE_4G: NetworkType
NETWORK_TYPE_3G: NetworkType
NETWORK_TYPE_2G: NetworkType
NETWORK_TYPE_NONE: NetworkType
PLATFORM_UNSPECIFIED: Platform
PLATFORM_ANDROID: Platform
PLATFORM_IOS: Platform
PLATFORM_WEB: Platform
PLATFORM_DESKTOP: Platform
PLATFORM_SERVER: Platform
SEND_STATUS_UNSPECIFIED: SendStatus
SEND_STATUS_STORED: SendStatus
SEND_STATUS_DELIVERED: SendStatus
SEND_STATUS_DROPPED: SendStatus
SEND_STATUS_DUPLICATE: SendStatus
PRESENCE_EVENT_KIND_UNSPECIFIED: PresenceEventKind
PRESENCE_EVENT_KIND_ONLINE: PresenceEventKind
PRESENCE_EVENT_KIND_OFFLINE: PresenceEventKind
PRESENCE_EVENT_KIND_NETWORK_CHANGED: PresenceEventKind
PRESENCE_EVENT_KIND_ACCESS_DOWN: PresenceEventKind
FRIEND_EVENT_KIND_UNSPECIFIED: FriendEventKind
FRIEND_EVENT_KIND_ADDED: FriendEventKind
FRIEND_EVENT_KIND_REMOVED: FriendEventKind
STORE_POLICY_UNSPECIFIED: StorePolicy
STORE_POLICY_DROP: StorePolicy
STORE_POLICY_KEEP_LATEST: StorePolicy
CALL_MEDIA_AUDIO: CallMedia
CALL_MEDIA_VIDEO: CallMedia
AUDIO_CODEC_UNSPECIFIED: AudioCodec
AUDIO_CODEC_OPUS: AudioCodec
AUDIO_CODEC_AMR_WB: AudioCodec
AUDIO_CODEC_AMR_NB: AudioCodec
AUDIO_CODEC_G722: AudioCodec
AUDIO_CODEC_PCMU: AudioCodec
AUDIO_CODEC_PCMA: AudioCodec
AUDIO_CODEC_ILBC: AudioCodec
CANDIDATE_TYPE_UNSPECIFIED: CandidateType
CANDIDATE_TYPE_HOST: CandidateType
CANDIDATE_TYPE_SRFLX: CandidateType
CANDIDATE_TYPE_RELAY: CandidateType
BYE_REASON_HANGUP: ByeReason
BYE_REASON_CANCEL: ByeReason
BYE_REASON_REJECT: ByeReason
BYE_REASON_BUSY: ByeReason
BYE_REASON_TIMEOUT: ByeReason
BYE_REASON_NETWORK: ByeReason
SERVER_ROLE_UNSPECIFIED: ServerRole
SERVER_ROLE_ACCESS: ServerRole
SERVER_ROLE_ACCESS_MANAGER: ServerRole
SERVER_ROLE_AUTH: ServerRole
SERVER_ROLE_LOCATION: ServerRole
SERVER_ROLE_INSTANT_ROUTER: ServerRole
SERVER_ROLE_OFFLINE_ROUTER: ServerRole
SERVER_ROLE_NOTIFY: ServerRole
SERVER_ROLE_BUSINESS: ServerRole
SERVER_ROLE_GATEWAY: ServerRole

class Header(_message.Message):
    __slots__ = ("biz", "func", "seq", "msg_id", "access_id", "msg_server_id", "flags", "error", "sender_uid", "sender_device", "receiver_uid", "receiver_device", "session")
    BIZ_FIELD_NUMBER: _ClassVar[int]
    FUNC_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    MSG_ID_FIELD_NUMBER: _ClassVar[int]
    ACCESS_ID_FIELD_NUMBER: _ClassVar[int]
    MSG_SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SENDER_UID_FIELD_NUMBER: _ClassVar[int]
    SENDER_DEVICE_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_UID_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_DEVICE_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    biz: int
    func: int
    seq: int
    msg_id: int
    access_id: int
    msg_server_id: int
    flags: int
    error: int
    sender_uid: str
    sender_device: str
    receiver_uid: str
    receiver_device: str
    session: int
    def __init__(self, biz: _Optional[int] = ..., func: _Optional[int] = ..., seq: _Optional[int] = ..., msg_id: _Optional[int] = ..., access_id: _Optional[int] = ..., msg_server_id: _Optional[int] = ..., flags: _Optional[int] = ..., error: _Optional[int] = ..., sender_uid: _Optional[str] = ..., sender_device: _Optional[str] = ..., receiver_uid: _Optional[str] = ..., receiver_device: _Optional[str] = ..., session: _Optional[int] = ...) -> None: ...

class Resume(_message.Message):
    __slots__ = ("session", "acked_down_seq", "acked_up_seq", "cursors")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    ACKED_DOWN_SEQ_FIELD_NUMBER: _ClassVar[int]
    ACKED_UP_SEQ_FIELD_NUMBER: _ClassVar[int]
    CURSORS_FIELD_NUMBER: _ClassVar[int]
    session: int
    acked_down_seq: int
    acked_up_seq: int
    cursors: _containers.RepeatedCompositeFieldContainer[ConversationCursor]
    def __init__(self, session: _Optional[int] = ..., acked_down_seq: _Optional[int] = ..., acked_up_seq: _Optional[int] = ..., cursors: _Optional[_Iterable[_Union[ConversationCursor, _Mapping]]] = ...) -> None: ...

class ConversationCursor(_message.Message):
    __slots__ = ("conversation", "seq")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    conversation: str
    seq: int
    def __init__(self, conversation: _Optional[str] = ..., seq: _Optional[int] = ...) -> None: ...

class Handshake(_message.Message):
    __slots__ = ("token", "device_id", "platform", "client_version", "network", "codec", "resume", "region", "isp")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    CLIENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    ISP_FIELD_NUMBER: _ClassVar[int]
    token: str
    device_id: str
    platform: Platform
    client_version: str
    network: NetworkType
    codec: int
    resume: Resume
    region: str
    isp: str
    def __init__(self, token: _Optional[str] = ..., device_id: _Optional[str] = ..., platform: _Optional[_Union[Platform, str]] = ..., client_version: _Optional[str] = ..., network: _Optional[_Union[NetworkType, str]] = ..., codec: _Optional[int] = ..., resume: _Optional[_Union[Resume, _Mapping]] = ..., region: _Optional[str] = ..., isp: _Optional[str] = ...) -> None: ...

class HandshakeAck(_message.Message):
    __slots__ = ("session", "seq_base", "heartbeat_interval_ms", "access_id", "server_time_ms", "msg_server_id", "uid", "resumed", "idle_timeout_ms", "max_frame_size")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    SEQ_BASE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    ACCESS_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    MSG_SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FIELD_NUMBER: _ClassVar[int]
    IDLE_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_FRAME_SIZE_FIELD_NUMBER: _ClassVar[int]
    session: int
    seq_base: int
    heartbeat_interval_ms: int
    access_id: int
    server_time_ms: int
    msg_server_id: int
    uid: str
    resumed: bool
    idle_timeout_ms: int
    max_frame_size: int
    def __init__(self, session: _Optional[int] = ..., seq_base: _Optional[int] = ..., heartbeat_interval_ms: _Optional[int] = ..., access_id: _Optional[int] = ..., server_time_ms: _Optional[int] = ..., msg_server_id: _Optional[int] = ..., uid: _Optional[str] = ..., resumed: _Optional[bool] = ..., idle_timeout_ms: _Optional[int] = ..., max_frame_size: _Optional[int] = ...) -> None: ...

class Ping(_message.Message):
    __slots__ = ("time_ms",)
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    time_ms: int
    def __init__(self, time_ms: _Optional[int] = ...) -> None: ...

class Pong(_message.Message):
    __slots__ = ("time_ms", "server_time_ms")
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    time_ms: int
    server_time_ms: int
    def __init__(self, time_ms: _Optional[int] = ..., server_time_ms: _Optional[int] = ...) -> None: ...

class ErrorReport(_message.Message):
    __slots__ = ("code", "message", "retry_after_ms")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    retry_after_ms: int
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., retry_after_ms: _Optional[int] = ...) -> None: ...

class Kick(_message.Message):
    __slots__ = ("code", "message", "reconnect_after_ms")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RECONNECT_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    reconnect_after_ms: int
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., reconnect_after_ms: _Optional[int] = ...) -> None: ...

class MediaRef(_message.Message):
    __slots__ = ("sha256", "mime", "size", "width", "height")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    MIME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    sha256: bytes
    mime: str
    size: int
    width: int
    height: int
    def __init__(self, sha256: _Optional[bytes] = ..., mime: _Optional[str] = ..., size: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class ChatText(_message.Message):
    __slots__ = ("text", "server_msg_id", "conv_seq", "sent_at_ms")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SERVER_MSG_ID_FIELD_NUMBER: _ClassVar[int]
    CONV_SEQ_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_MS_FIELD_NUMBER: _ClassVar[int]
    text: str
    server_msg_id: int
    conv_seq: int
    sent_at_ms: int
    def __init__(self, text: _Optional[str] = ..., server_msg_id: _Optional[int] = ..., conv_seq: _Optional[int] = ..., sent_at_ms: _Optional[int] = ...) -> None: ...

class ChatImage(_message.Message):
    __slots__ = ("image", "thumbnail", "caption", "server_msg_id", "conv_seq", "sent_at_ms")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    THUMBNAIL_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    SERVER_MSG_ID_FIELD_NUMBER: _ClassVar[int]
    CONV_SEQ_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_MS_FIELD_NUMBER: _ClassVar[int]
    image: MediaRef
    thumbnail: MediaRef
    caption: str
    server_msg_id: int
    conv_seq: int
    sent_at_ms: int
    def __init__(self, image: _Optional[_Union[MediaRef, _Mapping]] = ..., thumbnail: _Optional[_Union[MediaRef, _Mapping]] = ..., caption: _Optional[str] = ..., server_msg_id: _Optional[int] = ..., conv_seq: _Optional[int] = ..., sent_at_ms: _Optional[int] = ...) -> None: ...

class ChatVoice(_message.Message):
    __slots__ = ("voice", "duration_ms", "server_msg_id", "conv_seq", "sent_at_ms")
    VOICE_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    SERVER_MSG_ID_FIELD_NUMBER: _ClassVar[int]
    CONV_SEQ_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_MS_FIELD_NUMBER: _ClassVar[int]
    voice: MediaRef
    duration_ms: int
    server_msg_id: int
    conv_seq: int
    sent_at_ms: int
    def __init__(self, voice: _Optional[_Union[MediaRef, _Mapping]] = ..., duration_ms: _Optional[int] = ..., server_msg_id: _Optional[int] = ..., conv_seq: _Optional[int] = ..., sent_at_ms: _Optional[int] = ...) -> None: ...

class ChatLocation(_message.Message):
    __slots__ = ("lat", "lng", "accuracy_m", "label", "server_msg_id", "conv_seq", "sent_at_ms")
    LAT_FIELD_NUMBER: _ClassVar[int]
    LNG_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_M_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SERVER_MSG_ID_FIELD_NUMBER: _ClassVar[int]
    CONV_SEQ_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_MS_FIELD_NUMBER: _ClassVar[int]
    lat: float
    lng: float
    accuracy_m: float
    label: str
    server_msg_id: int
    conv_seq: int
    sent_at_ms: int
    def __init__(self, lat: _Optional[float] = ..., lng: _Optional[float] = ..., accuracy_m: _Optional[float] = ..., label: _Optional[str] = ..., server_msg_id: _Optional[int] = ..., conv_seq: _Optional[int] = ..., sent_at_ms: _Optional[int] = ...) -> None: ...

class SendAck(_message.Message):
    __slots__ = ("msg_id", "server_msg_id", "conv_seq", "timestamp_ms", "status")
    MSG_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_MSG_ID_FIELD_NUMBER: _ClassVar[int]
    CONV_SEQ_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    msg_id: int
    server_msg_id: int
    conv_seq: int
    timestamp_ms: int
    status: SendStatus
    def __init__(self, msg_id: _Optional[int] = ..., server_msg_id: _Optional[int] = ..., conv_seq: _Optional[int] = ..., timestamp_ms: _Optional[int] = ..., status: _Optional[_Union[SendStatus, str]] = ...) -> None: ...

class DeliveryReceipt(_message.Message):
    __slots__ = ("peer_uid", "server_msg_ids", "up_to_conv_seq", "time_ms")
    PEER_UID_FIELD_NUMBER: _ClassVar[int]
    SERVER_MSG_IDS_FIELD_NUMBER: _ClassVar[int]
    UP_TO_CONV_SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    peer_uid: str
    server_msg_ids: _containers.RepeatedScalarFieldContainer[int]
    up_to_conv_seq: int
    time_ms: int
    def __init__(self, peer_uid: _Optional[str] = ..., server_msg_ids: _Optional[_Iterable[int]] = ..., up_to_conv_seq: _Optional[int] = ..., time_ms: _Optional[int] = ...) -> None: ...

class ReadReceipt(_message.Message):
    __slots__ = ("peer_uid", "server_msg_ids", "up_to_conv_seq", "time_ms")
    PEER_UID_FIELD_NUMBER: _ClassVar[int]
    SERVER_MSG_IDS_FIELD_NUMBER: _ClassVar[int]
    UP_TO_CONV_SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    peer_uid: str
    server_msg_ids: _containers.RepeatedScalarFieldContainer[int]
    up_to_conv_seq: int
    time_ms: int
    def __init__(self, peer_uid: _Optional[str] = ..., server_msg_ids: _Optional[_Iterable[int]] = ..., up_to_conv_seq: _Optional[int] = ..., time_ms: _Optional[int] = ...) -> None: ...

class SyncPull(_message.Message):
    __slots__ = ("conversation", "from_seq", "to_seq", "limit")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    TO_SEQ_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    conversation: str
    from_seq: int
    to_seq: int
    limit: int
    def __init__(self, conversation: _Optional[str] = ..., from_seq: _Optional[int] = ..., to_seq: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class StoredMessage(_message.Message):
    __slots__ = ("conversation", "sender_uid", "sender_device", "msg_id", "server_msg_id", "conv_seq", "sent_at_ms", "text", "image", "voice", "location", "notification")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    SENDER_UID_FIELD_NUMBER: _ClassVar[int]
    SENDER_DEVICE_FIELD_NUMBER: _ClassVar[int]
    MSG_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_MSG_ID_FIELD_NUMBER: _ClassVar[int]
    CONV_SEQ_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_MS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    VOICE_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_FIELD_NUMBER: _ClassVar[int]
    conversation: str
    sender_uid: str
    sender_device: str
    msg_id: int
    server_msg_id: int
    conv_seq: int
    sent_at_ms: int
    text: ChatText
    image: ChatImage
    voice: ChatVoice
    location: ChatLocation
    notification: Notification
    def __init__(self, conversation: _Optional[str] = ..., sender_uid: _Optional[str] = ..., sender_device: _Optional[str] = ..., msg_id: _Optional[int] = ..., server_msg_id: _Optional[int] = ..., conv_seq: _Optional[int] = ..., sent_at_ms: _Optional[int] = ..., text: _Optional[_Union[ChatText, _Mapping]] = ..., image: _Optional[_Union[ChatImage, _Mapping]] = ..., voice: _Optional[_Union[ChatVoice, _Mapping]] = ..., location: _Optional[_Union[ChatLocation, _Mapping]] = ..., notification: _Optional[_Union[Notification, _Mapping]] = ...) -> None: ...

class SyncBatch(_message.Message):
    __slots__ = ("conversation", "messages", "more")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    conversation: str
    messages: _containers.RepeatedCompositeFieldContainer[StoredMessage]
    more: bool
    def __init__(self, conversation: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[StoredMessage, _Mapping]]] = ..., more: _Optional[bool] = ...) -> None: ...

class SyncDone(_message.Message):
    __slots__ = ("conversation", "last_seq")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    conversation: str
    last_seq: int
    def __init__(self, conversation: _Optional[str] = ..., last_seq: _Optional[int] = ...) -> None: ...

class SyncAck(_message.Message):
    __slots__ = ("cursors",)
    CURSORS_FIELD_NUMBER: _ClassVar[int]
    cursors: _containers.RepeatedCompositeFieldContainer[ConversationCursor]
    def __init__(self, cursors: _Optional[_Iterable[_Union[ConversationCursor, _Mapping]]] = ...) -> None: ...

class DevicePresence(_message.Message):
    __slots__ = ("uid", "device", "online", "access_id", "network", "platform", "client_version", "since_ms")
    UID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    ACCESS_ID_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    CLIENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    SINCE_MS_FIELD_NUMBER: _ClassVar[int]
    uid: str
    device: str
    online: bool
    access_id: int
    network: NetworkType
    platform: Platform
    client_version: str
    since_ms: int
    def __init__(self, uid: _Optional[str] = ..., device: _Optional[str] = ..., online: _Optional[bool] = ..., access_id: _Optional[int] = ..., network: _Optional[_Union[NetworkType, str]] = ..., platform: _Optional[_Union[Platform, str]] = ..., client_version: _Optional[str] = ..., since_ms: _Optional[int] = ...) -> None: ...

class PresenceQuery(_message.Message):
    __slots__ = ("uids", "networks")
    UIDS_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    uids: _containers.RepeatedScalarFieldContainer[str]
    networks: _containers.RepeatedScalarFieldContainer[NetworkType]
    def __init__(self, uids: _Optional[_Iterable[str]] = ..., networks: _Optional[_Iterable[_Union[NetworkType, str]]] = ...) -> None: ...

class PresenceReply(_message.Message):
    __slots__ = ("devices",)
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[DevicePresence]
    def __init__(self, devices: _Optional[_Iterable[_Union[DevicePresence, _Mapping]]] = ...) -> None: ...

class PresenceSubscribe(_message.Message):
    __slots__ = ("uids", "networks", "subscriber")
    UIDS_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_FIELD_NUMBER: _ClassVar[int]
    uids: _containers.RepeatedScalarFieldContainer[str]
    networks: _containers.RepeatedScalarFieldContainer[NetworkType]
    subscriber: str
    def __init__(self, uids: _Optional[_Iterable[str]] = ..., networks: _Optional[_Iterable[_Union[NetworkType, str]]] = ..., subscriber: _Optional[str] = ...) -> None: ...

class PresenceUnsubscribe(_message.Message):
    __slots__ = ("uids", "subscriber")
    UIDS_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_FIELD_NUMBER: _ClassVar[int]
    uids: _containers.RepeatedScalarFieldContainer[str]
    subscriber: str
    def __init__(self, uids: _Optional[_Iterable[str]] = ..., subscriber: _Optional[str] = ...) -> None: ...

class PresenceEvent(_message.Message):
    __slots__ = ("kind", "presence", "access_id", "time_ms")
    KIND_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_FIELD_NUMBER: _ClassVar[int]
    ACCESS_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    kind: PresenceEventKind
    presence: DevicePresence
    access_id: int
    time_ms: int
    def __init__(self, kind: _Optional[_Union[PresenceEventKind, str]] = ..., presence: _Optional[_Union[DevicePresence, _Mapping]] = ..., access_id: _Optional[int] = ..., time_ms: _Optional[int] = ...) -> None: ...

class Profile(_message.Message):
    __slots__ = ("uid", "nickname", "signature", "avatar", "version", "updated_at_ms", "domain")
    UID_FIELD_NUMBER: _ClassVar[int]
    NICKNAME_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    AVATAR_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    uid: str
    nickname: str
    signature: str
    avatar: MediaRef
    version: int
    updated_at_ms: int
    domain: str
    def __init__(self, uid: _Optional[str] = ..., nickname: _Optional[str] = ..., signature: _Optional[str] = ..., avatar: _Optional[_Union[MediaRef, _Mapping]] = ..., version: _Optional[int] = ..., updated_at_ms: _Optional[int] = ..., domain: _Optional[str] = ...) -> None: ...

class ProfileGet(_message.Message):
    __slots__ = ("uids",)
    UIDS_FIELD_NUMBER: _ClassVar[int]
    uids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, uids: _Optional[_Iterable[str]] = ...) -> None: ...

class ProfileList(_message.Message):
    __slots__ = ("profiles",)
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    profiles: _containers.RepeatedCompositeFieldContainer[Profile]
    def __init__(self, profiles: _Optional[_Iterable[_Union[Profile, _Mapping]]] = ...) -> None: ...

class ProfileUpdate(_message.Message):
    __slots__ = ("nickname", "signature", "avatar")
    NICKNAME_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    AVATAR_FIELD_NUMBER: _ClassVar[int]
    nickname: str
    signature: str
    avatar: MediaRef
    def __init__(self, nickname: _Optional[str] = ..., signature: _Optional[str] = ..., avatar: _Optional[_Union[MediaRef, _Mapping]] = ...) -> None: ...

class ProfileUpdated(_message.Message):
    __slots__ = ("profile",)
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    profile: Profile
    def __init__(self, profile: _Optional[_Union[Profile, _Mapping]] = ...) -> None: ...

class FriendAdd(_message.Message):
    __slots__ = ("uid", "remark")
    UID_FIELD_NUMBER: _ClassVar[int]
    REMARK_FIELD_NUMBER: _ClassVar[int]
    uid: str
    remark: str
    def __init__(self, uid: _Optional[str] = ..., remark: _Optional[str] = ...) -> None: ...

class FriendRemove(_message.Message):
    __slots__ = ("uid",)
    UID_FIELD_NUMBER: _ClassVar[int]
    uid: str
    def __init__(self, uid: _Optional[str] = ...) -> None: ...

class FriendListRequest(_message.Message):
    __slots__ = ("since_version",)
    SINCE_VERSION_FIELD_NUMBER: _ClassVar[int]
    since_version: int
    def __init__(self, since_version: _Optional[int] = ...) -> None: ...

class Friend(_message.Message):
    __slots__ = ("uid", "remark", "since_ms", "profile")
    UID_FIELD_NUMBER: _ClassVar[int]
    REMARK_FIELD_NUMBER: _ClassVar[int]
    SINCE_MS_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    uid: str
    remark: str
    since_ms: int
    profile: Profile
    def __init__(self, uid: _Optional[str] = ..., remark: _Optional[str] = ..., since_ms: _Optional[int] = ..., profile: _Optional[_Union[Profile, _Mapping]] = ...) -> None: ...

class FriendList(_message.Message):
    __slots__ = ("friends", "version")
    FRIENDS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    friends: _containers.RepeatedCompositeFieldContainer[Friend]
    version: int
    def __init__(self, friends: _Optional[_Iterable[_Union[Friend, _Mapping]]] = ..., version: _Optional[int] = ...) -> None: ...

class FriendEvent(_message.Message):
    __slots__ = ("kind", "uid", "friend_uid", "time_ms")
    KIND_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    FRIEND_UID_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    kind: FriendEventKind
    uid: str
    friend_uid: str
    time_ms: int
    def __init__(self, kind: _Optional[_Union[FriendEventKind, str]] = ..., uid: _Optional[str] = ..., friend_uid: _Optional[str] = ..., time_ms: _Optional[int] = ...) -> None: ...

class Notification(_message.Message):
    __slots__ = ("type", "payload", "merge_key", "store", "notify_id", "created_at_ms")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    MERGE_KEY_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    NOTIFY_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    type: str
    payload: bytes
    merge_key: str
    store: StorePolicy
    notify_id: int
    created_at_ms: int
    def __init__(self, type: _Optional[str] = ..., payload: _Optional[bytes] = ..., merge_key: _Optional[str] = ..., store: _Optional[_Union[StorePolicy, str]] = ..., notify_id: _Optional[int] = ..., created_at_ms: _Optional[int] = ...) -> None: ...

class NotifyAck(_message.Message):
    __slots__ = ("notify_ids", "status")
    NOTIFY_IDS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    notify_ids: _containers.RepeatedScalarFieldContainer[int]
    status: SendStatus
    def __init__(self, notify_ids: _Optional[_Iterable[int]] = ..., status: _Optional[_Union[SendStatus, str]] = ...) -> None: ...

class PushRequest(_message.Message):
    __slots__ = ("uids", "title", "body", "payload", "store_offline", "push_id", "expires_at_ms")
    UIDS_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    STORE_OFFLINE_FIELD_NUMBER: _ClassVar[int]
    PUSH_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    uids: _containers.RepeatedScalarFieldContainer[str]
    title: str
    body: str
    payload: bytes
    store_offline: bool
    push_id: int
    expires_at_ms: int
    def __init__(self, uids: _Optional[_Iterable[str]] = ..., title: _Optional[str] = ..., body: _Optional[str] = ..., payload: _Optional[bytes] = ..., store_offline: _Optional[bool] = ..., push_id: _Optional[int] = ..., expires_at_ms: _Optional[int] = ...) -> None: ...

class Push(_message.Message):
    __slots__ = ("push_id", "title", "body", "payload", "sent_at_ms")
    PUSH_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_MS_FIELD_NUMBER: _ClassVar[int]
    push_id: int
    title: str
    body: str
    payload: bytes
    sent_at_ms: int
    def __init__(self, push_id: _Optional[int] = ..., title: _Optional[str] = ..., body: _Optional[str] = ..., payload: _Optional[bytes] = ..., sent_at_ms: _Optional[int] = ...) -> None: ...

class PushResult(_message.Message):
    __slots__ = ("push_id", "delivered", "stored", "missed", "missed_uids")
    PUSH_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    MISSED_FIELD_NUMBER: _ClassVar[int]
    MISSED_UIDS_FIELD_NUMBER: _ClassVar[int]
    push_id: int
    delivered: int
    stored: int
    missed: int
    missed_uids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, push_id: _Optional[int] = ..., delivered: _Optional[int] = ..., stored: _Optional[int] = ..., missed: _Optional[int] = ..., missed_uids: _Optional[_Iterable[str]] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("type", "ipv4", "port", "ipv6", "priority")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    IPV4_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    IPV6_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    type: CandidateType
    ipv4: int
    port: int
    ipv6: bytes
    priority: int
    def __init__(self, type: _Optional[_Union[CandidateType, str]] = ..., ipv4: _Optional[int] = ..., port: _Optional[int] = ..., ipv6: _Optional[bytes] = ..., priority: _Optional[int] = ...) -> None: ...

class MediaDescription(_message.Message):
    __slots__ = ("codecs", "ipv4", "port", "candidates", "ice_ufrag", "ice_pwd", "ptime_ms", "ipv6")
    CODECS_FIELD_NUMBER: _ClassVar[int]
    IPV4_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    ICE_UFRAG_FIELD_NUMBER: _ClassVar[int]
    ICE_PWD_FIELD_NUMBER: _ClassVar[int]
    PTIME_MS_FIELD_NUMBER: _ClassVar[int]
    IPV6_FIELD_NUMBER: _ClassVar[int]
    codecs: _containers.RepeatedScalarFieldContainer[AudioCodec]
    ipv4: int
    port: int
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    ice_ufrag: str
    ice_pwd: str
    ptime_ms: int
    ipv6: bytes
    def __init__(self, codecs: _Optional[_Iterable[_Union[AudioCodec, str]]] = ..., ipv4: _Optional[int] = ..., port: _Optional[int] = ..., candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., ice_ufrag: _Optional[str] = ..., ice_pwd: _Optional[str] = ..., ptime_ms: _Optional[int] = ..., ipv6: _Optional[bytes] = ...) -> None: ...

class CallRequest(_message.Message):
    __slots__ = ("call_id", "caller", "callee", "caller_device", "media_type", "created_at_ms", "media")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    CALLEE_FIELD_NUMBER: _ClassVar[int]
    CALLER_DEVICE_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    caller: str
    callee: str
    caller_device: str
    media_type: CallMedia
    created_at_ms: int
    media: MediaDescription
    def __init__(self, call_id: _Optional[int] = ..., caller: _Optional[str] = ..., callee: _Optional[str] = ..., caller_device: _Optional[str] = ..., media_type: _Optional[_Union[CallMedia, str]] = ..., created_at_ms: _Optional[int] = ..., media: _Optional[_Union[MediaDescription, _Mapping]] = ...) -> None: ...

class RingResponse(_message.Message):
    __slots__ = ("call_id", "callee_device", "time_ms")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    CALLEE_DEVICE_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    callee_device: str
    time_ms: int
    def __init__(self, call_id: _Optional[int] = ..., callee_device: _Optional[str] = ..., time_ms: _Optional[int] = ...) -> None: ...

class CallResponse(_message.Message):
    __slots__ = ("call_id", "callee_device", "time_ms", "media")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    CALLEE_DEVICE_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    callee_device: str
    time_ms: int
    media: MediaDescription
    def __init__(self, call_id: _Optional[int] = ..., callee_device: _Optional[str] = ..., time_ms: _Optional[int] = ..., media: _Optional[_Union[MediaDescription, _Mapping]] = ...) -> None: ...

class CallAck(_message.Message):
    __slots__ = ("call_id", "time_ms")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    time_ms: int
    def __init__(self, call_id: _Optional[int] = ..., time_ms: _Optional[int] = ...) -> None: ...

class ByeRequest(_message.Message):
    __slots__ = ("call_id", "reason", "time_ms")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    reason: ByeReason
    time_ms: int
    def __init__(self, call_id: _Optional[int] = ..., reason: _Optional[_Union[ByeReason, str]] = ..., time_ms: _Optional[int] = ...) -> None: ...

class LinkHello(_message.Message):
    __slots__ = ("role", "server_id", "name", "domain", "version", "bizs")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BIZS_FIELD_NUMBER: _ClassVar[int]
    role: ServerRole
    server_id: int
    name: str
    domain: str
    version: str
    bizs: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, role: _Optional[_Union[ServerRole, str]] = ..., server_id: _Optional[int] = ..., name: _Optional[str] = ..., domain: _Optional[str] = ..., version: _Optional[str] = ..., bizs: _Optional[_Iterable[int]] = ...) -> None: ...

class LinkReady(_message.Message):
    __slots__ = ("server_id",)
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    server_id: int
    def __init__(self, server_id: _Optional[int] = ...) -> None: ...

class LinkNotReady(_message.Message):
    __slots__ = ("server_id", "reason")
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    server_id: int
    reason: str
    def __init__(self, server_id: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class LinkNotReadyAck(_message.Message):
    __slots__ = ("server_id",)
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    server_id: int
    def __init__(self, server_id: _Optional[int] = ...) -> None: ...

class LinkHeartbeat(_message.Message):
    __slots__ = ("time_ms",)
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    time_ms: int
    def __init__(self, time_ms: _Optional[int] = ...) -> None: ...

class LinkProbe(_message.Message):
    __slots__ = ("probe_id", "attempt", "time_ms")
    PROBE_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    probe_id: int
    attempt: int
    time_ms: int
    def __init__(self, probe_id: _Optional[int] = ..., attempt: _Optional[int] = ..., time_ms: _Optional[int] = ...) -> None: ...

class LinkProbeAck(_message.Message):
    __slots__ = ("probe_id", "time_ms")
    PROBE_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    probe_id: int
    time_ms: int
    def __init__(self, probe_id: _Optional[int] = ..., time_ms: _Optional[int] = ...) -> None: ...

class OnlineEvent(_message.Message):
    __slots__ = ("uid", "device", "access_id", "network", "platform", "client_version", "time_ms", "session")
    UID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    ACCESS_ID_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    CLIENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    uid: str
    device: str
    access_id: int
    network: NetworkType
    platform: Platform
    client_version: str
    time_ms: int
    session: int
    def __init__(self, uid: _Optional[str] = ..., device: _Optional[str] = ..., access_id: _Optional[int] = ..., network: _Optional[_Union[NetworkType, str]] = ..., platform: _Optional[_Union[Platform, str]] = ..., client_version: _Optional[str] = ..., time_ms: _Optional[int] = ..., session: _Optional[int] = ...) -> None: ...

class OfflineEvent(_message.Message):
    __slots__ = ("uid", "device", "access_id", "time_ms", "reason", "session", "network")
    UID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    ACCESS_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    uid: str
    device: str
    access_id: int
    time_ms: int
    reason: int
    session: int
    network: NetworkType
    def __init__(self, uid: _Optional[str] = ..., device: _Optional[str] = ..., access_id: _Optional[int] = ..., time_ms: _Optional[int] = ..., reason: _Optional[int] = ..., session: _Optional[int] = ..., network: _Optional[_Union[NetworkType, str]] = ...) -> None: ...

class LoadReport(_message.Message):
    __slots__ = ("server_id", "connections", "send_queue_depth", "cpu", "address", "region", "isp", "time_ms", "max_connections", "name", "tls_address")
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    SEND_QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    CPU_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    ISP_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TLS_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    server_id: int
    connections: int
    send_queue_depth: int
    cpu: float
    address: str
    region: str
    isp: str
    time_ms: int
    max_connections: int
    name: str
    tls_address: str
    def __init__(self, server_id: _Optional[int] = ..., connections: _Optional[int] = ..., send_queue_depth: _Optional[int] = ..., cpu: _Optional[float] = ..., address: _Optional[str] = ..., region: _Optional[str] = ..., isp: _Optional[str] = ..., time_ms: _Optional[int] = ..., max_connections: _Optional[int] = ..., name: _Optional[str] = ..., tls_address: _Optional[str] = ...) -> None: ...

class DomainEnvelope(_message.Message):
    __slots__ = ("source_domain", "target_domain", "frame", "hops")
    SOURCE_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    TARGET_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    HOPS_FIELD_NUMBER: _ClassVar[int]
    source_domain: str
    target_domain: str
    frame: bytes
    hops: int
    def __init__(self, source_domain: _Optional[str] = ..., target_domain: _Optional[str] = ..., frame: _Optional[bytes] = ..., hops: _Optional[int] = ...) -> None: ...
