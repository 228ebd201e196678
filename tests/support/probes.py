"""Watching a running server from outside, as a tester would: its resident memory over time, and how
long ``/health`` takes to answer while something else loads it."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil


@dataclass
class RssSampler:
    """The peak RSS of one process, sampled every ``interval_s`` in a thread."""

    pid: int
    interval_s: float = 0.01
    baseline: int = 0
    peak: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        process = psutil.Process(self.pid)
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, process.memory_info().rss)
            except psutil.Error:
                return
            self._stop.wait(self.interval_s)

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.baseline) / 2**20


@contextmanager
def sampled_rss(pid: int) -> Iterator[RssSampler]:
    sampler = RssSampler(pid)
    sampler.baseline = sampler.peak = psutil.Process(pid).memory_info().rss
    thread = threading.Thread(target=sampler.run, daemon=True)
    thread.start()
    try:
        yield sampler
    finally:
        sampler._stop.set()
        thread.join(5)


@dataclass
class HealthProbe:
    """Asks ``GET /health`` every ``interval_s`` on a new connection; records each answer's latency, or
    None for a failure or a timeout."""

    port: int
    interval_s: float = 0.25
    timeout_s: float = 5.0
    latencies: list[float | None] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def once(self) -> float | None:
        started = time.perf_counter()
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout_s)
            connection.request("GET", "/health", headers={"Host": f"127.0.0.1:{self.port}"})
            ok = connection.getresponse().status == 200
            connection.close()
        except (OSError, http.client.HTTPException):
            return None
        return time.perf_counter() - started if ok else None

    def run(self) -> None:
        while not self._stop.is_set():
            self.latencies.append(self.once())
            self._stop.wait(self.interval_s)

    @property
    def failures(self) -> int:
        return sum(1 for latency in self.latencies if latency is None)

    @property
    def worst(self) -> float:
        answered = [latency for latency in self.latencies if latency is not None]
        return max(answered) if answered else float("inf")

    def percentile(self, fraction: float) -> float:
        answered = sorted(latency for latency in self.latencies if latency is not None)
        if not answered:
            return float("inf")
        return answered[min(len(answered) - 1, int(fraction * len(answered)))]


@contextmanager
def probing_health(port: int, interval_s: float = 0.25, timeout_s: float = 5.0) -> Iterator[HealthProbe]:
    probe = HealthProbe(port, interval_s, timeout_s)
    thread = threading.Thread(target=probe.run, daemon=True)
    thread.start()
    try:
        yield probe
    finally:
        probe._stop.set()
        thread.join(timeout_s + 1)
