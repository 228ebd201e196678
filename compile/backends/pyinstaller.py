"""The PyInstaller command line: the seed's baseline, built from the same declaration.

PyInstaller analyses every import (lazy ones included) and bundles torch / transformers / peft the
way the seed did; the shared inputs are the entry point, data files, names, platform flags and what the
project declares unused at run time (``exclude-modules``, and what only ``sidecar-exclude`` needs).
"""

from __future__ import annotations

from compile.backends import BuildInputs
from compile.datafiles import pyinstaller_data_args
from compile.options import BuildOptions
from compile.platforms import platform_module


def pyinstaller_command(options: BuildOptions, inputs: BuildInputs) -> list[str]:
    if options.tool != "pyinstaller":
        raise ValueError(f"{options.variant} is not a PyInstaller build")
    command = [
        inputs.python, "-m", "PyInstaller",
        "--noconfirm",
        f"--name={options.product_name}",
        "--onefile" if options.onefile else "--onedir",
        f"--distpath={options.build_path / 'dist'}",
        f"--workpath={options.build_path / 'work'}",
        f"--specpath={options.build_path}",
        "--log-level=WARN",
    ]
    command += pyinstaller_data_args(list(inputs.data_files), options.platform)
    command += [f"--hidden-import={name}" for name in options.include_modules]
    dropped = inputs.sidecar.dropped_imports if inputs.sidecar else ()
    command += [f"--exclude-module={name}" for name in sorted({*options.exclude_modules, *dropped})]
    command += platform_module(options.platform).pyinstaller_flags(options)
    command += list(options.pyinstaller_args)
    command.append(str(options.root / options.entry_point))
    return command
