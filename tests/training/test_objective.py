"""campaign.objective: the float a job returns equals the campaign index's `@last` / `@best` column."""
import math

import pytest

from pab_campaign.analysis.campaign.campaign import open_campaign
from pab_campaign.errors import ConfigError
from pab_campaign.store import RunStatus, run_dir
from pab_campaign.training.objective import job_objective, objective_value, parse_objective
from tests.helpers import make_grid, write_run


@pytest.mark.parametrize("objective", ["val/loss@best", "test/acc@last", "test/acc@best", "train/loss@last"])
def test_objective_equals_the_index_column(tmp_path, objective):
    ids = make_grid(tmp_path, seeds=1, epochs=4)
    runs = open_campaign(tmp_path).runs.set_index("run_id")
    for rid in ids:
        assert objective_value(run_dir(tmp_path, rid), objective) == pytest.approx(runs.loc[rid, objective], abs=0)


def test_best_is_the_earliest_epoch_of_minimal_finite_val_loss(tmp_path):
    directory = write_run(tmp_path, "r", {"seed": 0}, {("val", "loss"): [math.nan, 0.5, 0.2, 0.2, math.inf],
                                                        ("test", "acc"): [0.1, 0.2, 0.3, 0.4, 0.5]})
    assert objective_value(directory, "test/acc@best") == 0.3
    assert objective_value(directory, "test/acc@last") == 0.5
    assert math.isnan(objective_value(directory, "val/loss@last"))
    # a metric the run never recorded: every job of a sweep would say NaN, a study read its runs as failed
    with pytest.raises(ConfigError, match=r"run r did not record val/los \(did you mean val/loss\?\); it records "
                                          r"val/loss, test/acc"):
        objective_value(directory, "val/los@last")


def test_a_run_that_did_not_complete_returns_nan(tmp_path):
    directory = write_run(tmp_path, "r", {"seed": 0}, {("val", "loss"): [1.0, 0.5]})
    assert job_objective(RunStatus.COMPLETED, directory, "val/loss@best") == 0.5
    for status in (RunStatus.DIVERGED, RunStatus.FAILED):
        assert math.isnan(job_objective(status, directory, "val/loss@best"))
    assert math.isnan(job_objective(RunStatus.COMPLETED, tmp_path / "nowhere", "val/loss@best"))


@pytest.mark.parametrize("text", ["val/loss", "val/loss@3", "loss@best", "val/loss@worst"])
def test_a_malformed_objective_is_refused_naming_the_form(text):
    with pytest.raises(ConfigError, match=r"context/metric@last\|@best"):
        parse_objective(text)
