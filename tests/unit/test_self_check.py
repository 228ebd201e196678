"""The library check of ``peft_engine --self-check libraries`` on shared libraries built here with gcc:
it loads them in dependency order, and fails naming the library when one needs what is not shipped,
when one cannot load, and when one is damaged. (Against real builds: ``compile verify``.)"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backend.elf import read_dynamic
from backend.self_check import SYSTEM_LIBRARIES, check_libraries, dependency_order
from backend.services.devices import DeviceFacts, device_reason

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("gcc") is None,
                                reason="ELF shared libraries built with gcc: Linux")


def build_library(folder: Path, name: str, source: str, needs: tuple[str, ...] = (), origin: bool = False) -> Path:
    """``lib<name>.so`` with the soname ``lib<name>.so``, linked against ``needs`` (found in ``folder``),
    without an RPATH (``origin``: with ``$ORIGIN``, as torch's libraries have): it loads only if what it
    needs is loaded first (or on the system's path)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.c").write_text(source)
    target = folder / f"lib{name}.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(target), f"-Wl,-soname,lib{name}.so", str(folder / f"{name}.c"),
                    "-Wl,--no-as-needed", f"-L{folder}", *(f"-l{need}" for need in needs),
                    *(["-Wl,-rpath,$ORIGIN"] if origin else [])],
                   check=True, capture_output=True)
    (folder / f"{name}.c").unlink()
    return target


@pytest.fixture
def pair(tmp_path: Path) -> Path:
    """``libbase.so`` and ``libuser.so``, which needs it, in nested folders like a sidecar's."""
    build_library(tmp_path / "z" / "lib", "base", "int base(void) { return 41; }")
    shutil.copy(tmp_path / "z" / "lib" / "libbase.so", tmp_path / "libbase.so")  # only to link against
    build_library(tmp_path, "user", "int base(void); int user(void) { return base() + 1; }", needs=("base",))
    (tmp_path / "libbase.so").unlink()
    return tmp_path


def test_the_reader_sees_what_readelf_sees(pair: Path) -> None:
    info = read_dynamic(pair / "libuser.so")
    assert info.shared_object and info.soname == "libuser.so"
    assert "libbase.so" in info.needed
    programs = [path for path in (Path("/bin/ls"), Path("/usr/bin/env")) if path.is_file()]
    assert programs and not read_dynamic(programs[0]).shared_object


def test_libraries_load_in_dependency_order(pair: Path) -> None:
    report = check_libraries([pair])
    assert report.passed, report.to_dict()
    assert (report.libraries, report.loaded) == (2, 2)
    assert set(report.system) <= SYSTEM_LIBRARIES


def test_the_order_puts_what_is_needed_first(pair: Path) -> None:
    infos = {path: read_dynamic(path) for path in (pair / "libuser.so", pair / "z" / "lib" / "libbase.so")}
    assert [path.name for path in dependency_order(infos)] == ["libbase.so", "libuser.so"]


def test_a_library_that_needs_what_is_not_shipped_fails_naming_both(pair: Path) -> None:
    (pair / "z" / "lib" / "libbase.so").unlink()
    report = check_libraries([pair])
    assert not report.passed
    assert report.outside == [{"path": str(pair / "libuser.so"), "needs": ["libbase.so"]}]


def test_a_library_the_loader_refuses_fails_with_its_error(pair: Path) -> None:
    # the dependency is shipped under its name but lacks the symbol the user binds at load time
    build_library(pair / "z" / "lib", "base", "int other(void) { return 0; }")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(pair / "libuser.so"), "-Wl,-soname,libuser.so",
                    "-Wl,-z,now", "-x", "c", "-", f"-L{pair / 'z' / 'lib'}", "-lbase"],
                   input=b"int other(void); int missing(void); int user(void) { return other() + missing(); }",
                   check=False, capture_output=True)
    report = check_libraries([pair])
    assert not report.passed
    assert [Path(item["path"]).name for item in report.failed] == ["libuser.so"], report.to_dict()
    assert "missing" in report.failed[0]["error"]


def test_a_damaged_library_is_reported(pair: Path) -> None:
    damaged = pair / "z" / "lib" / "libbase.so"
    damaged.write_bytes(damaged.read_bytes()[:200])
    report = check_libraries([pair])
    assert not report.passed and (report.unreadable or report.failed), report.to_dict()


def test_nothing_to_check_is_not_a_pass(tmp_path: Path) -> None:
    assert not check_libraries([tmp_path]).passed


@pytest.mark.parametrize(("requested", "device", "facts", "says"), [
    ("auto", "cpu", DeviceFacts(), "CPU build"),
    ("auto", "cpu", DeviceFacts(torch_cuda="13.0"), "no CUDA device is available"),
    ("auto", "cuda", DeviceFacts(cuda=True, cuda_name="NVIDIA H100", torch_cuda="13.0"), "NVIDIA H100"),
    ("cpu", "cpu", DeviceFacts(cuda=True, torch_cuda="13.0"), "asked for"),
])
def test_the_device_reason_says_why_not_a_gpu(requested: str, device: str, facts: DeviceFacts, says: str) -> None:
    assert says in device_reason(requested, device, facts)


def test_a_library_that_binds_symbols_from_its_users_scope_passes_when_its_user_loads(tmp_path: Path) -> None:
    """libtorch_nvshmem.so uses c10_cuda's allocator without needing libc10_cuda.so: it loads inside
    libtorch_cuda.so's scope, which needs both. Alone it cannot load; its user's load proves it."""
    build_library(tmp_path, "provider", "int provided(void) { return 1; }")
    plugin = tmp_path / "plugin.c"
    plugin.write_text("int provided(void); int plugin(void) { return provided(); }")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(tmp_path / "libplugin.so"), "-Wl,-soname,libplugin.so",
                    "-Wl,-z,now", str(plugin)], check=True, capture_output=True)  # no NEEDED on libprovider
    plugin.unlink()
    build_library(tmp_path, "user", "int plugin(void); int user(void) { return plugin(); }",
                  needs=("provider", "plugin"), origin=True)
    report = check_libraries([tmp_path])
    assert report.passed, report.to_dict()
    assert [Path(item["path"]).name for item in report.loaded_as_dependency] == ["libplugin.so"]
    (tmp_path / "libuser.so").unlink()  # without its user nothing proves it loads (in a fresh process:
    # what this one loaded stays loaded)
    script = ("import json, sys; from pathlib import Path; from backend.self_check import check_libraries; "
              "print(json.dumps(check_libraries([Path(sys.argv[1])]).to_dict()))")
    fresh = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True,
                           cwd=Path(__file__).resolve().parents[2])
    report_dict = json.loads(fresh.stdout)
    assert not report_dict["passed"]
    assert [Path(item["path"]).name for item in report_dict["failed"]] == ["libplugin.so"]
