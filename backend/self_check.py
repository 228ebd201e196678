"""``peft_engine --self-check libraries|torch``: checks a build runs inside itself, printing one JSON
object on stdout (exit 0: passed, 1: failed, 2: nothing to check here). ``compile verify`` runs both.

- ``libraries`` (Linux): every shared library the build ships (its folder, its sidecar) is loaded, in
  dependency order, in this process, which is started from the build itself as a user's would be.
  Each library's ``NEEDED`` entries must resolve inside the build, or be one of the system libraries
  every Linux desktop has (the manylinux policy's list), or be the NVIDIA driver's (``libcuda.so.1``),
  which only a machine with an NVIDIA GPU has: a library that needs the driver on a machine without
  one is reported as such and not loaded.
- ``torch``: ``import torch`` as the server does on first use; reports the torch build, whether
  its CUDA library was loaded, and whether CUDA is available, which must be answered without an error
  or a warning on a machine without a GPU. Fails when the build's torch is not the flavour it was built
  as (``resources/torch-flavour``).

Nothing here runs unless asked for: the server never imports this module.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.elf import DynamicInfo, NotELF, is_elf, read_dynamic

EXIT_PASSED, EXIT_FAILED, EXIT_NOTHING = 0, 1, 2

# The libraries a Linux system provides to every program (PEP 599/600's manylinux policy), and the
# dynamic loader itself: a build may need them from the system.
SYSTEM_LIBRARIES = frozenset({
    "libc.so.6", "libm.so.6", "libdl.so.2", "librt.so.1", "libpthread.so.0", "libutil.so.1", "libresolv.so.2",
    "libnsl.so.1", "libgcc_s.so.1", "libstdc++.so.6", "libcrypt.so.1", "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1", "libX11.so.6", "libXext.so.6", "libXrender.so.1", "libICE.so.6", "libSM.so.6",
    "libGL.so.1", "libgobject-2.0.so.0", "libgthread-2.0.so.0", "libglib-2.0.so.0", "libz.so.1",
})
# The NVIDIA driver's user-space libraries: installed with the driver, never shipped by an application.
DRIVER_LIBRARIES = frozenset({"libcuda.so.1", "libnvidia-ml.so.1", "libnvcuvid.so.1", "libnvidia-encode.so.1",
                              "libnvidia-fatbinaryloader.so", "libnvidia-ptxjitcompiler.so.1"})
CUDA_LIBRARY_PREFIXES = ("libtorch_cuda", "libc10_cuda", "libcudart", "libcublas", "libcudnn", "libnccl",
                         "libcusparse", "libcufft", "libcurand", "libcusolver", "libnvrtc", "libnvJitLink")


@dataclass
class LibraryReport:
    libraries: int = 0
    loaded: int = 0
    needs_driver: list[str] = field(default_factory=list)  # not loadable without the NVIDIA driver here
    failed: list[dict[str, str]] = field(default_factory=list)  # the loader's own error for each
    # loads only inside the scope of a library that needs it (its undefined symbols come from that one's
    # other dependencies: libtorch_nvshmem inside libtorch_cuda), and that library loaded
    loaded_as_dependency: list[dict[str, str]] = field(default_factory=list)
    outside: list[dict[str, Any]] = field(default_factory=list)  # needs what neither the build nor the system has
    unreadable: list[dict[str, str]] = field(default_factory=list)
    system: list[str] = field(default_factory=list)  # the system libraries the build needs
    driver_present: bool = False

    @property
    def passed(self) -> bool:
        return self.libraries > 0 and not (self.failed or self.outside or self.unreadable)

    def to_dict(self) -> dict[str, Any]:
        return {"check": "libraries", "passed": self.passed, "libraries": self.libraries, "loaded": self.loaded,
                "needs_driver": self.needs_driver, "driver_present": self.driver_present, "failed": self.failed,
                "loaded_as_dependency": self.loaded_as_dependency,
                "outside": self.outside, "unreadable": self.unreadable, "system": self.system}


def shared_objects(roots: Iterable[Path]) -> Iterator[Path]:
    """Every regular ELF file under ``roots`` (links are followed only as the files they name)."""
    seen: set[Path] = set()
    for root in roots:
        for folder, _dirs, files in os.walk(root):
            for name in files:
                path = Path(folder) / name
                if path.is_symlink() or not path.is_file():
                    continue
                if ".so" not in name and not name.endswith(".pyd"):
                    continue
                real = path.resolve()
                if real not in seen and is_elf(path):
                    seen.add(real)
                    yield path


def dependency_order(infos: dict[Path, DynamicInfo]) -> list[Path]:
    """Libraries before those that need them (depth-first; a cycle is broken where it is entered)."""
    by_name: dict[str, Path] = {}
    for path, info in infos.items():
        by_name.setdefault(path.name, path)
        if info.soname:
            by_name.setdefault(info.soname, path)
    order: list[Path] = []
    state: dict[Path, int] = {}  # 1 visiting, 2 done
    for start in sorted(infos):
        stack: list[tuple[Path, Iterator[str]]] = [(start, iter(infos[start].needed))]
        if state.get(start):
            continue
        state[start] = 1
        while stack:
            path, pending = stack[-1]
            dependency = next((by_name[name] for name in pending if name in by_name), None)
            if dependency is None:
                stack.pop()
                state[path] = 2
                order.append(path)
            elif not state.get(dependency):
                state[dependency] = 1
                stack.append((dependency, iter(infos[dependency].needed)))
    return order


def driver_present() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
        return True
    except OSError:
        return False


def check_libraries(roots: Iterable[Path]) -> LibraryReport:
    report = LibraryReport()
    infos: dict[Path, DynamicInfo] = {}
    for path in shared_objects(roots):
        try:
            info = read_dynamic(path)
        except (NotELF, OSError) as exc:
            report.unreadable.append({"path": str(path), "error": str(exc)})
            continue
        if info.shared_object:
            infos[path] = info
    shipped = {name for path, info in infos.items() for name in (path.name, info.soname) if name}
    report.libraries = len(infos)
    report.driver_present = driver_present()
    system: set[str] = set()
    loaded: set[Path] = set()
    for path in dependency_order(infos):
        info = infos[path]
        absent = [name for name in info.needed if name not in shipped and name not in SYSTEM_LIBRARIES
                  and name not in DRIVER_LIBRARIES]
        system.update(name for name in info.needed if name in SYSTEM_LIBRARIES and name not in shipped)
        if absent:
            report.outside.append({"path": str(path), "needs": absent})
            continue
        if not report.driver_present and any(name in DRIVER_LIBRARIES for name in info.needed):
            report.needs_driver.append(str(path))
            continue
        try:
            ctypes.CDLL(str(path), mode=os.RTLD_NOW | os.RTLD_LOCAL)
            report.loaded += 1
            loaded.add(path)
        except OSError as exc:
            report.failed.append({"path": str(path), "error": str(exc)})
    # A library whose undefined symbols its own NEEDED entries do not provide loads in the scope of one
    # that needs it: that is how the program loads it, so it passes if such a library loaded.
    for failure in list(report.failed):
        path = Path(failure["path"])
        names = {path.name, infos[path].soname}
        users = [other for other in loaded if names & set(infos[other].needed)]
        if "undefined symbol" in failure["error"] and users:
            report.failed.remove(failure)
            report.loaded_as_dependency.append({"path": str(path), "inside": str(sorted(users)[0])})
    report.system = sorted(system)
    return report


def mapped_libraries() -> list[str]:
    """The file names of the shared libraries mapped into this process (Linux)."""
    try:
        lines = Path("/proc/self/maps").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return sorted({Path(line.split(None, 5)[5]).name for line in lines
                   if len(line.split(None, 5)) == 6 and ".so" in line})


def check_torch(flavour: str | None) -> dict[str, Any]:
    """Import torch as the server does, and ask it about CUDA, recording every warning it gives;
    ``flavour``: the torch the build must hold (None from source: whatever is installed)."""
    from backend.services.devices import choose_device, device_facts, device_reason

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import torch

        facts = device_facts()
        device = choose_device("auto", facts)
    cuda_libraries = [name for name in mapped_libraries() if name.startswith(CUDA_LIBRARY_PREFIXES)]
    problems = []
    if flavour == "cuda" and facts.torch_cuda is None:
        problems.append(f"a CUDA build ships torch {torch.__version__}, a CPU build")
    if flavour == "cpu" and facts.torch_cuda is not None:
        problems.append(f"a CPU build ships torch {torch.__version__}, built for CUDA {facts.torch_cuda}")
    if flavour == "cuda" and not any(name.startswith("libtorch_cuda") for name in cuda_libraries):
        problems.append("import torch did not load libtorch_cuda.so")
    if caught:
        problems.append(f"{len(caught)} warning(s) asking torch about the device")
    return {"check": "torch", "passed": not problems, "problems": problems, "flavour": flavour,
            "torch": torch.__version__, "torch_cuda": facts.torch_cuda, "cuda_available": facts.cuda,
            "cuda_devices": facts.cuda_devices, "device": device, "device_reason": device_reason("auto", device, facts),
            "cuda_libraries_loaded": cuda_libraries, "warnings": [str(item.message)[:300] for item in caught],
            "loaded_from": str(Path(torch.__file__).parent)}


def run(check: str) -> int:
    from backend.runtime_paths import current_layout

    layout = current_layout()
    result: dict[str, Any]
    if check == "libraries":
        if not sys.platform.startswith("linux"):
            result = {"check": check, "passed": None, "reason": "ELF libraries: Linux only"}
            code = EXIT_NOTHING
        elif not layout.mode.frozen:
            result = {"check": check, "passed": None, "reason": "from source nothing is bundled: run it on a build"}
            code = EXIT_NOTHING
        else:
            roots = list(dict.fromkeys([layout.bundle, *(path for path in layout.sidecars if path.is_dir())]))
            report = check_libraries(roots)
            result = {**report.to_dict(), "mode": layout.mode.name, "roots": [str(root) for root in roots]}
            code = EXIT_PASSED if report.passed else EXIT_FAILED
    else:
        result = {**check_torch(layout.mode.torch if layout.mode.frozen else None), "mode": layout.mode.name}
        code = EXIT_PASSED if result["passed"] else EXIT_FAILED
    print(json.dumps(result), flush=True)
    return code
