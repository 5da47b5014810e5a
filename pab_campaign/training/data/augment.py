"""Standard augmentation of the small image data sets (digits, synthetic): a random shift of each
image by −1, 0 or +1 pixel along each axis, edges replicated. Randomness comes only from the
generator passed in, never from the global RNG."""
from __future__ import annotations

import torch
from torch.nn import functional as F


def random_shift(x: torch.Tensor, generator: torch.Generator, max_shift: int = 1) -> torch.Tensor:
    """Shift every image of `x` (N × C × H × W) by its own offset in [−max_shift, max_shift]² pixels."""
    n, _, height, width = x.shape
    padded = F.pad(x, (max_shift,) * 4, mode="replicate")
    span = 2 * max_shift + 1
    offsets = torch.randint(0, span, (n, 2), generator=generator)
    shifted = torch.empty_like(x)
    for dy in range(span):
        for dx in range(span):
            chosen = (offsets[:, 0] == dy) & (offsets[:, 1] == dx)
            if chosen.any():
                shifted[chosen] = padded[chosen, :, dy:dy + height, dx:dx + width]
    return shifted
