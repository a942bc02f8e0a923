"""Stage progress for the command line: one bar per stage that ends at 100 %, plain lines when not a terminal."""
from __future__ import annotations

import sys
from typing import TextIO


class StageBars:
    """Callable ``(stage, done, total)``; on a terminal one tqdm bar per stage, closed when it completes; in logs
    (CI, files) a line per stage at start, every 10 % and at the end."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.bars: dict = {}
        self.printed: dict[str, int] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        total = max(int(total), 1)
        if self.tty:
            from tqdm import tqdm

            bar = self.bars.get(stage)
            if bar is None:
                bar = self.bars[stage] = tqdm(total=total, desc=stage, file=self.stream,
                                              unit="img" if stage == "embed" else "step")
            bar.total = total
            bar.update(done - bar.n)
            if done >= total:
                bar.close()
            return
        tenth = min(10, 10 * done // total)
        if self.printed.get(stage, -1) < tenth:
            self.printed[stage] = tenth
            print(f"{stage}: {done:,}/{total:,} ({100 * done // total}%)", file=self.stream, flush=True)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
