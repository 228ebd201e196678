"""The one place that makes torch / transformers / peft importable, called before their first import.

From source they are ordinary installed packages. A Nuitka build keeps them out of the compiled
binary and ships them in a *sidecar* folder (see ``runtime_paths.sidecar_dirs``); appending that folder
to ``sys.path`` here, on first use, keeps startup free of them.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from backend.runtime_paths import current_layout

_lock = threading.Lock()
_prepared: list[Path] | None = None


def prepare_ml_imports() -> list[Path]:
    """Add existing sidecar folders to ``sys.path`` once; returns the folders added."""
    global _prepared
    with _lock:
        if _prepared is None:
            added = []
            for folder in current_layout().sidecars:
                if folder.is_dir() and str(folder) not in sys.path:
                    sys.path.append(str(folder))
                    added.append(folder)
            # Never reach for a model hub: every model is a local folder.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            _prepared = added
        return list(_prepared)
