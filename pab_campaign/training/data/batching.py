"""How the run loop and `evaluate` get batches from any split: an in-memory `Split` (indexed on the
CPU, moved per batch, exactly as before), or a split that batches itself (`ResidentSplit` on the
GPU, `LoaderSplit` through DataLoader workers), recognised by its `batches` method.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch

from pab_campaign.training.data.base import DataBundle, Split

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class BatchedBundle(DataBundle):
    """A bundle whose splits batch themselves; its probe subset is read from the validation split."""

    def probe(self, size: int) -> Split:
        return self.val.head(size)  # type: ignore[attr-defined]  # ResidentSplit/LoaderSplit.head


def augment_generator(seed: int, epoch: int, rank: int = 0) -> torch.Generator:
    """The generator of epoch `epoch`'s training augmentation on rank `rank`, a pure function of
    (seed, epoch, rank), so a resumed run draws exactly what an uninterrupted one would (rank 0's is
    a single-process run's)."""
    text = f"augment:{seed}:{epoch}" + (f":{rank}" if rank else "")
    digest = hashlib.sha256(text.encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def train_batches(data: DataBundle, order: torch.Tensor, batch_size: int, device: torch.device,
                  min_batch: int = 1, generator: torch.Generator | None = None) -> Iterator[Batch]:
    """Training batches `(x, y)` on `device` in `order` (a CPU permutation); a last batch under
    `min_batch` is skipped. With a `generator` they are augmented: in-memory splits by the bundle's
    `augment`, self-batching splits by their own augmentation."""
    split = data.train
    if hasattr(split, "batches"):
        yield from split.batches(order, batch_size, min_batch, generator)
        return
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        if len(index) < min_batch:
            continue
        x, y = split.x[index], split.y[index]
        if generator is not None and data.augment is not None:
            x = data.augment(x, generator)
        yield x.to(device), y.to(device)


def eval_batches(split, batch_size: int, device: torch.device) -> Iterator[Batch]:
    """Every example of `split` once, in order, un-augmented, as batches `(x, y)` on `device`."""
    if hasattr(split, "eval_batches"):
        yield from split.eval_batches(batch_size)
        return
    for start in range(0, len(split), batch_size):
        yield split.x[start:start + batch_size].to(device), split.y[start:start + batch_size].to(device)


def on_device(data: DataBundle, device: torch.device) -> DataBundle:
    """`data` with its self-batching splits moved to `device` (in-memory splits stay on the CPU)."""
    moved = {name: getattr(data, name).to(device) for name in ("train", "val", "test")
             if hasattr(getattr(data, name), "batches")}
    return replace(data, **moved) if moved else data
