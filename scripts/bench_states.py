"""Benchmark of `pab-campaign states` at campaign scale (issue 13).

    PYTHONPATH=. python scripts/bench_states.py                      # 5,000 runs x 100 epochs x 14 features
    PYTHONPATH=. python scripts/bench_states.py --runs 500 --keep /tmp/s   # smaller, keep the campaign

Builds a synthetic campaign with the project's own writer (`store.write_run_json`,
`store.write_trajectory`): every run has 100 epochs of the 14 weight statistics (`weights/w_mean` ...
`weights/sv_var`, drawn from a 4-phase left-to-right process with run-specific phase lengths, scale
and offset) and `val/acc`, over a grid of learning rate x weight decay x width. Then it runs the
command, `pab-campaign states CAMPAIGN --max-states 8 --restarts 4 --covariance diag`, as a
subprocess twice: cold (no index yet, so the 5,000 trajectories are compacted first) and warm.
For each it prints the wall time and the peak resident memory of the command's whole process tree
(the command and its worker processes, summed, sampled every 50 ms). Targets on 2 cores: < 300 s
and < 4 GiB. The machine's load average is printed before and after, since it moves the times.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from pab_campaign.store import TRAJECTORY_SCHEMA, RunRecord, RunStatus, run_dir, write_run_json, write_trajectory

FEATURES = ("w_mean", "w_median", "w_var", "b_mean", "b_median", "b_var", "l1", "l2", "trace", "spectral",
            "code_sparsity", "comp_sparsity", "sv_mean", "sv_var")
PHASES = 4
LRS = (0.01, 0.03, 0.1)
WEIGHT_DECAYS = (0.0, 1e-3, 1e-2)
WIDTHS = (32, 256)


def _trajectory(rng: np.random.Generator, epochs: int, phase_means: np.ndarray, speed: float) -> pa.Table:
    """One run: a left-to-right walk through PHASES phases (boundaries earlier when `speed` is high),
    the features drawn around each phase's means, then scaled and shifted per run; and val/acc."""
    n = epochs + 1
    cuts = np.sort(rng.uniform(0.05, 0.9, PHASES - 1) / speed) * n
    phase = np.searchsorted(cuts, np.arange(n), side="right")
    values = phase_means[phase] + rng.normal(0, 0.4, (n, len(FEATURES)))
    values = values * rng.uniform(0.5, 2.0, len(FEATURES)) + rng.normal(0, 3, len(FEATURES))
    accuracy = 0.95 * (1 - np.exp(-np.arange(n) * speed / 8)) + rng.normal(0, 0.01, n)
    epoch = np.repeat(np.arange(n, dtype=np.int32), len(FEATURES) + 1)
    context = np.tile(["weights"] * len(FEATURES) + ["val"], n)
    metric = np.tile([*FEATURES, "acc"], n)
    value = np.column_stack([values, accuracy]).ravel()
    return pa.table({"epoch": epoch, "context": context, "metric": metric,
                     "key": pa.nulls(len(epoch), pa.string()), "value": value}).cast(TRAJECTORY_SCHEMA)


def make_campaign(root: Path, runs: int, epochs: int, seed: int = 0) -> None:
    """Write `runs` completed runs (lr x weight decay x width, then seeds) under `root`."""
    rng = np.random.default_rng(seed)
    phase_means = rng.normal(0, 2.0, (PHASES, len(FEATURES)))
    grid = [(lr, wd, width) for lr in LRS for wd in WEIGHT_DECAYS for width in WIDTHS]
    for index in range(runs):
        lr, wd, width = grid[index % len(grid)]
        hparams = {"optimizer.lr": lr, "optimizer.weight_decay": wd, "model.hidden": width, "seed": index // len(grid)}
        rid = f"{index:012x}"
        directory = run_dir(root, rid)
        directory.mkdir(parents=True)
        write_trajectory(directory, _trajectory(rng, epochs, phase_means, speed=lr * 10 * (1 + 20 * wd)))
        write_run_json(directory, RunRecord(
            run_id=rid, status=RunStatus.COMPLETED, campaign="bench", hparams=hparams, seed=hparams["seed"],
            started_at="2025-01-01T00:00:00", ended_at="2025-01-01T00:01:00", duration_s=60.0, epochs_done=epochs,
            host="bench"))


def _tree_rss(pid: int) -> int:
    """Resident bytes of process `pid` and all its descendants, from Linux's /proc."""
    total, pending = 0, [pid]
    page = os.sysconf("SC_PAGE_SIZE")
    while pending:
        current = pending.pop()
        try:
            total += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * page
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def run_command(args: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak MiB of the process tree, and the output of `pab-campaign` with `args`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                                      os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "pab_campaign.cli", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=env)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(process.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate()
    done.set()
    sampler.join()
    wall = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"pab-campaign {' '.join(args)} failed ({process.returncode}):\n{output[-3000:]}")
    return wall, peak[0] / 2 ** 20, output


def _load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=99, help="epochs after epoch 0 (99: 100 values per run)")
    parser.add_argument("--keep", type=Path, default=None, help="build (or reuse) the campaign here and keep it")
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_states_"))
    if not (root / "runs").is_dir():
        start = time.perf_counter()
        make_campaign(root, args.runs, args.epochs)
        print(f"built {args.runs} runs x {args.epochs + 1} epochs x {len(FEATURES)} features in "
              f"{time.perf_counter() - start:.1f} s at {root}", flush=True)
    print(f"cores available: {len(os.sched_getaffinity(0))}; load average before: {_load()}", flush=True)
    command = ["states", str(root), "--max-states", "8", "--restarts", "4", "--covariance", "diag",
               "--jobs", str(args.jobs)]
    results = {}
    for label in ("cold (index built first)", "warm (index present)"):
        if label.startswith("cold"):
            shutil.rmtree(root / "summary", ignore_errors=True)
        wall, peak, output = run_command(command)
        results[label] = (wall, peak)
        print(f"{label:<26} {wall:8.1f} s   peak memory of the process tree {peak:8.0f} MiB", flush=True)
    chosen = [line for line in output.splitlines() if line.startswith("chosen K=")]
    notes = [line for line in output.splitlines() if line.startswith("note:")]
    print("\n".join(chosen + notes))
    print(f"load average after: {_load()}")
    worst_wall = max(w for w, _ in results.values())
    worst_peak = max(p for _, p in results.values())
    print(f"\nworst wall time {worst_wall:.1f} s (target < 300 s); worst peak {worst_peak:.0f} MiB (target < 4096 MiB)")


if __name__ == "__main__":
    main()
