"""`pab-campaign states` on a campaign trained for real: the 14 weight statistics the spectra probe
records are the default features."""
import pickle

import pandas as pd

from tests.helpers import cli


def test_states_on_the_trained_demo_grid_uses_the_14_statistics(demo_campaign):
    result = cli(["states", str(demo_campaign), "--max-states", "3", "--restarts", "2", "--jobs", "1"])
    assert result.returncode == 0, result.stderr[-3000:]
    out = demo_campaign / "summary" / "states"
    saved = pickle.loads((out / "model.pkl").read_bytes())
    assert len(saved["features"]) == 14 and saved["features"][0] == "weights/w_mean"
    assert saved["features"][-1] == "weights/sv_var"
    decoded = pd.read_parquet(out / "states.parquet")
    assert decoded["run_id"].nunique() == 12 and sorted(decoded["epoch"].unique()) == [0, 1, 2, 3, 4]
    assert decoded["state"].between(0, saved["chosen_k"] - 1).all()
    assert f"chosen K={saved['chosen_k']} (heldout rule)" in result.stdout
    assert (out / "phases_val_acc.png").exists() and (out / "transitions.png").exists()
