"""A sweep's progress while its runs train side by side: runs ended / running / failed / waiting,
and an estimate of the time left from the durations of the runs that ended.

On a terminal it is one line that `rich` redraws in place (instead of a log line per job); elsewhere
(a file, CI) a plain line is printed whenever a run starts or ends.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from pab_campaign.formatting import duration

if TYPE_CHECKING:
    from types import TracebackType

    from rich.live import Live


@dataclass
class SweepProgress:
    """Counts of a sweep of `total` runs trained `parallel` at a time; times in seconds (monotonic)."""

    total: int
    parallel: int
    started: dict[int, float] = field(default_factory=dict)
    durations: list[float] = field(default_factory=list)
    failed: int = 0

    def add(self, jobs: int, parallel: int) -> None:
        """A sweeper launches a batch of `jobs` more, `parallel` at a time: the total grows when the
        batch goes past the jobs planned (a sweeper that says how many in all sets `total` first)."""
        self.total = max(self.total, self.ended + len(self.started) + jobs)
        self.parallel = parallel

    def start(self, job: int, now: float) -> None:
        self.started[job] = now

    def finish(self, job: int, now: float, failed: bool) -> None:
        self.durations.append(now - self.started.pop(job))
        self.failed += int(failed)

    @property
    def ended(self) -> int:
        return len(self.durations)

    def eta_s(self, now: float) -> float | None:
        """Seconds until the last run ends if every run takes the mean duration of those that
        ended, `parallel` at a time; None before any run ended."""
        if not self.durations:
            return None
        mean = sum(self.durations) / len(self.durations)
        waiting = self.total - self.ended - len(self.started)
        left = sum(max(mean - (now - began), 0.0) for began in self.started.values()) + waiting * mean
        return left / max(1, min(self.parallel, self.total - self.ended))

    def counts(self) -> tuple[int, int, int]:
        """(runs ended, of which failed, running): what a plain progress line is printed again for."""
        return self.ended, self.failed, len(self.started)

    def line(self, now: float) -> str:
        """`sweep: 3/8 runs ended (1 failed), 2 running, 3 waiting; about 1 min 20 s left`."""
        waiting = self.total - self.ended - len(self.started)
        failed = f" ({self.failed} failed)" if self.failed else ""
        eta = self.eta_s(now)
        left = "" if eta is None or self.ended == self.total else f"; about {duration(eta)} left"
        return (f"sweep: {self.ended}/{self.total} runs ended{failed}, {len(self.started)} running, "
                f"{waiting} waiting{left}")


class ProgressDisplay:
    """Shows `SweepProgress.line` live on a terminal, or prints it when the counts change elsewhere."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty()
        self._last: object = None
        self._view: Live | None = None

    def __enter__(self) -> ProgressDisplay:
        if self.live:
            from rich.console import Console
            from rich.live import Live

            self._view = Live("", console=Console(file=self.stream), auto_refresh=False, transient=False)
            self._view.__enter__()
        return self

    def show(self, line: str, counts: object = None) -> None:
        """Redraw `line` on a terminal when it changes; elsewhere print it when `counts` change (every
        changed line without them), so a log does not get a line per tick of the time left."""
        key = line if self.live or counts is None else counts
        if key == self._last:
            return
        self._last = key
        if self._view is not None:
            from rich.text import Text

            self._view.update(Text(line), refresh=True)
        else:
            print(line, file=self.stream, flush=True)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self._view is not None:
            self._view.__exit__(kind, error, tb)
