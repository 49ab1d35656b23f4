"""Serving an ASGI application on uvicorn, the one way every HTTP service of the suite does it.

:func:`serve_asgi` binds the listening socket first (a port in use is an ``OSError`` naming the address before
anything starts, and ``port=0`` yields the real port), reports the bound address once uvicorn accepts
connections, serves until cancelled and then stops in order:

1. ``should_exit``: uvicorn stops accepting, closes idle keep-alive connections and lets requests in flight
   finish, for up to ``grace`` seconds (rounded up to whole seconds, uvicorn's unit); it then cancels the
   requests still running;
2. if uvicorn has not returned a little after that, ``force_exit`` stops its waiting loops;
3. if even that does not end it, its task is cancelled outright.

The socket is closed and no task is left behind when :func:`serve_asgi` returns, whatever the path out.
uvicorn installs no signal handlers here: stopping is the decision of whoever runs the process (``imsdk
serve`` listens for SIGINT/SIGTERM itself and cancels its servers in its own order). uvicorn runs on
asyncio only, so this needs anyio's asyncio backend (uvloop included).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
from collections.abc import Awaitable, Callable, Generator, MutableMapping
from typing import Any

import anyio
import anyio.abc
import uvicorn

__all__ = ["ASGIApp", "bind_socket", "serve_asgi"]

log = logging.getLogger("imsdk_server.http")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Extra time, past uvicorn's own grace, before each harder step of the stop: uvicorn notices
#: ``should_exit`` on a 0.1 s tick and waits 0.1 s more before draining.
_SLACK = 2.0


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
    """uvicorn without its signal handlers, and with an event for "accepting connections".

    uvicorn's handlers replace the process' own with ``signal.signal`` and put back what they found when the
    server stops; two servers stopping out of order leave a dead server's handler installed.
    """

    def __init__(self, config: uvicorn.Config, started: anyio.Event) -> None:
        super().__init__(config)
        self._started_event = started

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._started_event.set()


async def serve_asgi(
    app: ASGIApp,
    where: socket.socket | tuple[str, int],
    *,
    task_status: anyio.abc.TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED,
    grace: float = 5.0,
    log_level: str | int | None = None,
    timeout_keep_alive: int = 30,
) -> None:
    """Serve ``app`` over HTTP until cancelled, then stop gracefully (see the module's docstring).

    ``where`` is a ``(host, port)`` to bind (``port=0`` picks a free port) or a listening socket from
    :func:`bind_socket`, which this function then owns and closes. Reports the bound ``(host, port)``
    through ``task_status`` once uvicorn accepts connections. Returns early only if uvicorn stops on its own.
    ``log_level`` sets the level of uvicorn's loggers (``None`` leaves them to the process' logging setup);
    ``timeout_keep_alive`` is how long, in seconds, an idle keep-alive connection stays open.
    """
    owned = where if isinstance(where, socket.socket) else None
    try:
        _require_asyncio()
        if grace < 0:
            raise ValueError(f"grace must not be negative, got {grace}")
        sock = where if isinstance(where, socket.socket) else bind_socket(*where)
        owned = sock
        host, port = sock.getsockname()[:2]
        address = (str(host), int(port))
        started = anyio.Event()
        done = anyio.Event()
        server = _Server(
            uvicorn.Config(
                app,
                lifespan="off",
                log_config=None,
                log_level=log_level,
                access_log=False,
                server_header=False,
                timeout_graceful_shutdown=math.ceil(grace),
                timeout_keep_alive=timeout_keep_alive,
            ),
            started,
        )
        # Cancelled only as the last resort of a stop; shielded from everything else, so that a cancellation
        # of the caller turns into an orderly should_exit instead of tearing uvicorn down mid-request.
        uvicorn_scope = anyio.CancelScope(shield=True)

        async def run() -> None:
            try:
                with uvicorn_scope:
                    await server.serve(sockets=[sock])
            finally:
                done.set()
                started.set()  # wakes the starting side if uvicorn gave up before accepting

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            try:
                await started.wait()
                if not server.started:
                    raise OSError(f"the HTTP server on {_show(*address)} stopped while starting")
                log.debug("HTTP listening on http://%s", _show(*address))
                task_status.started(address)
                await done.wait()
            finally:
                with anyio.CancelScope(shield=True):
                    await _stop(server, done, uvicorn_scope, math.ceil(grace))
    finally:
        if owned is not None:
            owned.close()


async def _stop(server: uvicorn.Server, done: anyio.Event, scope: anyio.CancelScope, grace: int) -> None:
    """should_exit, then force_exit, then cancellation, each after uvicorn had its time to finish."""
    server.should_exit = True
    with anyio.move_on_after(grace + _SLACK):
        await done.wait()
    if done.is_set():
        return
    log.warning("HTTP server still stopping after %d s: forcing it", grace)
    server.force_exit = True
    with anyio.move_on_after(_SLACK):
        await done.wait()
    if not done.is_set():
        scope.cancel()
        await done.wait()


def _require_asyncio() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError("serving HTTP with uvicorn needs anyio's asyncio backend") from None
