"""`--where`: the runs kept are those a plain pandas selection on run.json's values keeps."""
import re

import pandas as pd
import pytest

from pab_campaign.analysis.campaign.campaign import hparam_values, open_campaign
from pab_campaign.errors import CampaignError
from tests.helpers import cli, make_grid


@pytest.fixture
def grid(tmp_path):
    make_grid(tmp_path, seeds=2, epochs=2)
    return tmp_path


@pytest.mark.parametrize(("where", "expected"), [
    (["optimizer.lr=0.1"], lambda h: h["optimizer.lr"] == 0.1),
    (["optimizer.lr!=0.1", "model.name=cnn"], lambda h: (h["optimizer.lr"] != 0.1) & (h["model.name"] == "cnn")),
    (["model.hidden>16"], lambda h: h["model.hidden"] > 16),
    (["seed<=0"], lambda h: h["seed"] <= 0),
    (["model.name in [mlp, cnn]", "seed in [1]"], lambda h: h["seed"] == 1),
    (["status=completed", "optimizer.lr@hparam>=0.1"], lambda h: h["optimizer.lr"] >= 0.1),
])
def test_where_keeps_what_pandas_keeps(grid, where, expected):
    everything = open_campaign(grid)
    values = hparam_values(everything.runs, everything.hparam_names)
    wanted = set(everything.runs.loc[expected(values), "run_id"])
    assert set(open_campaign(grid, where=where).runs["run_id"]) == wanted and wanted


def test_a_metric_column_filters_too(grid):
    runs = open_campaign(grid).runs
    median = runs["val/acc@last"].median()
    kept = open_campaign(grid, where=[f"val/acc@last>{median}"]).runs
    assert set(kept["run_id"]) == set(runs.loc[runs["val/acc@last"] > median, "run_id"])


@pytest.mark.parametrize(("where", "message"), [
    (["nope=1"], "no hyper-parameter, run field or metric 'nope'; hyper-parameters here: model.hidden"),
    (["optimizer.lr"], "is not a condition"),
    (["model.name>cnn"], "model.name is not numeric; use =, != or in"),
    (["optimizer.lr=abc"], "'abc' is not a number"),
    (["seed=7"], "no run matches --where seed=7"),
    (["model.name=cnnn"], "--where model.name: no run has the value 'cnnn' (did you mean cnn?); its values: cnn, mlp"),
    (["status=completd"], "no run has the value 'completd' (did you mean completed?)"),
    (["optimizer.lr in [0.1,abc]"], "--where optimizer.lr: 'abc' is not a number"),  # it named '0.1, abc'
])
def test_bad_conditions_are_refused_naming_the_fix(grid, where, message):
    with pytest.raises(CampaignError, match=re.escape(message)):
        open_campaign(grid, where=where)


def test_report_groups_only_the_runs_where_says(grid):
    result = cli(["report", str(grid), "--where", "model.name=cnn", "--where", "optimizer.lr=0.1"])
    assert result.returncode == 0, result.stderr
    summary = pd.read_csv(grid / "summary" / "summary_all_last.csv")
    assert list(summary["runs"]) == [2]  # 2 seeds of cnn at lr 0.1, of the 8 runs
    refused = cli(["report", str(grid), "--where", "typo=1"])
    assert refused.returncode == 2 and "no hyper-parameter, run field or metric 'typo'" in refused.stderr
