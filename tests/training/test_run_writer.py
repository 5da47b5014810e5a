"""The run writer: the same bad inputs fed to a run of the built-in loop (`execute`) and to a run of
a user's own loop (`Tracker`) end the same way: the same refusal line, the same run.json, the
same files kept."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from pab_campaign import store
from pab_campaign.errors import StoreError
from pab_campaign.runlock import LOCK_FILE
from pab_campaign.training import run_writer
from pab_campaign.training.identity import hparams, run_id
from pab_campaign.training.run import execute
from pab_campaign.training.run_writer import RunRefused
from pab_campaign.training.tracker import Tracker
from tests.helpers import compose_config
from tests.training.test_run_reliability import TINY, _files, _interrupted_at_epoch_2
from tests.training.test_tracker import HP, PROBE, Tiny, _scores, _step, _track

PATHS = ("loop", "tracker")


@dataclass
class Launch:
    """What launching a run again told the user and left in its run.json (paths as `<run>`)."""

    said: str | None
    status: str | None
    error: str | None
    restarts: int | None


def _run_dir(path: str, campaign: Path) -> Path:
    """The directory the run of `path` (the same hparams every time) writes in `campaign`."""
    if path == "loop":
        return store.run_dir(campaign.resolve(), run_id(hparams(compose_config(TINY, campaign))))
    return store.run_dir(campaign.resolve(), run_id(HP))


def _interrupted(path: str, campaign: Path) -> Path:
    """A run of `path` that ended after epoch 2 with its checkpoint of epoch 2 (not finished)."""
    if path == "loop":
        return _interrupted_at_epoch_2(campaign)
    with pytest.raises(RuntimeError, match="crash"):
        _track(campaign, 4, crash_after=2)
    return _run_dir(path, campaign)


def _completed(path: str, campaign: Path) -> Path:
    if path == "loop":
        assert execute(compose_config(TINY, campaign)).status == "completed"
    else:
        assert _track(campaign, 4).status == "completed"
    return _run_dir(path, campaign)


def _launch(path: str, campaign: Path) -> Launch:
    """Launch the run of `path` again, to epoch 4."""
    directory = _run_dir(path, campaign)
    if path == "loop":
        outcome = execute(compose_config(TINY, campaign))
        said = outcome.error
    else:
        said = None
        try:
            _track(campaign, 4)
        except StoreError as exc:
            said = str(exc)
    try:
        record = store.read_run_json(directory)
        status, error, restarts = str(record.status), record.error, record.restarts
    except StoreError:
        status = error = restarts = None
    return Launch(*(v.replace(str(directory), "<run>") if isinstance(v, str) else v for v in (said, status, error)),
                  restarts)


def _both(make) -> dict[str, Launch]:
    """For each path: `make(path)` prepares its run directory, then the run is launched again."""
    launches = {}
    for path in PATHS:
        directory = make(path)
        launches[path] = _launch(path, directory.parents[1])
    return launches


def test_a_malformed_run_json_with_history_is_refused_by_both_and_every_file_kept(tmp_path):
    said = {}
    for path in PATHS:
        directory = _interrupted(path, tmp_path / path)
        (directory / store.RUN_JSON).write_text('{"run_id": ')
        before = _files(directory)
        if path == "loop":
            outcome = execute(compose_config(TINY, tmp_path / path))
            assert outcome.skipped and outcome.status == "failed" and "cannot be read" in outcome.note
            said[path] = outcome.error
        else:
            with pytest.raises(RunRefused) as caught:
                _track(tmp_path / path, 4)
            said[path] = str(caught.value)
        assert _files(directory) == before and not (directory / LOCK_FILE).exists()
        said[path] = said[path].replace(str(directory), "<run>")
    assert said["loop"] == said["tracker"]
    assert said["loop"].startswith("<run>/run.json: run.json is not valid JSON")
    assert "the run was not reopened (every file kept)" in said["loop"] and "\n" not in said["loop"]


def test_a_malformed_run_json_without_history_is_warned_about_and_the_run_starts_afresh(tmp_path, caplog):
    warnings = {}
    for path in PATHS:
        directory = _run_dir(path, tmp_path / path)
        directory.mkdir(parents=True)
        (directory / store.RUN_JSON).write_text("not json")
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=run_writer.__name__):
            launch = _launch(path, tmp_path / path)
        assert (launch.status, launch.error, launch.restarts) == ("completed", None, 0)
        (warnings[path],) = [r.getMessage().replace(str(directory), "<run>") for r in caplog.records
                             if r.name == run_writer.__name__]
    assert warnings["loop"].endswith("run.json is not valid JSON (Expecting value: line 1 column 1 (char 0)); "
                                     "nothing was trained yet, so the run starts afresh")
    assert warnings["loop"].split(": ", 1)[1] == warnings["tracker"].split(": ", 1)[1]  # but the run id


def test_a_run_json_that_is_a_directory_is_refused_by_both_and_kept(tmp_path):
    def make(path: str) -> Path:
        directory = _run_dir(path, tmp_path / path)
        (directory / store.RUN_JSON).mkdir(parents=True)
        (directory / store.RUN_JSON / "mine.txt").write_text("keep me")
        return directory

    launches = _both(make)
    assert launches["loop"] == launches["tracker"]
    assert launches["loop"].status is None
    assert launches["loop"].said.startswith("<run>/run.json: run.json is a directory, not a regular file")
    assert "the run was not reopened (every file kept)" in launches["loop"].said
    for path in PATHS:
        directory = _run_dir(path, tmp_path / path)
        assert sorted(str(p.relative_to(directory)) for p in directory.rglob("*")) == ["run.json", "run.json/mine.txt"]


def test_a_trajectory_missing_epochs_its_checkpoint_recorded_fails_both_and_is_kept(tmp_path):
    kept = {}

    def make(path: str) -> Path:
        directory = _interrupted(path, tmp_path / path)
        table = store.read_trajectory(directory)
        store.write_trajectory(directory, table.filter(table.column("epoch").to_numpy() == 0))
        kept[path] = _files(directory)
        return directory

    launches = _both(make)
    assert launches["loop"].error == launches["tracker"].error
    assert (launches["loop"].status, launches["tracker"].status) == ("failed", "failed")
    assert launches["loop"].error == ("StoreError: <run>/trajectory.parquet lacks epochs [1, 2] that the checkpoint "
                                      "of epoch 2 follows; the run was not resumed over it (every file kept); restore "
                                      "the file, or move the run directory aside to train the run from scratch")
    for path in PATHS:
        directory = _run_dir(path, tmp_path / path)
        after = _files(directory)
        assert {k: v for k, v in after.items() if k not in ("run.json", "run.log")} == \
               {k: v for k, v in kept[path].items() if k not in ("run.json", "run.log")}
        assert "lacks epochs [1, 2]" in after["run.log"].decode()


def test_a_tracked_loop_that_skips_epochs_resumes_over_them(tmp_path):
    torch_model, epochs_seen = Tiny(), []
    optimizer = torch.optim.SGD(torch_model.parameters(), lr=0.1)
    with pytest.raises(RuntimeError), Tracker(tmp_path, HP, probe_data=PROBE) as tracker:
        for epoch in (0, 2, 4):  # a loop that tracks every other epoch
            tracker.epoch(torch_model, epoch, **_scores(torch_model), optimizer=optimizer)
        raise RuntimeError("crash")
    with Tracker(tmp_path, HP, probe_data=PROBE) as again:
        start = again.resume(torch_model, optimizer)
        for epoch in range(start, 7, 2):
            _step(torch_model, optimizer)
            again.epoch(torch_model, epoch, **_scores(torch_model), optimizer=optimizer)
            epochs_seen.append(epoch)
    assert start == 5 and epochs_seen == [5] and again.status == "completed"
    assert sorted(set(store.read_trajectory(again.run_dir).column("epoch").to_pylist())) == [0, 2, 4, 5]


def test_a_completed_run_launched_again_is_left_untouched_by_both(tmp_path):
    before, mtimes = {}, {}

    def make(path: str) -> Path:
        directory = _completed(path, tmp_path / path)
        before[path] = _files(directory)
        mtimes[path] = (directory / store.RUN_JSON).stat().st_mtime_ns
        return directory

    launches = _both(make)
    assert launches["loop"] == launches["tracker"] == Launch(None, "completed", None, 0)
    for path in PATHS:
        directory = _run_dir(path, tmp_path / path)
        assert _files(directory) == before[path] and not (directory / LOCK_FILE).exists()
        assert (directory / store.RUN_JSON).stat().st_mtime_ns == mtimes[path]


def test_durations_add_up_over_two_attempts_in_both(tmp_path, monkeypatch):
    readings: list[float] = []

    def clock() -> float:  # one second per reading
        readings.append(float(len(readings)))
        return readings[-1]

    monkeypatch.setattr(run_writer, "monotonic", clock)
    for path in PATHS:
        directory = _interrupted(path, tmp_path / path)
        first = store.read_run_json(directory).duration_s
        mark = len(readings)
        assert _launch(path, tmp_path / path).status == "completed"
        record = store.read_run_json(directory)
        assert first > 0 and record.restarts == 1
        # the first attempt's seconds plus the second's, from its start to its end
        assert record.duration_s == pytest.approx(first + readings[-1] - readings[mark]), path


def test_an_interruption_ends_both_preempted_and_releases_the_lock(tmp_path, monkeypatch):
    from pab_campaign.training import run

    def interrupted(self, epoch: int) -> float:
        raise KeyboardInterrupt

    monkeypatch.setattr(run.Run, "_train_epoch", interrupted)  # Ctrl-C while epoch 1 trains
    with pytest.raises(KeyboardInterrupt):
        execute(compose_config(TINY, tmp_path / "loop"))
    model = Tiny()
    with pytest.raises(KeyboardInterrupt), Tracker(tmp_path / "tracker", HP, probe_data=PROBE) as tracker:
        tracker.epoch(model, 0, **_scores(model))
        raise KeyboardInterrupt
    assert tracker.status == "preempted"
    for path in PATHS:
        directory = _run_dir(path, tmp_path / path)
        record = store.read_run_json(directory)
        assert (record.status, record.error, record.epochs_done) == ("preempted", None, 0), path
        assert not (directory / LOCK_FILE).exists() and not (directory / store.RUN_LOG).exists()
