"""The per-conversation receive buffer: order by conversation sequence, drop duplicates, pull gaps, ack.

Push is a hint and pull is the truth (see the delivery protocol): pushes may overtake a catch-up batch, arrive
twice after a reconnect, or be lost with a dying connection. Per conversation the buffer keeps the **cursor**,
the highest sequence received without a gap, and holds what arrived above it:

* an item at ``cursor + 1`` is released, with every held item that now follows without a gap;
* an item above ``cursor + 1`` is held and the conversation's gap timer starts (later arrivals do not restart
  it); when it fires, a pull for ``cursor + 1 … first held − 1`` is requested. A pull answered without the
  missing range means the store does not have it: the gap is skipped. An unanswered pull is repeated after
  ``pull_timeout``, at most ``max_pull_attempts`` times, then the gap is skipped;
* an item at or below the cursor, or already held, is a duplicate and dropped;
* items without a sequence (instant messages) are released at once, de-duplicated by ``(sender, msg_id)``
  over the last ``dedup_entries`` ids;
* an item may carry no event (the client's own message, known from its send ack): it fills its slot only;
* a conversation without a cursor starts at the first item seen, except while
  :attr:`ReorderBuffer.hold_unknown` is set (during the catch-up): then its items wait for
  :meth:`ReorderBuffer.catch_up_done`;
* every cursor that moved is acknowledged (``SYNC/ACK``) ``ack_delay`` after the first one moved.

Sans-IO: every method takes ``now``; :meth:`ReorderBuffer.next_deadline` says when to call
:meth:`ReorderBuffer.handle_timer`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Item", "PullRequest", "ReorderBuffer", "ReorderConfig", "ReorderOutput", "conversation_id"]


def conversation_id(uid_a: str, uid_b: str) -> str:
    """The 1:1 conversation id both sides derive alike: ``p2p:<len(smaller)>:<smaller>:<larger>``."""
    low, high = (uid_a, uid_b) if uid_a <= uid_b else (uid_b, uid_a)
    return f"p2p:{len(low)}:{low}:{high}"


@dataclass(frozen=True, slots=True)
class ReorderConfig:
    """Timing and limits of the receive buffer."""

    gap_timeout: float = 2.0
    """How long a gap may stay open before the missing range is pulled."""
    pull_timeout: float = 10.0
    """How long to wait for a pull's answer before asking again."""
    max_pull_attempts: int = 3
    """Pulls for one gap before it is skipped."""
    pull_limit: int = 200
    """Messages per pull page."""
    ack_delay: float = 0.5
    """How long cursor moves are gathered into one ``SYNC/ACK``."""
    max_held: int = 1000
    """A conversation holding this many items pulls at once instead of waiting for the gap timer."""
    dedup_entries: int = 4096
    """Instant-message ids remembered for de-duplication."""

    def __post_init__(self) -> None:
        if min(self.gap_timeout, self.pull_timeout) <= 0 or self.ack_delay < 0:
            raise ValueError("gap_timeout and pull_timeout must be positive, ack_delay not negative")
        if min(self.max_pull_attempts, self.pull_limit, self.max_held, self.dedup_entries) < 1:
            raise ValueError("max_pull_attempts, pull_limit, max_held and dedup_entries must be at least 1")


@dataclass(frozen=True, slots=True)
class Item:
    """One received (or own, acknowledged) message."""

    conversation: str
    conv_seq: int
    """0 for instant messages (no sequence)."""
    sender_uid: str
    msg_id: int
    event: object | None = field(default=None, compare=False)
    """What to hand to the app once in order; ``None`` for the client's own messages (slot filler)."""


@dataclass(frozen=True, slots=True)
class PullRequest:
    """Ask the router for ``conversation``'s messages ``from_seq`` … ``to_seq`` (``SYNC/PULL``)."""

    conversation: str
    from_seq: int
    to_seq: int
    limit: int


@dataclass(slots=True)
class ReorderOutput:
    """What a call produced: events to deliver in order, pulls to send, cursors to acknowledge."""

    events: list[object] = field(default_factory=list)
    pulls: list[PullRequest] = field(default_factory=list)
    acks: list[tuple[str, int]] = field(default_factory=list)

    def extend(self, other: ReorderOutput) -> None:
        self.events += other.events
        self.pulls += other.pulls
        self.acks += other.acks

    def __bool__(self) -> bool:
        return bool(self.events or self.pulls or self.acks)


@dataclass(slots=True)
class _Conversation:
    cursor: int | None
    reported: int = 0
    """The cursor last acknowledged (or where the conversation started)."""
    held: dict[int, Item] = field(default_factory=dict)
    gap_deadline: float | None = None
    pull: PullRequest | None = None
    pull_deadline: float | None = None
    pull_attempts: int = 0


class ReorderBuffer:
    """Receive state of every conversation. ``cursors`` are the app's persisted cursors, if any."""

    def __init__(self, config: ReorderConfig | None = None, cursors: Mapping[str, int] | None = None) -> None:
        self.config = config or ReorderConfig()
        self._convs: dict[str, _Conversation] = {
            c: _Conversation(seq, seq) for c, seq in (cursors or {}).items()
        }
        self._seen: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._ack_pending: dict[str, int] = {}
        self._ack_deadline: float | None = None
        self.hold_unknown = False
        """Hold items of conversations without a cursor (set during the catch-up)."""
        self.duplicates = 0
        """Items dropped as duplicates so far."""

    # -- queries

    def cursors(self) -> dict[str, int]:
        """The cursor of every conversation that has one (resume info, persistence)."""
        return {c: conv.cursor for c, conv in self._convs.items() if conv.cursor is not None}

    def held(self, conversation: str) -> list[int]:
        """The sequences held for ``conversation``, in order."""
        conv = self._convs.get(conversation)
        return sorted(conv.held) if conv is not None else []

    def next_deadline(self) -> float | None:
        best = self._ack_deadline
        for conv in self._convs.values():
            for at in (conv.gap_deadline, conv.pull_deadline):
                if at is not None and (best is None or at < best):
                    best = at
        return best

    # -- input

    def push(self, item: Item, now: float) -> ReorderOutput:
        """An item arrived (a push, a batch entry, or the client's own acknowledged message)."""
        out = ReorderOutput()
        if item.conv_seq == 0:
            if self._remember(item) and item.event is not None:
                out.events.append(item.event)
            elif item.event is not None:
                self.duplicates += 1
            return out
        conv = self._convs.get(item.conversation)
        if conv is None:
            conv = self._convs[item.conversation] = _Conversation(None)
        if conv.cursor is None:
            if self.hold_unknown:
                if item.conv_seq in conv.held:
                    self._duplicate(item)
                else:
                    conv.held[item.conv_seq] = item
                return out
            conv.cursor = conv.reported = item.conv_seq - 1
        if item.conv_seq <= conv.cursor or item.conv_seq in conv.held:
            self._duplicate(item)
            return out
        conv.held[item.conv_seq] = item
        self._settle(item.conversation, conv, now, out)
        return out

    def catch_up_done(self, now: float) -> ReorderOutput:
        """The catch-up ended: conversations without a cursor start at their first held item."""
        self.hold_unknown = False
        out = ReorderOutput()
        for name, conv in self._convs.items():
            if conv.cursor is None and conv.held:
                conv.cursor = conv.reported = min(conv.held) - 1
                self._settle(name, conv, now, out)
        return out

    def pull_done(self, conversation: str, now: float, *, more: bool = False) -> ReorderOutput:
        """The answer to our pull for ``conversation`` is complete (``more``: a page limit cut it short)."""
        out = ReorderOutput()
        conv = self._convs.get(conversation)
        if conv is None or conv.pull is None or conv.cursor is None:
            return out
        pulled = conv.pull
        conv.pull = None
        conv.pull_deadline = None
        conv.pull_attempts = 0
        if not more and conv.held:
            # The store answered without the rest of the range: it does not exist. Skip it.
            first = min(conv.held)
            conv.cursor = max(conv.cursor, min(pulled.to_seq, first - 1))
        self._settle(conversation, conv, now, out)
        if more and conv.pull is None and conv.held:
            self._request_pull(conversation, conv, now, out)
        return out

    def connection_reset(self, now: float) -> None:
        """The connection dropped: pulls in flight are lost; open gaps wait ``gap_timeout`` again."""
        for conv in self._convs.values():
            if conv.pull is not None or conv.gap_deadline is not None:
                conv.pull = None
                conv.pull_deadline = None
                conv.pull_attempts = 0
                if conv.held and conv.cursor is not None:
                    conv.gap_deadline = now + self.config.gap_timeout

    def handle_timer(self, now: float) -> ReorderOutput:
        """Pull the gaps whose timer fired, retry or skip unanswered pulls, emit the gathered acks."""
        out = ReorderOutput()
        for name, conv in self._convs.items():
            if conv.pull_deadline is not None and conv.pull_deadline <= now:
                if conv.pull_attempts >= self.config.max_pull_attempts:
                    conv.pull = None
                    conv.pull_deadline = None
                    conv.pull_attempts = 0
                    if conv.held and conv.cursor is not None:
                        conv.cursor = min(conv.held) - 1  # give up on the gap
                    self._settle(name, conv, now, out)
                else:
                    self._request_pull(name, conv, now, out)
            elif conv.gap_deadline is not None and conv.gap_deadline <= now:
                conv.gap_deadline = None
                self._request_pull(name, conv, now, out)
        if self._ack_deadline is not None and self._ack_deadline <= now:
            out.acks = sorted(self._ack_pending.items())
            self._ack_pending.clear()
            self._ack_deadline = None
        return out

    # -- internals

    def _remember(self, item: Item) -> bool:
        key = (item.sender_uid, item.msg_id)
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        self._seen[key] = None
        while len(self._seen) > self.config.dedup_entries:
            self._seen.popitem(last=False)
        return True

    def _duplicate(self, item: Item) -> None:
        if item.event is not None:
            self.duplicates += 1

    def _settle(self, name: str, conv: _Conversation, now: float, out: ReorderOutput) -> None:
        """Release what follows the cursor without a gap; arm or disarm the gap timer."""
        assert conv.cursor is not None
        held = conv.held
        # Items at or below a cursor that jumped (a skipped gap) are late: drop them.
        for seq in [s for s in held if s <= conv.cursor]:
            self._duplicate(held.pop(seq))
        while conv.cursor + 1 in held:
            conv.cursor += 1
            item = held.pop(conv.cursor)
            if item.event is not None:
                out.events.append(item.event)
        if conv.cursor > conv.reported:
            conv.reported = conv.cursor
            self._ack_pending[name] = conv.cursor
            if self._ack_deadline is None:
                self._ack_deadline = now + self.config.ack_delay
        if not held:
            conv.gap_deadline = None
            conv.pull = None
            conv.pull_deadline = None
            conv.pull_attempts = 0
        elif conv.pull is None and conv.gap_deadline is None:
            conv.gap_deadline = now if len(held) >= self.config.max_held else now + self.config.gap_timeout

    def _request_pull(self, name: str, conv: _Conversation, now: float, out: ReorderOutput) -> None:
        if conv.cursor is None or not conv.held:
            return
        first = min(conv.held)
        if first <= conv.cursor + 1:
            return
        pull = PullRequest(name, conv.cursor + 1, first - 1, self.config.pull_limit)
        conv.pull = pull
        conv.pull_attempts += 1
        conv.pull_deadline = now + self.config.pull_timeout
        conv.gap_deadline = None
        out.pulls.append(pull)
