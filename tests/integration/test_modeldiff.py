"""ModelDiff end to end on the planted digits case study (conf/experiment/modeldiff_digits.yaml), trained
for real: `diff` finds the patched class at the top of the B−A direction and reuses its scores,
`diff-test` shows the patch moving B's predictions and not A's, and bad input is one line, exit 2,
nothing written."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pab_campaign.store import iter_run_dirs, read_run_json, summary_dir
from tests.helpers import assert_one_line_error, cli, train

pytestmark = pytest.mark.slow
A = ["--a", "dataset.corner_patch.train_class=null"]
B = ["--b", "dataset.corner_patch.train_class=8"]
DIFF_DIR = "dataset.corner_patch.train_class=null_vs_dataset.corner_patch.train_class=8"


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    """The preset's 16 runs (2 algorithms × 8 seeds, 4 epochs each, a checkpoint every epoch)."""
    campaign = tmp_path_factory.mktemp("modeldiff") / "modeldiff_digits"
    result = train(["-m", "+experiment=modeldiff_digits", "runtime.verbose=false"], campaign)
    assert result.returncode == 0, result.stderr[-3000:]
    return campaign


def test_planted_shortcut_is_found_and_tested(planted):
    done = cli(["diff", str(planted), *A, *B, "--checkpoints", "every", "--proj-dim", "32"])
    assert done.returncode == 0, done.stderr[-3000:]
    out = summary_dir(planted) / "diff" / DIFF_DIR
    members = pd.read_csv(out / "subpopulations.csv")
    top = members[(members["comparison"] == "B-A") & (members["direction"] == 1)
                  & (members["subpopulation"] == "train+")]
    # Every training image of class 8 carries the patch in B's data, and no other does.
    assert len(top) == 50 and (top["label"] == 8).mean() >= 0.8
    directions = pd.read_csv(out / "directions.csv")
    assert len(directions) == 8 and set(directions["comparison"]) == {"A-B", "B-A"}
    assert len(list(out.glob("*.png"))) == 2 * 4 * 4
    sidecar = json.loads((out / "scores_b.json").read_text())
    runs_b = sorted(d.name for d in iter_run_dirs(planted) if read_run_json(d).hparams.get(
        "dataset.corner_patch.train_class") == 8)
    assert sidecar["runs"] == runs_b and sidecar["projection"] == {"dimension": 32, "seed": 0}
    assert len(sidecar["checkpoints"]) == 8 * 4 and {c["epoch"] for c in sidecar["checkpoints"]} == {1, 2, 3, 4}
    assert sidecar["timings"]["gradients_s"] > 0 and sidecar["timings"]["projection_s"] > 0
    assert "B-A #1" in done.stdout and "8: " in done.stdout

    again = cli(["diff", str(planted), *A, *B, "--checkpoints", "every", "--proj-dim", "32", "--components", "2"])
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("reusing") == 2
    assert len(list(out.glob("*.png"))) == 2 * 2 * 4
    assert json.loads((out / "scores_b.json").read_text()) == sidecar

    tested = cli(["diff-test", str(planted), *A, *B, "--transform", "corner_patch"])
    assert tested.returncode == 0, tested.stderr[-3000:]
    summary = pd.read_csv(out / "counterfactual_corner_patch.csv").set_index("quantity")
    shift = summary.loc["p8_shift"]
    assert shift["mean_b"] > shift["mean_a"] and shift["p"] < 0.01
    assert shift["mean_a"] - shift["ci95_a"] <= 0 <= shift["mean_a"] + shift["ci95_a"]
    per_run = pd.read_csv(out / "counterfactual_corner_patch_runs.csv")
    assert len(per_run) == 16 and set(per_run["algorithm"]) == {"A", "B"}
    assert "class 8 (the class the transformation raises most)" in tested.stdout.replace("\n", " ")


def _files(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()}


@pytest.fixture
def copy(planted, tmp_path) -> Path:
    """The planted campaign's runs, copied, without any summary."""
    campaign = tmp_path / "copy"
    shutil.copytree(planted / "runs", campaign / "runs")
    return campaign


@pytest.mark.parametrize("args, fragment", [
    ([*A, "--b", "dataset.corner_patch.train_class=5"], "--b dataset.corner_patch.train_class=5 matches no completed "
                                                         "run; dataset.corner_patch.train_class takes 8, null"),
    ([*A, "--b", "dataset.corner_patch.size=1"], "match both --a and --b"),
    ([*A, "--b", "dataset.patch=8"], "no run of this campaign has the hyper-parameter 'dataset.patch'"),
    ([*A, "--b", "dataset.corner_patch.train_class=8", "seed=0"], "--b matches 1 completed run"),
    ([*A, *B, "--components", "5000"], "--components 5000 must be at most 360"),
    ([*A, *B, "--val-examples", "400"], "--val-examples 400 is outside 1..360"),
    ([*A, *B, "--device", "gpu"], "argument --device: invalid choice"),
])
def test_bad_diff_input_is_one_line_exit_2_nothing_written(copy, args, fragment):
    before = _files(copy)
    result = cli(["diff", str(copy), *args, "--proj-dim", "8"])
    assert result.returncode == 2
    assert_one_line_error(result, fragment)
    assert _files(copy) == before


def test_unknown_transform_and_missing_checkpoints_and_other_data(copy, planted):
    before = _files(copy)
    unknown = cli(["diff-test", str(copy), *A, *B, "--transform", "blur"])
    assert unknown.returncode == 2
    assert_one_line_error(unknown, "unknown transform 'blur' in --transform; choose from ['corner_patch', "
                                   "'grayscale', 'texture']")
    gray = cli(["diff-test", str(copy), *A, *B, "--transform", "grayscale"])
    assert gray.returncode == 2
    assert_one_line_error(gray, "--transform grayscale removes the colour of RGB images; these have 1 channel(s)")
    target = cli(["diff-test", str(copy), *A, *B, "--transform", "corner_patch", "--target-class", "10"])
    assert target.returncode == 2
    assert_one_line_error(target, "--target-class 10 is not a class of this data set (0..9)")
    negative = cli(["diff-test", str(copy), *A, *B, "--transform", "corner_patch", "--target-class=-1"])
    assert negative.returncode == 2 and "--target-class -1 must be a whole number from 0" in negative.stderr
    assert _files(copy) == before

    victim = next(d for d in iter_run_dirs(copy) if read_run_json(d).hparams.get("dataset.corner_patch.train_class"))
    shutil.rmtree(victim / "checkpoints")
    before = _files(copy)
    for command in (["diff", str(copy), *A, *B], ["diff-test", str(copy), *A, *B, "--transform", "corner_patch"]):
        result = cli(command)
        assert result.returncode == 2
        assert_one_line_error(result, f"run {victim.name} has no checkpoint in")
    assert _files(copy) == before

    other = copy.parent / "other"
    trained = train(["-m", "+experiment=modeldiff_digits", "runtime.verbose=false", "train.epochs=1",
                     "dataset.corner_patch.train_class=8", "dataset.corner_patch.val_fraction=0.3", "seed=0,1"], other)
    assert trained.returncode == 0, trained.stderr[-2000:]
    for directory in iter_run_dirs(planted):
        if read_run_json(directory).hparams.get("dataset.corner_patch.train_class") is None:
            shutil.copytree(directory, other / "runs" / directory.name)
    before = _files(other)
    mismatch = cli(["diff", str(other), *A, "--b", "dataset.corner_patch.val_fraction=0.3"])
    assert mismatch.returncode == 2
    assert_one_line_error(mismatch,
                          "the algorithms' data sets differ in dataset.corner_patch.val_fraction (0.2 vs 0.3)")
    assert _files(other) == before


def test_the_diff_commands_import_torch_only_when_they_run():
    code = ("import sys; from pab_campaign.cli import main; main(['diff', '--help']); main(['diff-test', '--help']); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr
    assert "--proj-dim" in result.stdout and "--transform" in result.stdout


@pytest.mark.parametrize("damage", ["truncated", "pickled"])
def test_a_damaged_checkpoint_is_one_line_naming_it(copy, damage):
    from fractions import Fraction

    import torch

    victim = next(d for d in iter_run_dirs(copy) if read_run_json(d).hparams.get("dataset.corner_patch.train_class"))
    path = victim / "checkpoints" / "last.pt"
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    else:
        torch.save({"model": Fraction(1, 3)}, path)  # an object weights-only loading refuses
    before = _files(copy / "runs")
    for command in (["diff", str(copy), *A, *B, "--proj-dim", "8"],
                    ["diff-test", str(copy), *A, *B, "--transform", "corner_patch"]):
        result = cli(command)
        assert result.returncode == 2
        assert_one_line_error(result, str(path))
        assert "weights_only=False" not in result.stderr
    assert _files(copy / "runs") == before  # A's scores may be kept in summary/ for the next diff
