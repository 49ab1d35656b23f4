"""Online/offline events on the queue: ``imsdk_proto`` messages to the core's inputs and back.

Access servers publish :class:`~imsdk_proto.messages.OnlineEvent` and
:class:`~imsdk_proto.messages.OfflineEvent` bodies, as protobuf bytes (v2) or as the v1 compact JSON of the
same message (a payload starting with ``{``). Either decodes here; anything else is
:class:`~imsdk_server.location.InvalidPresenceEvent`.
"""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import Message

from imsdk_proto.codecs import bson_json, protobuf
from imsdk_proto.errors import ProtocolError
from imsdk_proto.messages import NetworkType, OfflineEvent, OnlineEvent, Platform
from imsdk_server.location._core import DeviceOffline, DeviceOnline, Network
from imsdk_server.location._errors import InvalidPresenceEvent

__all__ = [
    "decode_offline",
    "decode_online",
    "encode_offline",
    "encode_online",
    "network_from_wire",
    "network_to_wire",
]

_M = TypeVar("_M", bound=Message)

_FROM_WIRE: dict[int, Network] = {
    NetworkType.NETWORK_TYPE_UNSPECIFIED: Network.NONE,
    NetworkType.NETWORK_TYPE_WIFI: Network.WIFI,
    NetworkType.NETWORK_TYPE_5G: Network.G5,
    NetworkType.NETWORK_TYPE_4G: Network.G4,
    NetworkType.NETWORK_TYPE_3G: Network.G3,
    NetworkType.NETWORK_TYPE_2G: Network.G2,
    NetworkType.NETWORK_TYPE_NONE: Network.NONE,
}
_TO_WIRE: dict[Network, int] = {net: wire for wire, net in _FROM_WIRE.items() if wire}


def network_from_wire(value: int) -> Network:
    """The core's :class:`Network` for a wire ``NetworkType`` (unspecified counts as ``none``)."""
    try:
        return _FROM_WIRE[value]
    except KeyError:
        raise InvalidPresenceEvent(f"unknown network type {value}") from None


def network_to_wire(network: Network) -> int:
    return _TO_WIRE[network]


def _platform_name(value: int) -> str:
    try:
        name = Platform.Name(value)
    except ValueError:
        return f"platform-{value}"
    return "" if value == 0 else name.removeprefix("PLATFORM_").lower()


def _parse(cls: type[_M], payload: bytes) -> _M:
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise InvalidPresenceEvent(f"a {cls.__name__} payload must be bytes")
    data = bytes(payload)
    try:
        if data[:1] == b"{":
            return bson_json.decode_body(cls, data)
        return protobuf.decode_body(cls, data)
    except ProtocolError as exc:
        raise InvalidPresenceEvent(str(exc)) from None


def decode_online(payload: bytes) -> DeviceOnline:
    """An ``OnlineEvent`` payload as the core's input."""
    m = _parse(OnlineEvent, payload)
    return DeviceOnline(
        uid=m.uid,
        device=m.device,
        server=m.access_id,
        session=m.session,
        network=network_from_wire(m.network),
        platform=_platform_name(m.platform),
        client_version=m.client_version,
        at=m.time_ms / 1000.0,
    )


def decode_offline(payload: bytes) -> DeviceOffline:
    """An ``OfflineEvent`` payload as the core's input."""
    m = _parse(OfflineEvent, payload)
    return DeviceOffline(uid=m.uid, device=m.device, server=m.access_id, session=m.session)


def encode_online(ev: DeviceOnline, platform: int = 0) -> bytes:
    """The protobuf ``OnlineEvent`` an access server publishes for ``ev`` (for tools and tests)."""
    return OnlineEvent(
        uid=ev.uid,
        device=ev.device,
        access_id=ev.server,
        network=network_to_wire(ev.network),  # type: ignore[arg-type]
        platform=platform,  # type: ignore[arg-type]
        client_version=ev.client_version,
        time_ms=round(ev.at * 1000),
        session=ev.session,
    ).SerializeToString()


def encode_offline(ev: DeviceOffline) -> bytes:
    """The protobuf ``OfflineEvent`` for ``ev``."""
    return OfflineEvent(
        uid=ev.uid, device=ev.device, access_id=ev.server, session=ev.session
    ).SerializeToString()
