"""ImageNet (ILSVRC-2012) from the standard class-folder layout, never downloaded:
`<root>/train/<wnid>/*.JPEG` and `<root>/val/<wnid>/*.JPEG`, optionally restricted to a class subset.

Splits: `val` is a stratified `val_fraction` of `train/` (fixed by `split_seed`), `train` the rest
(optionally subsampled and label-noised), `test` is the official `val/`. All three are `LoaderSplit`s
read by DataLoader workers; `train/loss` and `train/acc` are measured on a fixed `train_eval_size`
subset of train through the evaluation transform (a full pass over 1.28 M images every epoch would
double the cost of training).

Transforms: training with augmentation = RandomResizedCrop(image_size) + horizontal flip; without it,
and for evaluation, Resize(resize_size) + CenterCrop(image_size). Normalised by the usual ImageNet
per-channel mean and std.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision.datasets.folder import IMG_EXTENSIONS, default_loader, make_dataset
from torchvision.transforms import v2

from pab_campaign.training.config import ImagenetConfig
from pab_campaign.training.data.batching import BatchedBundle
from pab_campaign.training.data.loader import LoaderSplit
from pab_campaign.training.data.resident import random_crop_flip
from pab_campaign.training.data.splits import corrupt_labels, holdout, subsample

LAYOUT = "<root>/train/<class>/*.JPEG and <root>/val/<class>/*.JPEG (ILSVRC class folders)"
MEAN = torch.tensor([0.485, 0.456, 0.406]) * 255
STD = torch.tensor([0.229, 0.224, 0.225]) * 255


def _class_folders(directory: Path) -> list[str]:
    return sorted(entry.name for entry in directory.iterdir() if entry.is_dir())


def select_classes(cfg: ImagenetConfig, available: list[str]) -> list[str]:
    """The classes a run uses: all (`classes: null`), the first N sorted folders (an int), or a list."""
    wanted = getattr(cfg, "classes", None)
    if wanted is None:
        return available
    if isinstance(wanted, int):
        if not 2 <= wanted <= len(available):
            raise ValueError(f"dataset.classes={wanted} must be between 2 and the {len(available)} class "
                             f"folders of {cfg.root}/train")
        return available[:wanted]
    unknown = sorted(set(wanted) - set(available))
    if unknown:
        raise ValueError(f"dataset.classes names {unknown[:3]} which are not folders of {cfg.root}/train")
    return sorted(wanted)


def check(cfg: ImagenetConfig) -> list[str]:
    """Raise ValueError naming the expected layout when `cfg.root` is not an ImageNet-style tree;
    return the selected classes."""
    if not cfg.root:
        raise ValueError(f"dataset.root is not set; point it at a directory laid out as {LAYOUT}")
    root = Path(cfg.root).expanduser()
    for part in ("train", "val"):
        if not (root / part).is_dir() or not _class_folders(root / part):
            raise ValueError(f"dataset.root={cfg.root} has no class folders under {part}/; expected {LAYOUT}")
    classes = select_classes(cfg, _class_folders(root / "train"))
    missing = sorted(set(classes) - set(_class_folders(root / "val")))
    if missing:
        raise ValueError(f"dataset.root={cfg.root}: val/ lacks class folder(s) {missing[:3]}; expected {LAYOUT}")
    return classes


def _samples(directory: Path, class_to_idx: dict[str, int]) -> list[tuple[str, int]]:
    try:
        return make_dataset(str(directory), class_to_idx, extensions=IMG_EXTENSIONS)
    except FileNotFoundError as exc:
        raise ValueError(f"{directory}: {str(exc).splitlines()[0]}; expected {LAYOUT}") from None


def transforms(cfg) -> tuple[v2.Compose, v2.Compose]:
    """(augmenting training transform, evaluation transform), PIL image → uint8 tensor (3 × S × S)."""
    size, resize = int(cfg.image_size), int(cfg.resize_size)
    train = v2.Compose([v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip(), v2.PILToTensor()])
    evaluation = v2.Compose([v2.Resize(resize, antialias=True), v2.CenterCrop(size), v2.PILToTensor()])
    return train, evaluation


def build(cfg: ImagenetConfig) -> BatchedBundle:
    classes = check(cfg)
    assert cfg.root  # check() refused an unset root
    root = Path(cfg.root).expanduser()
    class_to_idx = {name: index for index, name in enumerate(classes)}
    pool = _samples(root / "train", class_to_idx)
    test = _samples(root / "val", class_to_idx)
    labels = np.array([label for _, label in pool])
    train, val = holdout(labels, cfg.val_fraction, cfg.split_seed)
    train = subsample(train, cfg.train_fraction, cfg.split_seed)
    noisy = corrupt_labels(labels[train], cfg.label_noise, len(classes), cfg.split_seed)
    eval_size = getattr(cfg, "train_eval_size", None) or len(train)
    eval_index = np.sort(np.random.default_rng(cfg.split_seed + 2).permutation(len(train))[:eval_size])
    train_transform, eval_transform = transforms(cfg)

    def split(samples: list[tuple[str, int]], index: np.ndarray | None = None) -> LoaderSplit:
        return LoaderSplit(samples, default_loader, train_transform, eval_transform, MEAN, STD,
                           int(cfg.num_workers), None if index is None else torch.from_numpy(index))

    size = int(cfg.image_size)
    black = -MEAN / STD

    def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return random_crop_flip(x, generator, size // 8, black)

    return BatchedBundle(
        name="imagenet",
        train=split([(pool[i][0], int(label)) for i, label in zip(train, noisy)], eval_index),  # type: ignore[arg-type]  # self-batching split in place of Split
        val=split([pool[i] for i in val]),  # type: ignore[arg-type]  # self-batching split in place of Split
        test=split(test),  # type: ignore[arg-type]  # self-batching split in place of Split
        num_classes=len(classes),
        input_shape=(3, size, size),
        augment=augment,
    )
