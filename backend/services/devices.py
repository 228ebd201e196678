"""Which device and dtype a job or a generation runs on: pure choices from what the machine can do.

:func:`device_facts` asks torch (it is only called where torch is loaded anyway: the training worker,
the generation path and the model probe); :func:`choose_device` and :func:`choose_dtype` are pure, so
every rule is tested for machines this one is not (``tests/unit/test_devices.py``).

- ``auto`` device: CUDA, then Apple MPS, then the CPU. Asking for a device the machine lacks is an
  error naming the ones it has.
- ``auto`` dtype: bfloat16 where the device computes in it natively (CUDA with compute capability 8 or
  newer; MPS on macOS 14 or newer), else float32. The CPU stays in float32: bfloat16 on a CPU without
  AMX is several times slower. An explicit dtype the device cannot use is refused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from backend.errors import Conflict


@dataclass(frozen=True, kw_only=True)
class DeviceFacts:
    cuda: bool = False
    cuda_devices: int = 0
    cuda_name: str | None = None
    cuda_bf16: bool = False
    cuda_memory_bytes: int | None = None
    mps: bool = False
    mps_bf16: bool = False
    torch_cuda: str | None = None  # the CUDA version torch was built for (None: a CPU build)

    def available(self) -> list[str]:
        return [name for name, present in (("cuda", self.cuda), ("mps", self.mps), ("cpu", True)) if present]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeviceFacts:
        return cls(**{key: value for key, value in data.items() if key in cls.__dataclass_fields__})


class DeviceUnavailable(Conflict):
    code = "device_unavailable"


def device_facts() -> DeviceFacts:
    """What this machine's torch can run on (imports torch)."""
    import torch

    cuda = bool(torch.cuda.is_available())
    mps_backend = getattr(torch.backends, "mps", None)
    mps = bool(mps_backend is not None and mps_backend.is_available())
    return DeviceFacts(
        cuda=cuda,
        cuda_devices=torch.cuda.device_count() if cuda else 0,
        cuda_name=torch.cuda.get_device_name(0) if cuda else None,
        cuda_bf16=bool(cuda and torch.cuda.is_bf16_supported()),
        cuda_memory_bytes=int(torch.cuda.get_device_properties(0).total_memory) if cuda else None,
        mps=mps,
        mps_bf16=bool(mps and mps_backend is not None and hasattr(mps_backend, "is_macos_or_newer")
                      and mps_backend.is_macos_or_newer(14, 0)),
        torch_cuda=getattr(torch.version, "cuda", None),
    )


def choose_device(requested: str, facts: DeviceFacts) -> str:
    if requested == "auto":
        return facts.available()[0]
    if requested not in facts.available():
        what = ("this build's torch has no CUDA support (a CPU build); install the CUDA build"
                if requested == "cuda" and facts.torch_cuda is None else "this machine does not have it")
        raise DeviceUnavailable(f"device {requested!r} is not available: {what}; use one of "
                                f"{', '.join(['auto', *facts.available()])}", field="device",
                                allowed=["auto", *facts.available()])
    return requested


def device_reason(requested: str, device: str, facts: DeviceFacts) -> str:
    """Why ``device`` runs the work, in a sentence a user reads in /api/system and in a job: above all
    why a GPU is not used when the build could use one."""
    if requested != "auto":
        return f"{device}: asked for"
    if device != "cpu":
        name = f" ({facts.cuda_name})" if device == "cuda" and facts.cuda_name else ""
        return f"{device}{name}: the first available of cuda, mps, cpu"
    if facts.torch_cuda is None:
        return "cpu: this build's torch has no CUDA support (the CPU build), and no MPS device is available"
    return (f"cpu: this build's torch supports CUDA {facts.torch_cuda}, but no CUDA device is available "
            "(no NVIDIA GPU, or no driver for it)")


def choose_dtype(requested: str, device: str, facts: DeviceFacts) -> str:
    bf16 = {"cuda": facts.cuda_bf16, "mps": facts.mps_bf16, "cpu": True}[device]
    if requested == "auto":
        return "bfloat16" if bf16 and device != "cpu" else "float32"
    if requested == "bfloat16" and not bf16:
        raise DeviceUnavailable(f"dtype bfloat16 is not supported on this {device}: use float32 or auto",
                                field="dtype", allowed=["auto", "float32", "float16"])
    return requested
