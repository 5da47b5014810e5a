"""CIFAR-10 from its on-disk pickles: reading, splits, statistics, and the errors for bad roots."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from pab_campaign.training.data import build_dataset, check_dataset
from pab_campaign.training.data.cifar10 import FOLDER, channel_stats, read_batch, write_batches


def _cfg(root, **changes):
    base = dict(name="cifar10", root=None if root is None else str(root), val_fraction=0.2, split_seed=0,
                train_fraction=1.0,
                label_noise=0.0, augment=True, crop_padding=4)
    return OmegaConf.create({**base, **changes})


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("cifar")
    train = (rng.integers(0, 256, (200, 3, 32, 32), dtype=np.uint8), np.arange(200) % 10)
    test = (rng.integers(0, 256, (50, 3, 32, 32), dtype=np.uint8), np.arange(50) % 10)
    write_batches(root, train, test)
    return root, train, test


def test_written_batches_read_back_in_the_standard_format(cifar_root):
    root, train, _ = cifar_root
    with open(root / FOLDER / "data_batch_1", "rb") as handle:
        raw = pickle.load(handle, encoding="bytes")
    assert raw[b"data"].shape == (40, 3072) and raw[b"data"].dtype == np.uint8 and len(raw[b"labels"]) == 40
    images, labels = read_batch(root / FOLDER / "data_batch_2")
    assert np.array_equal(images, train[0][40:80]) and np.array_equal(labels, train[1][40:80])
    assert (root / FOLDER / "batches.meta").is_file()


def test_bundle_splits_sizes_and_normalisation(cifar_root):
    root, _train, test = cifar_root
    data = build_dataset(_cfg(root))
    assert (len(data.train), len(data.val), len(data.test)) == (160, 40, 50)
    assert data.input_shape == (3, 32, 32) and data.num_classes == 10
    assert np.bincount(data.val.y.numpy(), minlength=10).tolist() == [4] * 10  # stratified
    assert torch.equal(data.test.images, torch.from_numpy(test[0]))
    pixels = data.train.images.numpy().astype(np.float64)
    mean, std = channel_stats(data.train.images.numpy())
    assert np.allclose(mean.numpy(), pixels.mean(axis=(0, 2, 3)), atol=1e-4)
    assert np.allclose(std.numpy(), pixels.std(axis=(0, 2, 3)), atol=1e-4)
    probe = data.probe(8)
    assert probe.x.shape == (8, 3, 32, 32) and probe.x.dtype == torch.float32
    augmented = data.augment(probe.x, torch.Generator().manual_seed(0))
    assert augmented.shape == probe.x.shape and not torch.equal(augmented, probe.x)


def test_train_fraction_and_label_noise(cifar_root):
    root, _, _ = cifar_root
    clean = build_dataset(_cfg(root, train_fraction=0.5))
    noisy = build_dataset(_cfg(root, train_fraction=0.5, label_noise=0.25))
    assert len(clean.train) == 80
    assert (clean.train.y != noisy.train.y).sum().item() == 20


def test_missing_root_names_the_layout(tmp_path):
    with pytest.raises(ValueError, match=r"cifar-10-batches-py/data_batch_1\.\.5 and test_batch"):
        check_dataset(_cfg(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match=r"dataset\.root is not set"):
        check_dataset(_cfg(None))


def test_malformed_and_hostile_batches_are_refused(cifar_root, tmp_path):
    _root, train, test = cifar_root
    write_batches(tmp_path, train, test)
    for content in (b"not a pickle", b""):  # refused before a run starts: check_dataset reads each file's first byte
        (tmp_path / FOLDER / "data_batch_3").write_bytes(content)
        with pytest.raises(ValueError, match=r"data_batch_3 is not a CIFAR-10 batch \(not a pickle file\)"):
            check_dataset(_cfg(tmp_path))
        with pytest.raises(ValueError, match="data_batch_3 is not a CIFAR-10 batch"):
            build_dataset(_cfg(tmp_path))
    with open(tmp_path / FOLDER / "data_batch_3", "wb") as handle:
        pickle.dump({b"data": os.system, b"labels": []}, handle, protocol=2)
    with pytest.raises(ValueError, match="unexpected object"):
        build_dataset(_cfg(tmp_path))
    with open(tmp_path / FOLDER / "data_batch_3", "wb") as handle:
        pickle.dump({b"data": np.zeros((4, 100), np.uint8), b"labels": [0, 1, 2, 3]}, handle, protocol=2)
    with pytest.raises(ValueError, match="N x 3072 uint8"):
        build_dataset(_cfg(tmp_path))
