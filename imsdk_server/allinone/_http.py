"""One HTTP listener for several services: a path dispatcher, ``/metrics``, ``/healthz`` and a uvicorn runner.

The auth server, the access manager and the media service each ship their own Starlette application, and the
client SDK talks to all of them through one base URL. :class:`PathDispatch` hands each request to the
application that owns its path (the longest matching prefix wins) so that every application keeps its own
routes, error bodies and middleware. The runner binds the socket first with :func:`bind_socket` (a port in
use is an ``OSError`` before anything starts) and :func:`serve_http` serves it through the suite's one
uvicorn runner (``imsdk_server._asgi``), without uvicorn's own signal handlers: the process' runner owns
SIGINT/SIGTERM and stops servers in its own order.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from imsdk_server._asgi import ASGIApp, Receive, Scope, Send, bind_socket, serve_asgi
from imsdk_server.metrics import Metrics

__all__ = ["ASGIApp", "PathDispatch", "bind_socket", "health_app", "metrics_app", "serve_http"]

log = logging.getLogger("imsdk_server.allinone")

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


async def serve_http(
    app: ASGIApp,
    sock: socket.socket,
    *,
    task_status: anyio.abc.TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on the bound ``sock`` until cancelled; then let open requests finish (up to
    :data:`GRACE` seconds) and close. Reports the bound address once connections are accepted. The socket
    is closed when this returns."""
    await serve_asgi(app, sock, grace=GRACE, task_status=task_status)
