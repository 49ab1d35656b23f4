"""Outgoing numbering and the outbox of unacknowledged messages.

* :class:`SeqCounter` numbers a session's upstream frames from the sequence base its handshake reply gave:
  the first frame carries ``seq_base``, the next ``seq_base + 1``, and so on. Each session numbers afresh.
* :class:`Outbox` keeps every chat message from the moment the app sends it until the server acknowledges it.
  A message's ``msg_id`` is drawn once and never changes, so every resend (after a reconnect, an ack timeout,
  a router change or a transient refusal) is the same message to the server, which deduplicates it. Resends
  carry ``Flags.RETRY``. The outbox keeps the app's order and survives reconnects.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from google.protobuf.message import Message

from imsdk_client._errors import IMClientError
from imsdk_proto._frame import encode_frame
from imsdk_proto._header import UINT64_MAX, Header
from imsdk_proto.codes import Codec, ErrorCode, Flags

__all__ = ["Outbox", "OutboxEntry", "OutboxFull", "SeqCounter"]


class OutboxFull(IMClientError):
    """Too many messages wait for an acknowledgement; the app should slow down (or wait for a connection)."""

    code = ErrorCode.RATE_LIMITED


class SeqCounter:
    """Numbers the upstream frames of one session from its sequence base."""

    __slots__ = ("_next", "base", "highest_acked")

    def __init__(self) -> None:
        self.base: int | None = None
        """The current session's base (``None`` before the first handshake)."""
        self._next = 0
        self.highest_acked = 0
        """The highest sequence of the current session the server has answered (resume info)."""

    def start(self, base: int) -> None:
        """A new session with sequence base ``base``; numbering restarts there."""
        if not 0 <= base <= UINT64_MAX:
            raise ValueError(f"sequence base out of range: {base}")
        self.base = base
        self._next = base
        self.highest_acked = 0

    def next(self) -> int:
        """The sequence of the next upstream frame."""
        if self.base is None:
            raise RuntimeError("no session: the sequence base comes with the handshake reply")
        seq = self._next
        self._next = (seq + 1) & UINT64_MAX
        return seq

    def acked(self, seq: int) -> None:
        """The server answered the frame numbered ``seq`` (ignored if it belongs to an older session)."""
        if self.base is not None and self.base <= seq < self._next:
            self.highest_acked = max(self.highest_acked, seq)


@dataclass(slots=True)
class OutboxEntry:
    """One message waiting for its acknowledgement."""

    msg_id: int
    biz: int
    func: int
    receiver_uid: str
    receiver_device: str
    body: Message
    instant: bool
    created_at: float
    attempts: int = 0
    """How many times it was sent (every send after the first carries ``Flags.RETRY``)."""
    seq: int | None = None
    """Its sequence in the current session; ``None`` until sent in this session."""
    server_id: int = 0
    """The ``msg_server_id`` it was last sent with (a refusal naming another router resends it once)."""
    sent_at: float | None = None
    """When it was last sent in the current session."""
    retry_at: float | None = None
    """A transient refusal asked to resend at this time."""

    def frame(self, seq: int, server_id: int, codec: Codec) -> bytes:
        """The frame for sending it now (counts the attempt)."""
        flags = Flags.ACK_WANTED
        if self.instant:
            flags |= Flags.NO_STORE
        if self.attempts:
            flags |= Flags.RETRY
        header = Header(
            self.biz,
            self.func,
            seq=seq,
            msg_id=self.msg_id,
            msg_server_id=server_id,
            flags=flags,
            receiver_uid=self.receiver_uid,
            receiver_device=self.receiver_device,
        )
        return encode_frame(header, self.body, codec)


class Outbox:
    """Unacknowledged messages in the app's order, surviving reconnects."""

    def __init__(
        self, *, ack_timeout: float = 10.0, max_entries: int = 10_000, rng: random.Random | None = None
    ) -> None:
        if ack_timeout <= 0 or max_entries < 1:
            raise ValueError("ack_timeout must be positive and max_entries at least 1")
        self.ack_timeout = ack_timeout
        self.max_entries = max_entries
        self._rng = rng or random.Random()
        self._entries: dict[int, OutboxEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[OutboxEntry]:
        return iter(list(self._entries.values()))

    def __contains__(self, msg_id: object) -> bool:
        return msg_id in self._entries

    def get(self, msg_id: int) -> OutboxEntry | None:
        return self._entries.get(msg_id)

    def _new_msg_id(self) -> int:
        while True:
            msg_id = self._rng.getrandbits(64)
            if msg_id and msg_id not in self._entries:
                return msg_id

    def add(
        self,
        biz: int,
        func: int,
        body: Message,
        receiver_uid: str,
        now: float,
        *,
        receiver_device: str = "",
        instant: bool = False,
        msg_id: int | None = None,
    ) -> OutboxEntry:
        """Keep a new message; its ``msg_id`` is drawn here unless given (a resend across app restarts)."""
        if len(self._entries) >= self.max_entries:
            raise OutboxFull(f"{len(self._entries)} messages are waiting for an acknowledgement")
        if msg_id is None:
            msg_id = self._new_msg_id()
        elif not 0 < msg_id <= UINT64_MAX or msg_id in self._entries:
            raise ValueError(f"msg_id {msg_id} is out of range or already in the outbox")
        entry = OutboxEntry(msg_id, biz, func, receiver_uid, receiver_device, body, instant, now)
        self._entries[msg_id] = entry
        return entry

    def new_session(self) -> None:
        """A new session began: every entry is to be sent again in it, in order."""
        for entry in self._entries.values():
            entry.seq = None
            entry.sent_at = None
            entry.retry_at = None

    def to_send(self, now: float) -> list[OutboxEntry]:
        """Entries not yet sent in this session, or whose retry time has come, in order."""
        return [
            e
            for e in self._entries.values()
            if (e.seq is None and e.retry_at is None) or (e.retry_at is not None and e.retry_at <= now)
        ]

    def mark_sent(self, entry: OutboxEntry, seq: int, server_id: int, now: float) -> None:
        entry.attempts += 1
        entry.seq = seq
        entry.server_id = server_id
        entry.sent_at = now
        entry.retry_at = None

    def timed_out(self, now: float) -> list[OutboxEntry]:
        """Entries sent in this session without an answer for ``ack_timeout``, in order."""
        return [
            e
            for e in self._entries.values()
            if e.sent_at is not None and e.retry_at is None and e.sent_at + self.ack_timeout <= now
        ]

    def retry_later(self, msg_id: int, at: float) -> OutboxEntry | None:
        """A transient refusal: resend ``msg_id`` at ``at``."""
        entry = self._entries.get(msg_id)
        if entry is not None:
            entry.retry_at = at
            entry.sent_at = None
        return entry

    def pop(self, msg_id: int) -> OutboxEntry | None:
        """Remove an entry (acknowledged, or refused for good)."""
        return self._entries.pop(msg_id, None)

    def clear(self) -> list[OutboxEntry]:
        """Remove everything (the client closes); returns what was waiting."""
        entries = list(self._entries.values())
        self._entries.clear()
        return entries

    def next_deadline(self) -> float | None:
        """The earliest ack timeout or retry time."""
        best: float | None = None
        for e in self._entries.values():
            at = (
                e.retry_at
                if e.retry_at is not None
                else (e.sent_at + self.ack_timeout if e.sent_at is not None else None)
            )
            if at is not None and (best is None or at < best):
                best = at
        return best
