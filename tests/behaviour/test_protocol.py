"""The spawn protocol (docs/user-guide/protocol.md): ready line, health, token, Host, exit codes."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from backend import __version__
from backend_client import checks
from tests.support import RunningBackends, Target, environment_with, fresh_home


def test_ready_line_health_token_and_host(backends: RunningBackends, target: Target) -> None:
    _, server = backends.start()
    assert server.ready is not None
    assert server.ready.mode == target.variant.name
    assert server.ready.version == __version__
    assert checks.health(server, target.variant.name) == "200"
    assert server.request("GET", "/health", auth=False).json()["pid"] == server.ready.pid
    checks.token(server)
    checks.host_check(server)
    report = server.stop()
    assert report.graceful and report.exit_code == 0 and not report.leftover_pids
    assert server.extra_stdout == [], "stdout must carry the ready line only"


def run_to_exit(target: Target, *args: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*target.command(), *args], env=environment_with(fresh_home(home)), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(("args", "expected"), [
    (("--port", "70000"), "port"),
    (("--host", "0.0.0.0"), "refusing to bind"),
    (("--log-level", "loud"), "invalid choice"),
    (("--token", "short"), "token"),
])
def test_invalid_settings_exit_2_with_a_message(target: Target, tmp_path: Path, args: tuple[str, ...],
                                                 expected: str) -> None:
    result = run_to_exit(target, *args, "--data-dir", str(tmp_path / "data"), home=tmp_path)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert result.stdout == "", "no ready line when the settings are invalid"


def test_a_taken_port_exits_1(target: Target, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_to_exit(target, "--port", str(port), "--data-dir", str(tmp_path / "data"), home=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "pick another --port" in result.stderr


def test_a_folder_build_refuses_a_data_dir_inside_its_folder(target: Target, tmp_path: Path) -> None:
    if not target.variant.frozen or target.variant.onefile:
        pytest.skip("applies to folder builds (standalone, onedir)")
    assert target.root is not None
    inside = target.root / "peft-data-test"
    result = run_to_exit(target, "--data-dir", str(inside), home=tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "install folder" in result.stderr and "--data-dir" in result.stderr
    assert not inside.exists()


def test_a_onefile_keeps_data_beside_itself_when_asked(backends: RunningBackends, target: Target,
                                                       tmp_path: Path) -> None:
    """Only a onefile's unpack dir is its own: the folder holding the file is the user's."""
    if not target.variant.onefile:
        pytest.skip("applies to onefile builds")
    assert target.executable is not None
    home = tmp_path / "home"
    home.mkdir()
    placed = home / target.executable.name
    os.link(target.executable, placed)
    beside = home / "peft-data"
    _, server = backends.start(beside, executable=placed, env=fresh_home(home))
    assert server.request("GET", "/health", auth=False).status == 200
    assert (beside / "state.sqlite3").is_file()
