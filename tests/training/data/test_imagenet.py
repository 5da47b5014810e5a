"""ImageNet-style class folders of real JPEGs: class subsets, splits, worker-independent augmentation."""
from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from pab_campaign.training.data import build_dataset, check_dataset
from pab_campaign.training.data.base import Split
from tests.helpers import write_image_folder

CLASSES = ("n01", "n02", "n03")


def _cfg(root, **changes):
    base = dict(name="imagenet", root=str(root), classes=None, val_fraction=0.25, split_seed=0,
                train_fraction=1.0, label_noise=0.0, augment=True, image_size=32, resize_size=36,
                train_eval_size=6, num_workers=0)
    return OmegaConf.create({**base, **changes})


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("imagenet"), CLASSES, 8, 2)


def test_bundle_from_class_folders(folder):
    data = build_dataset(_cfg(folder))
    assert (len(data.train), len(data.val), len(data.test)) == (18, 6, 6)
    assert data.num_classes == 3 and data.input_shape == (3, 32, 32)
    probe = data.probe(4)
    assert isinstance(probe, Split) and probe.x.shape == (4, 3, 32, 32) and probe.x.dtype == torch.float32
    x = torch.cat([x for x, _ in data.train.eval_batches(4)])
    assert x.shape == (6, 3, 32, 32) and len(data.train.y) == 6  # the fixed train_eval_size subset


def test_class_subset_by_count_and_by_name(folder):
    assert build_dataset(_cfg(folder, classes=2)).num_classes == 2
    data = build_dataset(_cfg(folder, classes=["n03", "n01"]))
    assert data.num_classes == 2 and len(data.test) == 4
    with pytest.raises(ValueError, match="not folders"):
        check_dataset(_cfg(folder, classes=["n09"]))


def test_augmentation_is_seeded_per_example_whatever_the_workers(folder):
    order = torch.randperm(18, generator=torch.Generator().manual_seed(0))

    def epoch(workers: int, seed: int) -> torch.Tensor:
        data = build_dataset(_cfg(folder, num_workers=workers))
        return torch.cat([x for x, _ in data.train.batches(order, 8, 1, torch.Generator().manual_seed(seed))])

    serial = epoch(0, 5)
    assert torch.equal(serial, epoch(2, 5))
    assert not torch.equal(serial, epoch(0, 6))


def test_bad_roots_name_the_layout(folder, tmp_path):
    with pytest.raises(ValueError, match=r"<root>/train/<class>/\*\.JPEG and <root>/val/<class>/\*\.JPEG"):
        check_dataset(_cfg(tmp_path))
    (tmp_path / "train" / "n01").mkdir(parents=True)
    (tmp_path / "val" / "n02").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"val/ lacks class folder\(s\) \['n01'\]"):
        check_dataset(_cfg(tmp_path))
    (tmp_path / "val" / "n01").mkdir()
    with pytest.raises(ValueError, match="no valid file"):
        build_dataset(_cfg(tmp_path))


@pytest.mark.parametrize("workers", [0, 2])
def test_an_image_that_cannot_be_decoded_is_named(tmp_path, workers):
    from pab_campaign.training.data.loader import UnreadableImage

    root = write_image_folder(tmp_path, CLASSES, 4, 2)
    broken = sorted((root / "val" / "n02").iterdir())[0]
    broken.write_bytes(b"not a jpeg at all")
    data = build_dataset(_cfg(root, num_workers=workers))
    with pytest.raises(UnreadableImage) as raised:
        for _ in data.test.eval_batches(4):
            pass
    message = str(raised.value)
    assert message.startswith(f"{broken}: cannot be decoded as an image") and "\n" not in message
