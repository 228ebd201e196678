"""Every command the docs and the workflows name must exist: subcommands and flags are checked
against the real argument parsers."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from backend_client.manager import REPO_ROOT
from benchmarks.cli import build_parser as benchmarks_parser
from compile.cli import build_parser as compile_parser

PARSERS = {"compile": compile_parser, "benchmarks": benchmarks_parser}
DOCS = sorted([*(REPO_ROOT / "docs").rglob("*.md"), REPO_ROOT / "README.md"])
WORKFLOWS = sorted((REPO_ROOT / "ci").glob("*.yml"))
COMMAND = re.compile(r"python -m (compile|benchmarks)(?![\w.])([^\n|`&;]*)")  # not compile.repro


def fenced_shell_blocks(text: str) -> list[str]:
    return re.findall(r"```(?:bash|sh|shell|console)\n(.*?)```", text, flags=re.S)


def commands_in(text: str) -> list[tuple[str, list[str]]]:
    found = []
    for match in COMMAND.finditer(text):
        arguments = shlex.split(match.group(2).replace("${{", "X").replace("}}", ""), posix=True)
        found.append((match.group(1), arguments))
    return found


def check_command(tool: str, arguments: list[str]) -> None:
    parser = PARSERS[tool]()
    if not arguments:
        return
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert arguments[0] in subparsers.choices, f"python -m {tool} has no command {arguments[0]!r}"
    sub = subparsers.choices[arguments[0]]
    known = {option for action in sub._actions for option in action.option_strings}
    for argument in arguments[1:]:
        if argument.startswith("--"):
            flag = argument.split("=")[0]
            assert flag in known, f"python -m {tool} {arguments[0]} has no flag {flag}"


DOC_COMMANDS = [(path, tool, args) for path in DOCS for block in fenced_shell_blocks(path.read_text())
                for tool, args in commands_in(block)]


def test_docs_name_commands() -> None:
    assert len(DOC_COMMANDS) >= 15
    assert {path.name for path, _, _ in DOC_COMMANDS} >= {"testing.md", "benchmarks.md", "releasing.md"}


@pytest.mark.parametrize(("path", "tool", "arguments"), DOC_COMMANDS,
                         ids=[f"{p.name}:{t} {' '.join(a)}" for p, t, a in DOC_COMMANDS])
def test_doc_commands_exist(path: Path, tool: str, arguments: list[str]) -> None:
    check_command(tool, arguments)


def test_doc_tables_name_real_commands() -> None:
    """Inline `python -m ...` in tables (not only fenced blocks) must exist too."""
    for path in DOCS:
        for tool, arguments in commands_in("\n".join(re.findall(r"`([^`]*python -m [^`]*)`", path.read_text()))):
            check_command(tool, arguments)


def test_docs_links_resolve() -> None:
    for path in DOCS:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", path.read_text()):
            if target.startswith("http"):
                continue
            assert (path.parent / target).exists(), f"{path.name} links to missing {target}"


def expand_matrix(run: str, job: dict) -> list[str]:
    """``${{ matrix.x }}`` replaced by every value the job's matrix gives x (lists and include entries)."""
    matrix = job.get("strategy", {}).get("matrix", {})
    expanded = [run]
    for key in set(re.findall(r"\$\{\{\s*matrix\.(\w+)\s*\}\}", run)):
        values = list(matrix.get(key, [])) + [entry[key] for entry in matrix.get("include", []) if key in entry]
        assert values, f"matrix.{key} has no values"
        pattern = re.compile(r"\$\{\{\s*matrix\." + key + r"\s*\}\}")
        expanded = [pattern.sub(str(value), text) for text in expanded for value in values]
    return expanded


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_parses_and_runs_existing_commands(workflow: Path) -> None:
    document = yaml.safe_load(workflow.read_text())
    assert document["jobs"], "no jobs"
    runs = [text for job in document["jobs"].values() for step in job["steps"] if "run" in step
            for text in expand_matrix(step["run"], job)]
    commands = [command for run in runs for command in commands_in(run)]
    assert commands, f"{workflow.name} runs no python -m compile / benchmarks command"
    for tool, arguments in commands:
        check_command(tool, arguments)


def test_workflows_match_the_github_schema() -> None:
    """check-jsonschema ships GitHub's workflow schema: no network needed."""
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                             *map(str, WORKFLOWS)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_build_matrix_covers_three_platforms_and_variants() -> None:
    matrix = yaml.safe_load((REPO_ROOT / "ci" / "build.yml").read_text())["jobs"]["build"]["strategy"]["matrix"]
    assert set(matrix["os"]) == {"ubuntu-latest", "macos-latest", "windows-latest"}
    assert set(matrix["variant"]) == {"nuitka-standalone", "nuitka-onefile", "pyinstaller-onefile"}


def test_readme_benchmark_table_is_generated_from_a_full_run() -> None:
    """All five variants, from one run; the gate's baseline is what CI measures of that same run."""
    from backend.variants import NAMES
    from benchmarks.report import README_END, README_START, readme_section
    from benchmarks.storage import BASELINE_DIR, load_results

    full_run = BASELINE_DIR / "full-run-linux-x86_64.json"
    results = load_results(full_run)
    assert sorted(results["variants"]) == sorted(NAMES), "the README table comes from a run of every variant"
    text = (REPO_ROOT / "README.md").read_text()
    section = text[text.index(README_START) + len(README_START):text.index(README_END)]
    source = f"benchmarks/baseline/{full_run.name}"
    expected = readme_section({**results, "source_file": source})
    assert section.strip() == expected.strip(), (
        f"README's table is stale: python -m benchmarks report --readme README.md {source}")
    baseline = load_results(BASELINE_DIR / "linux-x86_64.json")
    assert baseline["run_id"] == results["run_id"], (
        "the committed baseline comes from the same run: python -m benchmarks baseline "
        f"{source} --variants source,nuitka-standalone,nuitka-onefile --update")
    assert all(baseline["variants"][name] == results["variants"][name] for name in baseline["variants"])


def test_readme_gives_exactly_two_fresh_machine_commands() -> None:
    text = (REPO_ROOT / "README.md").read_text()
    blocks = fenced_shell_blocks(text)
    assert len(blocks) == 2
    assert "python -m compile standalone" in blocks[0] and "pip install" in blocks[0]
    assert blocks[1].strip() == ".venv/bin/python -m tests"  # every tier CI runs, as .ci/run does


def test_the_readme_and_ci_name_the_tiers_the_test_command_runs() -> None:
    from tests.__main__ import DEFAULT, TIERS

    readme = (REPO_ROOT / "README.md").read_text()
    for tier in DEFAULT:
        assert f"| `{tier}` |" in readme, f"the README's tier table lacks {tier}"
    assert set(DEFAULT) < set(TIERS)
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert all(f"tier {tier}" in ci for tier in DEFAULT), "every default tier is a stage of .ci/run"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_nuitka_or_build_env_cache_is_keyed_by_the_patches(workflow: Path) -> None:
    """A changed Nuitka patch must not reuse a build env (or a cache) patched with the old one."""
    keys = [line.split("key:", 1)[1] for line in workflow.read_text().splitlines()
            if line.strip().startswith("key:") and ("nuitka" in line or "buildenv" in line)]
    assert keys, f"{workflow.name} caches no Nuitka or build env"
    for key in keys:
        assert "compile/patches/**" in key, f"{workflow.name}: {key.strip()} ignores the patch files"
