"""``python -m compile``: ship the backend as a Nuitka standalone folder or onefile, with PyInstaller
builds of the same declaration as the measured baseline.

Planners are pure functions of one frozen :class:`compile.options.BuildOptions`; :mod:`compile.runner`
is the only module that starts processes.
"""
