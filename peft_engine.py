"""Entry script that Nuitka and PyInstaller compile: a plain script, no import strings.

``freeze_support()`` comes first, before the backend is imported: a frozen build re-executed as the
training worker runs the worker right there and never imports the server (pydantic, the CLI), which
the worker does not use. A source worker skips this module altogether.
"""

import multiprocessing

if __name__ == "__main__":
    multiprocessing.freeze_support()

    from backend.main import exit_process, main

    exit_process(main())
