import torch

from pab_campaign.training.data.augment import random_shift


def test_each_image_is_its_own_shift_by_at_most_one_pixel():
    x = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).reshape(2, 1, 5, 5).repeat(20, 1, 1, 1)
    before = torch.get_rng_state()
    shifted = random_shift(x, torch.Generator().manual_seed(0))
    assert torch.equal(before, torch.get_rng_state())
    assert shifted.shape == x.shape
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
    seen = set()
    for i in range(len(x)):
        matches = [(dy, dx) for dy in range(3) for dx in range(3)
                   if torch.equal(shifted[i], padded[i, :, dy:dy + 5, dx:dx + 5])]
        assert matches
        seen.update(matches)
    assert len(seen) > 3
    assert torch.equal(shifted, random_shift(x, torch.Generator().manual_seed(0)))
