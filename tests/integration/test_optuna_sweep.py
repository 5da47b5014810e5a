"""hydra-optuna-sweeper drives `python -m pab_campaign`: a 6-trial TPE study over optimizer.lr on
digits, launched 3 trials at a time by the local launcher, whose one warm fork server serves every
batch; every trial is a run of the campaign, the study's best value is that run's objective as
`report` indexes it, and a relaunch of the same study trains nothing again."""
import math
import re

import pytest
import yaml

from pab_campaign.analysis.campaign.campaign import open_campaign
from pab_campaign.store import process_alive
from tests.helpers import train, wait_for

STUDY = ["-m", "grid=none", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=6", "hydra.sweeper.n_jobs=3",
         "hydra.sweeper.sampler.seed=0", "optimizer.lr=tag(log, interval(0.001, 0.5))", "train.epochs=1",
         "tracking=minimal", "runtime.verbose=false", "campaign.objective=val/loss@best"]


def test_optuna_study_trials_are_campaign_runs_and_relaunch_skips(tmp_path):
    campaign = tmp_path / "study"
    first = train([*STUDY, "hydra/launcher=local", f"hydra.sweep.dir={tmp_path}/sweep1"], campaign)
    assert first.returncode == 0, first.stderr[-3000:]
    said = first.stdout + first.stderr
    assert said.count("local launcher: 3 runs") == 2  # two batches of n_jobs trials
    servers = re.findall(r"runs fork from a warm python \(pab_campaign\.launching\.forkserver, pid (\d+)\)", said)
    assert len(servers) == 1, said[-3000:]  # started once, not once per batch
    wait_for(lambda: not process_alive(int(servers[0])), 30, "the fork server to end with the sweep")
    results = yaml.safe_load((tmp_path / "sweep1" / "optimization_results.yaml").read_text())
    runs = open_campaign(campaign).runs
    assert len(runs) == 6 and set(runs["status"]) == {"completed"}
    lrs = sorted(runs["optimizer.lr@hparam"])
    assert len(set(lrs)) == 6 and lrs[0] >= 0.001 and lrs[-1] <= 0.5
    best = runs.loc[runs["val/loss@best"].idxmin()]
    assert math.isclose(results["best_value"], best["val/loss@best"], rel_tol=1e-12)
    assert math.isclose(results["best_params"]["optimizer.lr"], best["optimizer.lr@hparam"], rel_tol=1e-12)

    again = train([*STUDY, f"hydra.sweep.dir={tmp_path}/sweep2"], campaign)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (again.stdout + again.stderr).count("skipped") >= 6
    assert len(open_campaign(campaign).runs) == 6
    rerun = yaml.safe_load((tmp_path / "sweep2" / "optimization_results.yaml").read_text())
    assert rerun["best_value"] == results["best_value"]


def test_basic_sweeper_composes_and_a_refused_job_is_one_line(tmp_path):
    result = train(["-m", "grid=none", "hydra/sweeper=basic", "optimizer.lr=-1", "train.epochs=1",
                    "tracking=minimal"], tmp_path / "basic")
    lines = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert len(lines) == 1 and "optimizer.lr=-1.0 must be > 0" in lines[0], result.stderr


def test_a_study_goes_on_past_runs_that_diverge_as_failed_trials(tmp_path):
    """hydra-optuna-sweeper 1.2.0 alone stops the study with a traceback at the first NaN objective."""
    result = train(["-m", "grid=none", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=3", "hydra.sweeper.n_jobs=1",
                    "hydra.sweeper.sampler.seed=0", "optimizer.lr=interval(1000, 100000)", "train.epochs=2",
                    "tracking=minimal", "runtime.verbose=false", f"hydra.sweep.dir={tmp_path}/sweep"],
                   tmp_path / "diverging")
    said = result.stdout + result.stderr
    assert result.returncode == 0 and "Traceback" not in said, said[-3000:]
    assert said.count("the study records it as a failed trial") == 3 and "no trial of the study completed" in said
    runs = open_campaign(tmp_path / "diverging").runs
    assert len(runs) == 3 and set(runs["status"]) == {"diverged"}


@pytest.mark.parametrize("override, fragment", [
    ("hydra.sweeper.direction=sideways", "hydra.sweeper.direction=sideways: the run returns one objective"),
    ("hydra.sweeper.direction=[minimize,maximize]", "direction=[minimize,maximize]: the run returns one objective"),
    ("hydra.sweeper.n_jobs=0", "hydra.sweeper.n_jobs=0 must be a whole number >= 1"),  # looped forever
])
def test_a_study_the_app_cannot_run_is_refused_in_one_line_before_any_run(tmp_path, override, fragment):
    result = train(["-m", "grid=none", "hydra/sweeper=optuna", "optimizer.lr=interval(0.01, 0.1)", "train.epochs=1",
                    "tracking=minimal", override], tmp_path / "refused")
    lines = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert not (tmp_path / "refused" / "runs").exists()


def test_an_objective_the_runs_never_record_ends_the_study_saying_so(tmp_path):
    """It ended every trial as a 'failed run' with exit status 0, the runs completed."""
    result = train(["-m", "grid=none", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=1",
                    "optimizer.lr=interval(0.01, 0.1)", "train.epochs=1", "tracking=minimal",
                    "campaign.objective=val/nope@last"], tmp_path / "typo")
    lines = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert len(lines) == 1 and "campaign.objective=val/nope@last: run" in lines[0], result.stderr
    assert "did not record val/nope" in lines[0] and "it records val/acc" in lines[0]
