"""The sweep's progress line: counts, the time left from finished runs' durations, and how it is
shown on a terminal (redrawn in place) and elsewhere (a line per change)."""
import io

import pytest

from pab_campaign.launching.progress import ProgressDisplay, SweepProgress


def test_counts_and_time_left_from_the_runs_that_ended():
    progress = SweepProgress(total=4, parallel=2)
    progress.start(0, now=0.0)
    progress.start(1, now=0.0)
    assert progress.eta_s(now=1.0) is None
    assert progress.line(now=1.0) == "sweep: 0/4 runs ended, 2 running, 2 waiting"
    progress.finish(0, now=10.0, failed=False)
    progress.start(2, now=10.0)
    progress.finish(1, now=20.0, failed=True)
    progress.start(3, now=20.0)
    # mean duration 15 s: run 2 (10 s in) needs 5 s more, run 3 (0 s in) 15 s, nothing waits; 2 at a time
    assert progress.eta_s(now=20.0) == pytest.approx((5 + 15) / 2)
    assert progress.line(now=20.0) == "sweep: 2/4 runs ended (1 failed), 2 running, 0 waiting; about 10 s left"
    progress.finish(2, now=30.0, failed=False)
    progress.finish(3, now=35.0, failed=False)
    assert progress.line(now=35.0) == "sweep: 4/4 runs ended (1 failed), 0 running, 0 waiting"


def test_long_estimates_are_given_in_minutes_and_hours():
    progress = SweepProgress(total=100, parallel=1)
    progress.start(0, now=0.0)
    progress.finish(0, now=125.0, failed=False)
    assert progress.line(now=125.0).endswith("about 3 h 26 min left")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_file_gets_one_line_per_change_and_a_terminal_one_redrawn_line():
    plain = io.StringIO()
    with ProgressDisplay(plain) as display:
        for line in ("a", "a", "b"):
            display.show(line)
    assert not display.live and plain.getvalue() == "a\nb\n"
    terminal = _Terminal()
    with ProgressDisplay(terminal) as display:
        for line in ("first state", "second state"):
            display.show(line)
    assert display.live
    assert "second state" in terminal.getvalue() and terminal.getvalue().count("\n") <= 2


def test_a_file_gets_a_line_when_runs_start_or_end_not_per_tick_of_the_time_left():
    plain = io.StringIO()
    progress = SweepProgress(total=3, parallel=1)
    with ProgressDisplay(plain) as display:
        progress.start(0, now=0.0)
        progress.finish(0, now=10.0, failed=False)
        progress.start(1, now=10.0)
        for now in range(10, 30):
            display.show(progress.line(now=float(now)), progress.counts())
        progress.finish(1, now=30.0, failed=True)
        display.show(progress.line(now=30.0), progress.counts())
    assert plain.getvalue().splitlines() == [
        "sweep: 1/3 runs ended, 1 running, 1 waiting; about 20 s left",
        "sweep: 2/3 runs ended (1 failed), 0 running, 1 waiting; about 15 s left"]
