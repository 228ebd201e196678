"""One frozen :class:`BuildOptions` per build, resolved in a documented order.

Order (later wins):
1. defaults (this module);
2. ``[tool.compile]`` in ``pyproject.toml``;
3. ``[tool.compile.linux|macos|windows]`` for the target platform;
4. ``[tool.compile.cpu|cuda]`` for the torch flavour built (which the later sources may choose);
5. environment variables ``COMPILE_<KEY>`` (``COMPILE_JOBS=4``, ``COMPILE_ONEFILE_AS_ARCHIVE=1``;
   lists are comma-separated);
6. command-line flags.

Keys are the field names with ``-`` for ``_`` (``product-name``). An unknown key is an error naming it.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import tomllib

from backend.variants import BUILT_NAMES, TORCH_FLAVOURS, Variant, flavoured, variant_named
from compile.errors import ConfigError, UsageError

PlatformName = Literal["linux", "macos", "windows"]
PLATFORMS: tuple[PlatformName, ...] = get_args(PlatformName)
ConsoleMode = Literal["force", "disable", "attach", "hide"]
ENV_PREFIX = "COMPILE_"


@dataclass(frozen=True, kw_only=True)
class DataSpec:
    """Files matching ``glob`` (relative to the project root) go under ``destination`` in the build,
    keeping their path below the glob's first wildcard-free folder."""

    glob: str
    destination: str


@dataclass(frozen=True, kw_only=True)
class BuildOptions:
    # what is built
    platform: PlatformName
    variant: str  # a built variant's name (backend.variants), its torch flavour included
    project_root: Path
    entry_point: str = "peft_engine.py"
    product_name: str = "peft_engine"
    company_name: str = "PEFT Studio"
    version: str = "0.0.0"
    description: str = "peft-engine backend"
    copyright: str = ""
    icon: str | None = None
    data: tuple[DataSpec, ...] = ()
    # where
    dist_dir: str = "dist"
    build_dir: str = "build"
    # which torch: the CPU build (the default), or the CUDA build with its nvidia-* libraries, installed
    # from cuda-index-url whatever this machine's pip configuration prefers (docs/developer-guide/cuda.md)
    torch: Literal["cpu", "cuda"] = "cpu"
    cuda_index_url: str = "https://pypi.org/simple"
    # how modules are included
    bytecode_packages: tuple[str, ...] = ()  # Nuitka bytecode demotion (small packages only), included whole
    bytecode_modules: tuple[str, ...] = ()  # modules or namespaces demoted; included by following as usual
    sidecar_roots: tuple[str, ...] = ("torch", "transformers", "peft")
    sidecar_exclude: tuple[str, ...] = ()  # distributions never shipped in the sidecar
    sidecar_trim: tuple[str, ...] = ("tests", "include", "*.pyi", "*.h", "*.hpp", "*.cuh")
    sidecar_strip: bool = True  # symbol tables out of the sidecar's libraries (Linux; compile/strip.py)
    # sidecar distributions shipped with their sources; every other one ships byte-compiled only
    sidecar_keep_sources: tuple[str, ...] = ("torch", "transformers")
    exclude_modules: tuple[str, ...] = ()  # optional integrations never followed
    include_modules: tuple[str, ...] = ()  # modules imported dynamically that the tools cannot see
    module_sources: tuple[str, ...] = ()  # modules that read their own source at run time: it ships beside them
    stdlib_exclude: tuple[str, ...] = ("tkinter", "turtle", "turtledemo", "idlelib", "test", "lib2to3", "ensurepip")
    # tool behaviour
    jobs: int = 0  # 0: all cores
    lto: bool = False
    isolated: bool = True
    build_env_dir: str = ""  # where isolated envs live; "" = the user cache dir, shared by every clone
    build_requirements: tuple[str, ...] = ()
    python_flags: tuple[str, ...] = ()
    nuitka_patches: bool = True  # false: stock Nuitka, in a build env of its own (docs/licence.md)
    c_flags: tuple[str, ...] = ()  # appended to Nuitka's C compiler flags (CFLAGS); gcc / clang syntax
    nuitka_args: tuple[str, ...] = ()
    pyinstaller_args: tuple[str, ...] = ()
    # onefile
    onefile_tempdir_spec: str = "{CACHE_DIR}/{COMPANY}/{PRODUCT}/{VERSION}-{BUILD}"  # {BUILD}: compile.plan.build_id
    onefile_child_grace_ms: int = 3000
    onefile_as_archive: bool = False
    # platform specifics
    console_mode: ConsoleMode = "force"
    macos_app_bundle: bool = False
    macos_target_arch: Literal["native", "x86_64", "arm64", "universal"] = "native"
    macos_sign_identity: str = "-"  # "-" is ad-hoc signing
    macos_notarize: bool = False

    @property
    def root(self) -> Path:
        return self.project_root

    @property
    def dist_path(self) -> Path:
        return self.project_root / self.dist_dir / self.variant

    @property
    def build_path(self) -> Path:
        return self.project_root / self.build_dir / self.variant

    @property
    def spec(self) -> Variant:
        return variant_named(self.variant)

    @property
    def tool(self) -> str:
        return self.spec.tool

    @property
    def onefile(self) -> bool:
        return self.spec.onefile

    @property
    def executable_name(self) -> str:
        return self.product_name + (".exe" if self.platform == "windows" else "")

    def describe(self, everything: bool = False) -> str:
        """The options, one per line, printed before a build starts: those that differ from the defaults
        (``everything``: all of them)."""
        lines = []
        hidden = 0
        for item in fields(self):
            value = getattr(self, item.name)
            if not everything and item.name not in ("platform", "variant") and value == item.default:
                hidden += 1
                continue
            if isinstance(value, tuple) and value and isinstance(value[0], DataSpec):
                value = ", ".join(f"{spec.glob} -> {spec.destination}" for spec in value)
            elif isinstance(value, tuple):
                value = ", ".join(value) if value else "-"
            lines.append(f"  {item.name.replace('_', '-'):<22} {value}")
        if hidden:
            lines.append(f"  ({hidden} options at their defaults not shown; -v shows every option)")
        return "\n".join(lines)


_FIELDS = {item.name: item for item in fields(BuildOptions)}
_HINTS = get_type_hints(BuildOptions)
_NOT_CONFIGURABLE = {"platform", "variant", "project_root"}
CONFIG_KEYS = sorted(name.replace("_", "-") for name in _FIELDS if name not in _NOT_CONFIGURABLE)


def file_version(version: str) -> str:
    """Four numbers, as Windows version resources and Nuitka want them: ``0.1.0`` → ``0.1.0.0``; a
    suffix like ``rc1`` is dropped."""
    numbers = []
    for part in version.split(".")[:4]:
        leading = re.match(r"\d+", part)
        numbers.append(str(int(leading.group())) if leading else "0")
    return ".".join(numbers + ["0"] * (4 - len(numbers)))


def current_platform(name: str = sys.platform) -> PlatformName:
    if name.startswith("linux"):
        return "linux"
    if name == "darwin":
        return "macos"
    if name == "win32":
        return "windows"
    raise UsageError(f"unsupported build platform {name!r}", hint="build on linux, macos or windows")


def check_platform(value: str) -> PlatformName:
    for platform in PLATFORMS:
        if value == platform:
            return platform
    raise UsageError(f"unknown platform {value!r}", hint=f"use one of: {', '.join(PLATFORMS)}")


def check_variant(value: str) -> str:
    if value not in BUILT_NAMES:
        raise UsageError(f"unknown mode {value!r}", hint=f"use one of: {', '.join(BUILT_NAMES)}")
    return value


def load_pyproject(root: Path) -> dict[str, Any]:
    path = root / "pyproject.toml"
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"no pyproject.toml in {root}", hint="run from the project root or pass --project") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc


def _convert(name: str, value: Any, source: str) -> Any:
    """Coerce a TOML / env / CLI value to the field's type; ConfigError names the key and source."""
    item = _FIELDS[name]
    key = name.replace("_", "-")
    default = item.default if item.default is not dataclasses.MISSING else None
    try:
        if name == "data":
            return _data_specs(value)
        if isinstance(default, bool):
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                    raise ValueError(f"expected a boolean, got {value!r}")
                return lowered in {"1", "true", "yes", "on"}
            if not isinstance(value, bool):
                raise ValueError(f"expected a boolean, got {value!r}")
            return value
        if isinstance(default, int):
            if isinstance(value, bool):
                raise ValueError(f"expected an integer, got {value!r}")
            number = int(value)
            if number < 0:
                raise ValueError(f"must not be negative, got {number}")
            return number
        if isinstance(default, tuple):
            if isinstance(value, str):
                value = [part.strip() for part in value.split(",") if part.strip()]
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"expected a list of strings, got {value!r}")
            return tuple(value)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        hint = _HINTS[name]
        allowed = get_args(hint) if get_origin(hint) is Literal else ()
        if allowed and value not in allowed:
            raise ValueError(f"expected one of {', '.join(map(str, allowed))}, got {value!r}")
        return value
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: invalid value for '{key}': {exc}") from exc


def _data_specs(value: Any) -> tuple[DataSpec, ...]:
    if not isinstance(value, list):
        raise ValueError("expected an array of tables: [[tool.compile.data]] glob = ..., destination = ...")
    specs = []
    for entry in value:
        if not isinstance(entry, dict) or set(entry) != {"glob", "destination"}:
            raise ValueError(f"each data entry needs exactly 'glob' and 'destination', got {entry!r}")
        specs.append(DataSpec(glob=str(entry["glob"]), destination=str(entry["destination"])))
    return tuple(specs)


def _table_values(table: Mapping[str, Any], source: str) -> dict[str, Any]:
    values = {}
    for key, value in table.items():
        if key in PLATFORMS or key in TORCH_FLAVOURS:
            continue
        name = key.replace("-", "_")
        if name not in _FIELDS or name in _NOT_CONFIGURABLE:
            raise ConfigError(f"{source}: unknown key '{key}'", hint=did_you_mean(key, CONFIG_KEYS, "valid keys"))
        values[name] = _convert(name, value, source)
    return values


def _env_values(environ: Mapping[str, str]) -> dict[str, Any]:
    values = {}
    for env_key, value in environ.items():
        if not env_key.startswith(ENV_PREFIX):
            continue
        name = env_key[len(ENV_PREFIX):].lower()
        if name not in _FIELDS or name in _NOT_CONFIGURABLE or name == "data":
            known = [ENV_PREFIX + k.replace("-", "_").upper() for k in CONFIG_KEYS if k != "data"]
            raise ConfigError(f"environment: unknown variable {env_key}", hint=did_you_mean(env_key, known, "valid"))
        values[name] = _convert(name, value, f"environment {env_key}")
    return values


def did_you_mean(given: str, known: list[str], listing: str) -> str:
    """A hint naming the closest known spelling (dashes, underscores and case aside), else every known one."""
    normal = {key.replace("_", "-").lower(): key for key in known}
    close = difflib.get_close_matches(given.replace("_", "-").lower(), list(normal), n=1, cutoff=0.6)
    return f"did you mean '{normal[close[0]]}'?" if close else f"{listing}: {', '.join(known)}"


def resolve_options(
    *,
    project_root: Path,
    platform: PlatformName,
    variant: str,
    pyproject: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    cli: Mapping[str, Any] | None = None,
) -> BuildOptions:
    """Defaults < [tool.compile] < [tool.compile.<platform>] < COMPILE_* < CLI."""
    document = load_pyproject(project_root) if pyproject is None else pyproject
    table = document.get("tool", {}).get("compile", {})
    if not isinstance(table, dict):
        raise ConfigError("[tool.compile] must be a table")
    values: dict[str, Any] = {}
    project_version = document.get("project", {}).get("version")
    if project_version:
        values["version"] = str(project_version)
    values.update(_table_values(table, "[tool.compile]"))
    platform_table = table.get(platform, {})
    if not isinstance(platform_table, dict):
        raise ConfigError(f"[tool.compile.{platform}] must be a table")
    values.update(_table_values(platform_table, f"[tool.compile.{platform}]"))
    later = _env_values(os.environ if environ is None else environ)
    for name, value in (cli or {}).items():
        if value is not None:
            later[name] = _convert(name, value, f"--{name.replace('_', '-')}")
    spec = variant_named(check_variant(variant))
    flavour = later.get("torch") or (spec.torch if spec.torch != "cpu" else values.get("torch", "cpu"))
    flavour_table = table.get(flavour, {})
    if not isinstance(flavour_table, dict):
        raise ConfigError(f"[tool.compile.{flavour}] must be a table")
    if "torch" in flavour_table:
        raise ConfigError(f"[tool.compile.{flavour}]: 'torch' cannot be set in the table of a flavour")
    values.update(_table_values(flavour_table, f"[tool.compile.{flavour}]"))
    values.update(later)
    if spec.torch == "cuda" and values.get("torch", "cuda") != "cuda":
        raise ConfigError(f"{variant} is the CUDA flavour, but torch = {values['torch']!r} was asked for",
                          hint=f"build {flavoured(spec, 'cpu').name} for the CPU flavour, or drop the torch setting")
    values["torch"] = spec.torch if spec.torch != "cpu" else values.get("torch", "cpu")
    variant = flavoured(spec, values["torch"]).name
    return BuildOptions(platform=platform, variant=variant, project_root=project_root.resolve(), **values)


__all__ = [
    "CONFIG_KEYS", "PLATFORMS", "BuildOptions", "DataSpec", "PlatformName",
    "check_platform", "check_variant", "current_platform", "file_version", "resolve_options",
]
