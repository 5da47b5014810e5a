"""The sweep's exit status comes from what its jobs left (their pointer files), not from state kept in
the launching process."""
import os
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from pab_campaign.launching.sweep_status import LAUNCH_ENV, SweepStatusCallback, write_job_pointer, write_lost_job
from tests.helpers import write_run


def _job(sweep, number: int, campaign, run_id: str, status: str) -> None:
    directory = write_run(campaign, run_id, {"seed": number}, {("val", "loss"): [1.0, 0.5]}, status=status)
    (sweep / str(number)).mkdir(parents=True)
    write_job_pointer(sweep / str(number), SimpleNamespace(run_id=run_id, directory=directory, skipped=False))


def _end(sweep) -> None:
    SweepStatusCallback().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))


def test_a_sweep_whose_jobs_all_ran_ends_normally(tmp_path, capsys):
    _job(tmp_path / "sweep", 0, tmp_path / "c", "r0", "completed")
    _job(tmp_path / "sweep", 1, tmp_path / "c", "r1", "diverged")
    _end(tmp_path / "sweep")
    assert "sweep: 1 completed, 1 diverged" in capsys.readouterr().out


@pytest.mark.parametrize("second", ["failed", "lost"])
def test_a_failed_or_lost_job_ends_the_sweep_with_exit_status_1(tmp_path, capsys, second):
    _job(tmp_path / "sweep", 0, tmp_path / "c", "r0", "completed")
    if second == "failed":
        _job(tmp_path / "sweep", 1, tmp_path / "c", "r1", "failed")
    else:
        (tmp_path / "sweep" / "1").mkdir()
        write_lost_job(tmp_path / "sweep" / "1", ["model=mlp"], "killed by signal 9")
    with pytest.raises(SystemExit) as ended:
        _end(tmp_path / "sweep")
    assert ended.value.code == 1
    assert "1 completed, 1 failed" in capsys.readouterr().out
    _end(tmp_path / "nothing")  # a later sweep in the same process starts from nothing


def test_the_table_shows_this_launch_alone_in_a_folder_an_earlier_sweep_used(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(LAUNCH_ENV, "earlier")
    for number in range(3):
        _job(tmp_path / "sweep", number, tmp_path / "c", f"old{number}", "failed")
    callback = SweepStatusCallback()
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "sweep")}}})
    callback.on_multirun_start(config)
    (tmp_path / "sweep" / "0" / "pab_run.json").unlink()
    (tmp_path / "sweep" / "0").rmdir()
    _job(tmp_path / "sweep", 0, tmp_path / "c", "new0", "completed")
    callback.on_multirun_end(config)  # the earlier launch's failed jobs 1 and 2 neither show nor fail this one
    out = capsys.readouterr().out
    assert "sweep: 1 completed" in out and "old1" not in out and "failed" not in out
    assert LAUNCH_ENV not in os.environ
