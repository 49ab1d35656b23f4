"""The registry's data model: the lifecycle table, the stored JSON form, the embedded hub's outage knob."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imsdk_server.backends.registry import (
    SERVER_STATE_TRANSITIONS,
    IllegalStateTransition,
    InvalidRegistryData,
    MemoryRegistryHub,
    RegistryUnavailable,
    ServerInfo,
    ServerState,
    check_transition,
)

R, OK, NR = ServerState.REGISTERED, ServerState.READY, ServerState.NOT_READY

ALLOWED = {(R, R), (R, OK), (R, NR), (OK, OK), (OK, NR), (NR, NR)}


@pytest.mark.parametrize(("old", "new"), list(itertools.product(ServerState, repeat=2)))
def test_every_state_pair(old: ServerState, new: ServerState) -> None:
    if (old, new) in ALLOWED:
        check_transition(old, new)
    else:
        with pytest.raises(IllegalStateTransition):
            check_transition(old, new)


def test_table_matches_the_documented_lifecycle() -> None:
    assert {(o, n) for o, targets in SERVER_STATE_TRANSITIONS.items() for n in targets} == {
        p for p in ALLOWED if p[0] is not p[1]
    }


names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)
text = st.text(max_size=30)


@st.composite
def infos(draw: st.DrawFn) -> ServerInfo:
    client = draw(st.booleans())
    return ServerInfo(
        role=draw(names),
        server_id=draw(st.integers(1, 2**32 - 1)),
        name=draw(text),
        domain=draw(names),
        host=draw(st.text(min_size=1, max_size=40)),
        port=draw(st.integers(1, 65535)),
        client_host=draw(st.text(min_size=1, max_size=20)) if client else None,
        client_port=draw(st.integers(1, 65535)) if client else None,
        region=draw(text),
        isp=draw(text),
        state=draw(st.sampled_from(ServerState)),
        meta=draw(st.dictionaries(text, text, max_size=4)),
    )


@given(infos())
def test_json_round_trip(info: ServerInfo) -> None:
    assert ServerInfo.from_json(info.to_json()) == info


@given(st.binary(max_size=200))
def test_garbage_entries_raise_the_typed_error(data: bytes) -> None:
    try:
        ServerInfo.from_json(data)
    except InvalidRegistryData:
        pass


def test_invalid_data_is_also_a_value_error() -> None:
    with pytest.raises(ValueError, match="server id"):
        ServerInfo(role="r", server_id=0, name="", domain="d", host="h", port=1)


@pytest.mark.anyio
async def test_memory_hub_outage_and_recovery() -> None:
    hub = MemoryRegistryHub()
    reg = await hub.connect()
    info = ServerInfo(role="r", server_id=1, name="", domain="d", host="h", port=1)
    await reg.register(info)
    hub.set_available(False)
    with pytest.raises(RegistryUnavailable):
        await reg.list_servers("d", "r")
    with pytest.raises(RegistryUnavailable):
        await reg.set_config("k", b"v")
    hub.set_available(True)
    assert await reg.list_servers("d", "r") == (info,)
    await reg.aclose()
