"""The Nuitka command line for a standalone folder or a onefile."""

from __future__ import annotations

from compile.backends import BuildInputs
from compile.datafiles import nuitka_data_args
from compile.options import BuildOptions, file_version
from compile.platforms import platform_module
from compile.sidecar import SIDECAR_DIR_NAME

REPORT_NAME = "compilation-report.xml"
# in onefile-tempdir-spec: replaced by the build's id, so that two onefiles of one version but different
# content unpack to different folders (Nuitka's own {VERSION} names the version only)
BUILD_PLACEHOLDER = "{BUILD}"


def report_path(options: BuildOptions) -> str:
    return str(options.build_path / REPORT_NAME)


def nuitka_environment(options: BuildOptions) -> dict[str, str]:
    """Environment variables the Nuitka run needs: ``c-flags`` reach its C compiler as ``CFLAGS``,
    which Nuitka appends after its own optimisation level, so ``-Os`` there wins over its ``-O2``."""
    return {"CFLAGS": " ".join(options.c_flags)} if options.c_flags and options.tool == "nuitka" else {}


def nuitka_command(options: BuildOptions, inputs: BuildInputs) -> list[str]:
    if options.tool != "nuitka":
        raise ValueError(f"{options.variant} is not a Nuitka build")
    command = [
        inputs.python, "-m", "nuitka",
        f"--mode={'onefile' if options.onefile else 'standalone'}",
        f"--output-dir={options.build_path}",
        f"--output-filename={options.executable_name}",
        f"--company-name={options.company_name}",
        f"--product-name={options.product_name}",
        # versions: Windows resources, and {VERSION} in the onefile cache folder on every platform
        f"--file-version={file_version(options.version)}",
        f"--product-version={file_version(options.version)}",
        f"--report={report_path(options)}",
        f"--lto={'yes' if options.lto else 'no'}",
        # The sidecar packages are imported at run time from a folder Nuitka never saw.
        "--no-deployment-flag=excluded-module-usage",
    ]
    if options.jobs:
        command.append(f"--jobs={options.jobs}")
    nofollow = sorted({*(inputs.sidecar.nofollow_imports if inputs.sidecar else ()), *options.exclude_modules})
    if nofollow:
        command.append(f"--nofollow-import-to={','.join(nofollow)}")
    complete = sorted(inputs.sidecar.complete_packages if inputs.sidecar else ())
    command += [f"--include-package={name}" for name in complete]
    command += [f"--include-module={name}" for name in sorted({*inputs.stdlib_modules, *options.include_modules})]
    for name in options.bytecode_packages:
        # whole, so lazy imports inside it cannot miss a submodule; as bytecode, so no C compile
        command += [f"--include-package={name}", f"--noinclude-custom-mode={name}:bytecode"]
    # A module or a whole namespace, followed as usual. Demoting a namespace also demotes the load-time
    # code Nuitka's plugins add to its modules (anyio.to_process): the carried patch
    # bytecode-trigger-modules lets Nuitka 4.3 build that.
    command += [f"--noinclude-custom-mode={name}:bytecode" for name in options.bytecode_modules]
    command += [f"--python-flag={flag}" for flag in options.python_flags]
    if not options.nuitka_patches:
        # Stock Nuitka 4.3.3 crashes on a bytecode-demoted namespace's trigger module found in a warm bytecode
        # cache (Nuitka#4054; carried patch 0004-bytecode-trigger-modules): a stock build does without that cache.
        command.append("--disable-cache=bytecode")
    command += nuitka_data_args(list(inputs.data_files))
    if options.onefile:
        command += [
            f"--onefile-tempdir-spec={options.onefile_tempdir_spec.replace(BUILD_PLACEHOLDER, inputs.build_id)}",
            f"--onefile-child-grace-time={options.onefile_child_grace_ms}",
        ]
        if options.onefile_as_archive:
            command.append("--onefile-as-archive")
        if inputs.sidecar_dir is not None:
            # raw: extension modules and shared libraries go in as they are, no dependency scan
            command.append(f"--include-raw-dir={inputs.sidecar_dir}={SIDECAR_DIR_NAME}")
    command += platform_module(options.platform).nuitka_flags(options)
    command += list(options.nuitka_args)
    command.append(str(options.root / options.entry_point))
    return command
