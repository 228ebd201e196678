"""peft-engine backend: a local FastAPI service that fine-tunes causal LMs with LoRA.

Importing this package, or any module in it, changes nothing global: process setup (the ML sidecar on
``sys.path``, the ML libraries offline, pydantic's v1 layer out of reach) is done by the entry points,
the server's :func:`backend.main.main` and the training worker's :func:`backend.services.worker.worker_main`,
through :func:`backend.bootstrap.prepare_process`. torch, transformers and peft are imported inside the
service functions that need them, never at import or startup.
"""

__version__ = "0.1.0"
