"""A "latest value" watch: producers overwrite one slot, consumers wait for something newer.

Watches yield snapshots, so a slow consumer only needs the newest one: nothing is buffered without bound and
the final state is never missed. Everything here runs on the event-loop thread.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Generic, Self, TypeVar

import anyio

from imsdk_server.backends.registry._base import RegistryClosed

T = TypeVar("T")

_UNSET = object()


class LatestWatch(Generic[T]):
    """A watch: the current value first, then each newer one.

    ``on_open`` runs when the watch is entered and must :meth:`put` the current value (its errors propagate
    to the ``async with``). ``refresh`` (optional) is called from :meth:`__anext__` whenever the watch was
    marked dirty with :meth:`poke`; it returns the fresh value, or raises one of ``recoverable`` to leave the
    watch dirty until the next poke.
    """

    def __init__(
        self,
        *,
        on_open: Callable[[LatestWatch[T]], Awaitable[None]],
        on_close: Callable[[LatestWatch[T]], None],
        refresh: Callable[[], Awaitable[T]] | None = None,
        recoverable: tuple[type[BaseException], ...] = (),
    ) -> None:
        self._on_open = on_open
        self._on_close = on_close
        self._refresh = refresh
        self._recoverable = recoverable
        self._value: object = _UNSET
        self._version = 0
        self._seen = 0
        self._dirty = False
        self._event: anyio.Event | None = None
        self._opened = False
        self._closed = False
        self._error: BaseException | None = None

    # ------------------------------------------------------------------ producer side (loop thread)

    def put(self, value: T) -> None:
        """Publish a value; equal consecutive values are folded into one."""
        if self._closed or (self._value is not _UNSET and self._value == value):
            return
        self._value = value
        self._version += 1
        self._wake()

    def poke(self) -> None:
        """Mark the watch dirty so the consumer refreshes before its next item."""
        self._dirty = True
        self._wake()

    def end(self, error: BaseException | None = None) -> None:
        """End the watch: the consumer's iteration stops (or raises ``error``)."""
        if self._closed:
            return
        self._closed = True
        self._error = error
        self._wake()

    @property
    def closed(self) -> bool:
        return self._closed

    def _wake(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None

    # ------------------------------------------------------------------ consumer side

    async def __aenter__(self) -> Self:
        if self._opened:
            raise RuntimeError("a watch can be entered once")
        self._opened = True
        await self._on_open(self)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        if not self._opened:
            raise RuntimeError("enter the watch with 'async with' before iterating")
        while True:
            if self._closed:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            if self._dirty and self._refresh is not None:
                self._dirty = False
                try:
                    self.put(await self._refresh())
                except self._recoverable:
                    self._dirty = True  # try again after the next poke (e.g. on reconnect)
            if self._version > self._seen and not self._closed:
                self._seen = self._version
                value: T = self._value  # type: ignore[assignment]
                return value
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._wake()
        self._on_close(self)


def closed_error() -> RegistryClosed:
    return RegistryClosed("the registry client is closed")
