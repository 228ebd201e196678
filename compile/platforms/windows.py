"""Windows: console mode, .ico icon and the version resource (company, product, versions,
description, copyright) for both tools."""

from __future__ import annotations

from pathlib import Path

from compile.options import BuildOptions, file_version


def nuitka_flags(options: BuildOptions) -> list[str]:
    flags = [
        f"--windows-console-mode={options.console_mode}",
        f"--file-description={options.description}",
    ]
    if options.copyright:
        flags.append(f"--copyright={options.copyright}")
    if options.icon:
        flags.append(f"--windows-icon-from-ico={options.root / options.icon}")
    return flags


def version_file_text(options: BuildOptions) -> str:
    """A PyInstaller ``--version-file`` (a VSVersionInfo literal) with the same fields as Nuitka's."""
    numbers = tuple(int(n) for n in file_version(options.version).split("."))
    strings = {
        "CompanyName": options.company_name, "FileDescription": options.description,
        "FileVersion": options.version, "InternalName": options.product_name,
        "LegalCopyright": options.copyright, "OriginalFilename": options.executable_name,
        "ProductName": options.product_name, "ProductVersion": options.version,
    }
    entries = ",\n".join(f"          StringStruct({key!r}, {value!r})" for key, value in strings.items())
    return f"""VSVersionInfo(
  ffi=FixedFileInfo(filevers={numbers}, prodvers={numbers}, mask=0x3f, flags=0x0, OS=0x40004,
                    fileType=0x1, subtype=0x0, date=(0, 0)),
  kids=[
    StringFileInfo([StringTable('040904B0', [
{entries}
    ])]),
    VarFileInfo([VarStruct('Translation', [1033, 1200])])
  ]
)
"""


def version_file_path(options: BuildOptions) -> Path:
    return options.build_path / "version_info.txt"


def pyinstaller_flags(options: BuildOptions) -> list[str]:
    flags = [f"--version-file={version_file_path(options)}"]
    flags.append("--noconsole" if options.console_mode in ("disable", "hide") else "--console")
    if options.icon:
        flags.append(f"--icon={options.root / options.icon}")
    return flags


def required_tools(options: BuildOptions) -> list[str]:
    return []
