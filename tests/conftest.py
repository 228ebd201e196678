"""Fixtures only: the variant under test (``--artifact``) and the backends a test starts. Helpers are in
``tests/support``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.variants import SOURCE
from tests.support import RunningBackends, Target


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--artifact", default="source", metavar="PATH",
        help="run the HTTP behaviour suite (tests/behaviour) against a built artifact, e.g. dist/nuitka-standalone; "
             "default: source",
    )


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Target:
    value = request.config.getoption("--artifact")
    if value == SOURCE.name:
        return Target(SOURCE)
    from compile.artifacts import locate
    from compile.errors import ArtifactError

    try:
        artifact = locate(Path(value))
    except ArtifactError as exc:
        raise pytest.UsageError(f"--artifact {value}: {exc}") from exc
    return Target(artifact.variant, artifact.executable)


@pytest.fixture
def backends(tmp_path: Path, target: Target) -> Iterator[RunningBackends]:
    running = RunningBackends(tmp_path, target)
    try:
        yield running
    finally:
        running.close()
