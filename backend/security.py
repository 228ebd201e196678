"""Bearer-token auth for ``/api/*`` and a Host check against DNS rebinding (every route)."""

from __future__ import annotations

import json
import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from backend.errors import ServiceError

ALLOWED_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class Unauthorized(ServiceError):
    status_code = 401
    code = "unauthorized"


def host_name(host_header: str) -> str:
    """The host part of a Host header: ``[::1]:8000`` → ``::1``, ``localhost:80`` → ``localhost``."""
    value = host_header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def host_allowed(host_header: str | None) -> bool:
    return host_header is not None and host_name(host_header) in ALLOWED_HOSTS


class HostCheckMiddleware:
    """Reject requests whose Host is not loopback: a page on evil.example rebinding its DNS name to
    127.0.0.1 still sends ``Host: evil.example``."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
            if not host_allowed(host):
                body = json.dumps({"error": {
                    "code": "bad_host",
                    "message": f"Host {host!r} is not allowed; connect to 127.0.0.1, localhost or [::1]",
                }}).encode()
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                await send({"type": "http.response.start", "status": 400,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


_bearer = HTTPBearer(auto_error=False)


def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    expected: str = request.app.state.settings.token
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing 'Authorization: Bearer <token>' header; the token is in the ready line")
    if not secrets.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise Unauthorized("wrong token")
