"""A sender session's pipeline in the router core: order, the in-flight bound and presence timeouts in the
middle of a session, with many messages in flight and answers in every order."""

from __future__ import annotations

import pytest

from imsdk_proto import messages as pb
from imsdk_proto._header import Header
from imsdk_proto.codes import Biz, ChatFunc, ErrorCode, Flags
from imsdk_server.metrics import Metrics
from imsdk_server.routing import AppendResult
from imsdk_server.routing._config import RouterConfig
from imsdk_server.routing._core import (
    Action,
    AppendMessage,
    DeviceLocation,
    QueryPresence,
    RouterCore,
    SendFrame,
)

ROUTER = 7
T0 = 1_700_000_000.0


def chat(msg_id: int, *, session: int = 55, instant: bool = False) -> tuple[Header, bytes]:
    header = Header(
        Biz.CHAT, ChatFunc.TEXT, seq=msg_id, msg_id=msg_id, access_id=3, msg_server_id=ROUTER,
        flags=Flags.NO_STORE if instant else Flags(0), sender_uid="alice", sender_device="phone",
        receiver_uid="bob", session=session,
    )  # fmt: skip
    return header, pb.ChatText(text=f"m{msg_id}").SerializeToString()


def send(core: RouterCore, msg_id: int, now: float = T0, **kw: object) -> int:
    (query,) = core.frame_received(*chat(msg_id, **kw), now)  # type: ignore[arg-type]
    assert isinstance(query, QueryPresence)
    return query.token


def appended(actions: list[Action]) -> list[int]:
    return [a.message.client_msg_id for a in actions if isinstance(a, AppendMessage)]


def errors(actions: list[Action]) -> list[tuple[int, ErrorCode]]:
    return [
        (a.header.msg_id, ErrorCode(a.header.error))
        for a in actions
        if isinstance(a, SendFrame) and a.header.flags & Flags.ERROR
    ]


def commit(core: RouterCore, actions: list[Action], now: float = T0) -> list[Action]:
    out: list[Action] = []
    for a in actions:
        if isinstance(a, AppendMessage):
            out += core.append_committed(a.token, AppendResult(a.token, a.message.client_msg_id, 1), now)
    return out


@pytest.mark.parametrize(
    "order",
    [
        pytest.param(list(range(200)), id="in-order"),
        pytest.param(list(reversed(range(200))), id="reversed"),
        pytest.param([(i * 37) % 200 for i in range(200)], id="scattered"),
    ],
)
def test_two_hundred_in_flight_are_stored_in_arrival_order(order: list[int]) -> None:
    core = RouterCore(RouterConfig(server_id=ROUTER), metrics=Metrics())
    tokens = [send(core, i + 1) for i in range(200)]
    stored: list[int] = []
    for i in order:
        stored += appended(core.presence_answered(tokens[i], True, [], T0))
    assert stored == list(range(1, 201))
    assert core.inflight == 200  # storing: still in flight until the commit


def test_storing_messages_count_against_the_bound_until_committed() -> None:
    core = RouterCore(RouterConfig(server_id=ROUTER, max_inflight_per_sender=2), metrics=Metrics())
    t1, t2 = send(core, 1), send(core, 2)
    first = core.presence_answered(t1, True, [], T0)
    assert appended(first) == [1]
    (refused,) = core.frame_received(*chat(3), T0)
    assert errors([refused]) == [(3, ErrorCode.RATE_LIMITED)]
    commit(core, first)
    assert isinstance(core.frame_received(*chat(4), T0)[0], QueryPresence)  # room for one again
    assert appended(core.presence_answered(t2, True, [], T0)) == [2]


def test_a_timeout_in_the_middle_of_a_session_lets_the_rest_go_on_in_order() -> None:
    core = RouterCore(RouterConfig(server_id=ROUTER, max_inflight_per_sender=3), metrics=Metrics())
    t1 = send(core, 1, T0)
    send(core, 2, T0 + 1)  # never answered
    t3 = send(core, 3, T0 + 2)
    first = core.presence_answered(t1, True, [], T0 + 0.5)
    assert appended(first) == [1]
    assert core.presence_answered(t3, True, [], T0 + 3) == []  # waits behind message 2
    out = core.handle_timer(T0 + 6)
    assert errors(out) == [(2, ErrorCode.BACKEND_TIMEOUT)]
    assert appended(out) == [3]
    acks = commit(core, first + out, T0 + 7)
    assert sorted(a.header.msg_id for a in acks if isinstance(a, SendFrame)) == [1, 3]
    assert core.inflight == 0
    assert core.next_deadline() is None
    # the session's bound is whole again: three more fit, the fourth is refused
    for i in (4, 5, 6):
        send(core, i, T0 + 8)
    assert errors(core.frame_received(*chat(7), T0 + 8)) == [(7, ErrorCode.RATE_LIMITED)]


def test_instant_messages_behind_a_timed_out_one_are_delivered_in_order() -> None:
    core = RouterCore(RouterConfig(server_id=ROUTER), metrics=Metrics())
    send(core, 1, T0, instant=True)
    tokens = [send(core, i, T0 + 1, instant=True) for i in (2, 3, 4)]
    bob = [DeviceLocation("bob", "phone", 9)]
    for token in reversed(tokens):
        assert core.presence_answered(token, True, bob, T0 + 2) == []
    out = core.handle_timer(T0 + 5)
    pushed = [a.header.msg_id for a in out if isinstance(a, SendFrame) and a.header.func == ChatFunc.TEXT]
    assert errors(out) == [(1, ErrorCode.BACKEND_TIMEOUT)]
    assert pushed == [2, 3, 4]
    assert core.inflight == 0
