"""The one conformance suite every :class:`~imsdk_server.location.PresenceStore` must pass.

Each check is an async function taking a fresh, empty store. Test modules run every function in
:data:`CHECKS` against every implementation (the in-process dict, and Redis against a real server).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from imsdk_server.location._core import Network, Presence
from imsdk_server.location._store import PresenceStore, decode_presence, encode_presence

__all__ = ["CHECKS", "Check"]

Check = Callable[[PresenceStore], Awaitable[None]]


def _p(
    uid: str, device: str = "phone", server: int = 1, network: Network = Network.G4, session: int = 1
) -> Presence:
    return Presence(uid, device, server, session, network, "android", "2.3.1", 1_700_000_000.25)


async def check_put_get_remove(store: PresenceStore) -> None:
    """A device round-trips with every field; a removal deletes it; removing twice is fine."""
    assert await store.devices("alice") == []
    a = _p("alice", network=Network.WIFI)
    await store.apply({a.key: a})
    assert await store.devices("alice") == [a]
    await store.apply({a.key: None})
    assert await store.devices("alice") == []
    await store.apply({a.key: None, ("nobody", "x"): None})
    assert await store.devices("alice") == []


async def check_devices_per_user(store: PresenceStore) -> None:
    """A user's devices come back sorted by device id; overwriting a device replaces it; users stay apart."""
    phone, pad = _p("alice", "phone"), _p("alice", "pad", server=2, network=Network.G2)
    bob = _p("bob", "phone", server=3)
    await store.apply({phone.key: phone, pad.key: pad, bob.key: bob})
    assert await store.devices("alice") == [pad, phone]
    moved = _p("alice", "phone", server=9, session=2, network=Network.G5)
    await store.apply({moved.key: moved})
    assert await store.devices("alice") == [pad, moved]
    assert await store.devices("bob") == [bob]


async def check_batch_queries(store: PresenceStore) -> None:
    """devices_many answers every uid asked for, known or not."""
    a, b = _p("a"), _p("b", "web", network=Network.NONE)
    await store.apply({a.key: a, b.key: b})
    assert await store.devices_many(["a", "b", "c"]) == {"a": [a], "b": [b], "c": []}
    assert await store.devices_many([]) == {}


async def check_odd_ids(store: PresenceStore) -> None:
    """Ids with separators, glob characters and non-ASCII text are plain data."""
    odd = [_p(uid, dev) for uid, dev in [("u:1", "d:1"), ("u*", "[x]"), ("ключ", "телефон"), ("a b", "?")]]
    await store.apply({p.key: p for p in odd})
    for p in odd:
        assert await store.devices(p.uid) == [p]
    assert sorted(await store.load_all(), key=lambda p: p.key) == sorted(odd, key=lambda p: p.key)


async def check_load_and_replace_all(store: PresenceStore) -> None:
    """load_all returns everything; replace_all makes the store hold exactly what it is given and marks it."""
    assert await store.intact() is False
    many = [_p(f"u{i}", f"d{i % 3}", server=i % 5) for i in range(1200)]
    await store.apply({p.key: p for p in many})
    assert sorted(await store.load_all(), key=lambda p: p.key) == sorted(many, key=lambda p: p.key)
    keep = [_p("x"), _p("y", "pad")]
    await store.replace_all(keep)
    assert await store.intact() is True
    assert sorted(await store.load_all(), key=lambda p: p.key) == keep
    assert await store.devices("u7") == []
    await store.replace_all([])
    assert await store.load_all() == []
    assert await store.intact() is True


async def check_encoding_round_trips(store: PresenceStore) -> None:
    """The stored form keeps every field, for every network."""
    for net in Network:
        p = _p("enc", str(net.value), network=net, session=2**40)
        assert decode_presence(p.uid, p.device, encode_presence(p)) == p
        await store.apply({p.key: p})
    assert len(await store.devices("enc")) == len(Network)


CHECKS: list[Check] = [
    check_put_get_remove,
    check_devices_per_user,
    check_batch_queries,
    check_odd_ids,
    check_load_and_replace_all,
    check_encoding_round_trips,
]
