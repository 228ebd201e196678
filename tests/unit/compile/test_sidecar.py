"""Sidecar planning from dependency metadata (synthetic facts) and materializing with trimming."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from compile.errors import ConfigError
from compile.sidecar import SidecarPlan, closure, drop_sources, materialize, plan_sidecar, trimmed


def dist(requires: list[str], imports: list[str], files: list[str] = (), location: str = "/site") -> dict:
    return {"requires": requires, "imports": imports, "files": list(files), "location": location, "version": "1"}


FACTS = {
    "backend_imports": ["fastapi", "torch", "transformers", "json", "backend"],
    "distributions": {
        "fastapi": dist(["starlette", "typing-extensions"], ["fastapi"]),
        "starlette": dist(["anyio"], ["starlette"]),
        "anyio": dist(["idna"], ["anyio"]),
        "idna": dist([], ["idna"]),
        "typing-extensions": dist([], ["typing_extensions"]),
        "torch": dist(["typing-extensions", "sympy", "numpy"], ["torch", "torchgen", "functorch"]),
        "sympy": dist(["mpmath"], ["sympy", "isympy"]),
        "mpmath": dist([], ["mpmath"]),
        "numpy": dist([], ["numpy", "numpy.libs"]),
        "transformers": dist(["numpy", "huggingface-hub"], ["transformers"]),
        "huggingface-hub": dist(["typer", "anyio"], ["huggingface_hub"]),
        "typer": dist(["click", "pydantic"], ["typer"]),
        "click": dist([], ["click"]),
        "pydantic": dist(["typing-extensions"], ["pydantic"]),
    },
}


def test_closure_follows_requirements_and_records_why() -> None:
    reasons = closure(["torch"], FACTS["distributions"])
    assert reasons == {"torch": "root", "typing-extensions": "required by torch", "sympy": "required by torch",
                       "numpy": "required by torch", "mpmath": "required by sympy"}
    assert "typer" not in closure(["transformers"], FACTS["distributions"], prune=["typer"])


def test_plan_splits_sidecar_shared_and_compiled() -> None:
    plan = plan_sidecar(FACTS, ["torch", "transformers"], exclude=["typer"])
    assert plan.compiled_side == ("anyio", "fastapi", "idna", "starlette", "typing-extensions")
    assert plan.distributions == ("huggingface-hub", "mpmath", "numpy", "sympy", "torch", "transformers")
    assert plan.shared == ("anyio", "idna", "typing-extensions")
    assert plan.complete_packages == ("anyio", "idna", "typing_extensions")
    assert "numpy.libs" not in plan.nofollow_imports and {"torchgen", "functorch", "isympy"} <= set(plan.nofollow_imports)
    assert plan.reasons["mpmath"] == "required by sympy"
    assert plan.dropped == ("click", "pydantic", "typer")
    assert plan.dropped_imports == ("click", "pydantic", "typer")
    assert {"typer", "click", "pydantic"} <= set(plan.nofollow_imports), "excluded code is never compiled either"


def test_without_the_exclusion_pydantic_would_become_shared() -> None:
    plan = plan_sidecar(FACTS, ["torch", "transformers"])
    assert "typer" in plan.distributions and "click" in plan.distributions and "pydantic" in plan.distributions


def test_missing_root_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="jax"):
        plan_sidecar(FACTS, ["torch", "jax"])


@pytest.mark.parametrize(("path", "dropped"), [
    ("torch/include/ATen/core.h", True), ("numpy/_core/tests/test_x.py", True), ("torch/__init__.pyi", True),
    ("torch/testing/__init__.py", False), ("torch/utils/include_paths.py", False), ("torch/lib/libtorch.so", False),
    ("torch/testing/_internal/common_utils.py", True), ("torch/onnx/_internal/x.py", False),
    ("other/torch/testing/_internal/x.py", False), ("torch/testing/_internal_not.py", False),
    ("torch/bin/test_api", True), ("torch/bin/TCPStoreTest", True), ("torch/bin/torch_shm_manager", False),
    ("torch/lib/test_x.so", False), ("other/torch/bin/test_api", False),
    ("torch/lib/libaoti_custom_ops.so", True), ("torch/lib/libaoti_custom_ops.so.1", False),
    ("other/torch/lib/libaoti_custom_ops.so", False),
])
def test_trim_patterns(path: str, dropped: bool) -> None:
    patterns = ["tests", "include", "*.pyi", "*.h", "torch/testing/_internal", "torch/bin/test_*", "torch/bin/*Test",
                "torch/lib/libaoti_custom_ops.so"]
    assert (trimmed(PurePosixPath(path), patterns) is not None) is dropped


def test_materialize_copies_code_and_shared_metadata(tmp_path: Path) -> None:
    site = tmp_path / "site"
    files = {
        "torch/__init__.py": "x = 1\n", "torch/include/a.h": "#define A\n", "torch/__pycache__/x.pyc": "",
        "torch-2.dist-info/METADATA": "Name: torch\n", "typing_extensions.py": "y = 2\n",
        "typing_extensions-4.dist-info/METADATA": "Name: typing-extensions\n",
    }
    for name, text in files.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text)
    facts = {"distributions": {
        "torch": dist([], ["torch"], [f for f in files if f.startswith("torch")], str(site)),
        "typing-extensions": dist([], ["typing_extensions"], [f for f in files if f.startswith("typing_")], str(site)),
    }}
    plan = plan_sidecar({**facts, "backend_imports": ["typing_extensions"]}, ["torch"])
    plan = type(plan)(distributions=("torch",), shared=("typing-extensions",), compiled_side=(), nofollow_imports=(),
                      complete_packages=())
    report = materialize(plan, facts, tmp_path / "out", ["include"])
    copied = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert copied == ["torch-2.dist-info/METADATA", "torch/__init__.py", "typing_extensions-4.dist-info/METADATA"]
    assert report.trimmed_files == 1 and report.trimmed_bytes == len("#define A\n")


def test_drop_sources_ships_bytecode_only_and_it_still_imports(tmp_path: Path) -> None:
    out = tmp_path / "sidecar"
    files = {
        "sympyish/__init__.py": "from sympyish.core import VALUE\n",
        "sympyish/core.py": "VALUE = 42\n",
        "sympyish/py2_leftover.py": "print 'no'\n",  # does not compile: shipped as it is
        "sympyish/data.txt": "kept\n",
        "sympyish-1.dist-info/METADATA": "Name: sympyish\n",
        "torch/__init__.py": "import sympyish\nTORCH = sympyish.VALUE\n",
    }
    for name, text in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    subprocess.run([sys.executable, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(out)],
                   check=False, capture_output=True)
    facts = {"distributions": {
        "sympyish": dist([], ["sympyish"], [f for f in files if f.startswith("sympyish")], str(tmp_path)),
        "torch": dist([], ["torch"], ["torch/__init__.py"], str(tmp_path)),
    }}
    plan = SidecarPlan(distributions=("sympyish", "torch"), shared=(), compiled_side=(), nofollow_imports=(),
                       complete_packages=())
    report = drop_sources(plan, facts, out, keep=["torch"])
    assert (report.files, report.kept) == (2, 1)
    assert report.bytes == len(files["sympyish/__init__.py"]) + len(files["sympyish/core.py"])
    shipped = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert shipped == ["sympyish-1.dist-info/METADATA", "sympyish/__init__.pyc", "sympyish/core.pyc",
                       "sympyish/data.txt", "sympyish/py2_leftover.py", "torch/__init__.py",
                       "torch/__pycache__/" + next((out / "torch/__pycache__").iterdir()).name]
    probe = "import torch, sympyish.core as c; print(torch.TORCH, c.__file__.endswith('core.pyc'))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=out, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["42", "True"]


def test_a_requirement_with_extras_brings_what_the_extras_require() -> None:
    """The CUDA build of torch requires ``cuda-toolkit[cudart,cusparse]``: the libraries come through the
    extras, and a sidecar that followed only names shipped torch without libcudart (found by the library
    check of the first CUDA build)."""
    from compile.probe import requirement_names

    class Dist:
        def __init__(self, requires: list[str]) -> None:
            self.requires = requires

    toolkit = Dist(['nvidia-cuda-runtime==13.0.*; extra == "cudart"', 'nvidia-cusparse; extra == "cusparse"',
                    'nvidia-cufft; extra == "cufft"', 'cuda-toolkit[cudart]; extra == "all"'])
    torch = Dist(['filelock', 'cuda-toolkit[cudart,cusparse]==13.0.2; platform_system == "Linux"',
                  'sympy; extra == "opt"'])
    by_name = {"cuda-toolkit": toolkit, "torch": torch}
    names = requirement_names(torch, by_name)  # type: ignore[arg-type]
    assert names[0] == "filelock" and "cuda-toolkit" in names
    assert {"nvidia-cuda-runtime", "nvidia-cusparse"} <= set(names)
    assert "nvidia-cufft" not in names and "sympy" not in names
    assert requirement_names(toolkit, by_name, ("all",)) == ["cuda-toolkit", "nvidia-cuda-runtime"]  # no loop


def test_a_record_ships_without_the_console_scripts_entries(tmp_path: Path) -> None:
    """A console script's hash covers its shebang, which names the build env's folder: kept, it made a
    change to any pin change the RECORD of every distribution with a script (11 layers for one pin)."""
    site = tmp_path / "site"
    record = ("tqdm/__init__.py,sha256=abc,10\n"
              "../../../bin/tqdm,sha256=y90Lii1bpEmxugkXMr-ic6YVi2wAZuqKTAdtiQB2ogU,254\n"
              "tqdm-4.dist-info/RECORD,,\n")
    files = {"tqdm/__init__.py": "x = 1\n", "tqdm-4.dist-info/METADATA": "Name: tqdm\n", "tqdm-4.dist-info/RECORD": record}
    for name, text in files.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text)
    facts = {"distributions": {"tqdm": dist([], ["tqdm"], list(files), str(site))}}
    plan = SidecarPlan(distributions=("tqdm",), shared=(), compiled_side=(), nofollow_imports=(), complete_packages=())
    materialize(plan, facts, tmp_path / "out", [])
    shipped = (tmp_path / "out" / "tqdm-4.dist-info" / "RECORD").read_text()
    assert shipped == "tqdm/__init__.py,sha256=abc,10\ntqdm-4.dist-info/RECORD,,\n"
