"""A back-end server that other servers reach over links: its hub, its registry entry and its lifecycle.

The message router has this built in (:class:`~imsdk_server.routing.RouterServer`); the notification server
and the location server's presence service get it from :class:`LinkedServer`, with the same order:

* **start**: listen for links (links are *not* ready yet), register ``REGISTERED`` under the role, start the
  application's tasks, say ready on every link, set the entry ``READY``;
* **stop**: set the entry ``NOT_READY`` and deregister it, send not-ready on every link, wait until every
  peer acked and the application is idle (its answers handed to the links), close the links, stop the tasks.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import anyio
from anyio.abc import TaskStatus

from imsdk_proto import Frame
from imsdk_server.backends.registry import Registry, RegistryError, ServerInfo, ServerState
from imsdk_server.links import FrameHandler, Link, LinkConfig, LinkHub, LinkIdentity
from imsdk_server.metrics import Metrics

__all__ = ["LinkedServer"]

log = logging.getLogger("imsdk_server.allinone")

Runner = Callable[..., Coroutine[Any, Any, Any]]
"""An application task started with ``task_status`` (``await tg.start(runner)``), run until cancelled."""


class LinkedServer:
    """One server behind a :class:`~imsdk_server.links.LinkHub`, listed in the registry as ``role``.

    ``handler`` receives every traffic frame; ``runners`` are started (in order, each reporting started)
    before the links become ready; ``idle`` is awaited during the drain (the application's work in flight).
    An application that needs the hub to be built (its output goes on the links) gives them afterwards with
    :meth:`configure`. Run :meth:`serve` in a task group and call :meth:`stop` for the orderly shutdown.
    """

    def __init__(
        self,
        identity: LinkIdentity,
        role: str,
        handler: FrameHandler | None = None,
        *,
        registry: Registry | None,
        host: str = "127.0.0.1",
        port: int = 0,
        runners: tuple[Runner, ...] = (),
        idle: Callable[[], Awaitable[Any]] | None = None,
        link_config: LinkConfig | None = None,
        metrics: Metrics | None = None,
        drain_timeout: float = 10.0,
    ) -> None:
        self.identity = identity
        self.role = role
        self.registry = registry
        self.host = host
        self.port = port
        self.drain_timeout = drain_timeout
        self.metrics = metrics if metrics is not None else Metrics()
        self.handler = handler
        self.hub = LinkHub(
            identity, config=link_config, handler=self._on_frame, metrics=self.metrics, ready=False
        )
        self.info: ServerInfo | None = None
        self.address: tuple[str, int] | None = None
        self._runners = runners
        self._idle = idle
        self._stop = anyio.Event()

    def configure(
        self,
        *,
        handler: FrameHandler | None = None,
        runners: tuple[Runner, ...] | None = None,
        idle: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        """Set the frame handler, the runners or the idle wait after construction (before :meth:`serve`)."""
        if handler is not None:
            self.handler = handler
        if runners is not None:
            self._runners = runners
        if idle is not None:
            self._idle = idle

    def _on_frame(self, link: Link, frame: Frame) -> Awaitable[None] | None:
        handler = self.handler
        return None if handler is None else handler(link, frame)

    def stop(self) -> None:
        """Begin the orderly shutdown; :meth:`serve` returns when it is done."""
        self._stop.set()

    async def serve(self, *, task_status: TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run until :meth:`stop` (or cancellation); reports the link address once ``READY``."""
        async with self.hub:
            self.address = await self.hub.listen(self.host, self.port)
            if self.registry is not None:
                self.info = ServerInfo(
                    role=self.role,
                    server_id=self.identity.server_id,
                    name=self.identity.name,
                    domain=self.identity.domain,
                    host=self.address[0],
                    port=self.address[1],
                )
                await self.registry.register(self.info)
            async with anyio.create_task_group() as tg:
                for runner in self._runners:
                    await tg.start(runner)
                self.hub.mark_ready()
                await self._set_state(ServerState.READY)
                task_status.started(self.address)
                try:
                    await self._stop.wait()
                finally:
                    with anyio.CancelScope(shield=True):
                        await self._shutdown()
                    tg.cancel_scope.cancel()

    async def _set_state(self, state: ServerState) -> None:
        if self.registry is None or self.info is None:
            return
        try:
            with anyio.fail_after(self.drain_timeout):
                self.info = await self.registry.set_state(self.info.key, state)
        except (RegistryError, TimeoutError) as exc:
            log.warning(
                "%s %d: registry state %s not set: %r", self.role, self.identity.server_id, state, exc
            )

    async def _shutdown(self) -> None:
        """deregister → not-ready → drain (acks, then idle) → close."""
        await self._set_state(ServerState.NOT_READY)
        key = self.info.key if self.info is not None else None
        report = await self.hub.deregister(
            self.registry if key is not None else None,
            key=key,
            idle=self._idle,
            drain_timeout=self.drain_timeout,
        )
        log.info("%s %d drained: %s", self.role, self.identity.server_id, report)
