"""Where a build's time and memory go: seconds, CPU seconds and peak memory per stage.

:class:`StageClock` wraps the stage progress callback every stage already reports to, so a stage is timed from its
first report until the next stage's first report, and nothing below the build needs to know about timing. Peak
memory is the process's resident set size sampled every few milliseconds while the stage runs (it counts what
numpy, torch and faiss allocate natively, which ``tracemalloc`` would miss). CPU seconds are this process's, all
threads; work done by Dask workers in other processes is not in them.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Callable

StageProgress = Callable[[str, int, int], None]


def resident_bytes() -> int | None:
    """This process's resident set size now, or None where /proc is not available."""
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class StageClock:
    """Callable ``(stage, done, total)`` that forwards to ``progress`` and times each stage.

    Use as a context manager around the build; ``stages_`` is then ``{stage: {"seconds", "cpu_seconds",
    "peak_mb"}}`` in the order stages started (a stage reported again after another one adds to its entry).
    """

    def __init__(self, progress: StageProgress | None = None, *, sample_seconds: float = 0.01):
        self.progress = progress
        self.sample_seconds = sample_seconds
        self.stages_: dict[str, dict] = {}
        self._current: str | None = None
        self._lock = threading.Lock()
        self._peak = 0
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    def __enter__(self) -> "StageClock":
        if resident_bytes() is not None:
            self._sampler = threading.Thread(target=self._sample, name="coreclean-stage-clock", daemon=True)
            self._sampler.start()
        return self

    def __exit__(self, *exc) -> None:
        self._switch(None)
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self._current:
            self._switch(stage)
        if self.progress is not None:
            self.progress(stage, done, total)

    def finish(self) -> dict[str, dict]:
        """Close the running stage and return ``stages_`` (a stage reported afterwards opens a new entry)."""
        self._switch(None)
        return {name: dict(entry) for name, entry in self.stages_.items()}

    def _sample(self) -> None:
        while not self._stop.wait(self.sample_seconds):
            rss = resident_bytes() or 0
            with self._lock:
                self._peak = max(self._peak, rss)

    def _switch(self, stage: str | None) -> None:
        now, cpu, rss = time.perf_counter(), time.process_time(), resident_bytes() or 0
        with self._lock:
            if self._current is not None:
                entry = self.stages_.setdefault(self._current, {"seconds": 0.0, "cpu_seconds": 0.0, "peak_mb": 0.0})
                entry["seconds"] = round(entry["seconds"] + now - self._started, 3)
                entry["cpu_seconds"] = round(entry["cpu_seconds"] + cpu - self._cpu, 3)
                entry["peak_mb"] = round(max(entry["peak_mb"], max(self._peak, rss) / 2 ** 20), 1)
            self._current, self._started, self._cpu, self._peak = stage, now, cpu, rss


def stage_table(stages: dict[str, dict]) -> str:
    """The stages as an aligned text table for the end of ``coreclean build``."""
    rows = [("stage", "seconds", "cpu s", "peak MB")] + [
        (name, f"{s['seconds']:.2f}", f"{s['cpu_seconds']:.2f}", f"{s['peak_mb']:.0f}") for name, s in stages.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
                     for row in rows)
