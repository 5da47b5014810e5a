"""The training order of an epoch and each rank's share of it: torch's `DistributedSampler`
(a seeded permutation per epoch, `set_epoch` each epoch) cut into global batches of the config's
size, each split over the ranks.

The permutation of epoch e is `torch.randperm(n)` from a generator seeded with `seed + e`, as in
`DistributedSampler`, and does not depend on the world size: global batch b holds positions
`[b·B, (b+1)·B)` of it whatever the number of ranks, and rank r takes every world-th of them from
the r-th (DistributedSampler's striding). Unlike DistributedSampler the last, partial global batch
is split without padding (no example is seen twice); a global batch whose smallest share is under
`min_share` (2 with BatchNorm, else 1) is skipped by every rank, so all ranks take the same steps.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import torch
from torch.utils.data import Dataset, DistributedSampler


class GlobalBatchSampler(DistributedSampler):
    """This rank's indices of the epoch, global batch after global batch (see the module docstring).

    `n` examples, global batch `batch_size` (a multiple of `world_size`), `seed` of the
    permutation; `global_sizes()` are the examples of each global batch taken this epoch."""

    def __init__(self, n: int, batch_size: int, world_size: int, rank: int, seed: int, min_share: int = 1) -> None:
        super().__init__(cast(Dataset, range(n)), num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                         drop_last=False)
        self.n, self.batch_size, self.min_share = n, batch_size, min_share

    @property
    def rank_batch_size(self) -> int:
        """Examples of one full global batch this rank takes."""
        return self.batch_size // self.num_replicas

    def permutation(self) -> torch.Tensor:
        """The epoch's order of all `n` examples (DistributedSampler's, with `set_epoch`)."""
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        return torch.randperm(self.n, generator=generator)

    def _taken(self) -> Iterator[tuple[int, int]]:
        """(start, size) of each global batch taken this epoch."""
        for start in range(0, self.n, self.batch_size):
            size = min(self.batch_size, self.n - start)
            if size // self.num_replicas >= self.min_share:
                yield start, size

    def unlike_one_process(self) -> int:
        """Examples of the epoch's last, partial global batch that these ranks skip and one process
        (world size 1) would train on; 0 when they train on the same examples."""
        remainder = self.n % self.batch_size
        skipped = remainder and remainder // self.num_replicas < self.min_share
        return remainder if skipped and remainder >= self.min_share else 0

    def global_sizes(self) -> list[int]:
        return [size for _, size in self._taken()]

    def indices(self) -> torch.Tensor:
        """This rank's indices, in order: its share of each taken global batch, one after another."""
        order = self.permutation()
        shares = [order[start + self.rank:start + size:self.num_replicas] for start, size in self._taken()]
        return torch.cat(shares) if shares else torch.empty(0, dtype=torch.long)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return len(self.indices())
