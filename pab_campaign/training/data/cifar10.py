"""CIFAR-10 from its standard on-disk format (the `cifar-10-batches-py` pickles torchvision reads),
never downloaded: 50,000 training and 10,000 test 32×32 RGB images, 10 classes.

Splits: `val` is a stratified `val_fraction` of the five training batches (fixed by `split_seed`),
`train` the rest (optionally subsampled and label-noised), `test` is `test_batch`. Images stay uint8
in a `ResidentSplit` (moved whole to the GPU when the run has one), normalised per batch by the
training subset's per-channel mean and std. torchvision's `CIFAR10` class is not used because it
insists on the MD5 sums of the official files, which rejects subsets and test fixtures; the pickles
are read with an unpickler that only accepts numpy arrays.
"""
from __future__ import annotations

import pickle
from importlib import import_module
from pathlib import Path

import numpy as np
import torch

from pab_campaign.training.config import Cifar10Config
from pab_campaign.training.data.batching import BatchedBundle
from pab_campaign.training.data.resident import ResidentSplit, random_crop_flip
from pab_campaign.training.data.splits import corrupt_labels, holdout, subsample

FOLDER = "cifar-10-batches-py"
# The first byte of a pickle of protocol 2 or later (the python version of CIFAR-10 is protocol 2).
PICKLE_PROTOCOL_OPCODE = b"\x80"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
NUM_CLASSES = 10
SHAPE = (3, 32, 32)
LAYOUT = f"<root>/{FOLDER}/data_batch_1..5 and test_batch (the python version of CIFAR-10)"

_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.numeric", "_frombuffer"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and numpy arrays, and refuses every other global."""

    def find_class(self, module: str, name: str):
        module = module.replace("numpy.core.", "numpy._core.")
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}")
        return getattr(import_module(module), name)


def _folder(root: str | Path) -> Path:
    return Path(root).expanduser() / FOLDER


def check(cfg: Cifar10Config) -> None:
    """Raise ValueError naming the expected layout when `cfg.root` does not hold CIFAR-10's files."""
    if not cfg.root:
        raise ValueError(f"dataset.root is not set; point it at a directory laid out as {LAYOUT}")
    folder = _folder(cfg.root)
    missing = [name for name in (*TRAIN_FILES, TEST_FILE) if not (folder / name).is_file()]
    if missing:
        raise ValueError(f"dataset.root={cfg.root} lacks {FOLDER}/{missing[0]}; expected {LAYOUT}")
    for name in (*TRAIN_FILES, TEST_FILE):
        with open(folder / name, "rb") as handle:
            if handle.read(1) != PICKLE_PROTOCOL_OPCODE:
                raise ValueError(f"{folder / name} is not a CIFAR-10 batch (not a pickle file); expected {LAYOUT}")


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N × 3 × 32 × 32, uint8) and labels (N, int64) of one batch file."""
    try:
        with open(path, "rb") as handle:
            batch = _ArrayUnpickler(handle, encoding="bytes").load()
        data = np.asarray(batch.get(b"data", batch.get("data")))
        labels = np.asarray(batch.get(b"labels", batch.get("labels")), dtype=np.int64)
    except (OSError, EOFError, AttributeError, ValueError, TypeError, pickle.UnpicklingError) as exc:
        raise ValueError(f"{path} is not a CIFAR-10 batch ({exc}); expected {LAYOUT}") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data) \
            or labels.min(initial=0) < 0 or labels.max(initial=0) >= NUM_CLASSES:
        raise ValueError(f"{path} is not a CIFAR-10 batch (needs 'data' N x 3072 uint8 and N 'labels' "
                         f"in 0..9); expected {LAYOUT}")
    return data.reshape(-1, *SHAPE), labels


def write_batches(root: str | Path, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> Path:
    """Write images (N × 3 × 32 × 32 uint8) and labels in CIFAR-10's on-disk format under `root`:
    the training set spread over data_batch_1..5, plus test_batch and batches.meta. Returns the folder."""
    folder = _folder(root)
    folder.mkdir(parents=True, exist_ok=True)
    parts = zip(np.array_split(train[0], 5), np.array_split(train[1], 5))
    for name, (images, labels) in zip((*TRAIN_FILES, TEST_FILE), [*parts, test]):
        batch = {b"batch_label": name.encode(), b"labels": [int(label) for label in labels],
                 b"data": np.ascontiguousarray(images, dtype=np.uint8).reshape(len(images), -1),
                 b"filenames": [f"{name}_{i}.png".encode() for i in range(len(images))]}
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle, protocol=2)
    meta = {b"label_names": [f"class_{i}".encode() for i in range(NUM_CLASSES)],
            b"num_cases_per_batch": len(train[1]) // 5, b"num_vis": 3072}
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump(meta, handle, protocol=2)
    return folder


def channel_stats(images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact per-channel mean and std (C,) of uint8 `images` (N × C × H × W), via value histograms."""
    values = np.arange(256, dtype=np.float64)
    means, stds = [], []
    for channel in range(images.shape[1]):
        counts = np.bincount(images[:, channel].ravel(), minlength=256).astype(np.float64)
        mean = float(counts @ values / counts.sum())
        means.append(mean)
        stds.append(float(np.sqrt(counts @ (values - mean) ** 2 / counts.sum())) or 1.0)
    return torch.tensor(means, dtype=torch.float32), torch.tensor(stds, dtype=torch.float32)


def build(cfg: Cifar10Config) -> BatchedBundle:
    check(cfg)
    assert cfg.root  # check() refused an unset root
    folder = _folder(cfg.root)
    batches = [read_batch(folder / name) for name in TRAIN_FILES]
    pool_images = np.concatenate([images for images, _ in batches])
    pool_labels = np.concatenate([labels for _, labels in batches])
    test_images, test_labels = read_batch(folder / TEST_FILE)
    train, val = holdout(pool_labels, cfg.val_fraction, cfg.split_seed)
    train = subsample(train, cfg.train_fraction, cfg.split_seed)
    train_labels = corrupt_labels(pool_labels[train], cfg.label_noise, NUM_CLASSES, cfg.split_seed)
    mean, std = channel_stats(pool_images[train])
    padding = int(cfg.crop_padding)

    def split(images: np.ndarray, labels: np.ndarray) -> ResidentSplit:
        return ResidentSplit(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels),
                             mean, std, padding)

    black = -mean / std  # a 0-valued pixel after normalisation: the padding of the augmentation

    def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return random_crop_flip(x, generator, padding, black)

    return BatchedBundle(
        name="cifar10",
        train=split(pool_images[train], train_labels),  # type: ignore[arg-type]  # self-batching split in place of Split
        val=split(pool_images[val], pool_labels[val]),  # type: ignore[arg-type]  # self-batching split in place of Split
        test=split(test_images, test_labels),  # type: ignore[arg-type]  # self-batching split in place of Split
        num_classes=NUM_CLASSES,
        input_shape=SHAPE,
        augment=augment,
    )
