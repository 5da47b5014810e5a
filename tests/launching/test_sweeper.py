"""`hydra/sweeper=checked` (the app's default): every job's config is checked before the first job
starts, so a sweep with one bad value trains nothing and writes nothing; campaign names that would
leave the campaign root or be the root are refused before Hydra writes anything."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.helpers import assert_one_line_error, train

FAST = ["model=mlp", "runtime.verbose=false", "tracking=minimal", "train.epochs=1"]


@pytest.mark.parametrize("batches", [[], ["hydra.sweeper.max_batch_size=1"]])
def test_a_sweep_with_one_bad_job_trains_nothing(tmp_path, batches):
    campaign = tmp_path / "root" / "c"
    result = train(["-m", *FAST, "seed=0", "optimizer.lr=0.05,-1", *batches], campaign)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert_one_line_error(result, "job #1 (", "optimizer.lr=-1", "optimizer.lr=-1.0 must be > 0")
    assert not (tmp_path / "root").exists()  # not a run, not Hydra's sweep directory


@pytest.mark.parametrize("name", ["../../escaped", "/absolute", "''", "."])
@pytest.mark.parametrize("sweep", [[], ["-m", "seed=0,1"]])
def test_campaign_names_outside_the_root_or_the_root_itself_are_refused(tmp_path, name, sweep):
    root = tmp_path / "a" / "b" / "root"
    result = train([*sweep, *FAST, f"campaign.root={root}", f"campaign.name={name}"], tmp_path / "unused")
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert_one_line_error(result, "must name a directory inside campaign.root", "e.g. campaign.name=demo")
    assert [p.name for p in tmp_path.iterdir()] == []  # nothing written, inside the root or outside


@pytest.mark.parametrize("case", ["a file", "a campaign's runs", "unwritable"])
def test_a_campaign_that_cannot_be_a_directory_of_its_own_is_one_line(tmp_path, case):
    if case == "a file":
        (tmp_path / "file").write_text("notes")
        campaign, fragment = tmp_path / "file", "is a file; name a directory"
    elif case == "a campaign's runs":
        (tmp_path / "c" / "runs").mkdir(parents=True)
        campaign, fragment = tmp_path / "c" / "runs" / "inner", "the runs/ folder of the campaign"
    else:
        campaign, fragment = Path("/sys/kernel/pab_campaign"), "you can write"
    result = train([*FAST, "seed=0"], campaign)  # one run: Hydra makes its run folder before any check of ours
    assert result.returncode == 2, result.stderr[-2000:]
    assert_one_line_error(result, fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == {"a file": ["file"], "a campaign's runs": ["c"]}.get(case, [])
    if case == "a file":
        assert (tmp_path / "file").read_text() == "notes"
    if case == "a campaign's runs":
        assert list((tmp_path / "c" / "runs").iterdir()) == []


def test_an_empty_seed_sweep_leaves_nothing_behind(tmp_path):
    campaign = tmp_path / "root" / "c"
    result = train(["-m", *FAST, "seed="], campaign)
    assert result.returncode == 2
    assert_one_line_error(result, "seed=")
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize("args", [["grid=random"], ["grid=none", "optimizer.lr=interval(0.1, 0.5)"]])
def test_an_interval_under_the_basic_sweeper_names_the_sweepers_that_draw(tmp_path, args):
    """Hydra said only 'BasicSweeper does not support sweep type : INTERVAL_SWEEP'."""
    result = train(["-m", *args, "train.epochs=1"], tmp_path / "c")
    assert_one_line_error(result, "an interval is for a sweeper that draws from it; add hydra/sweeper=optuna or "
                                  "hydra/sweeper=random")
    assert result.returncode == 2 and not (tmp_path / "c" / "runs").exists()


def test_a_nan_objective_is_told_to_optuna_as_a_failed_trial():
    """The study's tell of the Optuna sweeper, against Optuna itself: NaN → a failed trial without
    values; a failed trial told with values (as hydra-optuna-sweeper 1.2.0 does) → without them."""
    optuna = pytest.importorskip("optuna")
    from hydra_plugins.pab_campaign_launchers.optuna_sweeper import tell_nan_as_failed

    study = optuna.create_study()
    first, second, third = study.ask(), study.ask(), study.ask()
    tell_nan_as_failed(study.tell, first, [math.nan], optuna.trial.TrialState.COMPLETE)
    tell_nan_as_failed(study.tell, second, [math.nan], optuna.trial.TrialState.FAIL)
    tell_nan_as_failed(study.tell, third, [0.25], optuna.trial.TrialState.COMPLETE)
    states = [trial.state for trial in study.get_trials()]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    assert study.best_value == 0.25
