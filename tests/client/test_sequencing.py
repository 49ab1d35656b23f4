"""Numbering from the sequence base and the outbox: same ids across sessions, RETRY on resends, deadlines."""

from __future__ import annotations

import random

import pytest

from imsdk_client._core.sequencing import Outbox, OutboxFull, SeqCounter
from imsdk_proto._frame import FrameDecoder
from imsdk_proto.codes import Biz, ChatFunc, Codec, Flags
from imsdk_proto.messages import ChatText


def decode(data: bytes) -> tuple[int, int, int, Flags, int]:
    decoder = FrameDecoder()
    decoder.feed(data)
    frame = decoder.next_frame()
    assert frame is not None
    h = frame.header
    return h.seq, h.msg_id, h.msg_server_id, Flags(h.flags), len(frame.body_as(ChatText).text)


def text(s: str) -> ChatText:
    return ChatText(text=s)


@pytest.mark.parametrize("base", [0, 1, 2**32, 2**62 + 5 * 2**32])
def test_numbering_starts_at_the_base(base: int) -> None:
    counter = SeqCounter()
    counter.start(base)
    assert [counter.next() for _ in range(3)] == [base, base + 1, base + 2]


def test_a_new_session_numbers_afresh_and_acks_of_old_sessions_are_ignored() -> None:
    counter = SeqCounter()
    counter.start(1000)
    counter.next()
    counter.next()
    counter.acked(1001)
    assert counter.highest_acked == 1001
    counter.start(5000)
    assert counter.highest_acked == 0
    counter.acked(1001)  # an answer from the old session
    counter.acked(5000)  # not sent yet in this session
    assert counter.highest_acked == 0
    assert counter.next() == 5000
    counter.acked(5000)
    assert counter.highest_acked == 5000


def test_numbering_needs_a_session_and_a_valid_base() -> None:
    with pytest.raises(RuntimeError, match="handshake"):
        SeqCounter().next()
    with pytest.raises(ValueError, match="out of range"):
        SeqCounter().start(-1)


def test_numbering_wraps_at_64_bits() -> None:
    counter = SeqCounter()
    counter.start(2**64 - 1)
    assert [counter.next(), counter.next()] == [2**64 - 1, 0]


def test_ids_are_drawn_once_and_resends_keep_them_with_the_retry_flag() -> None:
    outbox = Outbox(rng=random.Random(5))
    a = outbox.add(Biz.CHAT, ChatFunc.TEXT, text("a"), "bob", 0.0)
    b = outbox.add(Biz.CHAT, ChatFunc.TEXT, text("bb"), "bob", 0.0)
    assert a.msg_id != b.msg_id
    assert a.msg_id > 0
    assert [e.msg_id for e in outbox.to_send(0.0)] == [a.msg_id, b.msg_id]
    outbox.mark_sent(a, 10, 7, 0.0)
    assert decode(a.frame(10, 7, Codec.PROTOBUF)) == (10, a.msg_id, 7, Flags.ACK_WANTED | Flags.RETRY, 1)
    # A new session: both are to be sent again, in order, with the same ids.
    outbox.new_session()
    assert [e.msg_id for e in outbox.to_send(1.0)] == [a.msg_id, b.msg_id]
    seq, msg_id, server, flags, _ = decode(b.frame(900, 7, Codec.BSON_JSON))
    assert (seq, msg_id, server, flags) == (900, b.msg_id, 7, Flags.ACK_WANTED)


def test_instant_messages_carry_no_store() -> None:
    outbox = Outbox(rng=random.Random(1))
    entry = outbox.add(Biz.CHAT, ChatFunc.TEXT, text("x"), "bob", 0.0, instant=True)
    assert decode(entry.frame(1, 0, Codec.PROTOBUF))[3] == Flags.ACK_WANTED | Flags.NO_STORE


def test_ack_timeouts_and_retry_times_make_the_deadline() -> None:
    outbox = Outbox(ack_timeout=10.0, rng=random.Random(2))
    a = outbox.add(Biz.CHAT, ChatFunc.TEXT, text("a"), "bob", 0.0)
    b = outbox.add(Biz.CHAT, ChatFunc.TEXT, text("b"), "bob", 0.0)
    assert outbox.next_deadline() is None  # nothing sent yet
    outbox.mark_sent(a, 1, 0, 1.0)
    outbox.mark_sent(b, 2, 0, 2.0)
    assert outbox.next_deadline() == 11.0
    assert outbox.timed_out(10.99) == []
    assert outbox.timed_out(11.0) == [a]
    assert outbox.to_send(11.0) == []  # a timed-out entry keeps its seq in this session
    outbox.retry_later(b.msg_id, 5.0)
    assert outbox.next_deadline() == 5.0
    assert outbox.to_send(4.9) == []
    assert outbox.to_send(5.0) == [b]
    assert outbox.pop(a.msg_id) is a
    assert a.msg_id not in outbox
    assert len(outbox) == 1


def test_the_outbox_is_bounded_and_refuses_bad_ids() -> None:
    outbox = Outbox(max_entries=2, rng=random.Random(9))
    first = outbox.add(Biz.CHAT, ChatFunc.TEXT, text("a"), "bob", 0.0, msg_id=42)
    assert first.msg_id == 42
    with pytest.raises(ValueError, match="already"):
        outbox.add(Biz.CHAT, ChatFunc.TEXT, text("a"), "bob", 0.0, msg_id=42)
    with pytest.raises(ValueError, match="out of range"):
        outbox.add(Biz.CHAT, ChatFunc.TEXT, text("a"), "bob", 0.0, msg_id=0)
    outbox.add(Biz.CHAT, ChatFunc.TEXT, text("b"), "bob", 0.0)
    with pytest.raises(OutboxFull) as info:
        outbox.add(Biz.CHAT, ChatFunc.TEXT, text("c"), "bob", 0.0)
    assert info.value.code is not None
    assert outbox.clear()[0].msg_id == 42
    assert len(outbox) == 0
