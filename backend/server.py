"""The uvicorn server of the backend: prints the ready line once the socket accepts connections,
settles shortly after, and turns every stop request (a signal, ``POST /api/shutdown``, the parent's
death) into one graceful stop that exits 0."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
from pathlib import Path
from typing import Any

import uvicorn

from backend import __version__
from backend.app import create_app, warm_request, warm_routes
from backend.connections import close_idle, connection_cap, guarded_protocol, raise_descriptor_limit
from backend.memory_release import release_startup_memory
from backend.runtime_paths import RuntimeLayout
from backend.services.lifecycle import Lifecycle
from backend.settings import Settings

log = logging.getLogger("backend")

SETTLE_AFTER_READY_S = 0.3


def ready_line(*, port: int, version: str, mode: str, token: str) -> str:
    return json.dumps(
        {"event": "ready", "port": port, "pid": os.getpid(), "version": version, "mode": mode, "token": token},
        separators=(",", ":"),
    )


class BackendServer(uvicorn.Server):
    def __init__(self, settings: Settings, layout: RuntimeLayout, lifecycle: Lifecycle, port: int,
                 log_file: Path | None):
        self.settings, self.layout, self.lifecycle = settings, layout, lifecycle
        self.port, self.log_file = port, log_file
        self.app = create_app(settings, layout=layout, lifecycle=lifecycle)
        self.descriptor_limit = raise_descriptor_limit()
        self.max_connections = connection_cap(self.descriptor_limit, settings.max_connections)
        super().__init__(uvicorn.Config(
            self.app, log_config=None, log_level=settings.log_level, lifespan="on",
            # a factory, not a class: uvicorn only calls it (backend.connections.guarded_protocol)
            http=guarded_protocol(self.max_connections),  # type: ignore[arg-type]
            loop="asyncio", ws="none", timeout_graceful_shutdown=1,
            timeout_keep_alive=min(5, int(settings.idle_timeout_s)), access_log=settings.log_level == "debug",
        ))
        self._background: set[asyncio.Future[None]] = set()  # a strong reference until done
        lifecycle.on_shutdown_request(self.stop)

    def stop(self) -> None:
        self.should_exit = True

    def handle_exit(self, sig: int, frame: Any) -> None:
        # A signal asks for the same graceful stop as POST /api/shutdown, and the process then exits 0
        # like it. (uvicorn's own handler re-raises the signal once it has shut down, so the process
        # would die by it: -15 for SIGTERM.) A second Ctrl-C forces the exit.
        self.lifecycle.request_shutdown(f"signal {sig}")
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.started or self.should_exit:
            return
        settings, mode = self.settings, self.layout.mode.name
        print(ready_line(port=self.port, version=__version__, mode=mode, token=settings.token), flush=True)
        if settings.exit_after_ready:  # measuring startup: nothing after the ready line counts
            os._exit(0)
        log.info("ready on http://%s:%d (%s, pid %d, log %s; at most %d connections, descriptor limit %s)",
                 settings.host, self.port, mode, os.getpid(), self.log_file, self.max_connections,
                 self.descriptor_limit)
        asyncio.get_running_loop().call_later(SETTLE_AFTER_READY_S, self._start_settling)

    def _start_settling(self) -> None:
        task = asyncio.ensure_future(self._settle())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def on_tick(self, counter: int) -> bool:
        """uvicorn's 0.1 s tick: once a second, close the connections idle for longer than the timeout."""
        if counter % 10 == 0 and self.server_state.connections:
            close_idle(self.server_state.connections, self.settings.idle_timeout_s)
        return await super().on_tick(counter)

    async def _settle(self) -> None:
        """Off the startup path: build what the first requests would build lazily, then give back the
        memory only startup used. Never fatal: a server that did not settle still serves."""
        try:
            status = await warm_request(self.app)
            routers = warm_routes(self.app)
            released = release_startup_memory() if self.settings.release_startup_memory else None
            log.debug("settled: warm-up request %d, %d routers built, released %s", status, routers, released)
        except Exception:
            log.exception("settling after startup failed; serving anyway")
