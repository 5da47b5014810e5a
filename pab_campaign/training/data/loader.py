"""Splits too large for memory (ImageNet): images decoded and transformed by DataLoader workers into
uint8 batches in pinned memory, then normalised on the device.

Training augmentation is a pure function of (epoch seed, example index): each example's transform
runs under its own seed, so a pass draws the same crops whatever the number of workers, and a resumed
run repeats them exactly.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import torch
from torch.utils.data import DataLoader, Dataset

from pab_campaign.training.data.base import Split

Transform = Callable[[object], torch.Tensor]


class UnreadableImage(ValueError):
    """An image file the loader cannot decode; the message names the file."""


def _decoded(loader: Callable[[str], object], path: str) -> object:
    try:
        return loader(path)
    except (OSError, ValueError, SyntaxError) as exc:  # PIL: unidentified, truncated or malformed files
        raise UnreadableImage(f"{path}: cannot be decoded as an image ({type(exc).__name__}: {exc}); replace or "
                              "remove it") from None


def _batches_of(loader: DataLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """`loader`'s batches; an UnreadableImage from a worker process is raised again with its own
    message (the worker's wrapper starts it with 'Caught UnreadableImage in DataLoader worker')."""
    try:
        yield from loader
    except UnreadableImage as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        original = lines[-1].split(f"{UnreadableImage.__name__}: ", 1)[-1] if lines else str(exc)
        raise UnreadableImage(original) from None


class _Transformed(Dataset):
    """`(transform(image), label)` of `samples[i]` = (path, label), the image read by `loader`; with a
    `seed`, example i's transform runs under torch seed `seed + i` (the global RNG is restored after)."""

    def __init__(self, samples: Sequence[tuple[str, int]], loader: Callable[[str], object],
                 transform: Transform, seed: int | None = None) -> None:
        self.samples, self.loader, self.transform, self.seed = samples, loader, transform, seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        image = _decoded(self.loader, path)
        if self.seed is None:
            return self.transform(image), label
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed + index)
            return self.transform(image), label


@dataclass(frozen=True)
class LoaderSplit:
    """Image files `samples` (path, label) read through DataLoader workers. `train_transform` and
    `eval_transform` map a PIL image to a uint8 tensor (C × H × W); batches come out float32,
    `(x - mean) / std` per channel with x in 0..255, on `device` (channels_last on CUDA).
    `eval_index` selects the examples an evaluation pass covers (None = all)."""

    samples: Sequence[tuple[str, int]]
    loader: Callable[[str], object]
    train_transform: Transform
    eval_transform: Transform
    mean: torch.Tensor
    std: torch.Tensor
    num_workers: int = 0
    eval_index: torch.Tensor | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def y(self) -> torch.Tensor:
        """Labels of the examples an evaluation pass covers, in its order (aligned with its logits)."""
        labels = torch.tensor([label for _, label in self.samples], dtype=torch.int64)
        return labels if self.eval_index is None else labels[self.eval_index]

    def to(self, device: torch.device) -> LoaderSplit:
        return replace(self, device=torch.device(device), mean=self.mean.to(device), std=self.std.to(device))

    def _loader(self, dataset: Dataset, batch_size: int, sampler: Sequence[int] | None) -> DataLoader:
        return DataLoader(
            dataset, batch_size=batch_size, sampler=sampler, num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda", prefetch_factor=4 if self.num_workers else None,
        )

    def _on_device(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        memory_format = torch.channels_last if self.device.type == "cuda" else torch.contiguous_format
        images = images.to(self.device, non_blocking=True).float()
        x = ((images - self.mean.reshape(1, -1, 1, 1)) / self.std.reshape(1, -1, 1, 1))
        return x.contiguous(memory_format=memory_format), labels.to(self.device, non_blocking=True)

    def batches(self, order: torch.Tensor, batch_size: int, min_batch: int = 1,
                generator: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches `(x, y)` in `order` (a CPU permutation); augmented by `train_transform` seeded from
        `generator` when it is given, else passed through `eval_transform`."""
        if generator is None:
            dataset = _Transformed(self.samples, self.loader, self.eval_transform)
        else:
            seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator))
            dataset = _Transformed(self.samples, self.loader, self.train_transform, seed)
        for images, labels in _batches_of(self._loader(dataset, batch_size, order.tolist())):
            if len(labels) < min_batch:
                continue
            yield self._on_device(images, labels)

    def eval_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The examples of `eval_index` (all by default) once, in order, through `eval_transform`."""
        dataset = _Transformed(self.samples, self.loader, self.eval_transform)
        index = range(len(self)) if self.eval_index is None else self.eval_index.tolist()
        for images, labels in _batches_of(self._loader(dataset, batch_size, index)):
            yield self._on_device(images, labels)

    def head(self, size: int) -> Split:
        """The first `size` examples, eval-transformed and normalised, as an in-memory CPU `Split`."""
        cpu = self.to(torch.device("cpu"))
        dataset = _Transformed(self.samples[:size], self.loader, self.eval_transform)
        parts = [cpu._on_device(images, labels) for images, labels in _batches_of(cpu._loader(dataset, 256, None))]
        return Split(torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts]))
