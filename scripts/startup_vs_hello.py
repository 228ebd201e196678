"""Startup-to-ready and idle PSS of ``python -m backend`` against a bare FastAPI hello server, measured
interleaved in one run (the question: what does the backend cost on top of FastAPI + uvicorn?).

    python scripts/startup_vs_hello.py --rounds 15
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.measure.launch import launch, stop  # noqa: E402
from benchmarks.stats import ratio_of_medians  # noqa: E402

HELLO = textwrap.dedent("""
    import argparse
    import uvicorn
    from fastapi import FastAPI

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int)
    args, _ = parser.parse_known_args()
    app = FastAPI()

    @app.get("/health")
    def health():
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
""")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        hello = Path(scratch) / "hello.py"
        hello.write_text(HELLO)
        commands = {"backend": (sys.executable, "-m", "backend"), "hello": (sys.executable, str(hello))}
        startup: dict[str, list[float]] = {name: [] for name in commands}
        pss: dict[str, list[float]] = {name: [] for name in commands}
        for round_index in range(args.rounds + 1):  # the first round warms the page cache, discarded
            for name, command in commands.items():
                running = launch(command, cwd=ROOT, data_dir=Path(scratch) / "data")
                try:
                    if round_index:
                        startup[name].append(running.startup_s)
                        pss[name].append(running.memory().pss)
                finally:
                    stop(running)
    for name in commands:
        print(f"{name:8} startup median {statistics.median(startup[name]) * 1000:6.0f} ms   "
              f"idle PSS median {statistics.median(pss[name]) / 1024**2:5.1f} MiB   (n={args.rounds})")
    print(f"backend / hello: startup {ratio_of_medians(startup['backend'], startup['hello']).text()}, "
          f"idle PSS {ratio_of_medians(pss['backend'], pss['hello']).text()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
