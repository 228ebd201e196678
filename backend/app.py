"""The FastAPI app factory and its lifespan (services are built at startup, closed at shutdown)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from backend import __version__
from backend.api.documented import complete
from backend.api.offload import make_limiters
from backend.api.router import build_router
from backend.errors import ServiceError
from backend.runtime_paths import RuntimeLayout, current_layout
from backend.security import RequestGate
from backend.services.container import Services, build_services
from backend.services.lifecycle import Lifecycle
from backend.services.resources import BundledResources
from backend.settings import Settings
from backend.storage_errors import as_insufficient_storage

log = logging.getLogger(__name__)

ServicesFactory = Callable[[Settings, RuntimeLayout, Lifecycle], Services]


def create_app(
    settings: Settings,
    *,
    layout: RuntimeLayout | None = None,
    lifecycle: Lifecycle | None = None,
    services_factory: ServicesFactory = build_services,
) -> FastAPI:
    layout = layout or current_layout()
    lifecycle = lifecycle or Lifecycle()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = services_factory(settings, layout, lifecycle)
        app.state.limiters = make_limiters()
        services.notifier.bind(asyncio.get_running_loop())
        lifecycle.on_shutdown_request(services.notifier.notify_all)  # end open event streams
        app.state.services = services
        services.jobs.recover()
        if settings.parent_pid:
            lifecycle.watch_parent(settings.parent_pid)
        try:
            yield
        finally:
            lifecycle.shutting_down.set()
            services.notifier.notify_all()
            services.close()

    app = FastAPI(
        title="peft-engine", version=__version__, lifespan=lifespan,
        description="Local LoRA fine-tuning backend. `/api/*` needs `Authorization: Bearer <token>`.",
    )
    app.state.settings = settings
    app.state.layout = layout
    app.state.lifecycle = lifecycle
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=list(settings.cors_origins), allow_credentials=False,
            allow_methods=["GET", "POST", "DELETE"], allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
        )
    # Outermost: Host, token and body size are checked before anything reads a byte of the body.
    upload_limit = int(BundledResources(layout.resources).defaults["limits"]["max_dataset_bytes"])
    app.add_middleware(RequestGate, token=lambda: settings.token, upload_limit=lambda: upload_limit)
    app.include_router(build_router())
    _install_error_handlers(app)
    _complete_openapi(app)
    return app


def _complete_openapi(app: FastAPI) -> None:
    """Generate the document on first request as FastAPI does, then complete it (backend.api.documented)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the document


async def warm_request(app: FastAPI, path: str = "/health") -> int:
    """Answer one request in process, through every middleware, the router and a threadpool endpoint:
    what a first request builds lazily (anyio's asyncio backend, FastAPI's per-endpoint context) is
    then built before the memory release, not after it. Returns the status code."""
    status = 0

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, object]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = cast(int, message["status"])

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 0), "server": ("127.0.0.1", 0),
    }
    await app(scope, receive, send)
    return status


def warm_routes(app: FastAPI) -> int:
    """Build the route table that FastAPI otherwise builds on the first request into each included
    router (signatures, dependency graphs, response fields: ~10,000 Python calls per router). Run once
    the server is ready, it takes that work off the first requests, and the memory release that follows
    drops the pages it touched. Duck-typed, so a FastAPI that builds routes eagerly makes it a no-op.
    Returns the number of routers built."""
    stack = list(app.router.routes)
    built = 0
    while stack:
        route = stack.pop()
        candidates = getattr(route, "effective_candidates", None)
        if not callable(candidates):
            continue
        stack.extend(candidates())
        low_priority = getattr(route, "effective_low_priority_routes", None)
        if callable(low_priority):
            low_priority()
        built += 1
    return built


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(app: FastAPI, scope: MutableMapping[str, object]) -> list[str]:
    """Every method some route takes at this path (Starlette's own 405 names only the first route's)."""
    return [method for method in HTTP_METHODS
            if any(route.matches({**scope, "method": method})[0] == Match.FULL for route in app.router.routes)]


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(_: Request, exc: ServiceError) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if exc.status_code == 413:  # the rest of the body is never read
            headers["Connection"] = "close"
        return JSONResponse({"error": exc.to_dict()}, status_code=exc.status_code, headers=headers or None)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors():
            location = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
            problems.append(f"{location}: {error.get('msg')}")
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "header"))
        return JSONResponse(
            {"error": {"code": "invalid_request", "message": "; ".join(problems), "field": field or None,
                       "details": [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
                                   for e in exc.errors()]}},
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Routing errors (an unknown path, a method the path does not take) in the same error format;
        a 405 lists every method the path takes in ``Allow``."""
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            allowed = allowed_methods(request.app, request.scope)
            headers["Allow"] = ", ".join(allowed)
            body = {"code": "method_not_allowed",
                    "message": f"{request.method} is not allowed on {request.url.path}; use {', '.join(allowed)}"}
        elif exc.status_code == 404:
            body = {"code": "not_found", "message": f"no route {request.url.path}; see /docs for the API"}
        elif exc.status_code == 400:  # a body FastAPI could not parse (not JSON, not UTF-8)
            body = {"code": "invalid_request", "message": f"{exc.detail}: send a JSON body encoded as UTF-8"}
        else:
            body = {"code": "http_error", "message": str(exc.detail)}
        return JSONResponse({"error": body}, status_code=exc.status_code, headers=headers)

    async def storage_or_internal(request: Request, exc: Exception) -> JSONResponse:
        """A full disk is the user's to fix: 507 saying so. Any other I/O or database error: 500."""
        full = as_insufficient_storage(exc, request.app.state.settings.data_dir)
        if full is not None:
            log.warning("%s %s: %s", request.method, request.url.path, full.message)
            return await service_error(request, full)
        return await unexpected(request, exc)

    app.add_exception_handler(OSError, storage_or_internal)
    app.add_exception_handler(sqlite3.Error, storage_or_internal)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(
            {"error": {"code": "internal", "message": f"internal error ({type(exc).__name__}); see the log"}},
            status_code=500,
        )
