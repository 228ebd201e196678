"""``python -m backend``: same entry as the script freezers compile (``peft_engine.py``)."""

import multiprocessing

if __name__ == "__main__":
    multiprocessing.freeze_support()

    from backend.main import exit_process, main

    exit_process(main())
