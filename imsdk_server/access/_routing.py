"""Upstream routing: which back-end gets a frame a client sent.

Upstream, a :class:`RoutingTable` maps a business code, or a ``(biz, func)`` pair, to the back-ends that serve
it. A back-end is anything shaped like :class:`Backend` -- a server-to-server link is one. Of the back-ends
registered for the most specific key that has a ready one, the frame goes to the one the session sticks to
(the header's ``msg_server_id``) when it is among them, else to the one the sender's uid ranks highest by
rendezvous (highest-random-weight) hashing over the ready back-ends' server ids. A user's frames therefore
keep going to the same server, and when a back-end leaves (or stops being ready) only its own users move,
spread over the others; when one joins, it takes a fair share and nobody else moves.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from imsdk_proto._frame import Frame
from imsdk_proto._header import Header
from imsdk_server.access._errors import BackendNotReady, NoBackend

if TYPE_CHECKING:
    from imsdk_server.links import Link, LinkState

__all__ = ["Backend", "LinkBackend", "LinkRoutes", "RoutingTable"]


@runtime_checkable
class Backend(Protocol):
    """A back-end server the access server forwards upstream frames to (e.g. a ready link)."""

    @property
    def server_id(self) -> int:
        """The back-end's server id (what a session's ``msg_server_id`` names)."""
        ...

    @property
    def ready(self) -> bool:
        """Whether the back-end accepts traffic now (both sides of its link said ready)."""
        ...

    def try_send(self, frame: Frame) -> bool:
        """Hand one v2 frame over at once if there is room (``True``); ``False`` if ``send`` must wait.

        Raises when the back-end cannot take traffic at all (not ready, closed)."""
        ...

    async def send(self, frame: Frame) -> None:
        """Hand one v2 frame to the back-end, waiting for room. Raises when it cannot take it."""
        ...


_Key = tuple[int, int | None]


class RoutingTable:
    """``(biz, func)`` and ``biz`` → back-ends. Registering a back-end for a business covers all its
    functions; a ``(biz, func)`` registration wins over it while one of its back-ends is ready."""

    def __init__(self) -> None:
        self._routes: dict[_Key, list[Backend]] = {}

    def add(self, backend: Backend, biz: int, func: int | None = None) -> None:
        """Route ``biz`` (every function, or only ``func``) to ``backend`` (in addition to others)."""
        if biz <= 0 or (func is not None and func <= 0):
            raise ValueError("business and function codes are positive")
        backends = self._routes.setdefault((biz, func), [])
        if backend not in backends:
            backends.append(backend)

    def remove(self, backend: Backend, biz: int | None = None, func: int | None = None) -> None:
        """Stop routing to ``backend``: for one key, or (``biz`` None) everywhere."""
        keys: Iterable[_Key] = list(self._routes) if biz is None else [(biz, func)]
        for key in keys:
            backends = self._routes.get(key)
            if backends and backend in backends:
                backends.remove(backend)
                if not backends:
                    del self._routes[key]

    def routes(self) -> dict[_Key, tuple[Backend, ...]]:
        """A copy of the table, for inspection."""
        return {key: tuple(backends) for key, backends in self._routes.items()}

    def resolve(self, header: Header) -> Backend:
        """The back-end for an upstream frame.

        Raises :class:`~imsdk_server.access.NoBackend` when nothing is registered for its code and
        :class:`~imsdk_server.access.BackendNotReady` when back-ends are registered but none is ready.
        """
        backend = self.choose(header.biz, header.func, header.sender_uid, header.msg_server_id)
        if backend is not None:
            return backend
        if (header.biz, header.func) in self._routes or (header.biz, None) in self._routes:
            raise BackendNotReady(f"no ready back-end for ({header.biz}, {header.func})")
        raise NoBackend(f"no back-end serves ({header.biz}, {header.func})")

    def choose(self, biz: int, func: int | None, uid: str, sticky: int = 0) -> Backend | None:
        """The ready back-end a frame ``(biz, func)`` from ``uid`` goes to, ``None`` when none is ready.

        ``func`` ``None`` asks about the business as a whole (its ``(biz, None)`` back-ends); ``sticky`` is
        the frame's ``msg_server_id``, honoured when that back-end is among the ready ones. With ``sticky``
        0 this is the back-end a session of ``uid`` should stick to, as told to the client at its handshake.
        """
        keys: tuple[_Key, ...] = ((biz, None),) if func is None else ((biz, func), (biz, None))
        for key in keys:
            backends = self._routes.get(key)
            if not backends:
                continue
            if len(backends) == 1:  # the common case, once per upstream frame: no list to build
                if backends[0].ready:
                    return backends[0]
                continue
            ready = [b for b in backends if b.ready]
            if not ready:
                continue
            if len(ready) == 1:
                return ready[0]
            if sticky:
                for b in ready:
                    if b.server_id == sticky:
                        return b
            return _rendezvous(uid, ready)
        return None


_M64 = (1 << 64) - 1


def _weight(key: int) -> int:
    """splitmix64's finaliser: a bijection on 64-bit ints whose output bits each depend on every input bit,
    so the weights one uid gives to different server ids behave as independent random draws."""
    key = ((key ^ (key >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    key = ((key ^ (key >> 27)) * 0x94D049BB133111EB) & _M64
    return key ^ (key >> 31)


def _rendezvous(uid: str, backends: Sequence[Backend]) -> Backend:
    """The back-end ``uid`` ranks highest: weight(crc32(uid), server_id), largest wins (the first on a tie).

    A uid's ranking of two back-ends does not depend on which others are ready, which is what keeps
    everyone else in place when a back-end comes or goes."""
    base = zlib.crc32(uid.encode()) << 32
    best = backends[0]
    best_weight = -1
    for backend in backends:
        weight = _weight(base | (backend.server_id & 0xFFFFFFFF))
        if weight > best_weight:
            best, best_weight = backend, weight
    return best


class LinkBackend:
    """A server-to-server link (:class:`imsdk_server.links.Link`) seen as a :class:`Backend`."""

    __slots__ = ("_busy", "link")

    def __init__(self, link: Link) -> None:
        from imsdk_server.links import LinkBusy  # here, not per frame: an import statement costs ~1 µs

        self.link = link
        self._busy = LinkBusy

    @property
    def server_id(self) -> int:
        peer = self.link.peer
        return peer.server_id if peer is not None else 0

    @property
    def ready(self) -> bool:
        return self.link.ready

    def try_send(self, frame: Frame) -> bool:
        try:
            self.link.send_nowait(frame)
        except self._busy:
            return False
        return True

    async def send(self, frame: Frame) -> None:
        await self.link.send(frame)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LinkBackend) and other.link is self.link

    def __hash__(self) -> int:
        return id(self.link)


class LinkRoutes:
    """Keeps a :class:`RoutingTable` in step with the links of a :class:`imsdk_server.links.LinkHub`.

    Give :meth:`on_state` to the hub as its ``on_state`` callback: once a peer's hello is in, the link is
    routed for every business code the hello lists (traffic flows only while it is ready); when the link
    closes it is removed.
    """

    def __init__(self, routes: RoutingTable) -> None:
        self.routes = routes

    def on_state(self, link: Link, old: LinkState, new: LinkState) -> None:
        from imsdk_server.links import LinkState

        peer = link.peer
        if new is LinkState.CLOSED:
            self.routes.remove(LinkBackend(link))
        elif old in (LinkState.IDLE, LinkState.HELLO_SENT) and peer is not None:
            for biz in peer.bizs:
                self.routes.add(LinkBackend(link), biz)
