"""``python -m backend``: same entry as the script freezers compile (``peft_engine.py``)."""

import multiprocessing
import sys

from backend.main import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())
