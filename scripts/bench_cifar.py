"""Throughput of the training loop on CIFAR-shaped data, as ratios measured in one run.

1. Our loop (`Run._train_epoch`: the real CIFAR-10 builder reading a synthetic `cifar-10-batches-py`
   directory, uint8 resident split, per-batch normalisation, minimal tracking) against a hand-written
   minimal PyTorch loop over pre-normalised float32 tensors, same model and data. Target >= 0.9x.
2. On a CUDA device only: the GPU-resident loader (augmented on the GPU) against torchvision's
   DataLoader with the standard CIFAR transforms in worker processes, both training ResNet-18 under
   bf16 autocast and channels_last. Target >= 3x. Without CUDA this part says it is skipped.

    python scripts/bench_cifar.py                    # CPU: small data, width-8 ResNet-18
    python scripts/bench_cifar.py --images 50000 --width 64 --epochs 3   # full-size, on a GPU
"""
from __future__ import annotations

import argparse
import copy
import functools
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from torch.nn import functional as F

from pab_campaign.training.acceleration import autocast
from pab_campaign.training.data.cifar10 import write_batches
from pab_campaign.training.run import Run
from pab_campaign.training.run_writer import RunWriter

CONF = str(Path(__file__).resolve().parents[1] / "pab_campaign" / "conf")


def synthetic_cifar(root: Path, images: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    train = (rng.integers(0, 256, (images, 3, 32, 32), dtype=np.uint8), np.arange(images) % 10)
    n_test = max(images // 10, 10)
    test = (rng.integers(0, 256, (n_test, 3, 32, 32), dtype=np.uint8), np.arange(n_test) % 10)
    write_batches(root, train, test)


def our_run(root: Path, campaign: Path, args, device: str, augment: bool) -> Run:
    overrides = [
        "dataset=cifar10", f"dataset.root={root}", f"dataset.augment={str(augment).lower()}", "model=resnet18",
        f"model.width={args.width}", "tracking=minimal", f"train.batch_size={args.batch_size}",
        f"runtime.device={device}", f"runtime.threads={args.threads}", f"campaign.root={campaign}",
    ]
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    run = Run(cfg, RunWriter(campaign / "run", "bench", campaign.name, {}, None))
    run.setup()
    return run


def bare_epoch(model, optimizer, x: torch.Tensor, y: torch.Tensor, batch_size: int, generator) -> None:
    """The minimal loop: shuffle, index, forward, cross-entropy, backward, step."""
    model.train()
    order = torch.randperm(len(y), generator=generator)
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[index]), y[index]).backward()
        optimizer.step()


def timed(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - started


def cpu_ratio(root: Path, campaign: Path, args) -> None:
    run = our_run(root, campaign, args, "cpu", augment=False)
    train = run.data.train
    x = torch.cat([x for x, _ in train.eval_batches(1024)])
    y = train.y
    model = copy.deepcopy(run.model)
    optimizer = torch.optim.SGD(model.parameters(), lr=run.cfg.optimizer.lr, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    run._train_epoch(1)
    bare_epoch(model, optimizer, x, y, args.batch_size, generator)  # warm-up both
    ours, bare = [], []
    for epoch in range(args.epochs):  # interleaved, so load from other processes hits both alike
        ours.append(timed(functools.partial(run._train_epoch, epoch + 2)))
        bare.append(timed(lambda: bare_epoch(model, optimizer, x, y, args.batch_size, generator)))
    ours_ips, bare_ips = len(y) / statistics.median(ours), len(y) / statistics.median(bare)
    print(f"CPU, ResNet-18 width {args.width}, {len(y)} images/epoch, batch {args.batch_size}, "
          f"{args.threads} threads, median of {args.epochs} epochs:")
    print(f"  our loop   {ours_ips:9.1f} images/s")
    print(f"  bare loop  {bare_ips:9.1f} images/s")
    print(f"  ratio ours/bare = {ours_ips / bare_ips:.3f}  (target >= 0.9)")


class _TorchvisionCifar(torch.utils.data.Dataset):
    """What torchvision's CIFAR10 does per item: HWC uint8 array -> PIL image -> transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform) -> None:
        self.images, self.labels, self.transform = images.transpose(0, 2, 3, 1), labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[index])), int(self.labels[index])


def gpu_ratio(root: Path, campaign: Path, args) -> None:
    if not torch.cuda.is_available():
        print("GPU part skipped: no CUDA device visible (resident loader vs torchvision DataLoader unmeasured).")
        return
    from torchvision import transforms as T

    run = our_run(root, campaign, args, "cuda", augment=True)
    train = run.data.train
    mean, std = (train.mean / 255).tolist(), (train.std / 255).tolist()
    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)])
    dataset = _TorchvisionCifar(train.images.cpu().numpy(), train.labels.cpu().numpy(), transform)
    workers = min(8, os.cpu_count() or 1)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=workers,
                                         pin_memory=True, drop_last=True, persistent_workers=True)
    model, optimizer = run.step_model, run.optimizer

    def dataloader_epoch() -> None:
        model.train()
        for x, y in loader:
            x = x.cuda(non_blocking=True).contiguous(memory_format=torch.channels_last)
            y = y.cuda(non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            with autocast(torch.device("cuda"), run.cfg.runtime):
                loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()

    run._train_epoch(1)
    dataloader_epoch()
    resident, torchvision_loader = [], []
    for epoch in range(args.epochs):
        resident.append(timed(functools.partial(run._train_epoch, epoch + 2)))
        torchvision_loader.append(timed(dataloader_epoch))
    n = len(train)
    ours, theirs = n / statistics.median(resident), n / statistics.median(torchvision_loader)
    print(f"GPU {torch.cuda.get_device_name()}, ResNet-18 width {args.width}, bf16, {n} images/epoch, "
          f"DataLoader with {workers} workers:")
    print(f"  resident loader      {ours:9.1f} images/s")
    print(f"  torchvision loader   {theirs:9.1f} images/s")
    print(f"  ratio resident/DataLoader = {ours / theirs:.2f}  (target >= 3)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=640, help="training images (synthetic)")
    parser.add_argument("--width", type=int, default=8, help="ResNet-18 first-stage width (64 = standard)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per loop (median reported)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, campaign = Path(tmp) / "cifar", Path(tmp) / "campaign"
        synthetic_cifar(root, int(args.images / 0.9) + 1)  # the builder holds out val_fraction = 0.1
        cpu_ratio(root, campaign, args)
        gpu_ratio(root, campaign, args)


if __name__ == "__main__":
    main()
