"""`diff --model-factory/--data-factory`: ModelDiff over runs a Tracker wrote from a loop of one's own
(scripts/track_own_loop.py's network and data), equal to the compat ModelDiff on the same checkpoints."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pab_campaign import cli
from pab_campaign.compat.modeldiff import ModelDiff
from pab_campaign.store import runs_dir, summary_dir
from pab_campaign.workflows.modeldiff import select
from scripts import track_own_loop
from tests.helpers import REPO


@pytest.fixture(scope="module")
def own_loop(tmp_path_factory):
    """Two algorithms (learning rates) of two seeds each, 2 epochs, written by the Tracker."""
    campaign = tmp_path_factory.mktemp("own") / "own_loop"
    torch.set_num_threads(1)
    for lr in (0.05, 0.5):
        for seed in (0, 1):
            track_own_loop.train(str(campaign), epochs=2, seed=seed, lr=lr, hidden=16)
    return campaign


def _run(argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out + err


def test_diff_over_tracker_runs_with_a_model_factory(own_loop, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    args = ["diff", str(own_loop), "--a", "lr=0.05", "--b", "lr=0.5", "--proj-dim", "16", "--val-examples", "40",
            "--components", "2", "--top", "5", "--device", "cpu"]
    code, out = _run(args, capsys)
    assert code == 2 and "cannot be rebuilt from run.json" in out  # not our configs: a factory is needed
    code, out = _run([*args, "--model-factory", "scripts.track_own_loop:model"], capsys)
    assert code == 2 and "--model-factory needs --data-factory" in out
    code, out = _run([*args, "--model-factory", "scripts.track_own_loop:model", "--data-factory",
                      "scripts.track_own_loop:data"], capsys)
    assert code == 0, out
    assert "no image grids" in out and "A-B #1" in out
    (folder,) = (summary_dir(own_loop) / "diff").iterdir()
    ours = {side: np.load(folder / f"scores_{side}.npy") for side in ("a", "b")}
    # The same checkpoints (in the same order), model and examples through ModelDiff's API: the same scores.
    algorithms = select(own_loop, ["lr=0.05"], ["lr=0.5"], None)
    checkpoints = {side: [runs_dir(own_loop) / r.run_id / "checkpoints" / "last.pt" for r in records]
                   for side, records in (("A", algorithms.a), ("B", algorithms.b))}
    train, val = track_own_loop.data()
    reference = ModelDiff(lambda: track_own_loop.DigitsNet(16), lambda: track_own_loop.DigitsNet(16),
                          checkpoints["A"], checkpoints["B"], [train.tensors], proj_dim=16, seed=0, device="cpu")
    diff = reference.get_A_minus_B([(val.tensors[0][:40], val.tensors[1][:40])], num_pca_comps=2)
    np.testing.assert_allclose(diff["scores"]["A"], ours["a"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(diff["scores"]["B"], ours["b"], rtol=1e-4, atol=1e-6)

@pytest.mark.parametrize("extra, fragment", [
    (["--model-factory", "nope", "--data-factory", "scripts.track_own_loop:data"],
     "--model-factory nope: write module:function"),
    (["--model-factory", "no_such_module:f", "--data-factory", "x:y"], "cannot import it (ModuleNotFoundError"),
    (["--model-factory", "scripts.track_own_loop:splits", "--data-factory", "scripts.track_own_loop:data"],
     "scripts.track_own_loop:splits failed on hparams"),
    (["--model-factory", "builtins:dict", "--data-factory", "scripts.track_own_loop:data"],
     "returned dict, not a torch.nn.Module"),
    (["--model-factory", "scripts.track_own_loop:model", "--data-factory", "scripts.track_own_loop:model"],
     "--data-factory scripts.track_own_loop:model failed (TypeError"),
])
def test_bad_factories_are_one_line(own_loop, capsys, monkeypatch, extra, fragment):
    monkeypatch.chdir(REPO)
    code, out = _run(["diff", str(own_loop), "--a", "lr=0.05", "--b", "lr=0.5", "--device", "cpu", *extra], capsys)
    assert code != 0 and fragment in out and "Traceback" not in out and len(out.strip().splitlines()) == 1
