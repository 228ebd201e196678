"""A small unified-diff applier: what ``git apply`` does for the patches carried against Nuitka, with no
tool to install (git is not guaranteed on a Windows or macOS build machine).

- :func:`parse` reads a patch file: a header (the reason, measurements, upstream status; free text up to
  the first ``--- a/`` line), then one or more files, each with hunks.
- :func:`apply_file` applies one file's hunks to its text, exactly: each hunk's context and removed lines
  must match, at the line the hunk names or at the nearest offset (as ``patch`` does), never with fuzz.
  ``reverse=True`` undoes a patch (the check that it is applied already).
- :func:`apply_series` applies patches in order, to an in-memory copy of every file they touch: nothing is
  written unless the whole series applies (the check step), and a file is then replaced atomically.

Paths in a patch are relative to the folder that holds the ``nuitka`` package, with one leading
component (``a/``, ``b/``) stripped, as ``git apply -p1`` reads them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


class PatchError(Exception):
    """A patch that cannot be read, or does not apply; the message names the patch, the file and the hunk."""


@dataclass(frozen=True)
class Hunk:
    old_start: int  # 1-based
    lines: tuple[str, ...]  # each starts with " ", "-" or "+"; no line ending

    def old(self) -> list[str]:
        return [line[1:] for line in self.lines if line[0] in " -"]

    def new(self) -> list[str]:
        return [line[1:] for line in self.lines if line[0] in " +"]

    def reversed(self) -> Hunk:
        swap = {" ": " ", "-": "+", "+": "-"}
        new_start = self.old_start  # approximate: the search finds the exact place
        return Hunk(new_start, tuple(swap[line[0]] + line[1:] for line in self.lines))


@dataclass(frozen=True)
class FilePatch:
    path: str  # relative, "/"-separated
    hunks: tuple[Hunk, ...]


@dataclass(frozen=True)
class Patch:
    name: str  # the file name without number and suffix: 0003-bytecode-outside-image.patch -> bytecode-outside-image
    source: Path
    header: str
    files: tuple[FilePatch, ...]
    digest: str  # sha256 of the file's bytes

    @property
    def marker(self) -> str:
        """Every carried patch writes this into the code it adds (how an earlier version is recognised)."""
        return f"peft-engine patch {self.name}"

    @property
    def subject(self) -> str:
        """The header's ``Subject:`` line, without its ``[PATCH n/m]``."""
        return re.sub(r"^\[PATCH[^\]]*\]\s*", "", self.field("Subject"))

    def field(self, name: str) -> str:
        """A ``Name: value`` line of the header ("" when absent)."""
        found = re.search(rf"^{re.escape(name)}:\s*(.*)$", self.header, re.MULTILINE)
        return found.group(1).strip() if found else ""


def parse(text: str, *, name: str, source: Path) -> Patch:
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("--- ")), None)
    if start is None:
        raise PatchError(f"{source.name}: no '--- a/...' line: not a unified diff")
    header = "\n".join(lines[:start])
    files: list[FilePatch] = []
    index = start
    while index < len(lines):
        line = lines[index]
        if not line.startswith("--- "):
            index += 1
            continue
        if index + 1 >= len(lines) or not lines[index + 1].startswith("+++ "):
            raise PatchError(f"{source.name}: '---' without '+++' at line {index + 1}")
        target = lines[index + 1][4:].split("\t")[0].strip()
        path = target.split("/", 1)[1] if "/" in target else target
        index += 2
        hunks: list[Hunk] = []
        while index < len(lines) and lines[index].startswith("@@"):
            match = _HUNK.match(lines[index])
            if not match:
                raise PatchError(f"{source.name}: bad hunk header at line {index + 1}: {lines[index]!r}")
            old_count = int(match.group(2) or 1)
            new_count = int(match.group(4) or 1)
            index += 1
            body: list[str] = []
            old_seen = new_seen = 0
            while index < len(lines) and (old_seen < old_count or new_seen < new_count):
                current = lines[index]
                if current.startswith("\\"):  # "\ No newline at end of file"
                    index += 1
                    continue
                kind = current[:1] or " "
                if kind not in " -+":
                    raise PatchError(f"{source.name}: unexpected line {index + 1} in a hunk: {current!r}")
                body.append(kind + current[1:])
                old_seen += kind in " -"
                new_seen += kind in " +"
                index += 1
            if (old_seen, new_seen) != (old_count, new_count):
                raise PatchError(f"{source.name}: a hunk of {path} is shorter than its header says")
            hunks.append(Hunk(int(match.group(1)), tuple(body)))
        if not hunks:
            raise PatchError(f"{source.name}: no hunk for {path}")
        files.append(FilePatch(path, tuple(hunks)))
    return Patch(name=name, source=source, header=header, files=tuple(files),
                 digest=hashlib.sha256(text.encode("utf-8")).hexdigest())


def load(path: Path) -> Patch:
    stem = path.name.removesuffix(".patch")
    name = stem.split("-", 1)[1] if re.match(r"^\d+-", stem) else stem
    return parse(path.read_text(encoding="utf-8"), name=name, source=path)


def series(folder: Path) -> list[Patch]:
    """The patches of a folder, in the order of their numbers (``0001-...patch`` first)."""
    return [load(path) for path in sorted(folder.glob("[0-9][0-9][0-9][0-9]-*.patch"))]


def _find(lines: list[str], block: list[str], expected: int, after: int) -> int | None:
    """Where ``block`` occurs in ``lines`` at or after ``after``, nearest to ``expected`` (0-based)."""
    limit = len(lines) - len(block)
    for position in sorted(range(after, limit + 1), key=lambda candidate: (abs(candidate - expected), candidate)):
        if lines[position:position + len(block)] == block:
            return position
    return None


def apply_file(text: str, file: FilePatch, *, reverse: bool = False, what: str = "") -> str:
    """The text with every hunk applied (or undone); PatchError naming the first hunk that does not match."""
    ending = "\n"
    trailing = text.endswith("\n")
    lines = text.split("\n")
    if trailing:
        lines.pop()
    offset, after = 0, 0
    for number, hunk in enumerate(file.hunks, start=1):
        hunk = hunk.reversed() if reverse else hunk
        old, new = hunk.old(), hunk.new()
        expected = max(0, hunk.old_start - 1 + offset)
        position = _find(lines, old, expected, after)
        if position is None:
            raise PatchError(f"{what or file.path}: hunk {number} (at line {hunk.old_start}) does not match")
        lines[position:position + len(old)] = new
        offset += len(new) - len(old)
        after = position + len(new)
    return ending.join(lines) + (ending if trailing else "")


@dataclass
class SeriesResult:
    texts: dict[str, str] = field(default_factory=dict)  # path -> text after the series
    changed: set[str] = field(default_factory=set)


def apply_series(patches: Iterable[Patch], read: Mapping[str, str] | None = None, *, root: Path | None = None,
                 reverse: bool = False) -> SeriesResult:
    """Apply (or with ``reverse``, undo, last patch first) a series to the files' texts, in memory. Texts come
    from ``read`` or from files under ``root``. PatchError names the first patch and hunk that fails."""
    ordered = list(patches)
    if reverse:
        ordered.reverse()
    result = SeriesResult()
    for patch in ordered:
        for file in patch.files:
            if file.path not in result.texts:
                if read is not None and file.path in read:
                    result.texts[file.path] = read[file.path]
                elif root is not None:
                    result.texts[file.path] = (root / file.path).read_text(encoding="utf-8")
                else:
                    raise PatchError(f"{patch.source.name}: no text for {file.path}")
            before = result.texts[file.path]
            result.texts[file.path] = apply_file(before, file, reverse=reverse,
                                                 what=f"{patch.source.name}, {file.path}")
            if result.texts[file.path] != before:
                result.changed.add(file.path)
    return result


def write_atomically(root: Path, texts: Mapping[str, str]) -> None:
    """Every file written beside its target first; then each swapped in (a crash leaves whole files)."""
    staged = []
    for path, text in texts.items():
        target = root / path
        temporary = target.with_name(target.name + ".peft-engine-patch")
        temporary.write_text(text, encoding="utf-8", newline="")
        staged.append((temporary, target))
    for temporary, target in staged:
        temporary.replace(target)
