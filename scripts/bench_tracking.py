"""Epoch-time cost of tracking presets minimal / default / full, as ratios to minimal, in one run.

    PYTHONPATH=. python scripts/bench_tracking.py [--epochs 12] [--threads 1] [--skip-resnet]

Every preset trains and evaluates the same (train pass + full evaluation of train/val/test each
epoch); presets differ by their probes. The script times, on the same model, one training epoch,
one evaluation, and one `measure` of every probe (best of `--repeats`), then counts how often each
probe is due in a run of `--epochs` epochs at the preset's frequencies (epoch 0, every `every`, the
last epoch) and prints the run's total time per epoch relative to `minimal`. Targets: default ≤ 1.10,
full ≤ 1.35.

Models: the digits CNN of `conf/model/cnn.yaml` on digits (real epochs), and a CIFAR-shaped ResNet-18
(`conf/model/resnet18.yaml`: 3×3 stem without max-pool) on random 3×32×32 tensors on CPU, whose train and evaluation
times are measured on a few batches and scaled to CIFAR-10's 45k/5k/10k split.
"""
from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable

import torch
from omegaconf import OmegaConf
from torch import nn
from torch.nn import functional as F

from pab_campaign.training.data import DataBundle, Split, build_dataset
from pab_campaign.training.data.augment import random_shift
from pab_campaign.training.evaluate import evaluate
from pab_campaign.training.models import build_model
from pab_campaign.training.probes import ProbeContext, forward_features
from pab_campaign.training.probes.registry import build_probes

PRESETS = ("minimal", "default", "full")
CIFAR_SPLIT = {"train": 45_000, "val": 5_000, "test": 10_000}


def best_time(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def train_pass(model: nn.Module, optimizer: torch.optim.Optimizer, split: Split, batch_size: int) -> None:
    model.train()
    for start in range(0, len(split), batch_size):
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(split.x[start:start + batch_size]), split.y[start:start + batch_size]).backward()
        optimizer.step()


def random_bundle(sizes: dict[str, int]) -> DataBundle:
    g = torch.Generator().manual_seed(0)

    def split(n: int) -> Split:
        return Split(torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g))

    return DataBundle("cifar-shaped", split(sizes["train"]), split(sizes["val"]), split(sizes["test"]), 10,
                      (3, 32, 32), augment=random_shift)


SHARED = "probe-set forward"


def probe_costs(model: nn.Module, data: DataBundle, probes_by_name: dict, repeats: int) -> dict[str, float]:
    """Seconds per `measure` of every probe (after a first call that fills its state), excluding the
    probe-set forward pass that probes share within an epoch, which is timed on its own as SHARED."""
    evaluations = {name: evaluate(model, getattr(data, name)) for name in ("train", "val", "test")}
    probe_set = data.probe(256)
    costs = {SHARED: best_time(lambda: forward_features(model, probe_set.x), repeats)}
    shared = {"probe_outputs": forward_features(model, probe_set.x)}
    for name, probe in probes_by_name.items():
        context = ProbeContext(1, model, data, probe_set, evaluations, {}, seed=0, shared=shared)
        probe.measure(context)
        costs[name] = best_time(functools.partial(probe.measure, context), repeats)
    return costs


def run_seconds(probes: list, costs: dict[str, float], epochs: int) -> float:
    """Probe seconds over a run of `epochs` epochs: each due probe's cost, plus the shared forward
    once in every epoch where a probe that reads it is due."""
    total = 0.0
    for epoch in range(epochs + 1):
        due = [probe for probe in probes if probe.due(epoch, epochs)]
        total += sum(costs[probe.name] for probe in due)
        total += costs[SHARED] if any(probe.uses_probe_outputs for probe in due) else 0.0
    return total


def preset_probes(preset: str, overrides: dict) -> list:
    config = OmegaConf.to_container(OmegaConf.load(f"pab_campaign/conf/tracking/{preset}.yaml"))["probes"]
    for name, params in overrides.items():
        if name in config:
            config[name].update(params)
    return build_probes(config)


def report(title: str, train_s: float, eval_s: float, epochs: int, overrides: dict, repeats: int,
           model: nn.Module, data: DataBundle) -> None:
    full = {p.name: p for p in preset_probes("full", overrides)}
    costs = probe_costs(model, data, full, repeats)
    print(f"\n{title}: train epoch {train_s:.3f} s, evaluation {eval_s:.3f} s, run of {epochs} epochs")
    print("  probe cost per measure: " + ", ".join(f"{n} {c * 1e3:.1f} ms" for n, c in costs.items()))
    totals = {}
    for preset in PRESETS:
        totals[preset] = epochs * train_s + (epochs + 1) * eval_s + run_seconds(
            preset_probes(preset, overrides), costs, epochs)
    for preset in PRESETS:
        print(f"  {preset:8s} {totals[preset] / epochs:8.3f} s/epoch  ratio {totals[preset] / totals['minimal']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=12, help="run length the frequencies are counted over")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-resnet", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    data = build_dataset(OmegaConf.load("pab_campaign/conf/dataset/digits.yaml"))
    model = build_model(OmegaConf.load("pab_campaign/conf/model/cnn.yaml"), data.input_shape, data.num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    train_s = best_time(lambda: train_pass(model, optimizer, data.train, 64), args.repeats)
    eval_s = best_time(lambda: [evaluate(model, getattr(data, s)) for s in ("train", "val", "test")], args.repeats)
    report(f"digits CNN ({len(data.train)} train examples, {args.threads} thread(s))", train_s, eval_s,
           args.epochs, {}, args.repeats, model, data)

    if args.skip_resnet:
        return
    data = random_bundle({"train": 256, "val": 512, "test": 256})
    model = build_model(OmegaConf.load("pab_campaign/conf/model/resnet18.yaml"), (3, 32, 32), 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    per_train = best_time(lambda: train_pass(model, optimizer, data.train, 128), 1) / len(data.train)
    per_eval = best_time(lambda: evaluate(model, data.test, batch_size=256), 1) / len(data.test)
    train_s = per_train * CIFAR_SPLIT["train"]
    eval_s = per_eval * sum(CIFAR_SPLIT.values())
    # FIM on 11M parameters: N x P floats; a smaller vmap chunk keeps peak memory at a few GB.
    overrides = {"fim": {"chunk_size": 16}}
    report(f"CIFAR-shaped ResNet-18 (times scaled to 45k/5k/10k, {args.threads} thread(s))", train_s, eval_s,
           args.epochs, overrides, 1, model, data)


if __name__ == "__main__":
    main()
