"""What every backend process does first: the server (:func:`backend.main.main`), every training worker
and model probe (their entry functions), from source and in every build alike. Nothing calls it on import:
importing ``backend`` changes nothing global (a tool that imports ``backend.variants`` stays untouched).

- The ML sidecar goes on ``sys.path`` (:mod:`backend.services.ml_runtime`), so no code path can reach
  an ML import before it is importable.
- The ML libraries stay offline: every model is a local folder, and nothing reaches for a hub.
- pydantic's plugin discovery is off: at the first model it scans the metadata of every distribution
  on ``sys.path`` for a ``pydantic`` entry point. The backend uses no plugin, and a plugin that
  happens to be installed beside a source checkout must not change validation. Measured (callgrind,
  spawn to ready, standalone): the scan costs 3.1 M instructions, 11.2 M once the sidecar's
  distributions are on the path.
- ``pydantic.v1`` cannot be imported. FastAPI probes every route's types for v1 models with
  ``from pydantic import v1``, which imports the whole v1 compatibility layer (~40 ms of startup). The
  backend has no v1 models and the Nuitka build leaves ``pydantic.v1`` out (``exclude-modules``), where
  that import fails; making it fail in every mode keeps every mode behaving, and starting, the same.

Variables the user set win (``setdefault``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PROCESS_ENVIRONMENT = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # transformers' "Loading weights" bars would fill the server's log
    "TOKENIZERS_PARALLELISM": "false",
    "PYDANTIC_DISABLE_PLUGINS": "__all__",
}
BLOCKED_MODULES = ("pydantic.v1",)


def prepare_process() -> tuple[Path, ...]:
    """Idempotent; returns the sidecar folders on ``sys.path``."""
    from backend.runtime_paths import current_layout
    from backend.services import ml_runtime

    for name in BLOCKED_MODULES:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None: importing it raises ImportError
    for key, value in PROCESS_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    return ml_runtime.install(current_layout().sidecars)
