"""Device-resident splits: the crop/flip augmentation against torchvision, batching and normalisation."""
from __future__ import annotations

import torch
from torchvision.transforms.v2 import functional as TF

from pab_campaign.training.data.base import Split
from pab_campaign.training.data.resident import ResidentSplit, crop_flip, random_crop_flip


def _images(n: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 8, 8), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_crop_flip_matches_torchvision_pad_crop_flip():
    images = _images()
    offsets = torch.tensor([[0, 0], [4, 4], [8, 8], [1, 7], [3, 0], [5, 2]])
    flips = torch.tensor([False, True, False, True, True, False])
    out = crop_flip(images, offsets, flips, padding=4)
    for i in range(len(images)):
        padded = TF.pad(images[i], [4], fill=0)
        expected = TF.crop(padded, int(offsets[i, 0]), int(offsets[i, 1]), 8, 8)
        if flips[i]:
            expected = TF.horizontal_flip(expected)
        assert torch.equal(out[i], expected)


def test_crop_flip_fills_per_channel_and_identity_at_centre():
    x = torch.randn(2, 3, 5, 5)
    fill = torch.tensor([-1.0, -2.0, -3.0])
    out = crop_flip(x, torch.tensor([[2, 2], [0, 0]]), torch.tensor([False, False]), padding=2, fill=fill)
    assert torch.equal(out[0], x[0])
    assert torch.equal(out[1, :, 0, 0], fill) and torch.equal(out[1, :, 2:, 2:], x[1, :, :3, :3])


def test_random_crop_flip_is_a_function_of_the_generator():
    x = _images().float()
    a = random_crop_flip(x, torch.Generator().manual_seed(3))
    b = random_crop_flip(x, torch.Generator().manual_seed(3))
    c = random_crop_flip(x, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def _split(n: int = 10) -> ResidentSplit:
    return ResidentSplit(_images(n), torch.arange(n) % 3, torch.tensor([10.0, 20.0, 30.0]),
                         torch.tensor([2.0, 4.0, 8.0]))


def test_batches_cover_the_order_normalised_and_skip_a_short_tail():
    split = _split()
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    batches = list(split.batches(order, batch_size=4, min_batch=3))
    assert [len(y) for _, y in batches] == [4, 4]  # the tail of 2 is under min_batch
    x, y = batches[1]
    index = order[4:8]
    expected = (split.images[index].float() - split.mean.view(1, 3, 1, 1)) / split.std.view(1, 3, 1, 1)
    assert torch.allclose(x, expected) and torch.equal(y, split.labels[index])


def test_augmented_batches_are_seeded_and_differ_from_plain_ones():
    split = _split()
    order = torch.arange(10)
    plain = torch.cat([x for x, _ in split.batches(order, 4)])
    first = torch.cat([x for x, _ in split.batches(order, 4, generator=torch.Generator().manual_seed(1))])
    again = torch.cat([x for x, _ in split.batches(order, 4, generator=torch.Generator().manual_seed(1))])
    assert torch.equal(first, again) and not torch.equal(first, plain)


def test_eval_batches_and_head():
    split = _split()
    x = torch.cat([x for x, _ in split.eval_batches(3)])
    assert x.shape == (10, 3, 8, 8)
    head = split.head(4)
    assert isinstance(head, Split) and head.x.dtype == torch.float32 and torch.equal(head.x, x[:4])
    assert torch.equal(split.y, split.labels)
