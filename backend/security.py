"""The gate every request passes before any of its body is read: Host, bearer token, body size.

It is plain ASGI middleware, outside FastAPI, so an untrusted request costs nothing before it is
refused: no body is read, parsed or buffered until the request is known to come from the app.

1. **Host** (every route): the Host header must name loopback. A page on evil.example that rebinds its
   DNS name to 127.0.0.1 still sends ``Host: evil.example``: 400.
2. **Token** (``/api/*``): ``Authorization: Bearer <token>``, compared in constant time: 401 with
   ``WWW-Authenticate: Bearer``.
3. **Body size** (every route): a declared ``Content-Length`` over the route's cap (:data:`BODY_LIMITS`)
   is refused at once (413); a body without a length is counted as it is read and refused at the cap.

A refusal never parses or keeps any of the body. Its status goes out first; then, so that a client
still sending can read it (most clients read the answer only once their body is sent), the rest of the
body is read and thrown away as it arrives, up to :data:`DRAIN_LIMIT` bytes or :data:`DRAIN_SECONDS`,
and the connection is closed (``Connection: close``). Memory stays at one network read per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Callable, MutableMapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.errors import PayloadTooLarge, ServiceError

ALLOWED_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_BODY_LIMIT = 64 << 10
DRAIN_LIMIT = 256 << 20  # a refused body beyond this is cut (the client may then see a reset, not the answer)
DRAIN_SECONDS = 10.0
# (method, path prefix) -> the most bytes a body may have; the first that matches wins. Dataset uploads
# stream against their own limit (defaults.json), passed in by the app.
BODY_LIMITS: tuple[tuple[str, str, int], ...] = (
    ("POST", "/api/generate", 2 << 20),  # a conversation of several turns
    ("POST", "/api/system/bundle-files", 1 << 20),
    ("POST", "/api/jobs", 64 << 10),
    ("POST", "/api/models", 64 << 10),
)


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


def token_matches(header: str | None, expected: str) -> bool:
    if not header:
        return False
    scheme, _, credentials = header.strip().partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(credentials.strip().encode(), expected.encode())


def body_limit(method: str, path: str, upload_limit: int) -> int:
    if method == "POST" and path.rstrip("/") == "/api/datasets":
        return upload_limit
    for limited_method, prefix, limit in BODY_LIMITS:
        if method == limited_method and path.startswith(prefix):
            return limit
    return DEFAULT_BODY_LIMIT


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def refuse(receive: Receive, send: Send, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None, *, drain: bool = True) -> None:
    """Answer ``status`` at once, read and discard what is left of the body (bounded), then close."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    extra = [(key.lower().encode(), value.encode()) for key, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *extra]})
    if drain:
        await discard_body(receive)
    await send({"type": "http.response.body", "body": body})


async def discard_body(receive: Receive) -> None:
    seen = 0

    async def drain() -> None:
        nonlocal seen
        while seen <= DRAIN_LIMIT:
            message = await receive()
            if message["type"] != "http.request":
                return
            seen += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(drain(), DRAIN_SECONDS)


class RequestGate:
    def __init__(self, app: ASGIApp, *, token: Callable[[], str], upload_limit: Callable[[], int]):
        self.app = app
        self.token = token
        self.upload_limit = upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = _header(scope, b"host")
        if not host_allowed(host):
            await refuse(receive, send, 400, "bad_host",
                         f"Host {(host or '')[:100]!r} is not allowed; connect to 127.0.0.1, localhost or [::1]")
            return
        path, method = scope["path"], scope["method"]
        if (path == "/api" or path.startswith("/api/")) and method != "OPTIONS":
            authorization = _header(scope, b"authorization")
            if not token_matches(authorization, self.token()):
                message = ("wrong token" if authorization else
                           "missing 'Authorization: Bearer <token>' header; the token is in the ready line")
                await refuse(receive, send, 401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})
                return
        limit = body_limit(method, path, self.upload_limit())
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.strip().isdigit() or int(declared) > limit):
            drain = declared.strip().isdigit() and int(declared) <= DRAIN_LIMIT
            await refuse(receive, send, 413, "payload_too_large", f"the body is {declared.strip()[:20]} bytes; "
                         f"{method} {path[:100]} takes at most {limit} bytes", drain=drain)
            return
        await self.app(scope, counting_receive(receive, limit, f"{method} {path[:100]}"), send)


def counting_receive(receive: Receive, limit: int, what: str) -> Receive:
    """``receive`` that refuses a body beyond ``limit`` bytes as it arrives (PayloadTooLarge, answered 413
    by the app's error handler)."""
    seen = 0

    async def guarded() -> Message:
        nonlocal seen
        message: MutableMapping[str, Any] = await receive()
        if message.get("type") == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise PayloadTooLarge(f"the body of {what} is larger than {limit} bytes")
        return message

    return guarded
