"""Progress of long work, counted in steps: a tqdm bar on a terminal (rate in
steps/s, ETA when the total is known, the loss in the postfix), plain lines
every few seconds when the output is not a terminal (a log file, a batch
job), so logs stay readable. tqdm is optional (``pip install "eprop[progress]"``);
without it a terminal gets the plain lines and one line saying how to get bars."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

_HINT = 'eprop: progress bars need tqdm (pip install "eprop[progress]"); printing plain lines instead\n'


class Progress:
    """``update(steps, loss)`` after each piece of work, ``close()`` at the end
    (or use as a context manager). ``total``: the steps expected, if known."""

    def __init__(self, desc: str, total: int | None = None, *, every: float = 10.0, file: TextIO | None = None) -> None:
        self.desc, self.total, self.every = desc, total, every
        self.file = file if file is not None else sys.stderr
        self.steps, self.loss = 0, float("nan")
        self.start = self.last = time.perf_counter()
        self.bar: Any = None
        if _isatty(self.file):
            try:
                from tqdm import tqdm
            except ImportError:
                self.file.write(_HINT)
            else:
                self.bar = tqdm(
                    total=total, desc=desc, unit="step", unit_scale=True, file=self.file, mininterval=0.5, leave=True
                )

    def update(self, steps: int, loss: float | None = None) -> None:
        self.steps += steps
        if loss is not None:
            self.loss = loss
        if self.bar is not None:
            if loss is not None:
                self.bar.set_postfix_str(f"loss {loss:.4g}", refresh=False)
            self.bar.update(steps)
            return
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            self._line(now, done=False)

    def write(self, line: str) -> None:
        """Prints a line to stdout without breaking the bar (a report of the
        work: accuracy so far, a checkpoint written)."""
        if self.bar is not None:
            self.bar.write(line, file=sys.stdout)
        else:
            print(line, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        else:
            self._line(time.perf_counter(), done=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _line(self, now: float, done: bool) -> None:
        elapsed = max(now - self.start, 1e-9)
        of = f" of {self.total:,}" if self.total else ""
        loss = "" if self.loss != self.loss else f", loss {self.loss:.4g}"
        state = "done" if done else "running"
        rate = self.steps / elapsed
        line = f"{self.desc}: {self.steps:,}{of} steps in {elapsed:.1f} s, {rate:,.0f} steps/s{loss} ({state})"
        self.file.write(line + "\n")
        self.file.flush()


def _isatty(f: TextIO) -> bool:
    try:
        return bool(f.isatty())
    except (AttributeError, ValueError):
        return False
