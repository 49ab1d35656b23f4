"""The top-level public surface of the three packages is deliberate: these tests fail when it drifts.

Each subpackage of imsdk_server pins its own surface beside its tests.
"""

from __future__ import annotations

import types

import pytest

import imsdk_client
import imsdk_proto
import imsdk_server

EXPECTED = {
    "imsdk_proto": {
        "BadPreamble", "Biz", "ChatFunc", "Codec", "CodecChanged", "CodedError", "DEFAULT_MAX_FRAME_SIZE",
        "DomainFunc", "ErrorCode", "EventFunc", "Flags", "Frame", "FrameDecoder", "FrameTooLarge", "Header",
        "LinkFunc", "MalformedBody", "MalformedHeader", "NotifyFunc", "PresenceFunc", "ProfileFunc",
        "ProtocolError", "PushFunc", "SyncFunc", "SystemFunc", "UnknownCodec", "UnknownMessageCode",
        "UnsupportedVersion", "VoipFunc", "body_class", "codes", "encode_frame", "encode_raw", "errors",
        "messages",
    },
    "imsdk_client": {
        "AllAccessPointsFailed", "AuthClient", "BackoffConfig", "BadResponse", "Client", "ClientClosed",
        "Conflict", "ConnectTimeout", "ConnectionState", "Endpoint", "Event", "FriendChanged",
        "HeartbeatConfig", "IMClientError", "InvalidContent", "InvalidCredentials", "MediaInfo",
        "MessageReceived", "MessageRejected", "Network", "NetworkChanged", "NotFound", "NotLoggedIn",
        "NotificationReceived", "PresenceChanged", "ProfileInfo", "ProfileUpdated", "PushReceived",
        "RateLimited", "ReceiptReceived", "ReceiverOffline", "ReorderConfig", "ReplyReceived",
        "RequestFailed", "RequestRejected", "SendAcked", "SendError", "SendFailed", "Sending",
        "ServerError", "ServiceUnavailable", "SessionConfig", "StateChanged", "TokenInfo", "TokenRejected",
        "TransportError", "UnknownReceiver", "check_location", "conversation_id",
    },
    "imsdk_server": {
        "Metrics",
    },
}  # fmt: skip


@pytest.mark.parametrize("module", [imsdk_proto, imsdk_client, imsdk_server], ids=lambda m: m.__name__)
def test_exported_names_are_pinned(module: types.ModuleType) -> None:
    exported = module.__all__
    assert len(exported) == len(set(exported)), "a name is exported twice"
    assert set(exported) == EXPECTED[module.__name__]
    for name in exported:
        assert getattr(module, name) is not None
    public = {
        n for n, v in vars(module).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)
    }
    modules = {n for n, v in vars(module).items() if isinstance(v, types.ModuleType)}
    assert public - set(exported) == set(), "public names that are not exported deliberately"
    assert {m for m in set(exported) & modules} <= {"codes", "errors", "messages"}
