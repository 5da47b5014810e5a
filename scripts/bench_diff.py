"""Time and peak memory of ModelDiff on the planted digits case study: TRAK scores of both algorithms
(16 runs x 4 checkpoints) plus the residual PCA and its figures, as `pab-campaign diff` runs them.

    PYTHONPATH=. python scripts/bench_diff.py [--campaign DIR] [--proj-dim 32] [--checkpoints every]

Trains the preset (`+experiment=modeldiff_digits`) into a temporary campaign unless --campaign names
one, then runs the README's `diff` command in a fresh process on the CPU (and again on CUDA when
there is one), its stored scores removed first so nothing is reused. Prints per device: wall time
and its ratio to the 10-minute budget, the process's peak resident memory (and peak CUDA memory),
and the share of the scoring time spent in per-example gradients, in projecting them, and in the
rest (TRAK's X^T X inverse and score products, loading checkpoints); then the residual PCA alone.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BUDGET_S = 600.0
A = ["--a", "dataset.corner_patch.train_class=null"]
B = ["--b", "dataset.corner_patch.train_class=8"]
DIFF_DIR = "dataset.corner_patch.train_class=null_vs_dataset.corner_patch.train_class=8"


def environment() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def train(campaign: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pab_campaign", "-m", "+experiment=modeldiff_digits", "runtime.verbose=false",
                    f"campaign.root={campaign.parent}", f"campaign.name={campaign.name}"], cwd=REPO, env=environment(),
                   check=True, capture_output=True)
    return time.perf_counter() - started


def run_diff(campaign: Path, device: str, proj_dim: int, checkpoints: str) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MiB) of one `diff` process."""
    shutil.rmtree(campaign / "summary" / "diff", ignore_errors=True)
    command = [sys.executable, "-m", "pab_campaign.cli", "diff", str(campaign), *A, *B, "--checkpoints", checkpoints,
               "--proj-dim", str(proj_dim), "--device", device]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"diff failed: {process.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--campaign", type=Path, default=None, help="a trained modeldiff_digits campaign")
    parser.add_argument("--proj-dim", type=int, default=32)
    parser.add_argument("--checkpoints", default="every", choices=("last", "every"))
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    import torch

    from pab_campaign.analysis.modeldiff.residual_pca import a_minus_b, b_minus_a

    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; torch threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as scratch:
        campaign = args.campaign or Path(scratch) / "modeldiff_digits"
        if args.campaign is None:
            print(f"trained the preset's 16 runs in {train(campaign):.1f} s")
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        for device in devices:
            wall, peak = run_diff(campaign, device, args.proj_dim, args.checkpoints)
            out = campaign / "summary" / "diff" / DIFF_DIR
            sidecars = [json.loads((out / f"scores_{side}.json").read_text()) for side in "ab"]
            gradients = sum(s["timings"]["gradients_s"] for s in sidecars)
            projection = sum(s["timings"]["projection_s"] for s in sidecars)
            scoring = sum(s["timings"]["total_s"] for s in sidecars)
            checkpoints = sum(len(s["checkpoints"]) for s in sidecars)
            print(f"[{device}] diff --checkpoints {args.checkpoints} --proj-dim {args.proj_dim}: {wall:.1f} s wall "
                  f"({wall / BUDGET_S:.1%} of the {BUDGET_S / 60:.0f}-minute budget), peak resident memory "
                  f"{peak:.0f} MiB" + (f", peak CUDA memory {sidecars[0].get('peak_cuda_mib', 0):.0f} MiB"
                                       if device == "cuda" else ""))
            print(f"[{device}] TRAK scoring of {checkpoints} checkpoints: {scoring:.1f} s = {scoring / wall:.0%} of "
                  f"the wall time; per-example gradients {gradients / scoring:.0%}, "
                  f"projection {projection / scoring:.0%}, rest {(scoring - gradients - projection) / scoring:.0%}")
        scores = [np.load(out / f"scores_{side}.npy") for side in "ab"]
        started = time.perf_counter()
        a_minus_b(*scores, 4)
        b_minus_a(*scores, 4)
        print(f"residual PCA of {scores[0].shape[0]} x {scores[0].shape[1]} scores, A-B and B-A, 4 directions each: "
              f"{time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
