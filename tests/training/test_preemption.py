"""The preemption guard: a run interrupted by Ctrl-C or SIGTERM is recorded `preempted`, also when
the interruption arrives again while that is being written."""
from __future__ import annotations

import os
import signal
import time

import pytest

from pab_campaign.store import RunStatus
from pab_campaign.training.preemption import guard


def test_a_second_ctrl_c_while_the_status_is_written_does_not_cut_it_short():
    written = []

    def record(status, error):
        os.kill(os.getpid(), signal.SIGINT)  # the same Ctrl-C again (the terminal's group and the launcher)
        time.sleep(0.05)
        written.append((status, error))

    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), guard(record):
        raise KeyboardInterrupt
    assert written == [(RunStatus.PREEMPTED, None)]
    assert signal.getsignal(signal.SIGINT) is before  # Ctrl-C works as before once the status is written


def test_sigterm_in_the_block_is_recorded_preempted_and_exits_143():
    written = []
    with pytest.raises(SystemExit) as ended, guard(lambda status, error: written.append(status)):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)
    assert ended.value.code == 128 + signal.SIGTERM and written == [RunStatus.PREEMPTED]


def test_a_ctrl_c_before_the_second_one_is_ignored_writes_the_status_again():
    written, calls = [], []

    def record(status, error):
        calls.append(status)
        if len(calls) == 1:
            raise KeyboardInterrupt  # arrived between the first interruption and the ignoring of the next
        written.append(status)

    with pytest.raises(KeyboardInterrupt), guard(record):
        raise KeyboardInterrupt
    assert written == [RunStatus.PREEMPTED] and len(calls) == 2
