"""The access manager's HTTP API, a Starlette application over an :class:`AccessManager`.

``GET /v1/access-points`` (bearer token) answers the ranked access points; ``GET /v1/access-servers`` is the
ops view (admin key, or a user token when no admin key is configured); ``GET /healthz`` is for load balancers.
Every error has the body ``{"error": {"code": <wire code>, "name": <code name>, "message": <text>}}``.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from imsdk_proto.codes import ErrorCode
from imsdk_server.access_manager._errors import (
    AccessManagerError,
    AdminKeyRejected,
    BadAccessRequest,
    NoAccessPoints,
    TokenRejected,
)
from imsdk_server.access_manager._service import AccessManager

__all__ = ["MAX_PARAM_LENGTH", "create_access_manager_app"]

log = logging.getLogger(__name__)

#: Longest region or ISP accepted in a query.
MAX_PARAM_LENGTH = 64
_MAX_TOKEN_LENGTH = 4096


def _error_response(
    code: ErrorCode, message: str, status: int, headers: dict[str, str] | None = None
) -> Response:
    body = {"error": {"code": int(code), "name": code.name, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise TokenRejected("missing bearer token")
    if len(token) > _MAX_TOKEN_LENGTH:
        raise TokenRejected("invalid token")
    return token


def _param(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    if len(value) > MAX_PARAM_LENGTH:
        raise BadAccessRequest(f"{name} is longer than {MAX_PARAM_LENGTH} characters")
    return value.strip() or None


def create_access_manager_app(manager: AccessManager) -> Starlette:
    """The Starlette app serving ``manager``."""
    config = manager.config
    metrics = manager.metrics

    def instrumented(
        route: str, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        latency = metrics.histogram("request_seconds", route=route)

        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            try:
                response = await handler(request)
            except AccessManagerError as exc:
                headers = (
                    {"Retry-After": str(config.retry_after)} if isinstance(exc, NoAccessPoints) else None
                )
                response = _error_response(exc.code, exc.message, exc.http_status, headers)
            except Exception:
                log.exception("access manager: %s failed", route)
                response = _error_response(ErrorCode.INTERNAL, "internal error", 500)
            metrics.counter("requests", route=route, status=response.status_code).inc()
            latency.observe(time.perf_counter() - started)
            return response

        return endpoint

    async def access_points(request: Request) -> Response:
        await manager.verifier.verify(_bearer(request))
        region, isp = _param(request, "region"), _param(request, "isp")
        chosen = manager.access_points(region, isp)
        return JSONResponse(
            {
                "access_points": [
                    {
                        "host": s.host,
                        "port": s.port,
                        "server_id": s.server_id,
                        "region": s.region,
                        "isp": s.isp,
                    }
                    for s in chosen
                ],
                "ttl": config.ttl,
            },
            headers={"Cache-Control": "no-store"},
        )

    async def access_servers(request: Request) -> Response:
        if config.admin_key:
            given = request.headers.get("x-admin-key", "")
            if not hmac.compare_digest(given.encode(), config.admin_key.encode()):
                raise AdminKeyRejected("admin key required")
        else:
            await manager.verifier.verify(_bearer(request))
        servers: list[dict[str, Any]] = [
            {
                "server_id": row.status.server_id,
                "name": row.status.name,
                "host": row.status.host,
                "port": row.status.port,
                "region": row.status.region,
                "isp": row.status.isp,
                "connections": row.status.connections,
                "capacity": row.status.capacity or config.capacity,
                "send_queue_depth": row.status.send_queue_depth,
                "cpu": row.status.cpu,
                "load": round(row.load, 4),
                "age": round(row.age, 3),
                "registered": row.registered,
                "available": row.available,
            }
            for row in manager.rows()
        ]
        return JSONResponse(
            {"servers": servers, "registered": sorted(manager.table.registered())},
            headers={"Cache-Control": "no-store"},
        )

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "servers": len(manager.table.available(manager.now()))})

    return Starlette(
        routes=[
            Route("/v1/access-points", instrumented("access_points", access_points), methods=["GET"]),
            Route("/v1/access-servers", instrumented("access_servers", access_servers), methods=["GET"]),
            Route("/healthz", instrumented("healthz", healthz), methods=["GET"]),
        ]
    )
