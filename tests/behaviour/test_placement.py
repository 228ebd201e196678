"""Where users really put a build, started as they would: no ``--data-dir``, a fresh HOME, from a
read-only folder, as an unprivileged user. The data always lands in the per-user data dir.

Mounting (a read-only bind mount, a separate file system for the USB stick) and switching user need
root, which CI has; elsewhere those cases skip and say why.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend_client import checks
from backend_client.manager import BackendProcess
from tests.support import RunningBackends, Target, fresh_home

NOBODY = 65534
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="mounting and switching user need root (CI runs as root)")


@pytest.fixture
def public_tmp() -> Iterator[Path]:
    """A scratch folder every user can enter (pytest's own tmp folders are private to their owner)."""
    folder = Path(tempfile.mkdtemp(prefix="peft-place-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def mounted(*args: str, target: Path) -> Iterator[Path]:
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", *args, str(target)], check=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


@contextlib.contextmanager
def read_only_view(source: Path, target: Path) -> Iterator[Path]:
    """``source`` (a folder) seen read-only at ``target``, as an installed application folder is."""
    with mounted("--bind", str(source), target=target):
        subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True)
        yield target


def place(executable: Path, folder: Path) -> Path:
    """The onefile put in ``folder`` by the user (a hard link where possible: same bytes, no copy)."""
    folder.mkdir(parents=True, exist_ok=True)
    placed = folder / executable.name
    try:
        os.link(executable, placed)
    except OSError:  # another file system (the USB stick)
        shutil.copy2(executable, placed)
    return placed


def start_as_a_new_user(backends: RunningBackends, executable: Path, home: Path, *,
                        as_nobody: bool = False) -> BackendProcess:
    """Start ``executable`` with no --data-dir and a fresh HOME, optionally as the unprivileged ``nobody``."""
    prefix: tuple[str, ...] = ()
    if as_nobody:
        home.mkdir(parents=True, exist_ok=True)
        os.chown(home, NOBODY, NOBODY)
        prefix = ("setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups")
    _, process = backends.start(executable=executable, default_data_dir=True, env=fresh_home(home), prefix=prefix)
    return process


def expect_default_data_dir(home: Path) -> None:
    data = home / ".local" / "share" / "peft_engine"
    assert (data / "state.sqlite3").is_file(), f"no database in the per-user data dir {data}"


ONEFILE_PLACES = ["home", "Desktop", "Downloads"]


@pytest.mark.parametrize("place_name", ONEFILE_PLACES)
def test_a_onefile_starts_where_users_put_it(place_name: str, backends: RunningBackends, target: Target,
                                             public_tmp: Path) -> None:
    if not target.variant.onefile or target.executable is None:
        pytest.skip("applies to onefile builds")
    home = public_tmp / "home"
    folder = home if place_name == "home" else home / place_name
    executable = place(target.executable, folder)
    server = start_as_a_new_user(backends, executable, home)
    checks.health(server, target.variant.name)
    expect_default_data_dir(home)
    if place_name == "home":
        checks.generate(server)  # the ML stack loads from the payload, whatever the folder
    checks.shutdown(server)


@needs_root
def test_a_onefile_starts_from_a_usb_stick(backends: RunningBackends, target: Target, public_tmp: Path) -> None:
    if not target.variant.onefile or target.executable is None:
        pytest.skip("applies to onefile builds")
    size = target.executable.stat().st_size + 64 * 2**20
    with mounted("-t", "tmpfs", "-o", f"size={size}", "usb-stick", target=public_tmp / "media" / "USB STICK") as stick:
        executable = place(target.executable, stick / "apps")
        server = start_as_a_new_user(backends, executable, public_tmp / "home")
        checks.health(server, target.variant.name)
        expect_default_data_dir(public_tmp / "home")
        checks.shutdown(server)


@needs_root
def test_from_a_read_only_applications_folder_as_another_user(backends: RunningBackends, target: Target,
                                                               public_tmp: Path) -> None:
    """Installed read-only (a bind mount), started by an unprivileged user with a fresh HOME: the first
    ML request works, and the data goes to that user's data dir."""
    if target.root is None or target.executable is None:
        pytest.skip("applies to built artifacts")
    # a onefile is placed in a folder of its own; a folder build is that folder
    source = place(target.executable, public_tmp / "staging").parent if target.variant.onefile else target.root
    with read_only_view(source, public_tmp / "Applications" / "peft_engine") as apps:
        executable = apps / (target.executable.name if target.variant.onefile
                             else target.executable.relative_to(source))
        home = public_tmp / "home-nobody"
        server = start_as_a_new_user(backends, executable, home, as_nobody=True)
        checks.health(server, target.variant.name)
        checks.generate(server)
        expect_default_data_dir(home)
        checks.shutdown(server)
