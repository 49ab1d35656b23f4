"""The receive buffer on virtual time: order, duplicates, gap pulls at exact deadlines, skips, acks."""

from __future__ import annotations

import random

import pytest

from imsdk_client._core.reorder import (
    Item,
    PullRequest,
    ReorderBuffer,
    ReorderConfig,
    ReorderOutput,
    conversation_id,
)

CONV = conversation_id("alice", "bob")
CFG = ReorderConfig(gap_timeout=2.0, pull_timeout=10.0, max_pull_attempts=2, ack_delay=0.5, pull_limit=50)


def item(seq: int, conv: str = CONV, *, own: bool = False, msg_id: int | None = None) -> Item:
    return Item(conv, seq, "alice", msg_id if msg_id is not None else 1000 + seq, None if own else f"m{seq}")


def feed(buf: ReorderBuffer, seqs: list[int], now: float = 0.0) -> list[object]:
    events: list[object] = []
    for seq in seqs:
        events += buf.push(item(seq), now).events
    return events


def test_conversation_id_is_symmetric_and_unambiguous() -> None:
    assert conversation_id("bob", "alice") == conversation_id("alice", "bob") == "p2p:5:alice:bob"
    assert conversation_id("a:b", "c") != conversation_id("a", "b:c")


# Arrival orders of sequences 1..n (cursor 0 known): delivered events, duplicates counted.
@pytest.mark.parametrize(
    ("arrivals", "delivered", "duplicates"),
    [
        ([1, 2, 3], ["m1", "m2", "m3"], 0),
        ([2, 1, 3], ["m1", "m2", "m3"], 0),
        ([3, 2, 1], ["m1", "m2", "m3"], 0),
        ([1, 1, 2, 2, 1], ["m1", "m2"], 3),
        ([2, 2, 1], ["m1", "m2"], 1),
        ([1, 3, 3, 2, 3], ["m1", "m2", "m3"], 2),
        ([4, 3, 2, 1, 4], ["m1", "m2", "m3", "m4"], 1),
    ],
)
def test_order_and_duplicates(arrivals: list[int], delivered: list[str], duplicates: int) -> None:
    buf = ReorderBuffer(CFG, cursors={CONV: 0})
    assert feed(buf, arrivals) == delivered
    assert buf.duplicates == duplicates
    assert buf.cursors() == {CONV: len(delivered)}


def test_any_permutation_with_duplicates_delivers_each_once_in_order() -> None:
    rng = random.Random(3)
    for _ in range(200):
        seqs = list(range(1, 30)) + rng.sample(range(1, 30), 10)
        rng.shuffle(seqs)
        buf = ReorderBuffer(CFG, cursors={CONV: 0})
        assert feed(buf, seqs) == [f"m{i}" for i in range(1, 30)]
        assert buf.duplicates == 10


def test_gap_is_pulled_after_exactly_the_gap_timeout_and_the_pull_fills_it() -> None:
    buf = ReorderBuffer(CFG, cursors={CONV: 10})
    assert buf.push(item(11), 100.0).events == ["m11"]
    assert buf.push(item(14), 100.3).events == []
    assert buf.push(item(15), 101.0).events == []  # does not restart the timer
    assert buf.next_deadline() == 100.5  # the ack of cursor 11 comes first
    assert buf.handle_timer(100.5).acks == [(CONV, 11)]
    assert buf.next_deadline() == 102.3
    assert not buf.handle_timer(102.29).pulls
    out = buf.handle_timer(102.3)
    assert out.pulls == [PullRequest(CONV, 12, 13, 50)]
    assert buf.next_deadline() == 112.3  # the pull's timeout
    assert buf.push(item(12), 102.4).events == ["m12"]
    assert buf.push(item(13), 102.4).events == ["m13", "m14", "m15"]
    assert buf.pull_done(CONV, 102.5).events == []
    assert buf.next_deadline() == 102.9
    assert buf.handle_timer(102.9).acks == [(CONV, 15)]
    assert buf.next_deadline() is None


def test_a_range_the_store_answers_without_is_skipped() -> None:
    buf = ReorderBuffer(CFG, cursors={CONV: 0})
    feed(buf, [1, 4], now=0.0)
    assert buf.handle_timer(2.0).pulls == [PullRequest(CONV, 2, 3, 50)]
    assert buf.push(item(2), 2.1).events == ["m2"]
    out = buf.pull_done(CONV, 2.2)  # 3 does not exist
    assert out.events == ["m4"]
    assert buf.cursors() == {CONV: 4}
    assert buf.push(item(3), 3.0).events == []  # too late: a duplicate now
    assert buf.duplicates == 1


def test_unanswered_pulls_are_repeated_then_the_gap_is_skipped() -> None:
    buf = ReorderBuffer(CFG, cursors={CONV: 0})
    feed(buf, [3])
    assert buf.handle_timer(2.0).pulls == [PullRequest(CONV, 1, 2, 50)]
    assert buf.next_deadline() == 12.0
    assert buf.handle_timer(12.0).pulls == [PullRequest(CONV, 1, 2, 50)]
    out = buf.handle_timer(22.0)
    assert out.pulls == []
    assert out.events == ["m3"]


def test_a_page_cut_short_pulls_the_next_page_at_once() -> None:
    buf = ReorderBuffer(CFG, cursors={CONV: 0})
    feed(buf, [100])
    assert buf.handle_timer(2.0).pulls == [PullRequest(CONV, 1, 99, 50)]
    feed(buf, list(range(1, 51)), now=2.5)
    out = buf.pull_done(CONV, 2.6, more=True)
    assert out.pulls == [PullRequest(CONV, 51, 99, 50)]
    assert buf.cursors() == {CONV: 50}


def test_own_messages_fill_their_slot_without_being_delivered() -> None:
    buf = ReorderBuffer(CFG, cursors={CONV: 6})
    assert buf.push(item(8), 0.0).events == []  # the peer's reply overtook our own ack
    assert buf.push(item(7, own=True), 0.1).events == ["m8"]
    assert buf.push(item(7, own=True), 0.2).events == []
    assert buf.duplicates == 0


def test_unknown_conversation_starts_at_the_first_item() -> None:
    buf = ReorderBuffer(CFG)
    assert feed(buf, [57, 58]) == ["m57", "m58"]
    assert buf.cursors() == {CONV: 58}


def test_unknown_conversations_wait_for_the_end_of_the_catch_up() -> None:
    buf = ReorderBuffer(CFG)
    buf.hold_unknown = True
    other = conversation_id("alice", "carol")
    assert buf.push(item(9), 0.0).events == []  # a live push overtook the batch
    assert feed(buf, [5, 6, 7, 8, 5]) == []
    assert buf.push(Item(other, 3, "carol", 1, "c3"), 0.0).events == []
    out = buf.catch_up_done(1.0)
    assert out.events == ["m5", "m6", "m7", "m8", "m9", "c3"]
    assert buf.duplicates == 1
    assert buf.handle_timer(1.5).acks == [(CONV, 9), (other, 3)]


def test_instant_messages_are_delivered_at_once_and_deduplicated_by_sender_and_id() -> None:
    buf = ReorderBuffer(ReorderConfig(dedup_entries=2))
    first = Item("", 0, "bob", 7, "i7")
    assert buf.push(first, 0.0).events == ["i7"]
    assert buf.push(first, 0.0).events == []
    assert buf.push(Item("", 0, "carol", 7, "c7"), 0.0).events == ["c7"]  # same id, other sender
    assert buf.push(Item("", 0, "dave", 1, "d1"), 0.0).events == ["d1"]
    assert buf.push(first, 0.0).events == ["i7"]  # forgotten: only the last 2 ids are kept
    assert buf.duplicates == 1


def test_connection_reset_forgets_pulls_in_flight_and_rearms_the_gap() -> None:
    buf = ReorderBuffer(CFG, cursors={CONV: 0})
    feed(buf, [2])
    assert buf.handle_timer(2.0).pulls
    buf.connection_reset(5.0)
    assert buf.next_deadline() == 7.0
    assert buf.handle_timer(7.0).pulls == [PullRequest(CONV, 1, 1, 50)]


def test_too_many_held_items_pull_at_once() -> None:
    buf = ReorderBuffer(ReorderConfig(max_held=3), cursors={CONV: 0})
    feed(buf, [2, 3], now=1.0)
    assert buf.next_deadline() == 3.0
    feed(buf, [4], now=1.5)
    assert buf.next_deadline() == 3.0  # the timer is armed once; the held count is checked on arming
    buf2 = ReorderBuffer(ReorderConfig(max_held=1), cursors={CONV: 0})
    feed(buf2, [5], now=1.0)
    assert buf2.next_deadline() == 1.0


def test_output_truthiness() -> None:
    assert not ReorderOutput()
    assert ReorderOutput(events=["x"])


@pytest.mark.parametrize("kwargs", [{"gap_timeout": 0.0}, {"ack_delay": -1.0}, {"max_pull_attempts": 0}])
def test_bad_configuration_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        ReorderConfig(**kwargs)  # type: ignore[arg-type]
