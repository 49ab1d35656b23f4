"""Running the media service on its own: its HTTP API on uvicorn, through the suite's one runner."""

from __future__ import annotations

import logging
from functools import partial

import anyio
from anyio.abc import TaskStatus

from imsdk_server._asgi import bind_socket, serve_asgi
from imsdk_server.media._app import MediaAuth, create_media_app
from imsdk_server.media._config import MediaConfig
from imsdk_server.media._store import LocalMediaStore, MediaStore
from imsdk_server.metrics import Metrics

__all__ = ["serve_media"]

log = logging.getLogger("imsdk_server.media")

#: How long uploads and downloads in flight may take to finish when the service stops.
_GRACE = 5.0


async def serve_media(
    config: MediaConfig,
    auth: MediaAuth,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    store: MediaStore | None = None,
    metrics: Metrics | None = None,
    task_status: TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the media API on ``host:port`` until cancelled; then transfers in flight get a few seconds.

    Blobs live in ``store`` (default: a :class:`~imsdk_server.media.LocalMediaStore` at ``config.root``);
    ``auth`` checks bearer tokens (for the auth server's v2 tokens:
    ``TokenAuth(imsdk_server.auth.TokenVerifier(key_ring))``). Binds first, so a port in use is an
    ``OSError`` naming the address, and reports the bound ``(host, port)`` through ``task_status`` once
    uvicorn accepts connections (``port=0`` picks a free port). Needs anyio's asyncio backend.
    """
    app = create_media_app(store or LocalMediaStore(config.root), auth, config, metrics=metrics)
    sock = bind_socket(host, port)  # here, so that a port in use is a plain OSError (not in a group)
    try:
        async with anyio.create_task_group() as tg:
            address: tuple[str, int] = await tg.start(partial(serve_asgi, app, sock, grace=_GRACE))
            log.info("media server listening on http://%s:%d", *address)
            task_status.started(address)
    finally:
        sock.close()  # serve_asgi closes it too; this covers a failure before it took it over
