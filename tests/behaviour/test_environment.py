"""The backend behaves the same whatever the user's environment holds: each variable below, alone, given
to a start explicitly (the service manager drops only the ones it inherits, as a careless launcher
would not), and the backend starts, trains, generates and stops with exit 0.

A frozen build ignores every ``PYTHON*`` variable, as ``python -I`` does, in the server and in every
worker. A source run stays an ordinary Python run: the variables Python honours by design (warnings as
errors, optimisation, an import path that shadows modules...) are skipped there, saying so."""

from __future__ import annotations

import signal
from pathlib import Path

import psutil
import pytest

from backend_client import checks
from backend_client.process_tree import CHILD_GRACE_S
from tests.support import RunningBackends, Target
from tests.support.jobs_api import create_job, wait_status

pytestmark = pytest.mark.slow  # a server start per variable

FINAL = ("completed", "cancelled", "failed", "interrupted")

# name: (changes to the environment, whether a source run is affected by design)
HOSTILE: dict[str, tuple[dict[str, str | None], bool]] = {
    "PYTHONWARNINGS=error": ({"PYTHONWARNINGS": "error"}, True),
    "PYTHONOPTIMIZE=2": ({"PYTHONOPTIMIZE": "2"}, True),
    "PYTHONDEVMODE=1": ({"PYTHONDEVMODE": "1"}, True),
    "PYTHONMALLOC=debug": ({"PYTHONMALLOC": "debug"}, True),
    "PYTHONTRACEMALLOC=5": ({"PYTHONTRACEMALLOC": "5"}, True),
    "PYTHONINSPECT=1": ({"PYTHONINSPECT": "1"}, True),
    "PYTHONVERBOSE=1": ({"PYTHONVERBOSE": "1"}, True),
    "PYTHONASYNCIODEBUG=1": ({"PYTHONASYNCIODEBUG": "1"}, True),
    "PYTHONPATH with shadowing modules": ({"PYTHONPATH": "{shadow}"}, True),
    "PYTHONHOME=/nonexistent": ({"PYTHONHOME": "/nonexistent"}, True),
    "PYTHONSTARTUP=a failing script": ({"PYTHONSTARTUP": "{startup}"}, False),
    "PYTHONIOENCODING=ascii": ({"PYTHONIOENCODING": "ascii"}, False),
    "LANG=C LC_ALL=C": ({"LANG": "C", "LC_ALL": "C"}, False),
    "TMPDIR missing": ({"TMPDIR": "/nonexistent-tmp"}, False),
    "HOME missing": ({"HOME": None}, False),
}


def materialize(changes: dict[str, str | None], tmp_path: Path) -> dict[str, str | None]:
    shadow = tmp_path / "shadow"
    shadow.mkdir(exist_ok=True)
    for module in ("fastapi", "torch", "json", "transformers"):
        (shadow / f"{module}.py").write_text(f"raise ImportError('the shadowing {module} was imported')\n")
    startup = tmp_path / "startup.py"
    startup.write_text("raise SystemExit('PYTHONSTARTUP ran')\n")
    return {key: value.format(shadow=shadow, startup=startup) if value else value for key, value in changes.items()}


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_variable_changes_nothing(name: str, backends: RunningBackends, target: Target,
                                            tmp_path: Path) -> None:
    changes, source_honours = HOSTILE[name]
    if source_honours and not target.variant.frozen:
        pytest.skip(f"a source run is an ordinary Python run: it honours {name} by design")
    env = materialize(changes, tmp_path)
    data_dir = tmp_path / "data"
    _, server = backends.start(data_dir, env=env)  # given explicitly: the manager passes it on
    job = wait_status(server, create_job(server, max_steps=2, checkpoint_every=0)["id"], *FINAL, timeout=300)
    assert job["status"] == "completed", job
    checks.generate(server)
    tree = server.process_tree()
    server.popen.send_signal(signal.SIGTERM)
    code = server.popen.wait(30)
    assert code == 0, f"exit code {code} under {name}; stderr:\n{server.stderr_tail(40)}"
    children = [p for p in tree if p.pid != server.popen.pid]
    _, alive = psutil.wait_procs(children, timeout=CHILD_GRACE_S)  # the server's exit takes them along
    assert not [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], \
        f"children left running under {name}: {[p.pid for p in alive]}"
