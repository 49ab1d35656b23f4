"""Running the auth service: uvicorn on a socket we bind ourselves, beside the service's background work."""

from __future__ import annotations

import logging

import anyio
from anyio.abc import TaskStatus

from imsdk_server._asgi import bind_socket, serve_asgi
from imsdk_server.auth._app import create_auth_app
from imsdk_server.auth._config import AuthConfig
from imsdk_server.auth._service import AuthService
from imsdk_server.metrics import Metrics

__all__ = ["serve_auth", "serve_auth_service"]

log = logging.getLogger("imsdk_server.auth")

#: How long open HTTP requests may take to finish when the server stops.
_GRACE = 5.0


async def serve_auth_service(
    service: AuthService,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    task_status: TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``service`` over HTTP on ``host:port`` until cancelled, then shut down gracefully.

    Binds ``host:port`` before anything else starts (a port in use is an ``OSError`` naming the address).
    Reports the bound ``(host, port)`` through ``task_status`` once uvicorn accepts connections (``port=0``
    picks a free port). Runs on anyio's asyncio backend.
    """
    sock = bind_socket(host, port)
    try:
        app = create_auth_app(service)
        async with anyio.create_task_group() as tg:
            await tg.start(service.run_background)

            async def http(*, task_status: TaskStatus[tuple[str, int]]) -> None:
                try:
                    await serve_asgi(app, sock, grace=_GRACE, task_status=task_status)
                finally:
                    tg.cancel_scope.cancel()  # the HTTP side stopped: so does the background work

            address: tuple[str, int] = await tg.start(http)
            log.info("auth server listening on http://%s:%d", *address)
            task_status.started(address)
    finally:
        sock.close()  # serve_asgi closes it too; this covers a failure before it took it over


async def serve_auth(
    config: AuthConfig,
    *,
    metrics: Metrics | None = None,
    task_status: TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Build the service that ``config`` describes and serve it until cancelled (``imsdk serve auth``)."""
    service = await AuthService.from_config(config, metrics=metrics)
    try:
        await serve_auth_service(service, config.host, config.port, task_status=task_status)
    finally:
        with anyio.CancelScope(shield=True):
            await service.aclose()
