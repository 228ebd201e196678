"""Logs go to stderr and to a rotating file in the data dir; stdout carries only the ready line.

Both go through one :class:`backend.connections.RepeatGate`: a message repeated within 10 s is counted,
not written, so a fault that repeats (a client flooding the server) cannot fill stderr or the disk.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from backend.connections import RepeatGate

LOG_FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"
REPEAT_INTERVAL_S = 10.0


def configure_logging(level: str, log_dir: Path | None) -> Path | None:
    root = logging.getLogger()
    root.setLevel(level.upper())
    for handler in list(root.handlers):
        root.removeHandler(handler)
    formatter = logging.Formatter(LOG_FORMAT)
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(formatter)
    targets: list[logging.Handler] = [stream]
    log_file = None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        log_file = log_dir / "backend.log"
        rotating = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=5 * 1024 * 1024, backupCount=3, encoding="utf-8"
        )
        rotating.setFormatter(formatter)
        targets.append(rotating)
    root.addHandler(RepeatGate(targets, REPEAT_INTERVAL_S))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "asyncio"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("uvicorn.access").setLevel(max(root.level, logging.WARNING))
    return log_file
