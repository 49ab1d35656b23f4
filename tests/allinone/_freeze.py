"""A TCP relay in front of a server's link listener that can freeze (stop moving bytes, keep the sockets
open), thaw, or cut every connection: what a stopped process, a stalled network or a crash looks like to a
peer."""

from __future__ import annotations

import anyio
import anyio.abc
from anyio.abc import SocketAttribute


class FreezableRelay:
    """Forwards every connection accepted on ``address`` to ``target``, byte for byte, in both directions."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.address: tuple[str, int] = ("127.0.0.1", 0)
        self._flowing = anyio.Event()
        self._flowing.set()
        self._streams: list[anyio.abc.ByteStream] = []
        self._tg: anyio.abc.TaskGroup | None = None
        self._listen_scope = anyio.CancelScope()

    async def __aenter__(self) -> FreezableRelay:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        bound = listener.extra(SocketAttribute.local_address)
        assert isinstance(bound, tuple)
        self.address = (str(bound[0]), int(bound[1]))
        self._tg.start_soon(self._serve, listener)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        await self._tg.__aexit__(None, None, None)
        for stream in self._streams:
            await anyio.aclose_forcefully(stream)

    async def _serve(self, listener: anyio.abc.Listener[anyio.abc.SocketStream]) -> None:
        with self._listen_scope:
            async with listener:
                await listener.serve(self._relay)

    async def _relay(self, inbound: anyio.abc.SocketStream) -> None:
        try:
            outbound = await anyio.connect_tcp(*self.target)
        except OSError:
            await anyio.aclose_forcefully(inbound)
            return
        self._streams += [inbound, outbound]
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._pump, inbound, outbound, tg.cancel_scope)
            tg.start_soon(self._pump, outbound, inbound, tg.cancel_scope)

    async def _pump(
        self, source: anyio.abc.ByteStream, sink: anyio.abc.ByteStream, scope: anyio.CancelScope
    ) -> None:
        try:
            while True:
                await self._flowing.wait()
                data = await source.receive()
                await self._flowing.wait()  # frozen while it was read: hold it until the thaw
                await sink.send(data)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        finally:
            scope.cancel()
            await anyio.aclose_forcefully(sink)
            await anyio.aclose_forcefully(source)

    def freeze(self) -> None:
        """Stop moving bytes; every connection stays open (the peers' kernels keep acknowledging)."""
        if self._flowing.is_set():
            self._flowing = anyio.Event()

    def thaw(self) -> None:
        """Move bytes again, starting with whatever was held."""
        self._flowing.set()

    async def crash(self) -> None:
        """Cut every connection and stop accepting, as when the process behind the relay dies."""
        self._listen_scope.cancel()
        for stream in self._streams:
            await anyio.aclose_forcefully(stream)
        self._streams.clear()
