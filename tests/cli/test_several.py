"""Several campaigns, a run directory, and tcbench's report by campaign id and macro F1."""
from __future__ import annotations

import pandas as pd
import pytest

from pab_campaign import cli
from pab_campaign.store import read_trajectory, runs_dir, summary_dir
from pab_campaign.training.run import execute
from tests.helpers import compose_config, make_grid


def _run(argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out + err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two campaigns of one real run each (same hyper-parameters, so the same run id in both)."""
    root = tmp_path_factory.mktemp("trained")
    for name in ("alpha", "beta"):
        cfg = compose_config([f"campaign.root={root}", f"campaign.name={name}", "dataset=digits",
                              "dataset.train_fraction=0.2", "model=mlp", "train.epochs=1", "runtime.verbose=false",
                              "tracking=minimal"])
        assert execute(cfg).status == "completed"
    return root / "alpha", root / "beta"


def test_report_acc_f1_over_two_campaigns_groups_by_campaign_id(trained, tmp_path, capsys):
    alpha, beta = trained
    (run_id,) = [p.name for p in runs_dir(alpha).iterdir()]
    assert (runs_dir(beta) / run_id).is_dir()  # the same run id in both: kept apart
    code, out = _run(["report", str(alpha), str(beta), "--metrics", "acc,f1", "--contexts", "val"], capsys)
    assert code == 0, out
    assert "campaign_id: alpha" in out and "campaign_id: beta" in out and out.count("runs: 1") == 2
    (written,) = [line for line in out.splitlines() if line.startswith("wrote ")]
    folder = next(summary_dir(alpha).glob("combined-*"))
    summary = pd.read_csv(folder / "summary_all_last.csv")
    assert list(summary["campaign"]) == ["alpha", "beta"] and str(folder) in written
    rows = read_trajectory(runs_dir(beta) / run_id).to_pandas()
    f1 = rows[(rows.context == "val") & (rows.metric == "f1") & (rows.epoch == 1)]["value"].item()
    assert summary.loc[1, "val/f1.mean"] == pytest.approx(f1)
    # Neither campaign's own report files were touched.
    assert not list(summary_dir(alpha).glob("summary_*.csv")) and not list(summary_dir(beta).glob("summary_*.csv"))
    # The index of each campaign stays in its own summary/.
    assert (summary_dir(alpha) / "runs.parquet").exists() and (summary_dir(beta) / "runs.parquet").exists()

    code, out = _run(["report", str(alpha), str(beta), "--metrics", "acc,f1", "--per-campaign",
                      "--output-folder", str(tmp_path / "out")], capsys)
    assert code == 0, out
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["summary_all_last_alpha.csv", "summary_all_last_beta.csv"]
    assert list(pd.read_csv(tmp_path / "out" / names[1])["campaign"]) == ["beta"]


def test_a_run_directory_is_that_run_alone(trained, capsys):
    alpha, _ = trained
    (run,) = list(runs_dir(alpha).iterdir())
    code, out = _run(["ls", str(run)], capsys)
    assert code == 0 and run.name in out and "1 runs" in out
    code, out = _run(["report", str(run), "--metrics", "f1,precision,recall"], capsys)
    assert code == 0, out
    assert (summary_dir(alpha) / f"run-{run.name}" / "summary_all_last.csv").exists()
    assert not list(summary_dir(alpha).glob("summary_*.csv"))


def test_merged_campaign_reports_per_campaign_id(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    make_grid(a, seeds=2, campaign="alpha", seed=1)
    make_grid(b, seeds=3, campaign="beta", seed=2)
    code, out = _run(["report", str(a), str(b), "--groupby", "model.name", "--per-campaign"], capsys)
    assert code == 0, out
    assert "runs: 8" in out and "runs: 12" in out
    folder = next(summary_dir(a).glob("combined-*"))
    alpha = pd.read_csv(folder / "summary_model.name_last_alpha.csv")
    assert list(alpha["runs"]) == [4, 4] and set(alpha["campaign"]) == {"alpha"}
    code, out = _run(["curves", str(a), str(b), "--metrics", "acc", "--contexts", "val"], capsys)
    assert code == 0, out
    code, out = _run(["properties", str(a), str(b)], capsys)
    assert code == 0 and "alpha, beta" in out


@pytest.mark.parametrize("args, fragment", [
    (["report", "{a}", "{a}"], "is given twice"),
    (["report", "{a}", "{run}"], "so its runs would count twice"),  # its runs were counted twice
    (["report", "{run}", "{a}"], "so its runs would count twice"),
    (["ls", "{a}", "{a}/nope", "--watch"], "ls --watch follows one campaign directory"),
    (["report", "{a}/runs/nope"], "no run nope in"),
])
def test_bad_campaign_lists_are_one_line(tmp_path, capsys, args, fragment):
    ids = make_grid(tmp_path / "a", seeds=1)
    code, out = _run([arg.format(a=tmp_path / "a", run=tmp_path / "a" / "runs" / ids[0]) for arg in args], capsys)
    assert code == 2 and fragment in out and "Traceback" not in out
