"""Scaling of a distributed run: the training-epoch time of 1, 2, ... ranks on the CIFAR-10 ResNet-18
preset (`+experiment=cifar10_case_study`), as speed-up over 1 rank and scaling efficiency
(speed-up / ranks), all measured in one invocation.

1. CPU, gloo: 1 and 2 ranks, one thread each (small synthetic data and a narrow ResNet-18 by default).
2. On a machine with CUDA GPUs: 1, 2, 4, ... GPUs (up to all visible), NCCL, bf16 autocast,
   channels_last, the GPU-resident loader. Targets: >= 0.85 at 2 GPUs, >= 0.8 at 4 GPUs of one node.
   Without CUDA this part says it is skipped.

The global batch is the same for every world size (each rank takes batch / ranks), as in a run.
The data is synthetic and CIFAR-shaped unless --root names a real `cifar-10-batches-py` directory.

    python scripts/bench_distributed.py                                   # CPU part (and GPU part if any)
    python scripts/bench_distributed.py --gpu-images 50000 --gpu-width 64 --batch-size 512   # full size
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from hydra import compose, initialize_config_dir

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pab_campaign.launching.ranks import run_ranks  # noqa: E402
from pab_campaign.training import distributed  # noqa: E402
from pab_campaign.training.config import register_schemas  # noqa: E402
from pab_campaign.training.data.cifar10 import write_batches  # noqa: E402
from pab_campaign.training.run import Run  # noqa: E402
from pab_campaign.training.run_writer import RunWriter  # noqa: E402

CONF = str(REPO / "pab_campaign" / "conf")


def synthetic_cifar(root: Path, images: int) -> None:
    """A `cifar-10-batches-py` directory of random uint8 images (`images` for training)."""
    import numpy as np

    rng = np.random.default_rng(0)
    train = (rng.integers(0, 256, (images, 3, 32, 32), dtype=np.uint8), np.arange(images) % 10)
    n_test = max(images // 10, 10)
    write_batches(root, train, (rng.integers(0, 256, (n_test, 3, 32, 32), dtype=np.uint8), np.arange(n_test) % 10))


def rank_epochs(environment: dict[str, str], results: Any, overrides: list[str], campaign: str, epochs: int) -> None:
    """One rank: build the run as `execute` would (rank 0 opens a writer in a scratch campaign), then
    time `epochs` training epochs after a warm-up one, every rank starting each epoch together."""
    import os

    os.environ.update(environment)
    register_schemas()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, f"campaign.root={campaign}", "campaign.name=bench"])
    ranks = distributed.from_environment()
    device = distributed.rank_device(cfg.runtime.device == "cuda", ranks)
    with distributed.process_group(ranks, distributed.backend("auto", device), 10):
        writer = None
        if ranks.is_main:
            directory = Path(campaign) / "bench" / "runs" / "bench"
            writer = RunWriter(directory, "bench", "bench", {}, None, world_size=ranks.world_size)
            writer.open()
        run = Run(cfg, writer, ranks, "bench")
        run.setup()
        times = []
        for epoch in range(1, epochs + 2):
            if ranks.distributed:
                dist.barrier()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            run._train_epoch(epoch)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if ranks.distributed:
                dist.barrier()
            times.append(time.perf_counter() - started)
        if writer is not None:
            writer.finish("completed")
    if ranks.is_main:
        results.put((statistics.median(times[1:]), len(run.data.train)))


def scaling(label: str, overrides: list[str], worlds: list[int], epochs: int) -> None:
    """Print each world size's median epoch time, speed-up and efficiency against 1 rank."""
    print(label)
    baseline = None
    for world in worlds:
        with tempfile.TemporaryDirectory() as campaign:
            seconds, images = run_ranks(rank_epochs, (overrides, campaign, epochs), world)
        baseline = baseline or seconds
        speedup = baseline / seconds
        print(f"  {world} rank{'s' if world > 1 else ' '}  {seconds:8.3f} s/epoch  {images / seconds:9.1f} images/s  "
              f"speed-up {speedup:5.2f}  efficiency {speedup / world:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", help="a real cifar-10-batches-py directory (default: synthetic data)")
    parser.add_argument("--batch-size", type=int, default=128, help="global batch (the preset's: 128)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per world size (median reported)")
    parser.add_argument("--cpu-images", type=int, default=1280)
    parser.add_argument("--cpu-width", type=int, default=8, help="ResNet-18 first-stage width on the CPU")
    parser.add_argument("--gpu-images", type=int, default=50000)
    parser.add_argument("--gpu-width", type=int, default=64, help="ResNet-18 first-stage width on GPUs")
    args = parser.parse_args()
    common = ["+experiment=cifar10_case_study", "tracking=minimal", "dataset.augment=true",
              f"train.batch_size={args.batch_size}", "runtime.distributed=true", "runtime.verbose=false"]
    with tempfile.TemporaryDirectory() as tmp:
        def data(images: int) -> str:
            if args.root:
                return args.root
            root = Path(tmp) / f"cifar{images}"
            if not root.exists():
                synthetic_cifar(root, int(images / 0.9) + 1)  # the builder holds out val_fraction = 0.1
            return str(root)

        cpu = [*common, f"dataset.root={data(args.cpu_images)}", f"model.width={args.cpu_width}",
               "runtime.device=cpu", "runtime.threads=1"]
        scaling(f"CPU (gloo), ResNet-18 width {args.cpu_width}, global batch {args.batch_size}, 1 thread per rank, "
                f"median of {args.epochs} epochs:", cpu, [1, 2], args.epochs)
        gpus = torch.cuda.device_count()
        if not gpus:
            print("GPU part skipped: no CUDA device visible (NCCL scaling unmeasured).")
            return
        gpu = [*common, f"dataset.root={data(args.gpu_images)}", f"model.width={args.gpu_width}", "runtime.device=cuda",
               "runtime.amp=true"]
        worlds = [w for w in (1, 2, 4, 8, 16) if w <= gpus]
        scaling(f"GPU {torch.cuda.get_device_name()} x{gpus} (NCCL, bf16, channels_last, resident loader), ResNet-18 "
                f"width {args.gpu_width}, global batch {args.batch_size}, median of {args.epochs} epochs:", gpu, worlds,
                args.epochs)
        print("  targets: efficiency >= 0.85 at 2 GPUs, >= 0.8 at 4 GPUs")


if __name__ == "__main__":
    main()
