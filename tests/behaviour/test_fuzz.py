"""Schemathesis against the running backend, from its own OpenAPI document, every phase (examples,
coverage, fuzzing, stateful sequences that follow the document's links) and every check: each answer is
one the document declares, with a body of the declared type, never a server error; a schema-valid
request is accepted and a schema-violating one refused. The two rules no schema can state are in
``tests/support/schemathesis.toml``, with why.

Bounded here (``PEFT_FUZZ_EXAMPLES`` per operation, default 5: about 500 cases, 2 minutes); the nightly
run takes 100 (over 10,000 cases: ``python -m tests nightly``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import RunningBackends

pytestmark = pytest.mark.slow  # schemathesis runs for minutes

CONFIG = Path(__file__).resolve().parent.parent / "support" / "schemathesis.toml"


def schemathesis_command() -> list[str]:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
    assert found, "schemathesis is a dev dependency: pip install -e '.[dev]'"
    return [found]


def test_generated_requests_get_declared_answers_and_no_server_error(backends: RunningBackends,
                                                                     tmp_path: Path) -> None:
    _, server = backends.start()
    assert server.ready is not None
    examples = int(os.environ.get("PEFT_FUZZ_EXAMPLES", "5"))
    report = tmp_path / "schemathesis.json"
    command = [
        *schemathesis_command(), "--config-file", str(CONFIG), "run",
        f"http://127.0.0.1:{server.ready.port}/openapi.json",
        "-H", f"Authorization: Bearer {server.ready.token}", "--checks", "all",
        "--max-examples", str(examples), "--seed", "20261129", "--workers", "1", "--no-color",
        "--exclude-path", "/api/shutdown",  # it would stop the server under test
        "--generation-database", "none", "--report", "json", "--report-json-path", str(report),
        "--request-timeout", "120",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=max(1800, 30 * examples), cwd=tmp_path)
    summary = result.stdout[result.stdout.rfind("SUMMARY"):] if "SUMMARY" in result.stdout else result.stdout[-4000:]
    assert result.returncode == 0, result.stdout[-12000:] + result.stderr[-3000:]
    print(summary)  # the case count, in pytest -s and in CI logs on failure
    generated = re.search(r"(\d+) generated", summary)
    # 25 operations: a run that generated far fewer cases than asked did not test what it claims
    assert generated and int(generated.group(1)) >= 20 * examples, summary
    assert server.request("GET", "/health", auth=False).status == 200
    if report.is_file():
        json.loads(report.read_text(encoding="utf-8"))
