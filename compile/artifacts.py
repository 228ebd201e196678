"""Built artifacts as the tools that run them see them: found from ``dist/<variant>/build.json``.

``compile verify``, ``compile report``, the benchmarks and the HTTP behaviour suite all locate an
artifact here, and start it with the same launch spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.variants import BUILT, Variant, variant_named
from backend_client.manager import LaunchSpec
from compile.errors import ArtifactError
from compile.results import BUILD_RECORD, load_build_record


@dataclass(frozen=True)
class Artifact:
    folder: Path  # dist/<variant>: the build record, manifest and reports
    executable: Path
    variant: Variant
    record: dict[str, Any]

    @property
    def root(self) -> Path:
        """What the user gets: the onefile itself, or the folder that holds the executable."""
        return self.executable if self.variant.onefile else self.executable.parent

    def launch_spec(self, data_dir: Path | None, **kwargs: Any) -> LaunchSpec:
        return LaunchSpec.artifact(self.executable, data_dir, **kwargs)


def locate(path: Path) -> Artifact:
    """Accept ``dist/<variant>``, its executable, or anything inside it that has a build.json above."""
    path = path.resolve()
    for folder in [path, *path.parents]:
        record_path = folder / BUILD_RECORD
        if record_path.is_file():
            try:
                record = load_build_record(record_path)
                variant = variant_named(record["variant"])
            except (ValueError, KeyError) as exc:
                raise ArtifactError(f"{record_path}: {exc}", hint="rebuild it with python -m compile") from exc
            executable = folder / record["executable"]
            if not executable.exists():
                raise ArtifactError(f"{record_path} names {executable}, which does not exist",
                                    hint=f"rebuild it with {variant.build_command}")
            return Artifact(folder=folder, executable=executable, variant=variant, record=record)
    raise ArtifactError(f"no {BUILD_RECORD} found at or above {path}",
                        hint="pass a dist/<variant> folder written by python -m compile")


def discover(dist: Path, variants: tuple[Variant, ...] = BUILT) -> tuple[list[Artifact], dict[str, str]]:
    """The artifacts of ``variants`` built under ``dist``, and for each one missing the command that builds it."""
    present, missing = [], {}
    for variant in variants:
        if not variant.frozen:
            continue
        folder = dist / variant.name
        if not (folder / BUILD_RECORD).is_file():
            missing[variant.name] = variant.build_command
            continue
        present.append(locate(folder))
    return present, missing
