"""The routing table without sockets: key precedence, stickiness, and rendezvous choice among back-ends."""

from __future__ import annotations

from collections import Counter

import pytest

from imsdk_proto._frame import Frame
from imsdk_proto._header import Header
from imsdk_proto.codes import Biz, ChatFunc
from imsdk_server.access import BackendNotReady, NoBackend, RoutingTable

UIDS = [f"user-{i}" for i in range(10_000)]


class StubBackend:
    """A back-end reduced to what routing reads: its id and whether it is ready."""

    def __init__(self, server_id: int, ready: bool = True) -> None:
        self.server_id = server_id
        self.ready = ready

    def try_send(self, frame: Frame) -> bool:
        return True

    async def send(self, frame: Frame) -> None:
        return None

    def __repr__(self) -> str:
        return f"StubBackend({self.server_id})"


def chat_from(uid: str, msg_server_id: int = 0) -> Header:
    return Header(Biz.CHAT, ChatFunc.TEXT, sender_uid=uid, msg_server_id=msg_server_id)


HEADERS = [chat_from(uid) for uid in UIDS]


def assignment(table: RoutingTable) -> dict[str, int]:
    resolve = table.resolve
    return {h.sender_uid: resolve(h).server_id for h in HEADERS}


def table_of(backends: list[StubBackend]) -> RoutingTable:
    table = RoutingTable()
    for backend in backends:
        table.add(backend, Biz.CHAT)
    return table


def test_precedence_readiness_and_stickiness() -> None:
    table = RoutingTable()
    with pytest.raises(NoBackend):
        table.resolve(chat_from("a"))
    chat, text = StubBackend(1), StubBackend(2, ready=False)
    table.add(chat, Biz.CHAT)
    table.add(text, Biz.CHAT, ChatFunc.TEXT)
    assert table.resolve(chat_from("a")) is chat  # the (biz, func) key has no ready back-end
    text.ready = True
    assert table.resolve(chat_from("a")) is text
    chat.ready = text.ready = False
    with pytest.raises(BackendNotReady):
        table.resolve(chat_from("a"))
    # Among several ready back-ends, the one the session sticks to wins whatever the hash says.
    table = table_of([StubBackend(i) for i in (1, 2, 3)])
    for uid in UIDS[:50]:
        for sticky in (1, 2, 3):
            assert table.resolve(chat_from(uid, sticky)).server_id == sticky


SERVER_IDS = [(11, 12, 13, 14, 15), (3, 1000, 7, 42, 99)]


@pytest.mark.parametrize("server_ids", SERVER_IDS)
def test_the_users_of_a_back_end_are_spread_evenly(server_ids: tuple[int, ...]) -> None:
    counts = Counter(assignment(table_of([StubBackend(i) for i in server_ids])).values())
    assert set(counts) == set(server_ids)
    expected = len(UIDS) / len(server_ids)
    assert all(0.85 * expected <= n <= 1.15 * expected for n in counts.values()), counts


@pytest.mark.parametrize("how", ["removed", "not_ready"])
@pytest.mark.parametrize("gone", range(5))
@pytest.mark.parametrize("server_ids", SERVER_IDS)
def test_a_back_end_leaving_moves_only_its_own_users(
    server_ids: tuple[int, ...], gone: int, how: str
) -> None:
    backends = [StubBackend(i) for i in server_ids]
    table = table_of(backends)
    before = assignment(table)
    leaving = backends[gone]
    if how == "removed":
        table.remove(leaving)
    else:
        leaving.ready = False
    after = assignment(table)
    moved = {uid for uid in UIDS if before[uid] != after[uid]}
    own = {uid for uid in UIDS if before[uid] == leaving.server_id}
    assert moved == own
    assert leaving.server_id not in after.values()
    # Its users spread over all the others, not onto one neighbour.
    assert set(Counter(after[uid] for uid in own)) == set(server_ids) - {leaving.server_id}
    # When it comes back, exactly its users return to it.
    if how == "removed":
        table.add(leaving, Biz.CHAT)
    else:
        leaving.ready = True
    assert assignment(table) == before


@pytest.mark.parametrize("server_ids", SERVER_IDS)
def test_a_back_end_joining_takes_users_only_for_itself(server_ids: tuple[int, ...]) -> None:
    table = table_of([StubBackend(i) for i in server_ids])
    before = assignment(table)
    table.add(StubBackend(500), Biz.CHAT)
    after = assignment(table)
    moved = [uid for uid in UIDS if before[uid] != after[uid]]
    assert all(after[uid] == 500 for uid in moved)
    assert 0.85 * len(UIDS) / 6 <= len(moved) <= 1.15 * len(UIDS) / 6


def test_choose_is_what_resolve_does_for_an_unstamped_frame() -> None:
    table = table_of([StubBackend(i) for i in (11, 12, 13)])
    table.add(StubBackend(20), Biz.CHAT, ChatFunc.TEXT)
    for header in HEADERS[:200]:
        chosen = table.choose(Biz.CHAT, None, header.sender_uid)
        assert chosen is not None
        assert chosen.server_id in (11, 12, 13)  # the business as a whole, not the TEXT-only back-end
        assert table.choose(Biz.CHAT, ChatFunc.TEXT, header.sender_uid) is table.resolve(header)
    assert table.choose(Biz.VOIP, None, "a") is None
