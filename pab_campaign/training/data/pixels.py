"""The pixel range of a split and its examples as displayable images, for any kind of split (in-memory,
device-resident or read through a DataLoader), whose batches come out normalised.

Analyses that change inputs (a bright patch, colour removal) or show them work in the range a data
set's normalised pixels span: per channel, the darkest and brightest value of the training split.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from pab_campaign.training.data.batching import Batch, eval_batches

BATCH = 512


@dataclass(frozen=True)
class PixelRange:
    """Per-channel darkest `low` and brightest `high` normalised values (C,), on the CPU."""

    low: torch.Tensor
    high: torch.Tensor

    def _shape(self, x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        return values.to(device=x.device, dtype=x.dtype).reshape(1, -1, 1, 1)

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """`x` (N × C × H × W, normalised) mapped to [0, 1] per channel."""
        span = (self.high - self.low).clamp_min(1e-12)
        return (x - self._shape(x, self.low)) / self._shape(x, span)

    def from_unit(self, unit: torch.Tensor) -> torch.Tensor:
        """The inverse of `to_unit`."""
        return unit * self._shape(unit, self.high - self.low) + self._shape(unit, self.low)


def every_example(split) -> Iterator[Batch]:
    """Every example of `split` once, in order, un-augmented, on the CPU (a split that evaluates a
    subset of itself is widened to all of it)."""
    if getattr(split, "eval_index", None) is not None:
        split = replace(split, eval_index=None)
    for x, y in eval_batches(split, BATCH, torch.device("cpu")):
        yield x.cpu(), y.cpu()


def pixel_range(split) -> PixelRange:
    """The per-channel range of `split`'s normalised pixels."""
    low = high = None
    for x, _ in every_example(split):
        batch_low, batch_high = x.amin(dim=(0, 2, 3)), x.amax(dim=(0, 2, 3))
        low = batch_low if low is None else torch.minimum(low, batch_low)
        high = batch_high if high is None else torch.maximum(high, batch_high)
    if low is None or high is None:
        raise ValueError("the split is empty")
    return PixelRange(low.float(), high.float())


def display_images(split, indices: Sequence[int], pixels: PixelRange) -> np.ndarray:
    """The examples `indices` of `split` as float32 images in [0, 1], shape (len(indices), C, H, W),
    in the order of `indices`."""
    wanted = {int(i) for i in indices}
    if not wanted:
        return np.zeros((0, 0, 0, 0), dtype=np.float32)
    found: dict[int, torch.Tensor] = {}
    start = 0
    for x, _ in every_example(split):
        for offset in range(len(x)):
            if start + offset in wanted:
                found[start + offset] = x[offset]
        start += len(x)
        if len(found) == len(wanted):
            break
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise IndexError(f"examples {missing[:5]} are not in the split of {start} examples")
    stacked = torch.stack([found[int(i)] for i in indices])
    return pixels.to_unit(stacked).clamp(0, 1).numpy().astype(np.float32)
