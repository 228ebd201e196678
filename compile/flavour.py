"""Which torch a build env holds, the CPU or the CUDA build, decided from its installed metadata (no
import of torch), and checked against the flavour the build asked for.

The CUDA build of torch requires its CUDA libraries as distributions (``nvidia-cublas``,
``nvidia-cudnn-cu13``, ``cuda-toolkit``...); the CPU build (``2.13.0+cpu``, or PyPI's on macOS and
Windows) requires none. Pip decides which one a ``torch==2.13.0`` pin gets from where it looks first,
so a build that silently shipped the other flavour would be easy to make and hard to notice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from compile.errors import BuildEnvError

CUDA_REQUIREMENT_PREFIXES = ("nvidia-", "cuda-")


def torch_flavour(facts: Mapping[str, Any]) -> str | None:
    """``cuda``, ``cpu``, or None without torch, from the env's distributions (:mod:`compile.probe`)."""
    torch = facts["distributions"].get("torch")
    if torch is None:
        return None
    cuda = any(name.startswith(CUDA_REQUIREMENT_PREFIXES) for name in torch["requires"])
    return "cuda" if cuda else "cpu"


def cuda_distributions(facts: Mapping[str, Any]) -> dict[str, str]:
    """The CUDA libraries' distributions installed, name → version."""
    return {name: info["version"] for name, info in sorted(facts["distributions"].items())
            if name.startswith(CUDA_REQUIREMENT_PREFIXES) or name == "triton"}


def check_flavour(wanted: str, facts: Mapping[str, Any], where: str) -> str:
    """The torch version, when the env holds the flavour ``wanted``; BuildEnvError saying what it holds
    and how to get the other one otherwise."""
    found = torch_flavour(facts)
    version = facts["distributions"].get("torch", {}).get("version")
    if found == wanted:
        return str(version)
    if found is None:
        raise BuildEnvError(f"{where} has no torch", hint="add torch to [project].dependencies")
    if wanted == "cuda":
        raise BuildEnvError(
            f"{where} holds torch {version}, a CPU build, where the CUDA flavour was asked for",
            hint="the isolated build env installs it from cuda-index-url; with --no-isolation, install the CUDA "
                 "build yourself (pip --isolated install torch==<pin>)")
    raise BuildEnvError(
        f"{where} holds torch {version} with its CUDA libraries, where the CPU flavour was asked for",
        hint="build with --torch cuda, or install the CPU build (pip install torch==<pin> "
             "--index-url https://download.pytorch.org/whl/cpu)")
