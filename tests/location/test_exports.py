"""The public surface of imsdk_server.location is deliberate: this test fails when it drifts."""

from __future__ import annotations

import imsdk_server.location as location

EXPECTED = {
    "ANY_NETWORK", "CHAT", "DEVICE_TRANSITIONS", "NETWORK_CLASSES", "SERVER_TRANSITIONS", "VOIP",
    "Action", "BatchNotice", "Deliver", "DeviceKey", "DeviceNotice", "DeviceOffline", "DeviceOnline",
    "DeviceState", "InvalidPresenceEvent", "LocationConfig", "LocationError", "LocationService",
    "MemoryPresenceStore", "Network", "NetworkClass", "Notice", "NoticeKind", "Presence", "PresenceCore",
    "PresenceStateError", "PresenceStore", "PresenceStoreUnavailable", "RedisPresenceStore",
    "ServerDownNotice", "ServerState", "ServerStatus", "StorePut", "StoreRemove", "Subscriber",
    "SubscriberOverflow", "Subscription", "decode_offline", "decode_online", "decode_presence",
    "encode_offline", "encode_online", "encode_presence", "network_class",
    "PresenceClient", "PresenceLinkConfig", "PresenceLinkServer", "PresenceNotice", "PresenceRequestFailed",
    "PresenceSubscription", "PresenceTimeout", "PresenceUnavailable", "classes_from_wire", "classes_to_wire",
    "presence_from_wire", "presence_to_wire",
}  # fmt: skip


def test_exported_names_are_pinned() -> None:
    assert set(location.__all__) == EXPECTED
    assert len(location.__all__) == len(EXPECTED)
    for name in location.__all__:
        assert getattr(location, name) is not None
    public = {n for n in vars(location) if not n.startswith("_")} - {"conformance"}
    assert public == EXPECTED
