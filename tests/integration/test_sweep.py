"""A real multirun of the default grid in a subprocess, then `report` and `audit` on it."""
import pandas as pd
import pyarrow.parquet as pq
import pytest
from statsmodels.stats.weightstats import DescrStatsW

from pab_campaign import store
from tests.helpers import cli, train


def test_default_grid_leaves_twelve_runs_with_contract_trajectories(demo_campaign):
    run_dirs = list(store.iter_run_dirs(demo_campaign))
    assert len(run_dirs) >= 12
    statuses = {store.read_run_json(d).status for d in run_dirs}
    assert statuses == {"completed"}
    for directory in run_dirs:
        schema = pq.read_schema(directory / store.TRAJECTORY)
        assert schema.names == ["epoch", "context", "metric", "key", "value"]
        assert schema.field("epoch").type == store.TRAJECTORY_SCHEMA.field("epoch").type


def test_second_launch_trains_nothing_and_says_so(demo_campaign):
    before = {d.name: (d / store.TRAJECTORY).stat().st_mtime_ns for d in store.iter_run_dirs(demo_campaign)}
    result = train(["-m", "train.epochs=4", "runtime.verbose=false"], demo_campaign)
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert output.count("skipped") >= 12
    after = {d.name: (d / store.TRAJECTORY).stat().st_mtime_ns for d in store.iter_run_dirs(demo_campaign)}
    assert after == before


def test_report_groups_and_ci95_equals_statsmodels(demo_campaign):
    result = cli(["report", str(demo_campaign)])
    assert result.returncode == 0, result.stderr
    assert "model.name" in result.stdout and "optimizer.lr" in result.stdout
    summary_path = next((demo_campaign / "summary").glob("summary_*.csv"))
    summary = pd.read_csv(summary_path)
    assert len(summary) == 4 and set(summary["runs"]) == {3}
    per_run = pd.read_parquet(demo_campaign / "summary" / "runs.parquet")
    for row in summary.itertuples():
        # hyper-parameters have index columns of their own (`<name>@hparam`), apart from the run fields
        group = per_run[(per_run["model.name@hparam"] == row[1]) & (per_run["optimizer.lr@hparam"] == row[2])]
        for metric in ("val/acc", "test/loss"):
            values = group[f"{metric}@last"].to_numpy()
            _low, high = DescrStatsW(values).tconfint_mean()
            assert summary.loc[row.Index, f"{metric}.ci95"] == pytest.approx(high - values.mean(), abs=1e-9)
            assert summary.loc[row.Index, f"{metric}.mean"] == pytest.approx(values.mean(), abs=1e-12)


def test_audit_prints_a_verdict_and_writes_csv(demo_campaign):
    result = cli(["audit", str(demo_campaign), "--metric", "weights/erank", "--baseline", "val/loss@2",
                  "--target", "val/acc"])
    assert result.returncode == 0, result.stderr
    audit = pd.read_csv(demo_campaign / "summary" / "audit.csv")
    assert list(audit["metric"]) == ["val/loss@2", "weights/erank@2"]
    assert audit.loc[1, "n"] == 12
    assert audit.loc[1, "verdict"] in {"PASS", "loss proxy"}
    assert audit.loc[1, "effect_class"] in {"washout", "sign-inversion", "reverse-inversion", "hidden-after-control",
                                            "survives", "inconclusive"}
    assert -1 <= audit.loc[1, "partial_rho"] <= 1


def test_ls_lists_every_run(demo_campaign):
    result = cli(["ls", str(demo_campaign)])
    assert result.returncode == 0
    for directory in store.iter_run_dirs(demo_campaign):
        assert directory.name in result.stdout
