"""Machine and runtime facts for ``/api/system``; the first call imports torch (for its version and CUDA)."""

from __future__ import annotations

import os
import platform
import sys
import threading
from dataclasses import asdict
from typing import Any

import psutil

from backend import __version__, memory_release
from backend.runtime_paths import RuntimeLayout
from backend.services import ml_runtime

_ml_lock = threading.Lock()


def ml_stack_info() -> dict[str, Any]:
    with _ml_lock:
        import peft
        import torch
        import transformers

        from backend.services.devices import choose_device, choose_dtype, device_facts, device_reason

        facts = device_facts()
        device = choose_device("auto", facts)
        return {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "cuda_available": facts.cuda,
            "cuda_devices": facts.cuda_devices,
            "cuda_name": facts.cuda_name,
            "torch_cuda": facts.torch_cuda,
            "mps_available": facts.mps,
            "device": device,
            "device_reason": device_reason("auto", device, facts),
            "dtype": choose_dtype("auto", device, facts),
            "torch_threads": torch.get_num_threads(),
            "loaded_from": str(os.path.dirname(torch.__file__)),
            "sidecar_paths": [str(path) for path in ml_runtime.installed],
        }


def system_info(layout: RuntimeLayout, data_dir: str) -> dict[str, Any]:
    memory = psutil.virtual_memory()
    return {
        "version": __version__,
        "mode": layout.mode.name,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": psutil.cpu_count(logical=True),
        "cpu_physical": psutil.cpu_count(logical=False),
        "memory_total_bytes": memory.total,
        "memory_available_bytes": memory.available,
        "data_dir": data_dir,
        "resources_dir": str(layout.resources),
        "ml": ml_stack_info(),
    }


def process_info() -> dict[str, Any]:
    """This server process as the OS sees it: memory (PSS where the OS has it), threads, what startup
    released, and the modules loaded (which differ between source and the builds)."""
    process = psutil.Process()
    with process.oneshot():
        try:
            memory = process.memory_full_info()
        except psutil.AccessDenied:
            memory = process.memory_info()
        threads = process.num_threads()
    released = memory_release.last_release
    return {
        "pid": process.pid,
        "threads": threads,
        "memory_bytes": {key: getattr(memory, key) for key in ("rss", "pss", "uss") if hasattr(memory, key)},
        "startup_release": asdict(released) if released else None,
        "python_allocated_blocks": sys.getallocatedblocks(),
        "modules": sorted(sys.modules),
        "sidecar": {"on_path": [str(path) for path in ml_runtime.installed],
                    "modules_loaded": len(ml_runtime.sidecar_modules())},
    }
