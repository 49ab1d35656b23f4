"""The frame header: everything the access layer routes and stamps on, without touching the body."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from imsdk_proto.codes import Flags

__all__ = ["HEADER_FIELDS", "UINT32_MAX", "UINT64_MAX", "Header"]

UINT32_MAX = 0xFFFF_FFFF
UINT64_MAX = 0xFFFF_FFFF_FFFF_FFFF

_NO_FLAGS = Flags(0)
_RESPONSE = int(Flags.RESPONSE)
_ERROR = int(Flags.ERROR)


@dataclass(slots=True, eq=True)
class Header:
    """Routing and bookkeeping fields of one frame. Defaults are omitted on the wire, so keep them default.

    Integers are unsigned: ``biz``, ``func``, ``access_id``, ``msg_server_id``, ``error`` are 32-bit;
    ``seq``, ``msg_id``, ``session`` are 64-bit. Strings are UTF-8.
    """

    biz: int
    """Business code (:class:`~imsdk_proto.codes.Biz`), the first routing key; never 0."""
    func: int
    """Function code within the business (e.g. :class:`~imsdk_proto.codes.VoipFunc`), the second key."""
    seq: int = 0
    """Per-session sequence number; clients number from the base the handshake reply gave them."""
    msg_id: int = 0
    """Client-chosen 64-bit id of a message, kept across resends; receivers and stores dedup on it."""
    access_id: int = 0
    """Id of the access server the frame passed through, stamped by that server."""
    msg_server_id: int = 0
    """Id of the message server the session sticks to (0: none chosen yet)."""
    flags: Flags = _NO_FLAGS
    """Frame bits (:class:`~imsdk_proto.codes.Flags`)."""
    error: int = 0
    """:class:`~imsdk_proto.codes.ErrorCode` of an error response, else 0."""
    sender_uid: str = ""
    """Sending user; stamped (and checked) by the access server from the authenticated session."""
    sender_device: str = ""
    """Sending device of that user."""
    receiver_uid: str = ""
    """Receiving user (empty for frames addressed to a server)."""
    receiver_device: str = ""
    """Receiving device (empty: every device of the receiver)."""
    session: int = 0
    """Session id given by the handshake reply; set where a frame must name its session (server side)."""

    def replace(self, **changes: Any) -> Header:
        """A copy with some fields changed, e.g. ``header.replace(access_id=7)`` when stamping."""
        return replace(self, **changes)

    def copy(self) -> Header:
        """A shallow copy (all fields are immutable values)."""
        return Header(
            self.biz,
            self.func,
            self.seq,
            self.msg_id,
            self.access_id,
            self.msg_server_id,
            self.flags,
            self.error,
            self.sender_uid,
            self.sender_device,
            self.receiver_uid,
            self.receiver_device,
            self.session,
        )

    @property
    def code(self) -> tuple[int, int]:
        """The routing key ``(biz, func)``."""
        return (self.biz, self.func)

    @property
    def is_response(self) -> bool:
        """The RESPONSE flag is set."""
        return bool(int.__and__(self.flags, _RESPONSE))

    @property
    def is_error(self) -> bool:
        """The ERROR flag is set or an error code is present."""
        return bool(int.__and__(self.flags, _ERROR)) or self.error != 0


#: Field names in wire order.
HEADER_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Header))
