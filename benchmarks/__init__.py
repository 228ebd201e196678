"""``python -m benchmarks``: startup, memory, size, build time and first-train latency of every built
variant against the PyInstaller onefile baseline, interleaved in one run, with a regression gate.

Split as pyperf does: :mod:`benchmarks.runner` spawns and interleaves, :mod:`benchmarks.measure` holds
one module per metric, :mod:`benchmarks.schema` / :mod:`benchmarks.storage` keep versioned results,
:mod:`benchmarks.stats` and :mod:`benchmarks.gate` decide, :mod:`benchmarks.report` renders.
"""
