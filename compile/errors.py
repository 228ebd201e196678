"""Every way a build can fail, each with its own exit code and a message that says what to do next."""

from __future__ import annotations


class CompileError(Exception):
    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  -> {self.hint}" if self.hint else self.message


class ConfigError(CompileError):
    """Invalid [tool.compile] table, environment variable or flag."""

    exit_code = 2


class UsageError(CompileError):
    """Unknown command, mode or platform."""

    exit_code = 2


class MissingToolError(CompileError):
    """A compiler, patchelf, Nuitka, PyInstaller... is missing: nothing was started."""

    exit_code = 3


class DataFileError(CompileError):
    """A declared data file glob matched nothing, or a file cannot be read."""

    exit_code = 4


class BuildEnvError(CompileError):
    """The isolated build environment could not be created."""

    exit_code = 5


class BuildFailed(CompileError):
    """Nuitka or PyInstaller exited non-zero; the message names the full log."""

    exit_code = 6


class VerifyFailed(CompileError):
    """``compile verify`` found at least one failing check."""

    exit_code = 7


class ArtifactError(CompileError):
    """The artifact to verify or report on does not exist or is not a build of ours."""

    exit_code = 8


class OnefileTooLarge(CompileError):
    """A onefile would exceed what its format can hold: refused, and nothing is left in dist/."""

    exit_code = 9
