"""The counterfactual test of ModelDiff (step D): change validation inputs by a named transformation
inferred from a distinguishing direction and measure how each run's predictions move.

Transformations work on normalised batches (N × C × H × W) in the range the training split's pixels
span per channel (`PixelRange`), so one definition serves every data set: `corner_patch` paints the
top-left square of an eighth of the image side at the brightest value (the planted digits patch,
one pixel on 8 × 8), `grayscale` replaces RGB colour by its luminance, `texture` lays a fixed pattern of
diagonal stripes over the image at 30 % opacity.

Per run (its final checkpoint) the test returns accuracy on the clean and on the transformed inputs,
and for every class k the mean probability of k over the examples whose label is not k, clean and
transformed; the statistics over runs are the analysis side's.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pab_campaign.errors import CampaignError
from pab_campaign.store import RunRecord
from pab_campaign.training import checkpoint
from pab_campaign.training.attribution import ensemble_checkpoints, ensemble_of
from pab_campaign.training.data import Split
from pab_campaign.training.data.pixels import PixelRange, pixel_range
from pab_campaign.training.evaluate import evaluate
from pab_campaign.training.registry import Registry
from pab_campaign.training.state import MODEL

Transform = Callable[[torch.Tensor, PixelRange], torch.Tensor]
TRANSFORMS: Registry[Transform] = Registry("transform", "--transform")
LUMINANCE = (0.299, 0.587, 0.114)
TEXTURE_OPACITY = 0.3
STRIPE_PERIOD = 4


@TRANSFORMS.register("corner_patch")
def corner_patch(x: torch.Tensor, pixels: PixelRange) -> torch.Tensor:
    """The top-left square of side max(1, side // 8) set to each channel's brightest value."""
    size = max(1, min(x.shape[-2:]) // 8)
    patched = x.clone()
    patched[..., :size, :size] = pixels.high.to(x).reshape(1, -1, 1, 1)
    return patched


@TRANSFORMS.register("grayscale")
def grayscale(x: torch.Tensor, pixels: PixelRange) -> torch.Tensor:
    """RGB images with their colour removed: every channel set to the luminance 0.299 R + 0.587 G + 0.114 B
    (of the channels mapped to [0, 1])."""
    if x.shape[1] != 3:
        raise CampaignError(f"--transform grayscale removes the colour of RGB images; these have {x.shape[1]} "
                            "channel(s); choose corner_patch or texture")
    unit = pixels.to_unit(x)
    luminance = sum(weight * unit[:, c:c + 1] for c, weight in enumerate(LUMINANCE))
    assert isinstance(luminance, torch.Tensor)  # LUMINANCE is not empty
    return pixels.from_unit(luminance.expand_as(unit))


@TRANSFORMS.register("texture")
def texture(x: torch.Tensor, pixels: PixelRange) -> torch.Tensor:
    """A fixed texture, diagonal stripes STRIPE_PERIOD pixels apart (bright half, dark half), laid over
    the image at TEXTURE_OPACITY."""
    height, width = x.shape[-2:]
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    stripes = (((rows + cols) % STRIPE_PERIOD) < STRIPE_PERIOD // 2).to(x)
    unit = pixels.to_unit(x)
    return pixels.from_unit((1 - TEXTURE_OPACITY) * unit + TEXTURE_OPACITY * stripes)


@dataclass(frozen=True)
class TransformEffect:
    """One run's predictions on clean and transformed inputs: accuracy in [0, 1], and per class k the
    mean probability of k over the examples not labelled k (shape (classes,))."""

    run_id: str
    accuracy_clean: float
    accuracy_transformed: float
    probability_clean: np.ndarray
    probability_transformed: np.ndarray


def class_probabilities(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Per class k, the mean softmax probability of k over the examples whose label is not k (C,)."""
    probabilities = torch.softmax(logits.double(), dim=1)
    classes = probabilities.shape[1]
    others = labels[:, None] != torch.arange(classes)[None, :]
    totals = (probabilities * others).sum(dim=0) / others.sum(dim=0).clamp_min(1)
    return totals.numpy()


def transform_effects(campaign: Path, records: list[RunRecord], cfg, transform_name: str, val_examples: int | None,
                      device: torch.device, target_class: int | None = None) -> list[TransformEffect]:
    """The effect of the transformation `transform_name` on the final model of every run of `records`
    (one algorithm, sharing `cfg`'s data set and model), over its first `val_examples` validation
    examples (all when None). CampaignError for an unknown transformation (naming the choices), a
    run without checkpoints, too many examples or a `target_class` the model does not predict
    (checked before any checkpoint is evaluated)."""
    transform = TRANSFORMS.get(transform_name)
    ensemble = ensemble_of(cfg, ensemble_checkpoints(campaign, records, "last"), val_examples, device)
    clean = ensemble.val
    if target_class is not None:
        with torch.no_grad():  # the model's output width is the class count: one example through it
            classes = ensemble.model.eval()(clean.x[:1].to(device)).shape[1]
        if not 0 <= target_class < classes:
            raise CampaignError(f"--target-class {target_class} is not a class of this data set (0..{classes - 1})")
    changed = Split(transform(clean.x, pixel_range(ensemble.train)), clean.y)
    effects = []
    for final in ensemble.checkpoints:
        ensemble.model.load_state_dict(checkpoint.weights(final.path, MODEL))
        before, after = evaluate(ensemble.model, clean), evaluate(ensemble.model, changed)
        effects.append(TransformEffect(final.run_id, before.acc, after.acc,
                                       class_probabilities(before.logits, clean.y),
                                       class_probabilities(after.logits, clean.y)))
    return effects
