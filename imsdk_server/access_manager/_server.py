"""Running an access manager: the service's loops plus its HTTP API on uvicorn (asyncio backend)."""

from __future__ import annotations

import anyio
import anyio.abc

from imsdk_server._asgi import bind_socket, serve_asgi
from imsdk_server.access_manager._app import create_access_manager_app
from imsdk_server.access_manager._config import AccessManagerConfig
from imsdk_server.access_manager._ranking import RandomSource
from imsdk_server.access_manager._service import AccessManager, BearerVerifier
from imsdk_server.backends.queue import Queue
from imsdk_server.backends.registry import Registry
from imsdk_server.config import HostPort
from imsdk_server.metrics import Metrics

__all__ = ["serve_access_manager"]

#: How long open HTTP requests may take to finish when the manager stops.
_GRACE = 5.0


async def serve_access_manager(
    config: AccessManagerConfig,
    *,
    queue: Queue,
    verifier: BearerVerifier,
    registry: Registry | None = None,
    metrics: Metrics | None = None,
    rng: RandomSource | None = None,
    task_status: anyio.abc.TaskStatus[HostPort] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run an access manager until cancelled; then open HTTP requests get a few seconds to finish.

    Binds ``config.host:config.port`` first (a port in use is an ``OSError`` naming the address before
    anything starts) and reports the bound address through ``task_status`` (the real port when
    ``config.port`` is 0) once HTTP requests are served. Consumes load reports from ``queue``, follows the
    ``access`` role in ``registry`` when given, and checks bearer tokens with ``verifier`` (for v2 tokens:
    ``LocalBearerVerifier(imsdk_server.auth.TokenVerifier(key_ring))``). Installs no signal handlers:
    stopping on SIGINT/SIGTERM is the process runner's job (cancel this task). Needs anyio's asyncio backend.
    """
    manager = AccessManager(
        config, queue=queue, verifier=verifier, registry=registry, metrics=metrics, rng=rng
    )
    app = create_access_manager_app(manager)
    sock = bind_socket(config.host, config.port)
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(manager.run)

            async def http(*, task_status: anyio.abc.TaskStatus[tuple[str, int]]) -> None:
                try:
                    await serve_asgi(app, sock, grace=_GRACE, log_level="warning", task_status=task_status)
                finally:
                    tg.cancel_scope.cancel()  # the HTTP side stopped: so does the manager

            host, port = await tg.start(http)
            task_status.started(HostPort(host, port))
    finally:
        sock.close()  # serve_asgi closes it too; this covers a failure before it took it over
