"""The one conformance suite every :class:`~imsdk_server.routing.MessageStore` must pass.

Each check is a plain async function taking a :class:`Harness`: a fresh store (already set up), a way to open
a second store on the same database (a second router process), and a way to open a store whose database is
unreachable. Test modules run every function in :data:`CHECKS` against every implementation, the real ones
against the real servers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

from imsdk_proto.codes import ChatFunc, ErrorCode
from imsdk_server.backends.sql import StorageUnavailable
from imsdk_server.routing._store import (
    AppendResult,
    InvalidMessage,
    MessageStore,
    NewMessage,
    StoredRecord,
    conversation_id,
)

__all__ = ["CHECKS", "Harness"]


@dataclass(frozen=True)
class Harness:
    """What one check gets."""

    store: MessageStore
    """A fresh store, set up, holding nothing."""
    reopen: Callable[[], Awaitable[MessageStore]]
    """Open (and set up) another store on the same database, as a second router process would."""
    unreachable: Callable[[], MessageStore]
    """A store whose database cannot be reached (not set up; its first call fails)."""


def msg(
    sender: str,
    receiver: str,
    cmid: int,
    *,
    device: str = "phone",
    body: bytes | None = None,
    created_ms: int = 1_700_000_000_000,
    content_type: int = ChatFunc.TEXT,
) -> NewMessage:
    """A message from ``sender``'s ``device`` to ``receiver`` with client id ``cmid``."""
    return NewMessage(
        conversation=conversation_id(sender, receiver),
        sender_uid=sender,
        sender_device=device,
        client_msg_id=cmid,
        receiver_uid=receiver,
        content_type=content_type,
        body=body if body is not None else f"{sender}->{receiver}#{cmid}".encode(),
        created_ms=created_ms,
    )


async def check_setup_is_idempotent(h: Harness) -> None:
    """Setting up an existing schema again changes nothing and keeps the data."""
    await h.store.append([msg("a", "b", 1)])
    await h.store.setup()
    other = await h.reopen()
    try:
        assert await other.last_seq(conversation_id("a", "b")) == 1
    finally:
        await other.aclose()


async def check_sequences_per_conversation(h: Harness) -> None:
    """Each conversation counts 1, 2, 3…; server ids are unique and grow; fields round-trip."""
    s = h.store
    results = await s.append([msg("a", "b", 1), msg("b", "a", 2), msg("a", "c", 3), msg("a", "b", 4)])
    assert [r.conv_seq for r in results] == [1, 2, 1, 3]
    assert not any(r.duplicate for r in results)
    ids = [r.server_msg_id for r in results]
    assert len(set(ids)) == 4
    assert ids == sorted(ids)
    more = await s.append([msg("b", "a", 5)])
    assert more[0].conv_seq == 4
    assert more[0].server_msg_id > ids[-1]
    assert await s.last_seq(conversation_id("b", "a")) == 4
    assert await s.last_seq(conversation_id("a", "c")) == 1
    assert await s.last_seq(conversation_id("x", "y")) == 0
    rec = (await s.pull(conversation_id("a", "b"), 2, 2, 10))[0]
    assert rec == StoredRecord(
        server_msg_id=ids[1],
        conversation=conversation_id("a", "b"),
        conv_seq=2,
        sender_uid="b",
        sender_device="phone",
        client_msg_id=2,
        receiver_uid="a",
        content_type=ChatFunc.TEXT,
        body=b"b->a#2",
        created_ms=1_700_000_000_000,
    )


async def check_retry_returns_original(h: Harness) -> None:
    """A resend (same sender, device, client id) gets the original ids and time back and is not stored."""
    s = h.store
    (first,) = await s.append([msg("a", "b", 77, created_ms=1000)])
    (again,) = await s.append([msg("a", "b", 77, created_ms=9999, body=b"different")])
    assert again == AppendResult(first.server_msg_id, first.conv_seq, 1000, duplicate=True)
    assert await s.last_seq(conversation_id("a", "b")) == 1
    records = await s.pull(conversation_id("a", "b"), 1, 0, 10)
    assert [r.body for r in records] == [b"a->b#77"]


async def check_retry_within_one_batch(h: Harness) -> None:
    """Two copies of one message in one append: stored once, both answered with the same ids."""
    results = await h.store.append([msg("a", "b", 5), msg("a", "b", 6), msg("a", "b", 5)])
    assert [r.conv_seq for r in results] == [1, 2, 1]
    assert [r.duplicate for r in results] == [False, False, True]
    assert results[0].server_msg_id == results[2].server_msg_id
    assert await h.store.last_seq(conversation_id("a", "b")) == 2


async def check_key_includes_sender_and_device(h: Harness) -> None:
    """The same client id from another device or sender is another message; uids are case-sensitive."""
    results = await h.store.append(
        [msg("a", "b", 1), msg("a", "b", 1, device="tablet"), msg("A", "b", 1), msg("c", "b", 1)]
    )
    assert not any(r.duplicate for r in results)
    assert len({r.server_msg_id for r in results}) == 4


async def check_full_range_ids_and_binary_bodies(h: Harness) -> None:
    """64-bit client ids (top bit set), any bytes and non-ASCII names survive the round trip."""
    body = bytes(range(256)) * 4
    big = (1 << 64) - 1
    await h.store.append([msg("ünï", "коля", big, body=body), msg("ünï", "коля", 1 << 63)])
    (dup,) = await h.store.append([msg("ünï", "коля", big)])
    assert dup.duplicate
    assert dup.conv_seq == 1
    records = await h.store.pull(conversation_id("коля", "ünï"), 0, 0, 10)
    assert [r.client_msg_id for r in records] == [big, 1 << 63]
    assert records[0].body == body
    assert records[0].sender_uid == "ünï"
    assert records[0].receiver_uid == "коля"


async def check_pull_ranges(h: Harness) -> None:
    """Pull honours from/to (0: open), the limit, and returns sequence order."""
    s = h.store
    conv = conversation_id("a", "b")
    await s.append([msg("a", "b", i) for i in range(1, 11)])
    assert [r.conv_seq for r in await s.pull(conv, 3, 6, 100)] == [3, 4, 5, 6]
    assert [r.conv_seq for r in await s.pull(conv, 8, 0, 100)] == [8, 9, 10]
    assert [r.conv_seq for r in await s.pull(conv, 0, 0, 3)] == [1, 2, 3]
    assert await s.pull(conv, 11, 0, 100) == []
    assert await s.pull(conv, 1, 0, 0) == []
    assert await s.pull(conversation_id("a", "z"), 0, 0, 10) == []


async def check_pending_and_cumulative_ack(h: Harness) -> None:
    """Pending is per device, above its cumulative ack; acks only grow and are clamped; history remains."""
    s = h.store
    conv = conversation_id("a", "b")
    await s.append([msg("a", "b", i) for i in range(1, 6)] + [msg("b", "a", 100)])
    pending = await s.pending("b", "phone", None, 100)
    assert [(r.conversation, r.conv_seq) for r in pending] == [(conv, i) for i in range(1, 6)]
    assert [r.conv_seq for r in await s.pending("a", "phone", None, 100)] == [6]
    assert await s.ack("b", "phone", conv, 3) == 3
    assert [r.conv_seq for r in await s.pending("b", "phone", None, 100)] == [4, 5]
    assert [r.conv_seq for r in await s.pending("b", "laptop", None, 100)] == [1, 2, 3, 4, 5]
    assert await s.ack("b", "phone", conv, 2) == 3  # never backwards
    assert await s.acked("b", "phone", conv) == 3
    assert await s.ack("b", "phone", conv, 1_000_000) == 6  # clamped to the last sequence
    assert await s.pending("b", "phone", None, 100) == []
    await s.append([msg("a", "b", 200)])
    assert [r.conv_seq for r in await s.pending("b", "phone", None, 100)] == [7]
    assert len(await s.pull(conv, 0, 0, 100)) == 7  # history stays queryable
    assert await s.ack("b", "phone", conversation_id("b", "nobody"), 5) == 0
    assert await s.acked("q", "q", conv) == 0


async def check_ack_many(h: Harness) -> None:
    """Many acks in one call: each is clamped and never goes backwards, the same key twice counts as the
    higher, the results come back in call order, and a large call (more than one statement's worth) works."""
    s = h.store
    ab, cb = conversation_id("a", "b"), conversation_id("c", "b")
    await s.append([msg("a", "b", i) for i in range(1, 6)] + [msg("c", "b", i) for i in range(1, 4)])
    assert await s.ack("b", "phone", ab, 4) == 4
    assert await s.ack_many([]) == []
    got = await s.ack_many(
        [
            ("b", "phone", ab, 2),  # behind the stored 4: stays 4
            ("b", "laptop", ab, 9),  # clamped to 5
            ("b", "phone", cb, 1),
            ("b", "phone", cb, 3),  # the same key again: the higher one counts
            ("b", "phone", conversation_id("b", "nobody"), 5),  # no such conversation
            ("b", "tablet", ab, 0),
        ]
    )
    assert got == [4, 5, 3, 3, 0, 0]
    assert [await s.acked("b", d, ab) for d in ("phone", "laptop", "tablet")] == [4, 5, 0]
    assert await s.pending("b", "phone", None, 100) == [r for r in await s.pull(ab, 5, 5, 10)]
    senders = [f"s{i:03d}" for i in range(250)]
    await s.append([msg(snd, "r", 1) for snd in senders] + [msg(snd, "r", 2) for snd in senders])
    got = await s.ack_many([("r", "d", conversation_id(snd, "r"), 2) for snd in senders])
    assert got == [2] * 250
    assert await s.pending("r", "d", None, 10) == []


async def check_pending_pages_across_conversations(h: Harness) -> None:
    """Pending spans conversations in (conversation, sequence) order and pages by cursor without loss."""
    s = h.store
    senders = [f"s{i:02d}" for i in range(7)]
    batch = [msg(snd, "r", n) for n in range(1, 6) for snd in senders]
    await s.append(batch)
    seen: list[tuple[str, int]] = []
    cursor: tuple[str, int] | None = None
    while True:
        page = await s.pending("r", "d", cursor, 4)
        if not page:
            break
        seen += [(r.conversation, r.conv_seq) for r in page]
        cursor = (page[-1].conversation, page[-1].conv_seq)
    assert len(seen) == 35
    assert seen == sorted(seen)
    convs = sorted(conversation_id(snd, "r") for snd in senders)
    assert seen == [(conv, n) for conv in convs for n in range(1, 6)]


async def check_concurrent_appends_one_conversation(h: Harness) -> None:
    """Two tasks appending to one conversation at once: no gaps, no repeats, each task's order kept."""
    s = h.store
    conv = conversation_id("a", "b")
    got: dict[str, list[int]] = {"a": [], "b": []}

    async def sender(uid: str, peer: str) -> None:
        for i in range(20):
            results = await s.append([msg(uid, peer, i * 2 + 1), msg(uid, peer, i * 2 + 2)])
            got[uid] += [r.conv_seq for r in results]

    async with anyio.create_task_group() as tg:
        tg.start_soon(sender, "a", "b")
        tg.start_soon(sender, "b", "a")
    assert sorted(got["a"] + got["b"]) == list(range(1, 81))
    assert got["a"] == sorted(got["a"])
    assert got["b"] == sorted(got["b"])
    assert await s.last_seq(conv) == 80


async def check_two_stores_share_sequences(h: Harness) -> None:
    """Two stores on one database (two router processes) allocate from the same sequences and keys."""
    other = await h.reopen()
    try:
        conv = conversation_id("a", "b")
        results: list[AppendResult] = []

        async def run(store: MessageStore, base: int) -> None:
            for i in range(10):
                results.extend(await store.append([msg("a", "b", base + i)]))

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, h.store, 0)
            tg.start_soon(run, other, 1000)
        assert sorted(r.conv_seq for r in results) == list(range(1, 21))
        (dup,) = await other.append([msg("a", "b", 3)])
        assert dup.duplicate
        assert await h.store.last_seq(conv) == await other.last_seq(conv) == 20
    finally:
        await other.aclose()


async def check_large_batch(h: Harness) -> None:
    """A thousand messages in one append over many conversations, some of them resends."""
    s = h.store
    batch = [msg(f"u{i % 37}", "r", i) for i in range(1000)]
    await s.append(batch[:100])
    results = await s.append(batch)
    assert sum(r.duplicate for r in results) == 100
    assert len({r.server_msg_id for r in results}) == 1000
    # every answer names the row that holds its message (ids come back right across the insert statements)
    for message, result in zip(batch, results, strict=True):
        (record,) = await s.pull(message.conversation, result.conv_seq, result.conv_seq, 1)
        assert (record.server_msg_id, record.client_msg_id) == (result.server_msg_id, message.client_msg_id)
    total = 0
    for i in range(37):
        total += await s.last_seq(conversation_id(f"u{i}", "r"))
    assert total == 1000


async def check_invalid_message_rejects_whole_batch(h: Harness) -> None:
    """A message the store cannot hold fails the call with a typed error and nothing is stored."""
    bad = [msg("a", "b", 1), msg("a", "b", 1 << 64), msg("a", "b", 2)]
    try:
        await h.store.append(bad)
    except InvalidMessage as exc:
        code = exc.code
    else:
        raise AssertionError("an out-of-range client id was accepted")
    assert code == ErrorCode.MALFORMED_BODY
    try:
        await h.store.append([msg("x" * 200, "b", 1)])
    except InvalidMessage:
        pass
    else:
        raise AssertionError("an overlong uid was accepted")
    assert await h.store.last_seq(conversation_id("a", "b")) == 0


async def check_unreachable_database(h: Harness) -> None:
    """A database that cannot be reached gives StorageUnavailable (STORAGE_UNAVAILABLE) on every call."""
    store = h.unreachable()
    try:
        for call in (
            store.setup(),
            store.append([msg("a", "b", 1)]),
            store.pull("c", 0, 0, 10),
            store.pending("a", "d", None, 10),
            store.ack("a", "d", "c", 1),
            store.ack_many([("a", "d", "c", 1)]),
        ):
            try:
                await call
            except StorageUnavailable as exc:
                code = exc.code
            else:
                raise AssertionError("an unreachable database answered")
            assert code == ErrorCode.STORAGE_UNAVAILABLE
    finally:
        try:
            await store.aclose()
        except StorageUnavailable:
            pass


CHECKS: tuple[Callable[[Harness], Awaitable[None]], ...] = (
    check_setup_is_idempotent,
    check_sequences_per_conversation,
    check_retry_returns_original,
    check_retry_within_one_batch,
    check_key_includes_sender_and_device,
    check_full_range_ids_and_binary_bodies,
    check_pull_ranges,
    check_pending_and_cumulative_ack,
    check_ack_many,
    check_pending_pages_across_conversations,
    check_concurrent_appends_one_conversation,
    check_two_stores_share_sequences,
    check_large_batch,
    check_invalid_message_rejects_whole_batch,
    check_unreachable_database,
)
