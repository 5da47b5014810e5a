"""FIM_norm by vmap(grad) against a per-sample backward loop, N = 128 probe samples, digits CNN.

    PYTHONPATH=. python scripts/bench_fim.py [--samples 128] [--rounds 10] [--calls 10] [--threads 1] [--chunk-size 128]

Both routes build the per-sample gradients G (N × P) of the same model in eval mode (vmap: one
block per parameter tensor, as the probe uses them; loop: one row per sample); the script checks
that FIM_norm agrees to 1e-6 relative and prints the speed ratio (target ≥ 8×).
"""
from __future__ import annotations

import argparse
import time

import torch
from omegaconf import OmegaConf
from torch.nn import functional as F

from pab_campaign.training.data import build_dataset
from pab_campaign.training.models import build_model
from pab_campaign.training.probes.fim import fim_norm_from_gradients, per_sample_gradients

CONF = "pab_campaign/conf"


def loop_gradients(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """G (N × P) by one backward pass per sample (the mbe-eval way)."""
    rows = []
    for i in range(len(x)):
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    model.zero_grad(set_to_none=True)
    return torch.stack(rows)


def best_times(routes: dict, rounds: int, calls: int) -> dict[str, tuple[float, object]]:
    """Each route's best wall time per call, over `rounds` rounds in which every route is called
    `calls` times back to back (its steady state), the routes taking turns round by round (so drift
    in this shared machine's speed hits both); with its last result."""
    best = {name: (float("inf"), None) for name in routes}
    for _ in range(rounds):
        for name, route in routes.items():
            for _ in range(calls):
                started = time.perf_counter()
                result = route()
                best[name] = (min(best[name][0], time.perf_counter() - started), result)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=10, help="calls of one route per round")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--chunk-size", type=int, default=128, help="samples per vmap call (the probe default)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = build_dataset(OmegaConf.load(f"{CONF}/dataset/digits.yaml"))
    model = build_model(OmegaConf.load(f"{CONF}/model/cnn.yaml"), data.input_shape, data.num_classes).eval()
    x, y = data.val.x[:args.samples], data.val.y[:args.samples]
    params = sum(p.numel() for p in model.parameters())

    timed = best_times({"vmap": lambda: per_sample_gradients(model, x, y, args.chunk_size),
                        "loop": lambda: loop_gradients(model, x, y)}, args.rounds, args.calls)
    (vmap_s, g_vmap), (loop_s, g_loop) = timed["vmap"], timed["loop"]
    fim_vmap, fim_loop = fim_norm_from_gradients(g_vmap), fim_norm_from_gradients([g_loop])
    relative = abs(fim_vmap - fim_loop) / abs(fim_loop)
    print(f"digits CNN, {params} parameters, N = {len(x)}, {args.threads} thread(s), "
          f"best of {args.rounds} alternating rounds x {args.calls} calls")
    print(f"  per-sample gradients: vmap {vmap_s * 1e3:.1f} ms, loop {loop_s * 1e3:.1f} ms")
    print(f"  FIM_norm: vmap {fim_vmap:.10f}, loop {fim_loop:.10f}, relative difference {relative:.2e} "
          f"({'OK' if relative <= 1e-6 else 'FAIL'} at 1e-6)")
    print(f"  speed-up vmap / loop: {loop_s / vmap_s:.1f}x (target >= 8x)")


if __name__ == "__main__":
    main()
