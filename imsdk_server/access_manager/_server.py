"""Running an access manager: the service's loops plus its HTTP API on uvicorn (asyncio backend)."""

from __future__ import annotations

import socket

import anyio
import anyio.abc
import uvicorn

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


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


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
    """Run an access manager until cancelled (or until uvicorn stops on SIGINT/SIGTERM).

    Binds ``config.host:config.port`` first, so the address reported through ``task_status`` (the bound port
    when ``config.port`` is 0) accepts connections at once. Consumes load reports from ``queue``, follows the
    ``access`` role in ``registry`` when given, and checks bearer tokens with ``verifier`` (for v2 tokens:
    ``LocalBearerVerifier(imsdk_server.auth.TokenVerifier(key_ring))``). Needs anyio's asyncio backend.
    """
    manager = AccessManager(
        config, queue=queue, verifier=verifier, registry=registry, metrics=metrics, rng=rng
    )
    app = create_access_manager_app(manager)
    sock = _bind(config.host, config.port)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=int(_GRACE),
        )
    )
    http_done = anyio.Event()
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(manager.run)

            async def serve_http() -> None:
                try:
                    # Shielded: on cancellation uvicorn is asked to stop (below) and shuts down gracefully.
                    with anyio.CancelScope(shield=True):
                        await server.serve(sockets=[sock])
                finally:
                    http_done.set()
                    tg.cancel_scope.cancel()  # uvicorn stopped on a signal: stop the manager too

            tg.start_soon(serve_http)
            host, port = sock.getsockname()[:2]
            task_status.started(HostPort(host, port))
            try:
                await http_done.wait()
            finally:
                server.should_exit = True
                with anyio.CancelScope(shield=True):
                    with anyio.move_on_after(_GRACE * 2):
                        await http_done.wait()
                    if not http_done.is_set():  # pragma: no cover - uvicorn ignored should_exit
                        server.force_exit = True
                        await http_done.wait()
    finally:
        sock.close()
