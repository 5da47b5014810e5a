"""report: numbers against an independent pandas + scipy computation; --groupby/--contexts/--metrics/--epoch."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.weightstats import DescrStatsW

from pab_campaign.analysis.campaign.campaign import completed_runs, hparam_values, open_campaign
from pab_campaign.analysis.summary.curve_groups import curves_frame, group_codes
from pab_campaign.analysis.summary.report import (
    _aggregate,
    build_curves,
    build_report,
    coarser_curves,
    label_filter,
    split_layout,
    summarize,
    write_curves,
    write_report,
)
from pab_campaign.errors import CampaignError
from pab_campaign.store import read_run_json, read_trajectory, runs_dir, summary_dir
from tests.helpers import cli, make_grid, write_run


def _independent(root, epoch) -> pd.DataFrame:
    """Per run: hparams, duration and val/test acc/loss at `epoch`, read file by file with pandas."""
    rows = []
    for directory in sorted(runs_dir(root).iterdir()):
        record = read_run_json(directory)
        t = read_trajectory(directory).to_pandas()
        t = t[t["key"].isna()].astype({"context": str, "metric": str})
        if epoch == "last":
            at = t["epoch"].max()
        elif epoch == "best":
            vl = t[(t.context == "val") & (t.metric == "loss")]
            at = vl.loc[vl["value"].idxmin(), "epoch"]
        else:
            at = epoch
        row = {**record.hparams, "run_id": record.run_id, "duration_s": record.duration_s}
        for (c, m), v in t[t["epoch"] == at].groupby(["context", "metric"])["value"]:
            row[f"{c}/{m}"] = v.iloc[0]
        rows.append(row)
    return pd.DataFrame(rows)


def _ci95(x: pd.Series) -> float:
    x = x.dropna().to_numpy()
    return scipy_stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))


@pytest.mark.parametrize("epoch", ["last", "best", 3])
def test_report_matches_pandas_and_scipy(tmp_path, epoch):
    make_grid(tmp_path, seeds=5)
    report = build_report(open_campaign(tmp_path), epoch=epoch)
    assert report.groupby == ["model.name", "optimizer.lr"]  # model.hidden restates model.name; seed excluded
    expected = _independent(tmp_path, epoch)
    assert len(report.summary) == 4
    for row in report.summary.to_dict("records"):
        same = (expected["model.name"] == row["model.name"]) & (expected["optimizer.lr"] == row["optimizer.lr"])
        group = expected[same]
        assert row["runs"] == len(group) == 5
        for column in ["val/acc", "val/loss", "test/acc", "test/loss", "duration_s"]:
            assert row[f"{column}.mean"] == pytest.approx(group[column].mean(), abs=1e-12)
            assert row[f"{column}.std"] == pytest.approx(group[column].std(ddof=1), abs=1e-12)
            assert row[f"{column}.ci95"] == pytest.approx(_ci95(group[column]), abs=1e-9)
            low, high = DescrStatsW(group[column].to_numpy()).tconfint_mean()
            assert row[f"{column}.ci95"] == pytest.approx((high - low) / 2, abs=1e-9)


def test_summarize_n1_and_nan():
    frame = pd.DataFrame({"g": ["a", "a", "a", "b"], "x": [1.0, np.nan, 3.0, 2.0]})
    out = summarize(frame, ["g"], ["x"]).set_index("g")
    assert out.loc["a", "runs"] == 3 and out.loc["a", "x.mean"] == 2.0
    assert out.loc["a", "x.ci95"] == pytest.approx(_ci95(pd.Series([1.0, 3.0])))
    assert np.isnan(out.loc["b", "x.ci95"]) and np.isnan(out.loc["b", "x.std"])


def test_groupby_contexts_metrics_options(tmp_path):
    make_grid(tmp_path, seeds=3)
    campaign = open_campaign(tmp_path)
    report = build_report(campaign, groupby=["optimizer.lr"], contexts=["train"], metrics=["loss"])
    assert report.metrics == ["train/loss"] and list(report.summary["optimizer.lr"]) == [0.01, 0.1]
    assert list(report.summary["runs"]) == [6, 6]
    assert build_report(campaign, groupby=[]).summary["runs"].tolist() == [12]
    with pytest.raises(CampaignError, match="no such hyper-parameter"):
        build_report(campaign, groupby=["model.nope"])
    with pytest.raises(CampaignError, match="never tracked"):
        build_report(campaign, metrics=["f1"])
    with pytest.raises(CampaignError, match="epoch 99"):
        build_report(campaign, epoch=99)


def test_curves_mean_and_ci_per_epoch(tmp_path):
    make_grid(tmp_path, seeds=3, epochs=4)
    _, curves = build_curves(open_campaign(tmp_path), contexts=["val"], metrics=["acc"])
    expected = _independent(tmp_path, 2)
    row = curves[(curves["model.name"] == "cnn") & (curves["optimizer.lr"] == 0.1) & (curves["epoch"] == 2)].iloc[0]
    group = expected[(expected["model.name"] == "cnn") & (expected["optimizer.lr"] == 0.1)]["val/acc"]
    assert row["runs"] == 3
    assert row["mean"] == pytest.approx(group.mean()) and row["ci95"] == pytest.approx(_ci95(group))
    assert len(curves) == 4 * 5


def test_report_of_process_summary_metrics(tmp_path):
    make_grid(tmp_path, seeds=3, epochs=5)
    report = build_report(open_campaign(tmp_path), metrics=["val/acc", "summary/early_stop_epoch"])
    assert report.metrics == ["val/acc", "summary/early_stop_epoch"]
    expected = {}
    for directory in sorted(runs_dir(tmp_path).iterdir()):
        t = read_trajectory(directory).to_pandas().astype({"context": str, "metric": str})
        loss = t[(t.context == "val") & (t.metric == "loss") & t["key"].isna()].set_index("epoch")["value"]
        expected[directory.name] = float(loss.idxmin())
    per_run = report.per_run.set_index("run_id")["summary/early_stop_epoch"]
    assert per_run.to_dict() == expected
    with pytest.raises(CampaignError, match="not a process-summary metric"):
        build_report(open_campaign(tmp_path), metrics=["summary/nonsense"])
    with pytest.raises(CampaignError, match="whole-run numbers"):
        build_curves(open_campaign(tmp_path), metrics=["summary/early_stop_epoch"])


def test_report_of_both_gap_summaries(tmp_path):
    """`summary/acc_gap_*` and `summary/loss_gap_*` are the two gaps, each named for its own."""
    rng = np.random.default_rng(3)
    for seed in range(3):
        train_loss, val_loss = rng.uniform(0.1, 0.5, 5), rng.uniform(0.5, 1.0, 5)
        write_run(tmp_path, f"r{seed}", {"optimizer.lr": 0.1, "seed": seed},
                  {("train", "loss"): list(train_loss), ("val", "loss"): list(val_loss),
                   ("val", "loss_gap"): list(val_loss - train_loss), ("val", "gen_gap"): list(rng.uniform(0, 0.2, 5)),
                   ("val", "acc"): list(rng.uniform(0.5, 0.9, 5))})
    report = build_report(open_campaign(tmp_path), metrics=["summary/loss_gap_final", "summary/acc_gap_max"])
    for directory in sorted(runs_dir(tmp_path).iterdir()):
        t = read_trajectory(directory).to_pandas().astype({"context": str, "metric": str})
        loss_gap = t[t.metric == "loss_gap"].set_index("epoch")["value"]
        acc_gap = t[t.metric == "gen_gap"].set_index("epoch")["value"]
        row = report.per_run.set_index("run_id").loc[directory.name]
        assert row["summary/loss_gap_final"] == pytest.approx(loss_gap.iloc[-1])
        assert row["summary/acc_gap_max"] == pytest.approx(acc_gap[acc_gap.index >= 1].max())
    with pytest.raises(CampaignError, match="not a process-summary metric"):
        build_report(open_campaign(tmp_path), metrics=["summary/gap_final"])  # the old, ambiguous name


def test_split_layout_puts_the_context_as_a_row_level(tmp_path):
    make_grid(tmp_path, seeds=3)
    campaign = open_campaign(tmp_path)
    report = build_report(campaign, groupby=["model.name"], metrics=["val/acc", "val/loss", "test/acc"])
    split = split_layout(report.summary, report.groupby, report.metrics)
    assert list(split.columns[:3]) == ["context", "model.name", "runs"]
    assert split[["context", "model.name"]].values.tolist() == [["val", "cnn"], ["val", "mlp"], ["test", "cnn"],
                                                                 ["test", "mlp"]]
    wide = report.summary.set_index("model.name")
    for row in split.to_dict("records"):
        for stat in ("mean", "std", "ci95"):
            assert row[f"acc.{stat}"] == wide.loc[row["model.name"], f"{row['context']}/acc.{stat}"]
            assert row[f"duration_s.{stat}"] == wide.loc[row["model.name"], f"duration_s.{stat}"]
        if row["context"] == "test":
            assert np.isnan(row["loss.mean"])  # test/loss was not asked for
        else:
            assert row["loss.mean"] == wide.loc[row["model.name"], "val/loss.mean"]


def test_report_and_curves_write_into_the_folder_given(tmp_path):
    campaign_dir, folder = tmp_path / "c", tmp_path / "out" / "nested"
    make_grid(campaign_dir, seeds=2)
    campaign = open_campaign(campaign_dir)
    report = build_report(campaign, groupby=["model.name"])
    path = write_report(campaign, report, "last", folder=folder, layout="split")
    assert path == folder / "summary_model.name_last_split.csv"
    written = pd.read_csv(path)
    assert written["context"].tolist() == ["val", "val", "test", "test"] and "acc.ci95" in written
    wide = write_report(campaign, report, "last")
    assert wide.parent == summary_dir(campaign_dir) and "val/acc.mean" in pd.read_csv(wide)
    groupby, curves = build_curves(campaign, metrics=["val/acc"])
    parquet, png = write_curves(campaign, groupby, curves, folder=folder)
    assert parquet.parent == png.parent == folder and pd.read_parquet(parquet).equals(curves)
    assert not list(summary_dir(campaign_dir).glob("curves_*"))


def test_a_metric_nan_at_every_runs_last_epoch_is_still_tracked(tmp_path):
    for seed in range(3):
        write_run(tmp_path, f"r{seed}", {"model.name": "mlp", "seed": seed},
                  {("val", "loss"): [2.0, 1.0, 1.5], ("val", "acc"): [0.1, 0.5, 0.4],
                   ("probe", "churn"): [0.2 + seed / 10, 0.1, float("nan")]})
    result = cli(["curves", str(tmp_path), "--metrics", "probe/churn"])
    assert result.returncode == 0, result.stderr
    best = cli(["report", str(tmp_path), "--metrics", "probe/churn", "--epoch", "best"])
    assert best.returncode == 0, best.stderr
    assert "0.1 ± 0" in " ".join(best.stdout.split())


def test_a_metric_at_an_epoch_is_refused_with_the_option_that_chooses_the_epoch(tmp_path):
    make_grid(tmp_path, seeds=2)
    for command in ("report", "curves"):
        result = cli([command, str(tmp_path), "--metrics", "val/acc@3"])
        assert result.returncode == 2
        assert "--metrics val/acc --epoch 3" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_the_label_filter_keeps_exactly_the_rows_of_the_labels():
    """The scan-time tests on context, metric and key never drop a row the exact label test keeps,
    for names holding '/' and '[' too; the exact test drops the rest."""
    import itertools

    import duckdb

    parts = ["val", "a/b", "acc", "x[1]", "loss/2", "c"]
    keys = [None, "0", "1]", "k[2"]
    rows = [(c, m, k) for c, m, k in itertools.product(parts, parts, keys)]

    def label(c, m, k):
        return f"{c}/{m}" + (f"[{k}]" if k is not None else "")

    con = duckdb.connect()
    con.execute("CREATE TABLE traj (context VARCHAR, metric VARCHAR, key VARCHAR)")
    con.executemany("INSERT INTO traj VALUES (?, ?, ?)", rows)
    everything = sorted({label(*row) for row in rows})
    for chosen in (["val/acc"], ["a/b/acc", "val/x[1]"], ["val/x[1][k[2]", "a/b/loss/2[1]]"], everything[::7], []):
        where, params = label_filter(chosen)
        found = con.execute(f"SELECT context, metric, key FROM traj WHERE {where}", params).fetchall()
        assert sorted(found, key=str) == sorted((row for row in rows if label(*row) in chosen), key=str)


def _grouped_directly(campaign, names, labels):
    """build_curves' frame grouped by `names` straight from the trajectories (never pooled)."""
    done = completed_runs(campaign)
    codes, keys = group_codes(hparam_values(done, names))
    return curves_frame(_aggregate(campaign, done["run_id"].tolist(), codes, labels), keys, labels)


def test_coarser_curves_equal_a_direct_grouping(tmp_path):
    """Curves regrouped from finer groups (the page's grouping selector, and build_curves for a
    --groupby that is part of the finest grouping) equal the trajectories grouped that way: the
    same rows and runs, mean, std and ci95 to rounding; a run with a value missing at some epochs
    and a group of a single run included."""
    make_grid(tmp_path, seeds=3, epochs=4)
    write_run(tmp_path, "solo", {"model.name": "vit", "model.hidden": 8, "optimizer.lr": 0.1, "seed": 0},
              {("val", "loss"): [2.0, 1.5, float("nan"), 1.0, 0.9], ("val", "acc"): [0.1, 0.2, 0.3, 0.4, 0.5]})
    campaign = open_campaign(tmp_path)
    labels = ["val/loss", "val/acc"]
    groupby, finest = build_curves(campaign, metrics=labels)
    assert groupby == ["model.name", "optimizer.lr"]
    pd.testing.assert_frame_equal(finest, _grouped_directly(campaign, groupby, labels), check_exact=True)
    for names in (["model.name"], ["optimizer.lr"], []):
        got = coarser_curves(finest, groupby, names, labels)
        pd.testing.assert_frame_equal(build_curves(campaign, names, metrics=labels)[1], got, check_exact=True)
        want = _grouped_directly(campaign, names, labels)
        assert list(got.columns) == list(want.columns)
        pd.testing.assert_frame_equal(got[[*names, "label", "epoch", "runs"]], want[[*names, "label", "epoch", "runs"]],
                                      check_dtype=False)
        for column in ("mean", "std", "ci95"):
            np.testing.assert_allclose(got[column], want[column], rtol=1e-12, atol=1e-15)
