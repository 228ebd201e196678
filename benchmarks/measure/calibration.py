"""A calibration process: a fixed piece of work whose code never changes with the project.

Wall-clock startup moves with the machine (a busy neighbour, DAMON paging, another CPU model). Timed
in the same rounds as the backend, this process says how fast the machine was: a stored baseline's
startup can then be compared as a ratio to it. It runs the interpreter isolated (``-I -S``: no site
packages, no environment), imports a fixed set of standard-library modules and does a fixed amount of
hashing and JSON work, so neither the backend nor its dependencies can change it.
"""

from __future__ import annotations

import subprocess
import sys
import time

CODE = """
import asyncio, decimal, email.message, hashlib, http.client, json, logging, sqlite3, ssl, uuid
data = bytes(range(256)) * 4096
for _ in range(8):
    data = hashlib.sha256(data).digest() * 32768
document = json.dumps([{"i": i, "s": str(i) * 8} for i in range(20000)])
assert len(json.loads(document)) == 20000
"""


def calibration_seconds() -> float:
    """Spawn to exit of the calibration process, in seconds."""
    started = time.perf_counter_ns()
    subprocess.run([sys.executable, "-I", "-S", "-c", CODE], check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter_ns() - started) / 1e9
