"""The torch flavour (``[tool.compile] torch = "cpu" | "cuda"``, ``--torch``) from the options to the
variant, the build env, the flavour check, the marker the build carries and the onefile limit, for
every platform and tool, without building anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.runtime_paths import RuntimeMarkers, detect_mode
from backend.variants import ALL, CUDA_VARIANTS, NAMES, VARIANTS, flavoured, variant_named
from compile.backends.nuitka import nuitka_command
from compile.backends.pyinstaller import pyinstaller_command
from compile.buildenv import env_key, pip_install_command
from compile.errors import BuildEnvError, ConfigError
from compile.flavour import check_flavour, cuda_distributions, torch_flavour
from compile.onefile_limit import ONEFILE_LIMIT_BYTES, refusal, tool_overflowed
from compile.options import PLATFORMS, resolve_options
from compile.plan import flavour_marker
from tests.unit.compile.conftest import PYPROJECT, sample_inputs

REPO_ROOT = Path(__file__).resolve().parents[3]
CPU_FACTS = {"distributions": {"torch": {"version": "2.13.0+cpu", "requires": ["filelock", "sympy"]}}}
CUDA_FACTS = {"distributions": {
    "torch": {"version": "2.13.0", "requires": ["filelock", "nvidia-cublas", "cuda-toolkit", "triton"]},
    "nvidia-cublas": {"version": "13.1.1.3", "requires": []}, "triton": {"version": "3.7.1", "requires": []},
    "filelock": {"version": "3.20.0", "requires": []}}}


def options(root: Path, variant: str = "nuitka-standalone", platform: str = "linux", **cli: object):
    return resolve_options(project_root=root, platform=platform, variant=variant,  # type: ignore[arg-type]
                           pyproject=PYPROJECT, environ={}, cli=cli)


def test_every_frozen_variant_has_a_cuda_twin_and_back() -> None:
    assert len(CUDA_VARIANTS) == 4 and tuple(variant.name for variant in VARIANTS) == NAMES
    for variant in VARIANTS:
        if not variant.frozen:
            assert flavoured(variant, "cuda") is variant  # source runs whatever torch is installed
            continue
        twin = flavoured(variant, "cuda")
        assert (twin.name, twin.torch, twin.tool, twin.onefile) == (f"{variant.name}-cuda", "cuda", variant.tool,
                                                                    variant.onefile)
        assert twin.build_args[-2:] == ("--torch", "cuda") and flavoured(twin, "cpu") is variant
        assert variant_named(twin.name) is twin
    assert len({variant.name for variant in ALL}) == len(ALL)
    with pytest.raises(ValueError, match="rocm"):
        flavoured(VARIANTS[1], "rocm")


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("variant", ["nuitka-standalone", "nuitka-onefile", "pyinstaller-onedir", "pyinstaller-onefile"])
def test_torch_cuda_builds_the_cuda_variant_into_its_own_folder(project: Path, platform: str, variant: str) -> None:
    cpu, cuda = options(project, variant, platform), options(project, variant, platform, torch="cuda")
    assert (cpu.variant, cpu.torch) == (variant, "cpu")
    assert (cuda.variant, cuda.torch) == (f"{variant}-cuda", "cuda")
    assert cuda.dist_path.name == f"{variant}-cuda" and cuda.build_path != cpu.build_path
    assert options(project, f"{variant}-cuda", platform).torch == "cuda"  # the variant's name says it too


def test_the_config_table_picks_the_flavour_and_a_contradiction_is_refused(project: Path) -> None:
    document = {**PYPROJECT, "tool": {"compile": {**PYPROJECT["tool"]["compile"], "torch": "cuda"}}}
    configured = resolve_options(project_root=project, platform="linux", variant="nuitka-standalone",
                                 pyproject=document, environ={})
    assert configured.variant == "nuitka-standalone-cuda"
    with pytest.raises(ConfigError, match="CUDA flavour"):
        options(project, "nuitka-standalone-cuda", torch="cpu")
    with pytest.raises(ConfigError, match="torch"):
        options(project, torch="rocm")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_cuda_build_carries_the_file_that_names_its_flavour(project: Path, platform: str) -> None:
    cuda = options(REPO_ROOT, "nuitka-standalone", platform, torch="cuda")
    (marker,) = flavour_marker(cuda)
    assert marker.source.read_text().strip() == "cuda" and marker.destination == "backend/resources/torch-flavour"
    assert flavour_marker(options(REPO_ROOT, "nuitka-standalone", platform)) == ()
    nuitka = options(project, "nuitka-standalone", platform, torch="cuda")
    inputs = sample_inputs(project)
    inputs = type(inputs)(**{**inputs.__dict__, "data_files": (*inputs.data_files, marker)})
    assert f"--include-data-files={marker.source}=backend/resources/torch-flavour" in nuitka_command(nuitka, inputs)
    pyinstaller = options(project, "pyinstaller-onedir", platform, torch="cuda")
    separator = ";" if platform == "windows" else ":"
    assert f"--add-data={marker.source}{separator}backend/resources" in pyinstaller_command(pyinstaller, inputs)


@pytest.mark.parametrize(("nuitka_onefile", "meipass_inside", "flavour", "expected"), [
    (False, None, "cuda", "nuitka-standalone-cuda"),
    (True, None, "cuda", "nuitka-onefile-cuda"),
    (None, True, "cuda", "pyinstaller-onedir-cuda"),
    (None, False, "cuda", "pyinstaller-onefile-cuda"),
    (False, None, "cpu", "nuitka-standalone"),
    (False, None, "rocm?", "nuitka-standalone"),  # current_markers keeps only known flavours
    (None, None, "cuda", "source"),
])
def test_a_running_build_knows_its_flavour(nuitka_onefile: bool | None, meipass_inside: bool | None, flavour: str,
                                           expected: str) -> None:
    exe = Path("/opt/app/peft_engine")
    meipass = None if meipass_inside is None else (exe.parent / "_internal" if meipass_inside else Path("/tmp/_MEI1"))
    markers = RuntimeMarkers(package_dir=Path("/opt/app/backend"), executable=exe, argv0=str(exe),
                             nuitka_onefile=nuitka_onefile, pyinstaller_meipass=meipass,
                             torch_flavour=flavour if flavour in ("cpu", "cuda") else "cpu")
    assert detect_mode(markers).name == expected


def test_the_cpu_env_key_is_what_it_was_and_the_cuda_one_differs() -> None:
    requirements = ["torch==2.13.0", "nuitka==4.3.3"]
    before = env_key(requirements, (3, 11, 9), patches="abc")
    assert env_key(requirements, (3, 11, 9), patches="abc", torch="cpu", index_url="https://x") == before
    cuda = env_key(requirements, (3, 11, 9), patches="abc", torch="cuda", index_url="https://pypi.org/simple")
    assert cuda != before
    assert cuda != env_key(requirements, (3, 11, 9), patches="abc", torch="cuda", index_url="https://mirror/simple")


def test_the_cuda_env_installs_from_the_index_whatever_pip_is_configured_to_prefer(project: Path) -> None:
    python = Path("/env/bin/python")
    cuda = pip_install_command(python, options(project, torch="cuda"), ["torch==2.13.0"])
    assert cuda[:6] == [str(python), "-m", "pip", "--isolated", "install", "--index-url"]
    assert cuda[6] == "https://pypi.org/simple" and cuda[-1] == "torch==2.13.0"
    assert "--isolated" not in pip_install_command(python, options(project), ["torch==2.13.0"])


def test_the_flavour_is_read_from_what_torch_requires() -> None:
    assert torch_flavour(CPU_FACTS) == "cpu" and torch_flavour(CUDA_FACTS) == "cuda"
    assert torch_flavour({"distributions": {}}) is None
    assert cuda_distributions(CUDA_FACTS) == {"nvidia-cublas": "13.1.1.3", "triton": "3.7.1"}
    assert check_flavour("cuda", CUDA_FACTS, "env") == "2.13.0"
    with pytest.raises(BuildEnvError, match="a CPU build, where the CUDA flavour was asked for"):
        check_flavour("cuda", CPU_FACTS, "env")
    with pytest.raises(BuildEnvError, match="where the CPU flavour was asked for") as raised:
        check_flavour("cpu", CUDA_FACTS, "env")
    assert raised.value.hint and "--torch cuda" in raised.value.hint


@pytest.mark.parametrize(("size", "refused"), [
    (200 * 1024**2, False), (ONEFILE_LIMIT_BYTES, False), (ONEFILE_LIMIT_BYTES + 1, True), (6 * 1024**3, True),
])
def test_a_onefile_over_4_gib_is_refused_naming_the_folder_build(size: int, refused: bool) -> None:
    reason = refusal(size, "nuitka-onefile-cuda", "nuitka-standalone-cuda",
                     "python -m compile standalone --torch cuda")
    assert (reason is not None) == refused
    if reason:
        assert "nuitka-standalone-cuda" in reason and "python -m compile standalone --torch cuda" in reason


def test_pyinstallers_own_overflow_is_recognised() -> None:
    assert tool_overflowed("struct.error: 'I' format requires 0 <= number <= 4294967295")
    assert not tool_overflowed("ModuleNotFoundError: No module named 'x'")


def test_a_flavour_table_applies_to_that_flavour_only(project: Path) -> None:
    compile_table = {**PYPROJECT["tool"]["compile"], "sidecar-trim": ["tests", "torch/test"],
                     "cuda": {"sidecar-trim": ["tests"]}}
    document = {**PYPROJECT, "tool": {"compile": compile_table}}

    def trim(**cli: object) -> tuple[str, ...]:
        return resolve_options(project_root=project, platform="linux", variant="nuitka-standalone",
                               pyproject=document, environ={}, cli=cli).sidecar_trim

    assert trim() == ("tests", "torch/test") and trim(torch="cuda") == ("tests",)
    environ_chosen = resolve_options(project_root=project, platform="linux", variant="nuitka-onefile",
                                     pyproject=document, environ={"COMPILE_TORCH": "cuda"})
    assert environ_chosen.sidecar_trim == ("tests",) and environ_chosen.variant == "nuitka-onefile-cuda"
    compile_table["cuda"] = {"torch": "cpu"}
    with pytest.raises(ConfigError, match="cannot be set in the table of a flavour"):
        trim(torch="cuda")
