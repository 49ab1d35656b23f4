"""The HTTP surface of the auth service: a Starlette application, JSON in and out, versioned paths."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from imsdk_proto.codes import ErrorCode
from imsdk_server.auth._errors import (
    AuthError,
    BodyTooLarge,
    InvalidRequest,
    Throttled,
    TokenFault,
    TokenInvalid,
    UserNotFound,
)
from imsdk_server.auth._events import Profile
from imsdk_server.auth._service import AuthService, ClientInfo, IssuedToken
from imsdk_server.auth._tokens import Claims
from imsdk_server.auth._validation import check_device, check_uid, optional_text, require_text

__all__ = ["create_auth_app"]

log = logging.getLogger("imsdk_server.auth")

Handler = Callable[[Request], Awaitable[Response]]


def error_response(
    code: ErrorCode, message: str, status: int, headers: dict[str, str] | None = None
) -> Response:
    """The one error body shape: ``{"error": {"code": <int>, "name": <code name>, "message": <text>}}``."""
    return JSONResponse(
        {"error": {"code": int(code), "name": code.name, "message": message}},
        status_code=status,
        headers=headers,
    )


def _auth_error_response(exc: AuthError) -> Response:
    headers: dict[str, str] = {}
    body: dict[str, Any] = {"code": int(exc.code), "name": exc.code.name, "message": exc.message}
    if isinstance(exc, Throttled):
        headers["Retry-After"] = str(exc.retry_after)
        body["retry_after"] = exc.retry_after
    if isinstance(exc, TokenInvalid):
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"error": body}, status_code=exc.status, headers=headers)


async def _read_json(request: Request, limit: int) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidRequest("bad Content-Length")
        if int(declared) > limit:
            raise BodyTooLarge(f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body larger than {limit} bytes")
        chunks.append(chunk)
    try:
        data = json.loads(b"".join(chunks))
    except (ValueError, RecursionError):
        raise InvalidRequest("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidRequest("body must be a JSON object")
    return data


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenInvalid(TokenFault.MALFORMED)
    return token.strip()


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _token_json(issued: IssuedToken) -> dict[str, Any]:
    c = issued.claims
    return {
        "token": issued.token,
        "token_kind": issued.kind,
        "uid": c.uid,
        "device": c.device,
        "issued_at": c.issued_at,
        "expires_at": c.expires_at,
    }


def _claims_json(claims: Claims, kind: str) -> dict[str, Any]:
    return {
        "uid": claims.uid,
        "device": claims.device,
        "issued_at": claims.issued_at,
        "expires_at": claims.expires_at,
        "token_kind": kind,
    }


def _profile_json(p: Profile) -> dict[str, Any]:
    return {
        "uid": p.uid,
        "nickname": p.nickname,
        "signature": p.signature,
        "avatar": p.avatar,
        "updated_at": p.updated_at,
    }


def create_auth_app(service: AuthService, *, max_body_bytes: int | None = None) -> Starlette:
    """The auth API over ``service`` as an ASGI application (paths in ``docs/auth.md``)."""
    limit = max_body_bytes if max_body_bytes is not None else service.config.max_body_bytes
    m_errors = service.metrics

    def endpoint(fn: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            try:
                return await fn(request)
            except AuthError as exc:
                m_errors.counter("http_errors", code=exc.code.name).inc()
                return _auth_error_response(exc)
            except Exception:
                m_errors.counter("http_errors", code=ErrorCode.INTERNAL.name).inc()
                log.exception("unexpected failure in %s %s", request.method, request.url.path)
                return error_response(ErrorCode.INTERNAL, "internal error", 500)

        return wrapped

    async def authenticated(request: Request) -> Claims:
        claims, _ = await service.verify(_bearer(request))
        return claims

    @endpoint
    async def register(request: Request) -> Response:
        body = await _read_json(request, limit)
        uid = check_uid(body.get("uid")) if "uid" in body else _missing("uid")
        password = require_text(body, "password")
        nickname = require_text(body, "nickname")
        user, profile = await service.register(uid, password, nickname, address=_client_address(request))
        return JSONResponse(
            {"uid": user.uid, "nickname": profile.nickname, "created_at": user.created_at}, 201
        )

    @endpoint
    async def login(request: Request) -> Response:
        body = await _read_json(request, limit)
        uid = check_uid(body.get("uid")) if "uid" in body else _missing("uid")
        password = require_text(body, "password")
        device = check_device(body.get("device")) if "device" in body else _missing("device")
        info = ClientInfo(
            platform=optional_text(body, "platform", "") or "",
            client_version=optional_text(body, "client_version", "") or "",
            region=optional_text(body, "region", "") or "",
            isp=optional_text(body, "isp", "") or "",
        )
        issued = await service.login(uid, password, device, info=info, address=_client_address(request))
        return JSONResponse(_token_json(issued))

    @endpoint
    async def logout(request: Request) -> Response:
        await service.logout(_bearer(request))
        return JSONResponse({"revoked": True})

    @endpoint
    async def refresh(request: Request) -> Response:
        issued = await service.refresh(_bearer(request))
        return JSONResponse(_token_json(issued))

    @endpoint
    async def verify(request: Request) -> Response:
        body = await _read_json(request, limit)
        token = body.get("token")
        if not isinstance(token, str):
            raise InvalidRequest("token must be a string")
        if len(token) > 1024:
            raise TokenInvalid(TokenFault.MALFORMED)
        uid = check_uid(body["uid"]) if body.get("uid") is not None else None
        device = check_device(body["device"]) if body.get("device") is not None else None
        claims, kind = await service.verify(token, uid=uid, device=device)
        return JSONResponse(_claims_json(claims, kind))

    @endpoint
    async def friends(request: Request) -> Response:
        claims = await authenticated(request)
        return JSONResponse({"friends": await service.list_friends(claims.uid)})

    @endpoint
    async def friend(request: Request) -> Response:
        claims = await authenticated(request)
        other = check_uid(request.path_params["uid"], "friend")
        if request.method == "PUT":
            added = await service.add_friend(claims.uid, other)
            return JSONResponse({"friend": other, "added": added})
        removed = await service.remove_friend(claims.uid, other)
        return JSONResponse({"friend": other, "removed": removed})

    @endpoint
    async def profile(request: Request) -> Response:
        claims = await authenticated(request)
        if request.method == "PATCH":
            body = await _read_json(request, limit)
            unknown = set(body) - {"nickname", "signature", "avatar"}
            if unknown:
                raise InvalidRequest("only nickname, signature and avatar can be changed")
            changed = await service.update_profile(
                claims.uid,
                nickname=optional_text(body, "nickname"),
                signature=optional_text(body, "signature"),
                avatar=optional_text(body, "avatar"),
            )
            return JSONResponse(_profile_json(changed))
        uid = request.path_params.get("uid", claims.uid)
        found = await service.get_profile(uid)
        if found is None:
            raise UserNotFound("no such user")
        return JSONResponse(_profile_json(found))

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(service.metrics.render_prometheus())

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        code = ErrorCode.NOT_FOUND if status in (404, 405) else ErrorCode.MALFORMED_BODY
        return error_response(code, "no such endpoint" if status == 404 else "method not allowed", status)

    routes = [
        Route("/v1/users", register, methods=["POST"]),
        Route("/v1/login", login, methods=["POST"]),
        Route("/v1/logout", logout, methods=["POST"]),
        Route("/v1/tokens/refresh", refresh, methods=["POST"]),
        Route("/v1/tokens/verify", verify, methods=["POST"]),
        Route("/v1/friends", friends, methods=["GET"]),
        Route("/v1/friends/{uid}", friend, methods=["PUT", "DELETE"]),
        Route("/v1/profile", profile, methods=["GET", "PATCH"]),
        Route("/v1/profile/{uid}", profile, methods=["GET"]),
        Route("/v1/health", health, methods=["GET"]),
        Route("/v1/metrics", metrics, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    app.state.auth_service = service
    return app


def _missing(field: str) -> str:
    raise InvalidRequest(f"{field} is required")
