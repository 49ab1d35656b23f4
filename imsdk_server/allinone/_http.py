"""One HTTP listener for several services: a path dispatcher, ``/metrics``, ``/healthz`` and a uvicorn runner.

The auth server, the access manager and the media service each ship their own Starlette application, and the
client SDK talks to all of them through one base URL. :class:`PathDispatch` hands each request to the
application that owns its path (the longest matching prefix wins) so that every application keeps its own
routes, error bodies and middleware. :func:`serve_http` binds the socket itself (a port in use is an
``OSError`` before anything starts) and runs uvicorn without uvicorn's own signal handlers: the process'
runner owns SIGINT/SIGTERM and stops servers in its own order.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Generator, MutableMapping
from typing import Any

import anyio
import anyio.abc
import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from imsdk_server.metrics import Metrics

__all__ = ["ASGIApp", "PathDispatch", "bind_socket", "health_app", "metrics_app", "serve_http"]

log = logging.getLogger("imsdk_server.allinone")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: How long open requests may take to finish when the listener stops.
GRACE = 3.0


class PathDispatch:
    """An ASGI application that forwards each request to the application of the longest matching prefix.

    A prefix matches a path equal to it or continuing with ``/``. The path is passed on unchanged (the
    applications were written for the root). Requests no prefix matches go to ``default``.
    """

    def __init__(self, routes: dict[str, ASGIApp], default: ASGIApp) -> None:
        for prefix in routes:
            if not prefix.startswith("/") or (prefix != "/" and prefix.endswith("/")):
                raise ValueError(f"a prefix starts with '/' and does not end with one: {prefix!r}")
        self._routes = sorted(routes.items(), key=lambda kv: len(kv[0]), reverse=True)
        self._default = default

    def resolve(self, path: str) -> ASGIApp:
        """The application that serves ``path``."""
        for prefix, app in self._routes:
            if path == prefix or path.startswith(prefix + "/"):
                return app
        return self._default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # the runner starts every service itself
            message = await receive()
            while message["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
                message = await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await self.resolve(scope.get("path", "/"))(scope, receive, send)


def metrics_app(metrics: Metrics) -> ASGIApp:
    """``GET /metrics``: every series of ``metrics`` in Prometheus' text format."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response: Response
        if request.method not in ("GET", "HEAD"):
            response = PlainTextResponse("method not allowed\n", 405)
        else:
            response = PlainTextResponse(
                metrics.render_prometheus(), media_type="text/plain; version=0.0.4; charset=utf-8"
            )
        await response(scope, receive, send)

    return app


def health_app(check: Callable[[], dict[str, Any]]) -> ASGIApp:
    """``GET /healthz``: ``check()`` as JSON; 200 when its ``status`` is ``"ok"``, else 503."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = check()
        status = 200 if body.get("status") == "ok" else 503
        await JSONResponse(body, status, headers={"Cache-Control": "no-store"})(scope, receive, send)

    return app


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening, non-blocking TCP socket on ``host:port``; otherwise an ``OSError`` (same ``errno``) whose
    message names the address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        reason = (os.strerror(exc.errno) if exc.errno else str(exc)).lower()
        raise OSError(exc.errno, f"cannot listen on {_show(host, port)}: {reason}") from None
    return sock


def _show(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: stopping is the runner's decision."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def serve_http(
    app: ASGIApp,
    sock: socket.socket,
    *,
    task_status: anyio.abc.TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on the bound ``sock`` until cancelled; then let open requests finish (up to
    :data:`GRACE` seconds) and close. Reports the bound address once connections are accepted. The socket
    is closed when this returns."""
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=int(GRACE),
        timeout_keep_alive=30,
    )
    server = _Server(config)
    done = anyio.Event()

    async def run() -> None:
        try:
            # Shielded: cancellation asks uvicorn to stop (should_exit) so it closes connections properly.
            with anyio.CancelScope(shield=True):
                await server.serve(sockets=[sock])
        finally:
            done.set()

    host, port = sock.getsockname()[:2]
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            try:
                while not server.started and not done.is_set():  # noqa: ASYNC110 - uvicorn has no event
                    await anyio.sleep(0.005)
                if done.is_set():
                    raise OSError(f"the HTTP server on {host}:{port} stopped while starting")
                task_status.started((str(host), int(port)))
                await done.wait()
            finally:
                server.should_exit = True
                with anyio.CancelScope(shield=True):
                    with anyio.move_on_after(GRACE * 2):
                        await done.wait()
                    if not done.is_set():  # pragma: no cover - uvicorn ignored should_exit
                        server.force_exit = True
                        await done.wait()
    finally:
        sock.close()
