from pab_campaign.training.identity import hparams, run_id
from tests.helpers import compose_config


def test_run_id_ignores_paths_tracking_and_runtime(tmp_path):
    base = compose_config([], tmp_path / "a")
    moved = compose_config(["tracking=minimal", "runtime.threads=2", "checkpoint.every=3"], tmp_path / "b")
    assert run_id(hparams(base)) == run_id(hparams(moved))
    assert len(run_id(hparams(base))) == 12


def test_run_id_changes_with_hyperparameters_and_seed(tmp_path):
    ids = {run_id(hparams(compose_config(o, tmp_path / "c"))) for o in
           ([], ["seed=1"], ["optimizer.lr=0.2"], ["model=cnn"], ["train.epochs=3"])}
    assert len(ids) == 5


def test_hparams_are_flat_scalars(tmp_path):
    params = hparams(compose_config(["model=mlp"], tmp_path / "d"))
    assert params["model.hidden"] == "[128, 64]"
    assert params["optimizer.lr"] == 0.05 and params["seed"] == 0
    assert all(not isinstance(v, (dict, list)) for v in params.values())
    assert not any(k.startswith(("campaign", "runtime", "tracking", "checkpoint")) for k in params)


def test_run_ids_of_existing_configs_are_pinned(tmp_path):
    """Options added later (left out of the identity while off) must not move the ids runs already have."""
    pinned = {(): "922544116220", ("model=cnn", "seed=2"): "84391ff5350f", ("dataset=synthetic",): "ed11bd891ee9",
              ("+experiment=mbe_acid_test",): "137d97723c38"}
    for overrides, expected in pinned.items():
        assert run_id(hparams(compose_config(list(overrides), tmp_path / "p"))) == expected
