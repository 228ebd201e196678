"""Command line and server loop: parse flags, bind the socket, serve, print the ready line.

Protocol with whoever spawned us (see docs/user-guide/protocol.md):
- stdout carries exactly one line, a JSON object with ``"event": "ready"``, once the app has started
  and the socket accepts connections; every log line goes to stderr and the log file;
- SIGTERM / Ctrl-C / ``POST /api/shutdown`` / death of ``--parent-pid`` stop gracefully, a running job
  checkpointed first, and the process exits without the interpreter's teardown (:func:`exit_process`).

Exit codes: 0 stopped normally (a signal, ``POST /api/shutdown`` or the parent's death), 1 could not
start (e.g. the port is taken), 2 invalid flags or settings, 3 the data dir is in use by another
server (the message names its pid), 4 the data dir's database was written by a newer version.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from backend import __version__, faults

EXIT_OK = 0
EXIT_START_FAILED = 1
EXIT_USAGE = 2
EXIT_DATA_DIR_IN_USE = 3
EXIT_DATABASE_TOO_NEW = 4
PRIVATE_UMASK = 0o077

log = logging.getLogger("backend")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="peft_engine", description="peft-engine backend: local LoRA fine-tuning over HTTP.",
        epilog="Every flag also reads PEFT_ENGINE_<NAME> from the environment (flags win).",
    )
    parser.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port; 0 picks a free one (default 0)")
    parser.add_argument("--data-dir", type=Path, help="per-user writable folder (default: platformdirs)")
    parser.add_argument("--token", help="bearer token for /api/* (default: generated; prefer the env var)")
    parser.add_argument("--parent-pid", type=int, help="exit when this process exits")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--version", action="version", version=f"peft_engine {__version__}")
    parser.add_argument("--self-check", choices=["libraries", "torch"],
                        help="check this build inside itself, print a JSON report and exit (0 passed, 1 failed, "
                             "2 nothing to check): every shared library loads, or torch imports as the "
                             "build's flavour; starts no server")
    return parser


def settings_from_args(args: argparse.Namespace) -> Any:
    from backend.settings import Settings

    given = {key: value for key, value in vars(args).items() if value is not None and key != "self_check"}
    return Settings(**given)


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    if os.name != "nt":  # on Windows SO_REUSEADDR would let two servers share the port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(False)
    return sock


def exit_process(code: int) -> NoReturn:
    """End the process with ``code`` once :func:`main` has returned.

    The graceful stop is done by then: the running job checkpointed and its worker gone, the database
    closed. What the interpreter's teardown would still do (collect every module, join torch's and
    anyio's threads, run atexit hooks of libraries) changes nothing we keep, and once torch has been
    imported it took 2.4 s, longer than a onefile's bootstrap waits before it kills its child. So the logs
    and streams are flushed and the process ends here. A thread still busy (a generation in progress) is
    named in the log; it cannot keep the process alive. Child processes (multiprocessing's resource
    tracker) end first, within a bound: whoever waited for this exit finds nothing of it left."""
    busy = sorted(thread.name for thread in threading.enumerate()
                  if thread is not threading.main_thread() and not thread.daemon and thread.is_alive())
    if busy:
        log.warning("exiting with busy threads left unfinished: %s", ", ".join(busy))
    if "multiprocessing" in sys.modules:  # a worker or probe ran: its resource tracker ends before us
        from backend.services.lifecycle import stop_children

        stop_children()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    from backend.bootstrap import prepare_process

    prepare_process()
    args = build_parser().parse_args(argv)
    if args.self_check:
        from backend.self_check import run

        return run(args.self_check)
    try:
        settings = settings_from_args(args)
        settings.check_host()
        faults.active()
    except (ValidationError, ValueError) as exc:
        print(f"peft_engine: invalid settings: {exc}", file=sys.stderr)
        return EXIT_USAGE

    if os.name == "posix":  # every file the server and its workers write is this user's alone
        os.umask(PRIVATE_UMASK)
    return serve(settings)


def serve(settings: Any) -> int:
    """Data dir, logging, socket, then the server until it stops."""
    from backend.logging_setup import configure_logging
    from backend.runtime_paths import current_layout
    from backend.server import BackendServer
    from backend.services.container import DATABASE_NAME, resolve_data_dir
    from backend.services.data_dir import DataDirInUse, claim
    from backend.services.lifecycle import Lifecycle
    from backend.services.store import DatabaseTooNew, Store

    layout = current_layout()
    try:
        data_dir = resolve_data_dir(settings, layout)
    except (OSError, ValueError) as exc:
        print(f"peft_engine: cannot use the data dir: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:  # before anything reads or writes a job: one server per data dir
        owner = claim(data_dir)
    except DataDirInUse as exc:
        print(f"peft_engine: {exc}", file=sys.stderr)
        return EXIT_DATA_DIR_IN_USE
    except OSError as exc:
        print(f"peft_engine: cannot use the data dir: {exc}", file=sys.stderr)
        return EXIT_USAGE
    settings = settings.model_copy(update={"data_dir": data_dir})
    log_file = configure_logging(settings.log_level, data_dir / "logs")
    try:  # migrate an older database now, and refuse a newer one before the server starts
        Store(data_dir / DATABASE_NAME).close()
    except DatabaseTooNew as exc:
        log.error("%s", exc)
        return EXIT_DATABASE_TOO_NEW
    try:
        sock = bind_socket(settings.host, settings.port)
    except OSError as exc:
        log.error("cannot bind %s:%s: %s; pick another --port or 0 for a free one", settings.host, settings.port, exc)
        return EXIT_START_FAILED
    lifecycle = Lifecycle()
    server = BackendServer(settings, layout, lifecycle, sock.getsockname()[1], log_file)
    server.run(sockets=[sock])
    if not server.started:
        log.error("the server did not start; see the errors above")
        return EXIT_START_FAILED
    log.info("stopped (%s)", lifecycle.reason or "server exit")
    owner.release()
    return EXIT_OK
