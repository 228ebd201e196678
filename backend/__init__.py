"""peft-engine backend: a local FastAPI service that fine-tunes causal LMs with LoRA.

Importing this package is cheap by design: torch, transformers and peft are imported inside the
service functions that need them, never at import or startup.
"""

import sys

__version__ = "0.1.0"

# FastAPI probes every route's types for pydantic v1 models with `from pydantic import v1`, which
# imports the whole v1 compatibility layer (~40 ms of startup). The backend has no v1 models and the
# Nuitka build leaves pydantic.v1 out (exclude-modules), where that import fails; making it fail here
# too keeps every mode behaving, and starting, the same.
sys.modules.setdefault("pydantic.v1", None)  # type: ignore[arg-type]

# Before any other backend code runs, in the server and in every worker: the ML sidecar on sys.path,
# the ML libraries offline (backend/bootstrap.py).
from backend.bootstrap import prepare_process  # noqa: E402

prepare_process()
