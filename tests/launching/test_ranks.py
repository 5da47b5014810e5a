"""Starting one run's ranks as torchrun would, with real spawned processes: each rank gets its
torchrun variables and what the ranks report comes back; a failing rank ends the others, its report
with the error; and the watcher
does not hang when the last ranks end between two of its looks."""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pab_campaign.launching import ranks
from pab_campaign.launching.ranks import RanksFailed, run_ranks


def write_environment(environment: dict[str, str], results: Any, folder: str) -> None:
    """A rank that writes what it was given and its pid; rank 0 answers."""
    os.environ.update(environment)
    rank = int(os.environ["RANK"])
    keys = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    Path(folder, f"rank{rank}.json").write_text(json.dumps({key: os.environ[key] for key in keys}))
    if rank == 0:
        results.put({"answer": 42})


def rank_one_fails(environment: dict[str, str], results: Any, folder: str) -> None:
    """Rank 1 reports why and exits with 3 at once; rank 0 records its pid and would sleep for a minute."""
    rank = int(environment["RANK"])
    if rank == 1:
        results.put(("error", 1, "rank 1 ran out of data"))
        sys.exit(3)
    Path(folder, "rank0.pid").write_text(str(os.getpid()))
    time.sleep(60)


def test_each_rank_gets_torchrun_variables_and_rank_zero_answers(tmp_path):
    assert run_ranks(write_environment, (str(tmp_path),), 2) == [{"answer": 42}]
    seen = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    assert [s["RANK"] for s in seen] == ["0", "1"] and [s["LOCAL_RANK"] for s in seen] == ["0", "1"]
    assert {s["WORLD_SIZE"] for s in seen} == {s["LOCAL_WORLD_SIZE"] for s in seen} == {"2"}
    assert {s["MASTER_ADDR"] for s in seen} == {"127.0.0.1"} and len({s["MASTER_PORT"] for s in seen}) == 1


def test_a_failing_rank_ends_the_others_and_is_named(tmp_path):
    started = time.monotonic()
    with pytest.raises(RanksFailed, match="rank 1 ended with exit code 3") as caught:
        run_ranks(rank_one_fails, (str(tmp_path),), 2)
    assert caught.value.exit_code == 3 and caught.value.rank == 1
    assert caught.value.reports == [("error", 1, "rank 1 ran out of data")]
    assert time.monotonic() - started < 30  # rank 0 was ended, not waited for
    if (tmp_path / "rank0.pid").exists():  # rank 0 may have been ended before it wrote
        with pytest.raises(ProcessLookupError):
            os.kill(int((tmp_path / "rank0.pid").read_text()), 0)


class EndsWhenLookedAt:
    """A rank seen running at the first look at its exit code and ended (0) at every later look:
    a process that ends between the watcher's looks. Its sentinel is readable, as an ended
    process's is."""

    def __init__(self) -> None:
        self.looks = 0
        self.sentinel, write_end = os.pipe()
        os.close(write_end)

    @property
    def exitcode(self) -> int | None:
        self.looks += 1
        return None if self.looks == 1 else 0


def test_ranks_that_end_between_two_looks_are_not_waited_for_forever():
    processes = [EndsWhenLookedAt()]
    watcher = threading.Thread(target=ranks._watch, args=(processes,), daemon=True)
    watcher.start()
    watcher.join(timeout=10)
    assert not watcher.is_alive()
    os.close(processes[0].sentinel)
