"""Queue payloads: protobuf and v1 JSON forms of the access servers' events, and bad payloads."""

from __future__ import annotations

import pytest

from imsdk_proto.messages import NetworkType, OnlineEvent, Platform
from imsdk_server.location import (
    DeviceOffline,
    DeviceOnline,
    InvalidPresenceEvent,
    Network,
    decode_offline,
    decode_online,
    encode_offline,
    encode_online,
)
from imsdk_server.location._events import network_from_wire


@pytest.mark.parametrize("network", list(Network))
def test_online_round_trips_through_protobuf(network: Network) -> None:
    ev = DeviceOnline("alice", "phone", 7, 2**40, network, "", "3.1.4", 1_700_000_000.5)
    assert decode_online(encode_online(ev)) == ev


def test_platform_and_wire_fields() -> None:
    payload = OnlineEvent(
        uid="a", device="d", access_id=3, network=NetworkType.NETWORK_TYPE_3G, platform=Platform.PLATFORM_IOS,
        client_version="9", time_ms=1500, session=4,
    ).SerializeToString()  # fmt: skip
    assert decode_online(payload) == DeviceOnline("a", "d", 3, 4, Network.G3, "ios", "9", 1.5)
    unspecified = OnlineEvent(uid="a", device="d", access_id=3).SerializeToString()
    assert decode_online(unspecified).network is Network.NONE


def test_offline_round_trips_and_json_form() -> None:
    ev = DeviceOffline("bob", "pad", 9, 12)
    assert decode_offline(encode_offline(ev)) == ev
    assert decode_offline(b'{"uid":"bob","device":"pad","access_id":9,"session":12,"reason":303}') == ev
    assert (
        decode_online(b'{"uid":"a","device":"d","access_id":1,"network":"NETWORK_TYPE_WIFI"}').network
        is Network.WIFI
    )


@pytest.mark.parametrize(
    "payload",
    [b"\xff\xff\xff", b"{not json", b'{"uid": 5}', b'{"network": 99}', "text"],
)
def test_bad_payloads_are_invalid_presence_events(payload: bytes) -> None:
    with pytest.raises(InvalidPresenceEvent):
        decode_online(payload)


def test_unknown_network_numbers_are_rejected() -> None:
    with pytest.raises(InvalidPresenceEvent):
        network_from_wire(42)
    with pytest.raises(InvalidPresenceEvent):
        decode_online(OnlineEvent(uid="a", device="d", network=42).SerializeToString())  # type: ignore[arg-type]
