"""The registry conformance suite: plain async checks every :class:`Registry` implementation must pass.

Call :func:`check_registry` with a factory that opens a *new client of one shared backend* each time it is
awaited (two clients of it must see each other's entries, and closing one must drop its entries). Each check
works in a domain and under configuration keys of its own, so the checks do not disturb each other.

Checks raise :class:`AssertionError` on a failure. They wait for watch updates with a timeout
(``watch_timeout`` seconds) and never assert on timing.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from imsdk_server.backends.registry._base import (
    AlreadyRegistered,
    IllegalStateTransition,
    InvalidRegistryData,
    NotRegistered,
    Registry,
    RegistryClosed,
    ServerInfo,
    ServerKey,
    ServerState,
    ServerWatch,
    get_config_json,
    set_config_json,
)

__all__ = [
    "RegistryFactory",
    "check_allocate_server_id",
    "check_close_drops_entries",
    "check_closed_client",
    "check_config",
    "check_config_watch",
    "check_invalid_input",
    "check_only_owner_changes",
    "check_register_and_list",
    "check_registry",
    "check_state_transitions",
    "check_watch_servers",
]

#: Opens a new client of the backend under test.
RegistryFactory = Callable[[], Awaitable[Registry]]


def _domain(tag: str) -> str:
    return f"{tag}-{secrets.token_hex(3)}"


def _info(domain: str, server_id: int, role: str = "router", **kw: Any) -> ServerInfo:
    return ServerInfo(
        role=role,
        server_id=server_id,
        name=f"{role}-{server_id}",
        domain=domain,
        host="127.0.0.1",
        port=9000 + server_id % 1000,
        **kw,
    )


async def _until(watch: ServerWatch, pred: Callable[[tuple[ServerInfo, ...]], bool], limit: float) -> None:
    """Read snapshots until one satisfies ``pred`` (intermediate snapshots may be coalesced)."""
    with anyio.fail_after(limit):
        async for snap in watch:
            if pred(snap):
                return
    raise AssertionError("the watch ended before the expected snapshot arrived")


async def _expect(exc: type[BaseException], awaitable: Awaitable[Any]) -> None:
    try:
        await awaitable
    except exc:
        return
    raise AssertionError(f"expected {exc.__name__}")


async def check_register_and_list(make: RegistryFactory) -> None:
    """A registered entry is listed, with every field intact, by its own client and by another one."""
    a, b = await make(), await make()
    try:
        d = _domain("list")
        first = _info(d, 7, client_host="203.0.113.5", client_port=443, region="east", isp="telecom",
                      meta={"build": "1.2.3"})  # fmt: skip
        await a.register(first)
        await a.register(_info(d, 3))
        await a.register(_info(d, 5, role="access"))
        for client in (a, b):
            listed = await client.list_servers(d, "router")
            assert [i.server_id for i in listed] == [3, 7], listed
            assert listed[1] == first, listed[1]
            assert [i.server_id for i in await client.list_servers(d, "access")] == [5]
            assert await client.list_servers(d, "location") == ()
            assert await client.list_servers(_domain("other"), "router") == ()
        await _expect(AlreadyRegistered, b.register(_info(d, 7)))
        await _expect(AlreadyRegistered, a.register(_info(d, 7)))
        await a.deregister(first.key)
        assert [i.server_id for i in await b.list_servers(d, "router")] == [3]
        await _expect(NotRegistered, a.deregister(first.key))
        await b.register(_info(d, 7))  # the id is free again
        assert [i.server_id for i in await a.list_servers(d, "router")] == [3, 7]
    finally:
        await a.aclose()
        await b.aclose()


async def check_state_transitions(make: RegistryFactory) -> None:
    """REGISTERED → READY → NOT_READY is allowed and visible to others; going back is refused."""
    a, b = await make(), await make()
    try:
        d = _domain("state")
        info = _info(d, 11)
        await a.register(info)
        assert (await b.list_servers(d, "router"))[0].state is ServerState.REGISTERED
        ready = await a.set_state(info.key, ServerState.READY)
        assert ready.state is ServerState.READY
        assert (await b.list_servers(d, "router"))[0].state is ServerState.READY
        assert (await a.set_state(info.key, ServerState.READY)).state is ServerState.READY  # no-op
        await a.set_state(info.key, ServerState.NOT_READY)
        assert (await b.list_servers(d, "router"))[0].state is ServerState.NOT_READY
        await _expect(IllegalStateTransition, a.set_state(info.key, ServerState.READY))
        await _expect(IllegalStateTransition, a.set_state(info.key, ServerState.REGISTERED))
        assert (await b.list_servers(d, "router"))[0].state is ServerState.NOT_READY
        other = _info(d, 12)
        await a.register(other)
        await a.set_state(other.key, ServerState.NOT_READY)  # straight to draining is allowed
    finally:
        await a.aclose()
        await b.aclose()


async def check_only_owner_changes(make: RegistryFactory) -> None:
    """Another client can see an entry but neither change its state nor remove it."""
    a, b = await make(), await make()
    try:
        d = _domain("owner")
        info = _info(d, 21)
        await a.register(info)
        await _expect(NotRegistered, b.set_state(info.key, ServerState.READY))
        await _expect(NotRegistered, b.deregister(info.key))
        await _expect(NotRegistered, a.set_state(ServerKey(d, "router", 22), ServerState.READY))
        assert [i.server_id for i in await b.list_servers(d, "router")] == [21]
    finally:
        await a.aclose()
        await b.aclose()


async def check_close_drops_entries(make: RegistryFactory) -> None:
    """Entries are ephemeral: closing the owning client removes them for everybody else."""
    a, b = await make(), await make()
    try:
        d = _domain("ephemeral")
        await a.register(_info(d, 31))
        await a.register(_info(d, 32, role="access"))
        await b.register(_info(d, 33))
        await a.aclose()
        assert [i.server_id for i in await b.list_servers(d, "router")] == [33]
        assert await b.list_servers(d, "access") == ()
        await a.aclose()  # idempotent
    finally:
        await b.aclose()


async def check_closed_client(make: RegistryFactory) -> None:
    """A closed client raises :class:`RegistryClosed`; its open watches end with it."""
    a = await make()
    d = _domain("closed")
    async with a.watch_servers(d, "router") as watch:
        assert await watch.__anext__() == ()
        await a.aclose()
        await _expect(RegistryClosed, watch.__anext__())
    await _expect(RegistryClosed, a.register(_info(d, 41)))
    await _expect(RegistryClosed, a.list_servers(d, "router"))
    await _expect(RegistryClosed, a.get_config("closed/key"))
    await _expect(RegistryClosed, a.allocate_server_id())


async def check_watch_servers(make: RegistryFactory, watch_timeout: float = 10.0) -> None:
    """A watcher sees the current entries, then joins, state changes and leaves (also by a client dying)."""
    a, b, w = await make(), await make(), await make()
    try:
        d = _domain("watch")
        await a.register(_info(d, 51))
        async with w.watch_servers(d, "router") as watch:
            first = await watch.__anext__()
            assert [i.server_id for i in first] == [51], first

            def ids(snap: tuple[ServerInfo, ...]) -> list[tuple[int, ServerState]]:
                return [(i.server_id, i.state) for i in snap]

            reg, ready = ServerState.REGISTERED, ServerState.READY
            await b.register(_info(d, 52))
            await _until(watch, lambda s: ids(s) == [(51, reg), (52, reg)], watch_timeout)
            await b.set_state(ServerKey(d, "router", 52), ready)
            await _until(watch, lambda s: ids(s) == [(51, reg), (52, ready)], watch_timeout)
            await a.register(_info(d, 53, role="access"))  # another role: not this watch's business
            await a.deregister(ServerKey(d, "router", 51))
            await _until(watch, lambda s: ids(s) == [(52, ServerState.READY)], watch_timeout)
            await b.aclose()  # the owner dies: its entries go
            await _until(watch, lambda s: s == (), watch_timeout)
            # Coalescing: many quick changes end in the final state.
            for sid in range(60, 70):
                await a.register(_info(d, sid))
            await _until(watch, lambda s: [i.server_id for i in s] == list(range(60, 70)), watch_timeout)
        # A watch on a role nobody registered yet starts empty.
        async with w.watch_servers(_domain("empty"), "router") as empty:
            assert await empty.__anext__() == ()
    finally:
        await a.aclose()
        await b.aclose()
        await w.aclose()


async def check_allocate_server_id(make: RegistryFactory) -> None:
    """Ids are positive uint32 values, never handed out twice, even to concurrent callers of two clients."""
    a, b = await make(), await make()
    try:
        got: list[int] = []

        async def take(client: Registry) -> None:
            for _ in range(10):
                got.append(await client.allocate_server_id())

        async with anyio.create_task_group() as tg:
            for client in (a, b, a, b):
                tg.start_soon(take, client)
        assert len(got) == 40
        assert len(set(got)) == 40, sorted(got)
        assert all(1 <= i <= 2**32 - 1 for i in got)
    finally:
        await a.aclose()
        await b.aclose()


async def check_config(make: RegistryFactory) -> None:
    """Parameters round-trip as bytes and JSON, are shared between clients and outlive their writer."""
    a, b = await make(), await make()
    try:
        base = _domain("cfg")
        key = f"{base}/access/idle_timeout"
        assert await a.get_config(key) is None
        await a.set_config(key, b"300")
        assert await b.get_config(key) == b"300"
        await b.set_config(key, b"")
        assert await a.get_config(key) == b""
        await a.set_config(key, bytes(range(256)))
        assert await b.get_config(key) == bytes(range(256))
        await a.delete_config(key)
        assert await b.get_config(key) is None
        await a.delete_config(key)  # absent: fine
        doc = {"regions": ["east", "west"], "weight": 3, "on": True}
        await set_config_json(a, f"{base}/json", doc)
        assert await get_config_json(b, f"{base}/json") == doc
        assert await get_config_json(b, f"{base}/missing", default=42) == 42
        await a.set_config(f"{base}/notjson", b"\xff{")
        await _expect(InvalidRegistryData, get_config_json(b, f"{base}/notjson"))
        await a.set_config(f"{base}/kept", b"1")
        await a.aclose()
        assert await b.get_config(f"{base}/kept") == b"1"  # parameters are not ephemeral
    finally:
        await a.aclose()
        await b.aclose()


async def check_config_watch(make: RegistryFactory, watch_timeout: float = 10.0) -> None:
    """A config watcher sees the current value (``None`` when absent), then every change, then deletion."""
    a, w = await make(), await make()
    try:
        key = f"{_domain('cfgw')}/limit"
        async with w.watch_config(key) as watch:
            assert await watch.__anext__() is None

            async def until(value: bytes | None) -> None:
                with anyio.fail_after(watch_timeout):
                    async for v in watch:
                        if v == value:
                            return

            await a.set_config(key, b"1")
            await until(b"1")
            await a.set_config(key, b"2")
            await until(b"2")
            await a.delete_config(key)
            await until(None)
            await a.set_config(key, b"3")
            await until(b"3")
    finally:
        await a.aclose()
        await w.aclose()


async def check_invalid_input(make: RegistryFactory) -> None:
    """Bad names, ids, ports and values are refused with :class:`InvalidRegistryData` before any I/O."""
    a = await make()
    try:
        bad_infos: list[dict[str, Any]] = [
            {"role": "a/b"},
            {"role": ""},
            {"domain": ".."},
            {"server_id": 0},
            {"server_id": 2**32},
            {"server_id": True},
            {"port": 0},
            {"port": 70000},
            {"host": ""},
            {"client_host": "h"},
            {"meta": {"k": 1}},
        ]
        for bad in bad_infos:
            fields: dict[str, Any] = {"role": "router", "server_id": 1, "name": "n", "domain": "d",
                                      "host": "h", "port": 1}  # fmt: skip
            fields.update(bad)
            try:
                ServerInfo(**fields)
            except InvalidRegistryData:
                continue
            raise AssertionError(f"ServerInfo accepted {bad}")
        for bad_key in ("", "/x", "x/", "a//b", "a b", "../x"):
            await _expect(InvalidRegistryData, a.get_config(bad_key))
            await _expect(InvalidRegistryData, a.set_config(bad_key, b"v"))
        await _expect(InvalidRegistryData, a.set_config("big", b"x" * (512 * 1024 + 1)))
        await _expect(InvalidRegistryData, a.list_servers("d", "a/b"))
        for garbage in (b"", b"{", b"[]", b'{"v": 2}', b'{"v": 1, "role": "r"}'):
            try:
                ServerInfo.from_json(garbage)
            except InvalidRegistryData:
                continue
            raise AssertionError(f"from_json accepted {garbage!r}")
    finally:
        await a.aclose()


async def check_registry(make: RegistryFactory, *, watch_timeout: float = 10.0) -> None:
    """Run every check above against the backend behind ``make``."""
    await check_register_and_list(make)
    await check_state_transitions(make)
    await check_only_owner_changes(make)
    await check_close_drops_entries(make)
    await check_closed_client(make)
    await check_watch_servers(make, watch_timeout)
    await check_allocate_server_id(make)
    await check_config(make)
    await check_config_watch(make, watch_timeout)
    await check_invalid_input(make)
