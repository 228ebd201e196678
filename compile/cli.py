"""``python -m compile``: thin command line over the planners, the build, doctor, verify and report.

Exit codes: 0 success, 1 unexpected error, 2 usage or configuration error, 3 missing tool,
4 data file error, 5 build env error, 6 the build tool failed, 7 verification failed, 8 bad artifact,
9 a onefile too large for its format (build the folder instead).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from backend import __version__
from backend.variants import BUILT, NUITKA_ONEFILE, NUITKA_STANDALONE, PYINSTALLER_ONEFILE
from compile.errors import CompileError, MissingToolError, UsageError, VerifyFailed
from compile.options import (
    PLATFORMS,
    BuildOptions,
    PlatformName,
    check_platform,
    check_variant,
    current_platform,
    load_pyproject,
    resolve_options,
)
from compile.progress import NORMAL, QUIET, VERBOSE, Progress

# `compile plan MODE`: a variant's name, or the word that builds it
MODE_ALIASES: dict[str, str] = {
    "standalone": NUITKA_STANDALONE.name,
    "onefile": NUITKA_ONEFILE.name,
    "pyinstaller": PYINSTALLER_ONEFILE.name,
    **{variant.name: variant.name for variant in BUILT},
}


def add_build_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", type=Path, default=Path.cwd(), help="project root (default: .)")
    parser.add_argument("--jobs", type=int, help="parallel C compile jobs (default: all cores)")
    parser.add_argument("--lto", action=argparse.BooleanOptionalAction, default=None, help="link-time optimization")
    parser.add_argument("--isolation", dest="isolated", action=argparse.BooleanOptionalAction, default=None,
                        help="build in the isolated build env (default: on)")
    parser.add_argument("--onefile-as-archive", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--torch", choices=["cpu", "cuda"],
                        help="which torch build to ship: cpu (default) or cuda; cuda builds dist/<variant>-cuda")
    parser.add_argument("--nuitka-arg", dest="nuitka_args", action="append", help="extra Nuitka argument")
    parser.add_argument("--pyinstaller-arg", dest="pyinstaller_args", action="append",
                        help="extra PyInstaller argument")
    add_verbosity_flags(parser)


def add_verbosity_flags(parser: argparse.ArgumentParser) -> None:
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=QUIET, default=NORMAL,
                          help="only the summary and errors")
    loudness.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=VERBOSE,
                          help="every option, and the build tool's own output as it runs")


def subcommand(commands: Any, name: str, summary: str, description: str, *examples: str) -> argparse.ArgumentParser:
    epilog = "examples:\n" + "\n".join(f"  {example}" for example in examples) if examples else None
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=summary, description=f"{summary}.\n\n{description}", epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m compile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"peft-engine compile {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    standalone = subcommand(
        commands, "standalone", "Nuitka standalone folder (the main job)",
        "Builds dist/nuitka-standalone/: the backend and its web stack compiled to C, torch / transformers /\n"
        "peft beside it as a byte-compiled sidecar. Each step prints its elapsed time; the tool's full\n"
        "output goes to build/nuitka-standalone/nuitka.log.",
        "python -m compile standalone", "python -m compile standalone -v --jobs 2",
        "python -m compile standalone --torch cuda", "COMPILE_LTO=1 python -m compile standalone")
    add_build_flags(standalone)
    onefile = subcommand(
        commands, "onefile", "Nuitka onefile with a cached extraction dir",
        "Builds dist/nuitka-onefile/peft_engine: one file that unpacks once into the user's cache.",
        "python -m compile onefile", "python -m compile onefile --no-onefile-as-archive")
    add_build_flags(onefile)
    pyinstaller = subcommand(
        commands, "pyinstaller", "PyInstaller baseline",
        "Builds the PyInstaller baseline from the same declaration ([tool.compile]): the reference the\n"
        "benchmarks compare with.", "python -m compile pyinstaller --onefile", "python -m compile pyinstaller --onedir")
    kind = pyinstaller.add_mutually_exclusive_group()
    kind.add_argument("--onefile", dest="pyinstaller_variant", action="store_const", const="pyinstaller-onefile")
    kind.add_argument("--onedir", dest="pyinstaller_variant", action="store_const", const="pyinstaller-onedir")
    add_build_flags(pyinstaller)
    plan = subcommand(
        commands, "plan", "print the options and the exact command a build would run",
        "Creates nothing: the sidecar and standard-library lists come from the build env when it exists,\n"
        "else from this environment (and the output says so). Any platform can be planned from any other.",
        "python -m compile plan", "python -m compile plan --platform windows onefile",
        "python -m compile plan pyinstaller-onedir -v")
    plan.add_argument("mode", nargs="?", default="standalone", help=f"one of: {', '.join(MODE_ALIASES)}")
    plan.add_argument("--platform", help=f"one of: {', '.join(PLATFORMS)} (default: this machine)")
    add_build_flags(plan)
    doctor = subcommand(
        commands, "doctor", "check this machine can build; install hints",
        "Reports only what it looked at: before the first build the isolated build env does not exist,\n"
        "and doctor says so (todo) instead of vouching for the tools a build installs there.",
        "python -m compile doctor", "python -m compile doctor --no-isolation")
    doctor.add_argument("--project", type=Path, default=Path.cwd())
    doctor.add_argument("--isolation", dest="isolated", action=argparse.BooleanOptionalAction, default=None)
    verify = subcommand(
        commands, "verify", "launch an artifact and prove it works",
        "Runs the first-use scenarios of the HTTP behaviour suite against the artifact, each on a fresh\n"
        "server: the protocol, then generate, streamed generate, system, training and merge, each used\n"
        "first. Exits 7 when a check fails, naming what it saw.",
        "python -m compile verify dist/nuitka-standalone", "python -m compile verify dist/pyinstaller-onefile")
    verify.add_argument("artifact", type=Path, help="dist/<variant> folder (or its executable)")
    report = subcommand(
        commands, "report", "what went into an artifact",
        "Sizes, the sidecar's distributions and why each is there, module kinds and ccache hits.",
        "python -m compile report dist/nuitka-standalone",
        "python -m compile report dist/nuitka-standalone --modules")
    report.add_argument("artifact", type=Path)
    report.add_argument("--modules", action="store_true", help="list every module with its kind and reason")
    delta = subcommand(
        commands, "delta", "what an installed build needs to become a newer one",
        "Compares two builds of one folder variant (their layers.json manifests) and writes to --out the\n"
        "files that are new or changed, once per content, with both manifests (delta.json). The desktop\n"
        "updater applies it with backend_client.update.apply_delta (python -m backend_client.update), which\n"
        "checks every hash and leaves the installed build untouched on any mismatch.",
        "python -m compile delta old/dist/nuitka-standalone dist/nuitka-standalone --out update/")
    delta.add_argument("old", type=Path, help="dist/<variant> of the installed build")
    delta.add_argument("new", type=Path, help="dist/<variant> of the new build")
    delta.add_argument("--out", type=Path, required=True, help="an empty or new folder for the delta")
    return parser


def cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("jobs", "lto", "isolated", "onefile_as_archive", "torch", "nuitka_args", "pyinstaller_args")
    return {key: getattr(args, key, None) for key in keys if getattr(args, key, None) is not None}


def options_for(args: argparse.Namespace, variant: str, platform: PlatformName) -> tuple[BuildOptions, dict[str, Any]]:
    root = args.project.resolve()
    pyproject = load_pyproject(root)
    options = resolve_options(project_root=root, platform=platform, variant=variant, pyproject=pyproject,
                              cli=cli_overrides(args))
    return options, pyproject


def command_build(args: argparse.Namespace, variant: str) -> int:
    from compile.build import execute_build
    from compile.doctor import evaluate, gather_facts, render

    progress = Progress(args.verbosity)
    options, pyproject = options_for(args, variant, current_platform())
    if args.verbosity >= NORMAL:
        print(f"python -m compile {args.command}: {options.variant} for {options.platform}")
        print(options.describe(everything=args.verbosity >= VERBOSE))
    with progress.step("check the machine (compile doctor)"):
        failures = [c for c in evaluate(gather_facts(options, pyproject)) if c.status == "fail"]
    if failures:
        raise MissingToolError("this machine cannot build yet:\n" + render(failures),
                               hint="fix the items above (python -m compile doctor shows all checks)")
    record = execute_build(options, pyproject, progress)
    print(summary(record, options))
    return 0


def summary(record: dict[str, Any], options: BuildOptions) -> str:
    lines = [
        "",
        f"built {record['variant']} in {record['wall_seconds']:.0f}s wall "
        f"({record['tool']} {record['tool_version']}: {record['tool_wall_seconds']:.0f}s wall, "
        f"{record['tool_cpu_seconds']:.0f}s CPU)",
        f"  artifact   {options.dist_path / record['executable']}",
        f"  size       {record['size_bytes'] / 1024**2:.1f} MiB",
    ]
    report = record.get("nuitka_report")
    if report:
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(report["modules_by_kind"].items()))
        cache = report["ccache"]
        rate = f"{cache['hit_rate']:.0%}" if cache["hit_rate"] is not None else "n/a"
        lines.append(f"  modules    {kinds}")
        lines.append(f"  ccache     {cache['hits']} hits, {cache['misses']} misses ({rate})")
    sidecar = record.get("sidecar")
    if sidecar and sidecar.get("bytes") is not None:
        count, size = len(sidecar["distributions"]), sidecar["bytes"] / 1024**2
        lines.append(f"  sidecar    {count} distributions, {size:.0f} MiB "
                     f"(trimmed {sidecar['trimmed_bytes'] / 1024**2:.0f} MiB in {sidecar['trimmed_files']} files)")
        if sidecar.get("stripped_files"):
            lines.append(f"  stripped   {sidecar['stripped_bytes'] / 1024**2:.0f} MiB of symbol tables from "
                         f"{sidecar['stripped_files']} libraries")
        if sidecar.get("strip_kept"):
            lines.append(f"  unstripped {', '.join(sidecar['strip_kept'])} (stripping breaks its layout)")
        elif sidecar.get("strip_skipped"):
            lines.append(f"  stripped   nothing ({sidecar['strip_skipped']})")
        if sidecar.get("sourceless_files"):
            lines.append(f"  bytecode   {sidecar['sourceless_files']} sources not shipped "
                         f"({sidecar['sourceless_bytes'] / 1024**2:.0f} MiB; kept: sidecar-keep-sources)")
    lines.append(f"  record     {options.dist_path / 'build.json'}")
    lines.append(f"  next       python -m compile verify {shlex.quote(display_path(options.dist_path, options.root))}")
    return "\n".join(lines)


def display_path(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when it is inside it (a dist dir may be configured anywhere)."""
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def command_plan(args: argparse.Namespace) -> int:
    """Print the options and the exact command a build would run. Creates nothing: the facts come from
    the build env when it exists, else from this interpreter's environment (and the output says so)."""
    from compile.buildenv import current_env, is_complete, planned_env
    from compile.plan import command_line, plan_inputs, planned_command, planned_environment

    variant = MODE_ALIASES.get(args.mode) or check_variant(args.mode)
    platform = check_platform(args.platform) if args.platform else current_platform()
    options, pyproject = options_for(args, variant, platform)
    native = platform == current_platform()
    print(f"# options ({options.variant}, {platform})")
    print("\n".join("# " + line for line in options.describe(everything=args.verbosity >= VERBOSE).splitlines()))
    env = planned_env(options, pyproject) if native and options.isolated else current_env()
    if not native:
        print(f"# sidecar and stdlib lists computed from this {current_platform()} environment; "
              f"a build on {platform} computes them from its own")
    elif env.isolated and not is_complete(env):
        print(f"# the build env {env.path} is not created yet (the first build creates it): sidecar and "
              "stdlib lists computed from this environment")
        env = current_env()
    inputs, _ = plan_inputs(options, env, cache=False)
    command = planned_command(options, inputs)
    if not native:
        command[0] = "python"
    variables = planned_environment(options, os.environ if native else {})
    print(command_line(command, variables, platform))
    return 0


def command_doctor(args: argparse.Namespace) -> int:
    from compile.doctor import evaluate, gather_facts, render

    options, pyproject = options_for(args, NUITKA_STANDALONE.name, current_platform())
    checks = evaluate(gather_facts(options, pyproject))
    print(f"python -m compile doctor ({options.platform}, isolated build env: {'yes' if options.isolated else 'no'})")
    print(render(checks))
    failed = [check.name for check in checks if check.status == "fail"]
    if failed:
        print(f"\n{len(failed)} problem(s) would stop a build: {', '.join(failed)}")
        return MissingToolError.exit_code
    todo = [check.name for check in checks if check.status == "todo"]
    print("\nready to build" + (f" (the first build creates: {', '.join(todo)})" if todo else ""))
    return 0


def command_verify(args: argparse.Namespace) -> int:
    from compile.verify import verify

    started = time.perf_counter()
    artifact, results = verify(args.artifact)
    failed = [f"{result.name} ({result.scenario}): {result.detail}" for result in results if not result.ok]
    took = time.perf_counter() - started
    if failed:
        raise VerifyFailed(f"{artifact.variant}: {len(failed)} of {len(results)} checks failed:\n  "
                           + "\n  ".join(failed))
    print(f"{artifact.variant}: all {len(results)} checks passed in {took:.1f}s")
    return 0


def command_report(args: argparse.Namespace) -> int:
    from compile.artifact_report import render_report
    from compile.artifacts import locate

    print(render_report(locate(args.artifact), modules=args.modules))
    return 0


def command_delta(args: argparse.Namespace) -> int:
    from compile.delta import describe, make_delta

    summary = make_delta(args.old, args.new, args.out)
    print(f"delta written to {args.out}: {describe(summary)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Progress must show up as it happens when the output goes to a CI log, not a terminal.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    try:
        if args.command in ("standalone", "onefile"):
            return command_build(args, MODE_ALIASES[args.command])
        if args.command == "pyinstaller":
            if args.pyinstaller_variant is None:
                raise UsageError("say which PyInstaller build", hint="pass --onefile or --onedir")
            return command_build(args, args.pyinstaller_variant)
        if args.command == "plan":
            return command_plan(args)
        if args.command == "doctor":
            return command_doctor(args)
        if args.command == "verify":
            return command_verify(args)
        if args.command == "report":
            return command_report(args)
        if args.command == "delta":
            return command_delta(args)
        parser.print_help()
        return UsageError.exit_code
    except CompileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
