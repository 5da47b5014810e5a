"""`pab-campaign states` end to end on campaigns written with the project's own writer: the planted
three-state HMM is found, the files it writes, and bad input refused in one line."""
from __future__ import annotations

import itertools
import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from hmmlearn.hmm import GaussianHMM
from threadpoolctl import threadpool_limits

from pab_campaign.analysis.phases import hmm as states
from pab_campaign.store import read_trajectory, run_dir
from tests.helpers import assert_one_line_error, cli, write_planted_campaign

FEATURES = "weights/f0,weights/f1,weights/f2,weights/f3"


@pytest.fixture(scope="module")
def planted_campaign(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted") / "phases"
    ids, truth = write_planted_campaign(root, 30, nan_run=7)
    result = cli(["states", str(root), "--metrics", FEATURES, "--max-states", "5", "--restarts", "3", "--jobs", "1"])
    assert result.returncode == 0, result.stderr + result.stdout
    return root, ids, truth, result.stdout


def _z(root, run_id: str) -> np.ndarray:
    frame = read_trajectory(run_dir(root, run_id)).to_pandas()
    frame = frame[frame["context"] == "weights"].pivot(index="epoch", columns="metric", values="value")
    return scipy.stats.zscore(frame[["f0", "f1", "f2", "f3"]].to_numpy(), axis=0)


def test_the_command_finds_the_planted_three_states(planted_campaign):
    root, ids, truth, stdout = planted_campaign
    assert "chosen K=3 (heldout rule): K=3" in stdout
    decoded = pd.read_parquet(root / "summary" / "states" / "states.parquet")
    assert list(decoded.columns) == ["run_id", "epoch", "state", "posterior_max"]
    used = [i for i, run_id in enumerate(ids) if run_id != "run007"]
    assert sorted(decoded["run_id"].unique()) == [ids[i] for i in used]
    planted = np.concatenate([truth[i] for i in used])
    found = decoded.sort_values(["run_id", "epoch"])["state"].to_numpy()
    assert max((np.array(p)[found] == planted).mean() for p in itertools.permutations(range(3))) >= 0.9


def test_nan_runs_are_listed_and_left_out(planted_campaign):
    root, _, _, stdout = planted_campaign
    assert "skipped run run007: left out of the phases: weights/f1 is nan at epoch 10" in stdout
    left_out = pd.read_csv(root / "summary" / "states" / "left_out.csv")
    assert left_out["run_id"].tolist() == ["run007"]


def test_heldout_log_likelihood_per_k_equals_hmmlearn_score_on_the_written_split(planted_campaign):
    root, _, _, _ = planted_campaign
    out = root / "summary" / "states"
    split = pd.read_csv(out / "split.csv")
    fit_runs = [_z(root, r) for r in split.loc[split["role"] == "fit", "run_id"]]
    held_runs = [_z(root, r) for r in split.loc[split["role"] == "held_out", "run_id"]]
    assert (len(fit_runs), len(held_runs)) == (23, 6)
    x_fit, x_held = np.concatenate(fit_runs), np.concatenate(held_runs)
    fit_lengths, held_lengths = [len(r) for r in fit_runs], [len(r) for r in held_runs]
    selection = pd.read_csv(out / "selection.csv")
    with threadpool_limits(1):
        for row in selection.itertuples():
            models = [GaussianHMM(row.k, "diag", random_state=states.restart_seed(0, row.k, r), n_iter=states.N_ITER,
                                  implementation="scaling",
                                  tol=states.em_tolerance(len(x_fit))).fit(x_fit, fit_lengths)
                      for r in range(1 if row.k == 1 else 3)]
            best = max(models, key=lambda m: m.score(x_fit, fit_lengths))
            assert row.heldout_ll == pytest.approx(best.score(x_held, held_lengths), rel=1e-9)
            assert row.heldout_ll_best == pytest.approx(max(m.score(x_held, held_lengths) for m in models), rel=1e-9)
    assert selection.loc[selection["chosen"], "k"].tolist() == [3]


def test_the_written_model_reloads_and_decodes_the_written_states(planted_campaign):
    root, _, _, _ = planted_campaign
    out = root / "summary" / "states"
    saved = pickle.loads((out / "model.pkl").read_bytes())
    assert saved["features"] == FEATURES.split(",") and saved["chosen_k"] == 3
    decoded = pd.read_parquet(out / "states.parquet")
    run = decoded[decoded["run_id"] == "run004"]
    np.testing.assert_array_equal(saved["model"].predict(_z(root, "run004")), run["state"].to_numpy())


def test_the_command_writes_tables_and_figures(planted_campaign):
    root, _, _, stdout = planted_campaign
    out = root / "summary" / "states"
    for name in ("selection.png", "transitions.png", "phases_val_acc.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    transitions = pd.read_csv(out / "transitions.csv")
    assert {"from_state", "to_state", "occurrences", "rank", "feature", "smd"} <= set(transitions.columns)
    assert pd.read_csv(out / "transition_matrix.csv").shape == (3, 4)
    assert pd.read_csv(out / "phases.csv")["description"].str.contains("sd").all()
    assert len(pd.read_csv(out / "detours.csv")) == 3
    assert set(pd.read_csv(out / "hyperparameters.csv").columns) >= {"state", "hparam", "effect", "p"}
    for title in ("HMM selection", "Phases", "P(from → to)", "Transitions seen"):
        assert title in stdout
    assert "(one fit)" in stdout and "± nan" not in stdout  # K = 1 has one fit: no spread over restarts


def test_a_hyperparameter_that_restates_another_is_tested_once(tmp_path):
    from statsmodels.stats.multitest import multipletests

    write_planted_campaign(tmp_path / "c", 20, restated=True)
    result = cli(["states", str(tmp_path / "c"), "--metrics", FEATURES, "--max-states", "3", "--restarts", "2",
                  "--no-plots", "--jobs", "1"])
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "c" / "summary" / "states" / "hyperparameters.csv")
    assert set(table["hparam"]) == {"model.name", "optimizer.weight_decay"}  # model.hidden splits as model.name
    np.testing.assert_allclose(table["p_holm"], multipletests(table["p"], method="holm")[1])


def test_bic_selection_full_covariance_and_a_campaign_filter(tmp_path):
    write_planted_campaign(tmp_path / "c", 8)
    result = cli(["states", str(tmp_path / "c"), "--metrics", FEATURES, "--max-states", "2", "--restarts", "1",
                  "--select", "bic", "--covariance", "full", "--no-plots", "--jobs", "1", "--campaign-id", "c1"])
    assert result.returncode == 0, result.stderr
    assert "(bic rule): K=" in result.stdout and "lowest BIC" in result.stdout
    out = tmp_path / "c" / "summary" / "states_c1"
    assert (out / "selection.csv").exists() and not list(out.glob("*.png"))


def test_nothing_of_an_earlier_fit_is_left_beside_a_new_one(tmp_path):
    write_planted_campaign(tmp_path / "c", 6)
    args = ["states", str(tmp_path / "c"), "--metrics", FEATURES, "--max-states", "2", "--restarts", "1",
            "--jobs", "1", "--output-folder", str(tmp_path / "out")]
    assert cli(args).returncode == 0
    assert list((tmp_path / "out").glob("*.png"))
    (tmp_path / "out" / "left_out.csv").write_text("run_id,reason\nold,an earlier fit's\n")
    (tmp_path / "out" / "notes.txt").write_text("the user's own file")
    assert cli([*args, "--no-plots"]).returncode == 0
    assert not list((tmp_path / "out").glob("*.png")) and not (tmp_path / "out" / "left_out.csv").exists()
    assert (tmp_path / "out" / "notes.txt").exists() and (tmp_path / "out" / "selection.csv").exists()


def test_output_folder_takes_the_files(tmp_path):
    write_planted_campaign(tmp_path / "c", 6)
    result = cli(["states", str(tmp_path / "c"), "--metrics", FEATURES, "--max-states", "2", "--restarts", "1",
                  "--jobs", "1", "--no-plots", "--precision", "2", "--output-folder", str(tmp_path / "out")])
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "model.pkl").exists() and (tmp_path / "out" / "states.parquet").exists()
    assert not (tmp_path / "c" / "summary" / "states").exists()


@pytest.mark.parametrize(("args", "fragments"), [
    (["--metrics", "weights/nope"], ("metric weights/nope was never tracked", "weights/f0")),
    (["--max-states", "0"], ("--max-states 0 must be a whole number from 1 to 30",)),
    (["--seed", "-1"], ("--seed -1 must be a whole number from 0 to 4294967295",)),  # was an internal error
    (["--restarts", "0"], ("--restarts 0",)),
    (["--covariance", "tied"], ("--covariance", "tied")),
    (["--curve-metric", "val/nope"], ("--curve-metric val/nope was never tracked",)),
    (["--metrics", "weights/f0@3"], ("drop the @3",)),
    (["--groupby", "model.nope"], ("--groupby model.nope: not a hyper-parameter",)),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, args, fragments):
    write_planted_campaign(tmp_path / "c", 6)
    result = cli(["states", str(tmp_path / "c"), "--jobs", "1", "--metrics", FEATURES, *args])
    assert_one_line_error(result, *fragments)
    assert result.returncode == 2
    assert not (tmp_path / "c" / "summary" / "states").exists()


def test_too_few_runs_for_a_held_out_split(tmp_path):
    write_planted_campaign(tmp_path / "c", 4)
    result = cli(["states", str(tmp_path / "c"), "--metrics", FEATURES, "--jobs", "1"])
    assert_one_line_error(result, "4 usable run(s): fitting phases needs at least 5")
    assert result.returncode == 2
    assert not (tmp_path / "c" / "summary" / "states").exists()
