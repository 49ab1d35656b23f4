"""The link state machine: the documented table, handshakes, traffic gating, drains, hellos, timers."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imsdk_proto.codes import ErrorCode, LinkFunc
from imsdk_proto.messages import ServerRole
from imsdk_server.links._core import (
    MAY_RECEIVE,
    MAY_SEND,
    TRANSITIONS,
    CloseLink,
    LinkAction,
    LinkConfig,
    LinkCore,
    LinkEvent,
    LinkIdentity,
    LinkState,
    SendControl,
    StateChanged,
    next_state,
)
from imsdk_server.links._detector import LateAfterDown, PeerAlive, PeerDown, PeerSuspect
from imsdk_server.links._errors import IllegalTransition, LinkClosed, LinkNotReady

S, E = LinkState, LinkEvent
ACCESS = ServerRole.SERVER_ROLE_ACCESS
ROUTER = ServerRole.SERVER_ROLE_INSTANT_ROUTER
CFG = LinkConfig(heartbeat_interval=3.0, grace=1.5, probe_timeout=1.0, probes=3, hello_timeout=5.0)
A_ID = LinkIdentity(ACCESS, 7, "access-7", "cn")
R_ID = LinkIdentity(ROUTER, 21, "router-21", "cn")

# The table of docs/links.md, written out independently of the code.
_PRE_READY = (S.LINKED, S.READY_LOCAL, S.READY_REMOTE, S.READY)
_LINKED = (*_PRE_READY, S.DRAINING, S.PEER_DRAINING, S.BOTH_DRAINING, S.DRAINED, S.FINISHED)
EXPECTED: dict[tuple[LinkState, LinkEvent], LinkState] = {
    (S.IDLE, E.START): S.HELLO_SENT,
    (S.HELLO_SENT, E.PEER_HELLO): S.LINKED,
    (S.LINKED, E.LOCAL_READY): S.READY_LOCAL,
    (S.LINKED, E.PEER_READY): S.READY_REMOTE,
    (S.READY_LOCAL, E.PEER_READY): S.READY,
    (S.READY_REMOTE, E.LOCAL_READY): S.READY,
    **{(s, E.LOCAL_NOT_READY): S.DRAINING for s in _PRE_READY},
    **{(s, E.PEER_NOT_READY): S.PEER_DRAINING for s in _PRE_READY},
    (S.DRAINING, E.PEER_NOT_READY): S.BOTH_DRAINING,
    (S.PEER_DRAINING, E.LOCAL_NOT_READY): S.BOTH_DRAINING,
    (S.DRAINING, E.PEER_ACK): S.DRAINED,
    (S.BOTH_DRAINING, E.PEER_ACK): S.FINISHED,
    (S.DRAINED, E.PEER_NOT_READY): S.FINISHED,
    **{(s, E.PEER_DATA): s for s in (S.READY, S.DRAINING, S.PEER_DRAINING, S.BOTH_DRAINING)},
    **{(s, E.LOCAL_DATA): s for s in (S.READY, S.DRAINING, S.DRAINED)},
    **{(s, E.PEER_CONTROL): s for s in _LINKED},
    **{(s, E.CLOSE): S.CLOSED for s in LinkState if s is not S.CLOSED},
}


def test_table_is_exactly_the_documented_one() -> None:
    assert TRANSITIONS == EXPECTED
    assert {s for (s, e) in EXPECTED if e is E.PEER_DATA} == MAY_RECEIVE
    assert {s for (s, e) in EXPECTED if e is E.LOCAL_DATA} == MAY_SEND


@pytest.mark.parametrize("state", list(LinkState))
@pytest.mark.parametrize("event", list(LinkEvent))
def test_every_pair_is_either_a_transition_or_raises(state: LinkState, event: LinkEvent) -> None:
    if (state, event) in EXPECTED:
        assert next_state(state, event) is EXPECTED[(state, event)]
    else:
        with pytest.raises(IllegalTransition):
            next_state(state, event)


# -- two cores joined by a fake wire -------------------------------------------------------------------------


@dataclass
class End:
    core: LinkCore
    log: list[LinkAction] = field(default_factory=list)
    closed: CloseLink | None = None


@dataclass
class Pair:
    """Two cores; control frames each one emits are handed to the other in order (like one TCP stream)."""

    a: End
    b: End
    now: float = 0.0
    wire: list[tuple[str, SendControl]] = field(default_factory=list)

    def other(self, name: str) -> End:
        return self.b if name == "a" else self.a

    def apply(self, name: str, actions: list[LinkAction]) -> None:
        end = self.a if name == "a" else self.b
        for act in actions:
            end.log.append(act)
            if isinstance(act, SendControl):
                self.wire.append((name, act))
            elif isinstance(act, CloseLink):
                end.closed = act

    def pump(self) -> None:
        while self.wire:
            sender, ctl = self.wire.pop(0)
            name = "b" if sender == "a" else "a"
            target = self.other(sender)
            self.apply(
                name, target.core.receive_control(ctl.func, self.now, hello=ctl.hello, number=ctl.number)
            )


def make_pair(ready_a: bool = True, ready_b: bool = True, cfg: LinkConfig = CFG) -> Pair:
    pair = Pair(End(LinkCore(A_ID, cfg, 0.0, ready=ready_a)), End(LinkCore(R_ID, cfg, 0.0, ready=ready_b)))
    pair.apply("a", pair.a.core.start(0.0))
    pair.apply("b", pair.b.core.start(0.0))
    pair.pump()
    return pair


def test_hello_then_ready_on_both_sides() -> None:
    pair = make_pair()
    assert pair.a.core.state is S.READY
    assert pair.b.core.state is S.READY
    assert pair.a.core.peer == R_ID
    assert pair.b.core.peer == A_ID
    assert [a.new for a in pair.a.log if isinstance(a, StateChanged)] == [
        S.HELLO_SENT,
        S.LINKED,
        S.READY_LOCAL,
        S.READY,
    ]
    sent = [a.func for a in pair.a.log if isinstance(a, SendControl)]
    assert sent == [LinkFunc.HELLO, LinkFunc.READY]


def test_no_traffic_until_both_sides_said_ready() -> None:
    pair = make_pair(ready_a=True, ready_b=False)
    a, b = pair.a.core, pair.b.core
    assert (a.state, b.state) == (S.READY_LOCAL, S.READY_REMOTE)
    for core in (a, b):
        with pytest.raises(LinkNotReady) as info:
            core.on_send(1.0)
        assert info.value.code is ErrorCode.LINK_NOT_READY
    pair.apply("b", b.mark_ready(1.0))
    pair.pump()
    assert (a.state, b.state) == (S.READY, S.READY)
    a.on_send(1.0)
    assert b.receive_data(1.0) == []


@pytest.mark.parametrize("state_of_b", ["hello_sent", "linked", "ready_local", "ready_remote"])
def test_traffic_from_a_peer_that_is_not_ready_closes_the_link(state_of_b: str) -> None:
    core = LinkCore(R_ID, CFG, 0.0)
    core.start(0.0)
    if state_of_b != "hello_sent":
        core.receive_control(LinkFunc.HELLO, 0.0, hello=A_ID)
    if state_of_b == "ready_local":
        core.mark_ready(0.0)
    if state_of_b == "ready_remote":
        core.receive_control(LinkFunc.READY, 0.0)
    assert core.state.value == state_of_b
    actions = core.receive_data(0.5)
    assert actions[-1] == CloseLink(
        ErrorCode.UNEXPECTED_MESSAGE, f"traffic from the peer in state {state_of_b}"
    )
    assert core.state is S.CLOSED
    with pytest.raises(LinkClosed) as info:
        core.on_send(0.6)
    assert info.value.code is ErrorCode.UNEXPECTED_MESSAGE


def test_ready_before_the_hellos_is_remembered() -> None:
    pair = make_pair(ready_a=False, ready_b=False)
    assert pair.a.core.state is S.LINKED
    pair.a.core.mark_ready(0.0)  # LINKED -> READY_LOCAL; the wire is not pumped here
    core = LinkCore(A_ID, CFG, 0.0)
    assert core.mark_ready(0.0) == []  # IDLE: remembered
    core.start(0.0)
    out = core.receive_control(LinkFunc.HELLO, 0.1, hello=R_ID)
    assert SendControl(LinkFunc.READY) in out
    assert core.state is S.READY_LOCAL


def test_local_drain_peer_acks_after_its_in_flight_traffic() -> None:
    pair = make_pair()
    a, b = pair.a.core, pair.b.core
    pair.apply("b", b.drain(1.0))  # b deregisters
    assert b.state is S.DRAINING
    b.on_send(1.0)  # the draining side may still answer work it accepted
    # a's traffic sent before the not-ready arrives is still accepted by b
    a.on_send(1.0)
    assert b.receive_data(1.0) == []
    pair.pump()  # a receives not-ready, answers ack; b receives the ack
    assert (a.state, b.state) == (S.PEER_DRAINING, S.DRAINED)
    with pytest.raises(LinkNotReady):
        a.on_send(1.1)
    assert a.receive_data(1.1) == []  # b's answers still reach a
    # After the ack the peer promised silence: more traffic from it is a violation.
    out = b.receive_data(1.2)
    assert out[-1] == CloseLink(ErrorCode.UNEXPECTED_MESSAGE, "traffic from the peer in state drained")


def test_both_sides_drain_at_once() -> None:
    pair = make_pair()
    pair.apply("a", pair.a.core.drain(1.0))
    pair.apply("b", pair.b.core.drain(1.0))
    pair.pump()
    assert pair.a.core.state is S.FINISHED
    assert pair.b.core.state is S.FINISHED
    assert pair.a.closed is None
    assert pair.b.closed is None
    for end in (pair.a, pair.b):
        sent = [x.func for x in end.log if isinstance(x, SendControl)]
        assert sent == [LinkFunc.HELLO, LinkFunc.READY, LinkFunc.NOT_READY, LinkFunc.NOT_READY_ACK]


def test_drain_after_the_peers_drain_and_after_being_drained() -> None:
    pair = make_pair()
    pair.apply("a", pair.a.core.drain(1.0))
    pair.pump()
    assert (pair.a.core.state, pair.b.core.state) == (S.DRAINED, S.PEER_DRAINING)
    pair.apply("b", pair.b.core.drain(2.0))
    assert pair.b.core.state is S.BOTH_DRAINING
    pair.pump()
    assert (pair.a.core.state, pair.b.core.state) == (S.FINISHED, S.FINISHED)
    assert pair.a.core.drain(3.0) == []  # idempotent


def test_drain_before_the_link_is_up_closes_it() -> None:
    core = LinkCore(A_ID, CFG, 0.0)
    core.start(0.0)
    out = core.drain(1.0)
    assert out[-1] == CloseLink(ErrorCode.SERVER_SHUTTING_DOWN, "deregistering before the link was up")


def test_no_going_back_to_ready_after_not_ready() -> None:
    pair = make_pair()
    pair.apply("a", pair.a.core.drain(1.0))
    with pytest.raises(IllegalTransition):
        pair.a.core.mark_ready(1.0)
    # The peer saying ready again after its not-ready is a violation.
    b = pair.b.core
    b.receive_control(LinkFunc.NOT_READY, 1.0)
    out = b.receive_control(LinkFunc.READY, 1.1)
    assert out[-1] == CloseLink(ErrorCode.UNEXPECTED_MESSAGE, "READY from the peer in state peer_draining")


@pytest.mark.parametrize(
    ("func", "state"),
    [
        (LinkFunc.READY, "hello_sent"),
        (LinkFunc.HEARTBEAT, "hello_sent"),
        (LinkFunc.NOT_READY_ACK, "ready"),
        (LinkFunc.HELLO, "ready"),
        (LinkFunc.READY, "ready"),
    ],
)
def test_control_out_of_place_closes_the_link(func: LinkFunc, state: str) -> None:
    core = LinkCore(R_ID, CFG, 0.0, ready=True)
    core.start(0.0)
    if state == "ready":
        core.receive_control(LinkFunc.HELLO, 0.0, hello=A_ID)
        core.receive_control(LinkFunc.READY, 0.0)
    assert core.state.value == state
    out = core.receive_control(func, 0.5, hello=A_ID)
    assert out[-1] == CloseLink(ErrorCode.UNEXPECTED_MESSAGE, f"{func.name} from the peer in state {state}")


@pytest.mark.parametrize(
    ("hello", "config", "expect", "problem"),
    [
        (LinkIdentity(0, 5, "x", "cn"), CFG, None, "hello without a role"),
        (LinkIdentity(ROUTER, 21, "me", "cn"), CFG, None, "hello from our own server id 21"),
        (LinkIdentity(ACCESS, 7, "", "eu"), CFG, None, "peer domain 'eu' is not ours ('cn')"),
        (
            A_ID,
            LinkConfig(accept_roles=frozenset({ServerRole.SERVER_ROLE_GATEWAY})),
            None,
            f"role {ACCESS} may not link to us",
        ),
        (A_ID, CFG, 8, "expected server 8, peer says 7"),
    ],
)
def test_bad_hellos_close_with_forbidden(
    hello: LinkIdentity, config: LinkConfig, expect: int | None, problem: str
) -> None:
    core = LinkCore(R_ID, config, 0.0, expect_server_id=expect)
    core.start(0.0)
    out = core.receive_control(LinkFunc.HELLO, 0.1, hello=hello)
    assert out[-1] == CloseLink(ErrorCode.FORBIDDEN, problem)
    assert core.state is S.CLOSED
    assert core.peer is None


def test_cross_domain_gateway_accepts_other_domains() -> None:
    core = LinkCore(R_ID, LinkConfig(cross_domain=True), 0.0, expect_server_id=7)
    core.start(0.0)
    core.receive_control(LinkFunc.HELLO, 0.1, hello=LinkIdentity(ACCESS, 7, "", "eu"))
    assert core.state is S.LINKED


def test_hello_timeout_is_exact() -> None:
    core = LinkCore(R_ID, CFG, 10.0)
    core.start(10.0)
    assert core.next_deadline() == 15.0
    assert core.handle_timer(14.999) == []
    out = core.handle_timer(15.0)
    assert out[-1] == CloseLink(ErrorCode.HANDSHAKE_TIMEOUT, "no hello from the peer in time")
    assert core.next_deadline() is None


def test_probes_are_answered_at_once_with_the_same_number() -> None:
    pair = make_pair()
    out = pair.b.core.receive_control(LinkFunc.PROBE, 1.0, number=2)
    assert out == [SendControl(LinkFunc.PROBE_ACK, 2)]


def test_silent_peer_three_probes_then_down_and_close() -> None:
    pair = make_pair()
    a = pair.a.core
    log: list[tuple[float, LinkAction]] = []
    while (deadline := a.next_deadline()) is not None:
        log += [(deadline, x) for x in a.handle_timer(deadline)]
    assert log == [
        (3.0, SendControl(LinkFunc.HEARTBEAT)),
        (4.5, PeerSuspect(0.0)),
        (4.5, SendControl(LinkFunc.PROBE, 1)),
        (5.5, SendControl(LinkFunc.PROBE, 2)),
        (6.5, SendControl(LinkFunc.PROBE, 3)),
        (7.5, PeerDown(0.0)),
        (7.5, StateChanged(S.READY, S.CLOSED)),
        (7.5, CloseLink(ErrorCode.HEARTBEAT_TIMEOUT, "peer down: every probe timed out")),
    ]
    # The late probe-ack is reported, never a resurrection.
    assert a.receive_control(LinkFunc.PROBE_ACK, 8.0, number=3) == [LateAfterDown(0.5)]
    assert a.receive_data(8.5) == [LateAfterDown(1.0)]
    assert a.state is S.CLOSED


def test_a_probe_ack_within_the_window_keeps_the_link() -> None:
    pair = make_pair()
    a = pair.a.core
    a.handle_timer(4.5)
    a.handle_timer(5.5)
    out = a.receive_control(LinkFunc.PROBE_ACK, 6.0, number=2)
    assert out == [PeerAlive(2)]
    assert a.state is S.READY
    assert a.next_deadline() == 8.5  # our last send was probe 2 at 5.5: heartbeat due at 8.5


def test_a_busy_reader_does_not_count_as_the_peers_silence() -> None:
    pair = make_pair()
    a = pair.a.core
    actions: list[LinkAction] = []
    for now in (3.0, 4.5, 5.5, 6.5, 7.5, 9.0):  # every deadline of a silent peer, while our handler runs
        a.reader_busy(now)
        actions += a.handle_timer(now)
    assert actions == [SendControl(LinkFunc.HEARTBEAT), SendControl(LinkFunc.HEARTBEAT)]  # at 3.0 and 6.5
    assert a.state is S.READY
    # Reading again at 9.0: a peer that stays silent is down at 9.0 + 7.5, not earlier.
    a.reader_busy(9.0)
    log: list[tuple[float, LinkAction]] = []
    while (deadline := a.next_deadline()) is not None:
        log += [(deadline, x) for x in a.handle_timer(deadline)]
    assert [(t, x) for t, x in log if not isinstance(x, SendControl)][:2] == [
        (13.5, PeerSuspect(9.0)),
        (16.5, PeerDown(9.0)),
    ]
    a.reader_busy(17.0)  # harmless once closed
    assert a.state is S.CLOSED  # type: ignore[comparison-overlap]  # closed by the timer calls above


def test_sending_counts_as_our_heartbeat() -> None:
    pair = make_pair()
    a = pair.a.core
    a.receive_data(2.0)
    a.on_send(2.5)
    assert a.next_deadline() == 5.5


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(list(LinkFunc)).map(lambda f: ("ctl", f)),
            st.sampled_from(["data", "drain", "ready", "timer"]).map(lambda k: (k, None)),
        ),
        max_size=25,
    )
)
def test_any_peer_input_never_raises_and_keeps_the_state_consistent(
    steps: list[tuple[str, LinkFunc | None]],
) -> None:
    core = LinkCore(R_ID, CFG, 0.0)
    core.start(0.0)
    now = 0.0
    closes = 0
    for kind, func in steps:
        now += 0.5
        was_closed = core.state is S.CLOSED
        if kind == "ctl":
            assert func is not None
            out = core.receive_control(func, now, hello=A_ID, number=1)
        elif kind == "data":
            out = core.receive_data(now)
        elif kind == "drain":
            out = core.drain(now)
        elif kind == "timer":
            out = core.handle_timer(now)
        else:
            try:
                out = core.mark_ready(now)
            except IllegalTransition:
                assert core.state in {
                    S.DRAINING,
                    S.PEER_DRAINING,
                    S.BOTH_DRAINING,
                    S.DRAINED,
                    S.FINISHED,
                    S.CLOSED,
                }
                continue
        closes += sum(isinstance(x, CloseLink) for x in out)
        if was_closed:  # a closed link sends nothing and changes nothing; at most it reports a late frame
            assert all(isinstance(x, LateAfterDown) for x in out)
        assert core.may_send == (core.state in MAY_SEND)
    assert closes <= 1
    assert (core.state is S.CLOSED) == (closes == 1)
