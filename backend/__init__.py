"""peft-engine backend: a local FastAPI service that fine-tunes causal LMs with LoRA.

Importing this package is cheap by design: torch, transformers and peft are imported inside the
service functions that need them, never at import or startup.
"""

__version__ = "0.1.0"
