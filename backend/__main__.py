"""``python -m backend``: same entry as the script freezers compile (``peft_engine.py``)."""

import multiprocessing

from backend.main import exit_process, main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    exit_process(main())
