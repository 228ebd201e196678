"""macOS: optional .app bundle, target architecture, .icns icon, signing (ad-hoc by default),
notarization only when asked for (it needs an Apple account)."""

from __future__ import annotations

from compile.options import BuildOptions


def nuitka_flags(options: BuildOptions) -> list[str]:
    flags = []
    if options.macos_app_bundle:
        flags += ["--macos-create-app-bundle", f"--macos-app-name={options.product_name}",
                  f"--macos-app-version={options.version}"]
    if options.macos_target_arch != "native":
        flags.append(f"--macos-target-arch={options.macos_target_arch}")
    if options.icon:
        flags.append(f"--macos-app-icon={options.root / options.icon}")
    identity = "ad-hoc" if options.macos_sign_identity == "-" else options.macos_sign_identity
    flags.append(f"--macos-sign-identity={identity}")
    if options.macos_notarize:
        flags.append("--macos-sign-notarization")
    return flags


def pyinstaller_flags(options: BuildOptions) -> list[str]:
    flags = []
    if options.macos_app_bundle:
        flags.append("--windowed")  # PyInstaller makes a .app only for windowed builds
    if options.macos_target_arch != "native":
        flags.append(f"--target-arch={options.macos_target_arch.replace('universal', 'universal2')}")
    if options.icon:
        flags.append(f"--icon={options.root / options.icon}")
    flags.append(f"--codesign-identity={options.macos_sign_identity}")
    return flags


def required_tools(options: BuildOptions) -> list[str]:
    return ["codesign"]
