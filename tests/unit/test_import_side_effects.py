"""Importing the project's packages changes nothing global: the build and benchmark tools import
``backend`` (variants, version), and the process they start tools from must stay as the user set it up."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from backend_client.manager import REPO_ROOT

PROBE = """
import json, os, sys
environ, path, modules = dict(os.environ), list(sys.path), dict(sys.modules)
for name in sys.argv[1:]:
    __import__(name)
added = sorted(set(sys.modules) - set(modules))
print(json.dumps({
    "environ_changed": sorted(k for k in set(os.environ) | set(environ) if os.environ.get(k) != environ.get(k)),
    "path_changed": sys.path != path,
    "blocked": sorted(k for k, v in sys.modules.items() if v is None and k not in modules),
    "foreign": [m for m in added if m.split(".")[0] in ("torch", "transformers", "peft")],
}))
"""


@pytest.mark.parametrize("modules", [
    ["compile", "compile.cli", "compile.options", "compile.build"],
    ["benchmarks", "benchmarks.cli"],
    ["backend", "backend.variants", "backend.app", "backend.main", "backend.services.container"],
    ["backend_client.manager", "backend_client.checks"],
])
def test_importing_changes_neither_the_environment_nor_the_module_table(modules: list[str]) -> None:
    result = subprocess.run([sys.executable, "-c", PROBE, *modules], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found == {"environ_changed": [], "path_changed": False, "blocked": [], "foreign": []}, found
