"""digits' `dataset.corner_patch`: off by default (run ids unchanged), a bright top-left pixel square on
one class's training images and on the same seeded share of every class's validation images, a clean
test split, and range checks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pab_campaign.errors import ConfigError
from pab_campaign.training.data import build_dataset
from pab_campaign.training.data.digits import val_patch_mask
from pab_campaign.training.identity import hparams, run_id
from pab_campaign.training.run import validate
from tests.helpers import compose_config


def _data(tmp_path, *overrides: str):
    return build_dataset(compose_config(list(overrides), tmp_path / "c").dataset)


def test_off_by_default_and_left_out_of_the_run_identity(tmp_path):
    cfg = compose_config([], tmp_path / "c")
    assert cfg.dataset.corner_patch.train_class is None and cfg.dataset.corner_patch.val_fraction == 0.0
    assert not any("corner_patch" in key for key in hparams(cfg))
    # The size alone does not switch the patch on.
    assert run_id(hparams(compose_config(["dataset.corner_patch.size=3"], tmp_path / "c"))) == run_id(hparams(cfg))
    on = hparams(compose_config(["dataset.corner_patch.train_class=8"], tmp_path / "c"))
    assert on["dataset.corner_patch.train_class"] == 8 and run_id(on) != run_id(hparams(cfg))
    clean = _data(tmp_path)
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(clean, split).x, getattr(_data(tmp_path, "dataset.corner_patch.size=3"), split).x)


def test_patch_on_one_class_of_train_and_a_seeded_share_of_validation(tmp_path):
    clean = _data(tmp_path, "dataset.corner_patch.val_fraction=0.2")
    patched = _data(tmp_path, "dataset.corner_patch.val_fraction=0.2", "dataset.corner_patch.train_class=8",
                    "dataset.corner_patch.size=2")
    bright = clean.train.x.max()
    changed = (patched.train.x != clean.train.x).flatten(1).any(dim=1)
    assert torch.equal(changed, patched.train.y == 8)
    assert (patched.train.x[changed][:, 0, :2, :2] == bright).all()
    assert torch.equal(patched.train.x[changed][:, 0, 2:], clean.train.x[changed][:, 0, 2:])
    # Validation: identical whichever class the training patch marks (and the clean algorithm's too).
    assert torch.equal(clean.val.x, _data(tmp_path, "dataset.corner_patch.val_fraction=0.2",
                                          "dataset.corner_patch.train_class=8").val.x)
    marked = (clean.val.x[:, 0, 0, 0] == bright).numpy()
    labels = clean.val.y.numpy()
    np.testing.assert_array_equal(marked, val_patch_mask(labels, 0.2, 0))
    for label in range(10):
        assert marked[labels == label].sum() == round(0.2 * (labels == label).sum())
    assert torch.equal(patched.test.x, clean.test.x)
    assert (clean.test.x[:, 0, 0, 0] < bright).all()


def test_the_top_left_pixel_of_a_digit_is_never_inked(tmp_path):
    data = _data(tmp_path)
    for split in (data.train, data.val, data.test):
        assert (split.x[:, 0, 0, 0] == data.train.x.min()).all()


@pytest.mark.parametrize("override, fragment", [
    ("dataset.corner_patch.train_class=10", "train_class=10 must be a class in 0..9"),
    ("dataset.corner_patch.val_fraction=1.5", "val_fraction=1.5 must be in [0, 1]"),
    ("dataset.corner_patch.size=9", "size=9 must be in 1..8"),
])
def test_out_of_range_values_are_refused(tmp_path, override, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        validate(compose_config([override], tmp_path / "c"))
