"""Every platform can at least import the project and plan a build.

A fresh interpreter where the POSIX-only modules (``resource``, ``fcntl``, ``termios``, ``pwd``,
``grp``) cannot be imported *by the project's own code*, as on Windows, imports every module of
backend, backend_client, compile and benchmarks, then runs ``compile plan --platform windows`` and
``--platform macos`` for every mode. Third-party code keeps them (psutil imports ``resource`` on
Linux), so the test blames only our modules.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from backend_client.manager import REPO_ROOT

BLOCKED = ("resource", "fcntl", "termios", "pwd", "grp")
PACKAGES = ("backend", "backend_client", "compile", "benchmarks")

SCRIPT = textwrap.dedent("""
    import builtins, contextlib, importlib, io, pkgutil, sys

    BLOCKED, PACKAGES = set(sys.argv[2].split(",")), sys.argv[3].split(",")
    real_import = builtins.__import__

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        # Every import statement goes through here, cached modules included: refuse the blocked ones
        # to the project's own modules (globals name the importer); third-party code keeps them.
        importer = (globals or {}).get("__name__", "") or ""
        if level == 0 and name.split(".")[0] in BLOCKED and importer.split(".")[0] in PACKAGES:
            raise ModuleNotFoundError(f"No module named {name!r} (POSIX only), imported by {importer}", name=name)
        return real_import(name, globals, locals, fromlist, level)

    builtins.__import__ = guarded_import

    imported = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        imported.append(package)
        for info in pkgutil.walk_packages(module.__path__, package + "."):
            if info.name.endswith("__main__"):
                continue  # runs the command line
            importlib.import_module(info.name)
            imported.append(info.name)

    from compile.cli import MODE_ALIASES, main
    planned = 0
    for platform in ("windows", "macos"):
        for mode in sorted(set(MODE_ALIASES.values())):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                code = main(["plan", "--platform", platform, mode])
            if code != 0:
                raise SystemExit(f"compile plan --platform {platform} {mode} exited {code}")
            planned += 1
    print(len(imported), planned)
""")


def run_script(blocked: tuple[str, ...] = BLOCKED) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SCRIPT, str(REPO_ROOT), ",".join(blocked), ",".join(PACKAGES)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)


def test_every_module_imports_and_plans_without_posix_only_modules() -> None:
    result = run_script()
    assert result.returncode == 0, result.stderr[-3000:]
    modules, plans = map(int, result.stdout.split())
    assert modules > 60 and plans == 8


def test_the_block_catches_a_posix_only_import_in_our_code() -> None:
    """The check can fail: blocking a module our command lines import at module level (argparse) is caught."""
    result = run_script(blocked=(*BLOCKED, "argparse"))
    assert result.returncode != 0
    assert "No module named 'argparse' (POSIX only), imported by" in result.stderr
