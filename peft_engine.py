"""Entry script that Nuitka and PyInstaller compile: a plain script, no import strings.

``freeze_support()`` comes first so a frozen build re-executed as a multiprocessing worker runs the
worker, not a second server.
"""

import multiprocessing

from backend.main import exit_process, main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    exit_process(main())
