"""Runs a person can find: `ls` shows the hyper-parameters that vary and the end time, `report --sort
--top` the best groups, and `--json` the same for scripts (NaN as null)."""
import json

import pandas as pd
import pytest

from tests.helpers import cli, make_grid


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    make_grid(root, seeds=2, epochs=2)
    return root


def test_ls_shows_what_varies_and_when_runs_ended(grid):
    result = cli(["ls", str(grid)])
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if "run_id" in line)
    assert "model.name" in header and "optimizer.lr" in header and "ended_at" in header
    assert "model.hidden" not in header  # it only restates model.name


def test_ls_json_has_every_run_with_its_hyper_parameters(grid):
    result = cli(["ls", str(grid), "--json", "--where", "seed=1"])
    runs = json.loads(result.stdout)
    assert len(runs) == 4 and all(run["hparams"]["seed"] == 1 for run in runs)
    assert {run["status"] for run in runs} == {"completed"} and runs[0]["error"] is None


def test_report_sort_top_keeps_the_best_groups_by_the_mean(grid):
    result = cli(["report", str(grid), "--sort", "val/acc", "--top", "2", "--json"])
    assert result.returncode == 0, result.stderr
    groups = json.loads(result.stdout)
    runs = pd.read_parquet(grid / "summary" / "runs.parquet")
    means = runs.groupby(["model.name@hparam", "optimizer.lr@hparam"])["val/acc@last"].mean().sort_values()
    assert [g["val/acc.mean"] for g in groups] == pytest.approx(list(means.iloc[::-1][:2]))
    lowest = json.loads(cli(["report", str(grid), "--sort", "val/loss", "--top", "1", "--json"]).stdout)
    loss = runs.groupby(["model.name@hparam", "optimizer.lr@hparam"])["val/loss@last"].mean().min()
    assert lowest[0]["val/loss.mean"] == pytest.approx(loss)


def test_properties_json(grid):
    rows = json.loads(cli(["properties", str(grid), "--json"]).stdout)
    assert {"property", "unique", "value", "runs_lacking"} == set(rows[0])
    assert any(r["property"] == "runs" for r in rows)


def test_audit_and_states_json_are_their_tables(tmp_path):
    make_grid(tmp_path, seeds=4, epochs=6)
    audit = cli(["audit", str(tmp_path), "--metric", "val/acc", "--baseline", "val/loss@1", "--target", "test/acc",
                 "--no-plots", "--n-boot", "50", "--json"])
    assert audit.returncode == 0, audit.stderr
    document = json.loads(audit.stdout)
    table = pd.read_csv(next(path for path in document["files"] if path.endswith("/audit.csv")))
    assert len(document["candidates"]) == len(table) and document["target"] == "test/acc"
    states = cli(["states", str(tmp_path), "--metrics", "val/loss,val/acc", "--max-states", "3", "--restarts", "2",
                  "--no-plots", "--where", "model.name=mlp", "--json"])
    assert states.returncode == 0, states.stderr
    fit = json.loads(states.stdout)
    assert len(fit["transition_matrix"]) == fit["chosen_k"] == len(fit["phases"])
