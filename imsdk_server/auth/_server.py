"""Running the auth service: uvicorn on a socket we bind ourselves, beside the service's background work."""

from __future__ import annotations

import logging
import socket

import anyio
import uvicorn
from anyio.abc import TaskStatus

from imsdk_server.auth._app import create_auth_app
from imsdk_server.auth._config import AuthConfig
from imsdk_server.auth._service import AuthService
from imsdk_server.metrics import Metrics

__all__ = ["serve_auth", "serve_auth_service"]

log = logging.getLogger("imsdk_server.auth")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def serve_auth_service(
    service: AuthService,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    task_status: TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``service`` over HTTP on ``host:port`` until cancelled, then shut down gracefully.

    Reports the bound ``(host, port)`` through ``task_status`` once uvicorn accepts connections (``port=0``
    picks a free port). Runs on anyio's asyncio backend.
    """
    sock = _bind(host, port)
    bound = sock.getsockname()
    address = (str(bound[0]), int(bound[1]))
    app = create_auth_app(service)
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=5,
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)

    async def run_uvicorn() -> None:
        # Shielded: cancellation stops uvicorn through should_exit, so it closes its sockets and connections.
        with anyio.CancelScope(shield=True):
            await server.serve(sockets=[sock])

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_uvicorn)
            await tg.start(service.run_background)
            try:
                while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
                    await anyio.sleep(0.005)
                log.info("auth server listening on http://%s:%d", *address)
                task_status.started(address)
                await anyio.sleep_forever()
            finally:
                server.should_exit = True
                tg.cancel_scope.cancel()
    finally:
        sock.close()


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
