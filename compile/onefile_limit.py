"""How large a onefile can be, and what to do instead: a onefile over the limit is refused at build
time, never shipped as a file that fails at launch.

The limit is 4 GiB less one byte, on every platform, for both tools:
- Windows refuses to start an executable of 4 GiB or more ("This app can't run on your PC", Nuitka#2376);
- a Mach-O file's size fields are 32-bit (macOS);
- PyInstaller's archive stores offsets and lengths as 32-bit unsigned integers, and its maintainers
  chose not to widen them (pyinstaller#9100, #9101): its build fails with ``struct.error``.

A CUDA torch is several GiB of libraries: its onefile is near or over the limit, and even under it
each first start unpacks GiBs. The folder build has no such limit and starts from where it lies.
"""

from __future__ import annotations

ONEFILE_LIMIT_BYTES = 4 * 1024**3 - 1
PYINSTALLER_ARCHIVE_OVERFLOW = "format requires 0 <= number <= 4294967295"  # its struct.error


def refusal(size_bytes: int, variant: str, folder_variant: str, build_command: str) -> str | None:
    """Why a onefile of ``size_bytes`` cannot ship (None: it can), naming the folder build instead."""
    if size_bytes <= ONEFILE_LIMIT_BYTES:
        return None
    return (f"{variant} would be {size_bytes / 1024**3:.2f} GiB, over the {ONEFILE_LIMIT_BYTES / 1024**3:.0f} GiB "
            f"a single executable can be (Windows refuses to start it, macOS cannot describe it, PyInstaller "
            f"cannot index it): ship {folder_variant} instead ({build_command}), with an installer")


def tool_overflowed(log_tail: str) -> bool:
    """Whether a PyInstaller onefile build failed because its archive passed 4 GiB."""
    return PYINSTALLER_ARCHIVE_OVERFLOW in log_tail
