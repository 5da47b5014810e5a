"""The counterfactual test's transformations (on normalised batches, in the training split's pixel
range) and the per-run effect it measures."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pab_campaign.errors import CampaignError
from pab_campaign.store import RunRecord, RunStatus, run_dir
from pab_campaign.training import checkpoint, counterfactual
from pab_campaign.training.counterfactual import TRANSFORMS, class_probabilities, transform_effects
from pab_campaign.training.data.pixels import PixelRange, display_images, pixel_range
from pab_campaign.training.identity import hparams
from pab_campaign.training.registry import UnknownName
from tests.helpers import compose_config


def _rgb(seed: int = 0) -> tuple[torch.Tensor, PixelRange]:
    """Normalised RGB images (per-channel mean and std of uint8 values) and their pixel range."""
    rng = np.random.default_rng(seed)
    raw = torch.from_numpy(rng.integers(0, 256, (6, 3, 32, 32)).astype(np.float32))
    raw[0] = 0.0
    raw[1] = 255.0
    mean, std = torch.tensor([120.0, 110.0, 100.0]), torch.tensor([60.0, 50.0, 40.0])
    x = (raw - mean.reshape(1, -1, 1, 1)) / std.reshape(1, -1, 1, 1)
    return x, PixelRange((0 - mean) / std, (255 - mean) / std)


def test_corner_patch_paints_the_top_left_eighth_at_the_brightest_value():
    x, pixels = _rgb()
    patched = TRANSFORMS.get("corner_patch")(x, pixels)
    assert torch.equal(patched[..., :4, :4], pixels.high.reshape(1, 3, 1, 1).expand(6, 3, 4, 4))
    assert torch.equal(patched[..., 4:, :], x[..., 4:, :]) and torch.equal(patched[..., :, 4:], x[..., :, 4:])
    digits = torch.zeros(2, 1, 8, 8)
    assert TRANSFORMS.get("corner_patch")(digits, PixelRange(torch.tensor([-1.0]), torch.tensor([2.0])))[
        0, 0].nonzero().tolist() == [[0, 0]]


def test_grayscale_sets_every_channel_to_the_luminance():
    x, pixels = _rgb()
    gray = TRANSFORMS.get("grayscale")(x, pixels)
    unit = pixels.to_unit(gray)
    assert torch.allclose(unit[:, 0], unit[:, 1], atol=1e-5) and torch.allclose(unit[:, 1], unit[:, 2], atol=1e-5)
    original = pixels.to_unit(x)
    expected = 0.299 * original[:, 0] + 0.587 * original[:, 1] + 0.114 * original[:, 2]
    assert torch.allclose(unit[:, 0], expected, atol=1e-5)
    assert torch.allclose(unit[1], torch.ones_like(unit[1]), atol=1e-5)
    with pytest.raises(CampaignError, match="these have 1 channel"):
        TRANSFORMS.get("grayscale")(torch.zeros(2, 1, 8, 8), PixelRange(torch.tensor([0.0]), torch.tensor([1.0])))


def test_texture_is_fixed_and_stays_in_range():
    x, pixels = _rgb()
    texture = TRANSFORMS.get("texture")
    first, again = texture(x, pixels), texture(x, pixels)
    assert torch.equal(first, again)
    unit = pixels.to_unit(first)
    assert unit.min() >= -1e-6 and unit.max() <= 1 + 1e-6
    # On a black image the texture alone shows: stripes at 30 % on a period of 4 pixels.
    black = pixels.to_unit(first[:1])[0]
    assert torch.allclose(black[:, 0, :4], torch.tensor([0.3, 0.3, 0.0, 0.0]).expand(3, 4), atol=1e-5)


def test_unknown_transform_names_the_choices():
    with pytest.raises(UnknownName, match=r"unknown transform 'blur' in --transform; choose from \['corner_patch', "
                                          r"'grayscale', 'texture'\]"):
        TRANSFORMS.get("blur")


def test_class_probabilities_average_over_the_other_classes_examples():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0], [1.0, 1.0, 1.0]])
    labels = torch.tensor([0, 1, 2, 0])
    probabilities = torch.softmax(logits.double(), dim=1).numpy()
    result = class_probabilities(logits, labels)
    assert result[0] == pytest.approx(probabilities[[1, 2], 0].mean())
    assert result[1] == pytest.approx(probabilities[[0, 2, 3], 1].mean())


def test_pixel_range_and_display_images(synthetic_data):
    pixels = pixel_range(synthetic_data.train)
    assert torch.equal(pixels.low, synthetic_data.train.x.amin(dim=(0, 2, 3)))
    images = display_images(synthetic_data.train, [5, 0, 5], pixels)
    assert images.shape == (3, 1, 8, 8) and images.min() >= 0 and images.max() <= 1
    np.testing.assert_allclose(images[0], images[2])
    np.testing.assert_allclose(images[1], pixels.to_unit(synthetic_data.train.x[:1]).numpy()[0], atol=1e-6)
    with pytest.raises(IndexError, match="not in the split"):
        display_images(synthetic_data.train, [10**6], pixels)


def test_a_target_class_the_model_lacks_is_refused_before_any_checkpoint_is_read(tmp_path, monkeypatch):
    cfg = compose_config(["dataset=synthetic", "dataset.n_classes=3"], tmp_path / "c")
    record = RunRecord(run_id="r1", status=RunStatus.COMPLETED, hparams=hparams(cfg), epochs_done=1)
    folder = checkpoint.checkpoint_dir(run_dir(tmp_path, "r1"))
    folder.mkdir(parents=True)
    (folder / checkpoint.LAST).write_bytes(b"not read")
    monkeypatch.setattr(counterfactual.checkpoint, "weights", lambda *args: pytest.fail("a checkpoint was read"))
    with pytest.raises(CampaignError, match=r"--target-class 3 is not a class of this data set \(0\.\.2\)"):
        transform_effects(tmp_path, [record], cfg, "corner_patch", None, torch.device("cpu"), target_class=3)
    with pytest.raises(pytest.fail.Exception, match="a checkpoint was read"):  # a class it has: evaluated
        transform_effects(tmp_path, [record], cfg, "corner_patch", None, torch.device("cpu"), target_class=2)
