"""How many runs the local launcher trains at once, and which GPUs it sees."""
from __future__ import annotations

import pytest

from pab_campaign.launching.plan import LauncherConfigError, parallel_jobs, visible_gpus


@pytest.mark.parametrize(("n_runs", "cores", "cpus_per_task", "gpus", "asked", "expected"), [
    (8, 2, 1, 0, None, 2),   # as many as cores allow
    (8, 16, 4, 0, None, 4),  # jobs x cpus_per_task <= cores
    (8, 16, 1, 2, None, 2),  # one GPU per job
    (1, 16, 1, 0, None, 1),  # never more than runs
    (8, 2, 4, 0, None, 1),   # one job even if its cpus_per_task exceeds the cores
    (8, 16, 1, 0, 3, 3),     # an explicit lower bound is kept
])
def test_parallel_jobs_bounds(n_runs, cores, cpus_per_task, gpus, asked, expected):
    assert parallel_jobs(n_runs, cores, cpus_per_task, gpus, asked) == expected


def test_parallel_jobs_refuses_more_than_fits():
    with pytest.raises(LauncherConfigError,
                       match=r"max_parallel=3 x hydra\.launcher\.cpus_per_task=1 .* use max_parallel<=2"):
        parallel_jobs(8, 2, 1, 0, 3)
    with pytest.raises(LauncherConfigError, match=r"hydra\.launcher\.cpus_per_task=0 must be >= 1"):
        parallel_jobs(8, 2, 0, 0, None)


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert visible_gpus() == [2, 3]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
