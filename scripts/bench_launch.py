"""Benchmark the launchers: the same 8 short runs with Hydra's basic launcher (sequential, one
process) and with the local parallel launcher (`hydra/launcher=local`, jobs x threads <= cores),
measured alternately in one invocation (basic, local, basic, local, ...; each launcher's best wall
time counts, so a burst of load on this shared machine hits one repeat, not the ratio); prints the
wall-time ratio and the fixed overhead per run (launch of a job to the end of its first epoch, minus
that epoch's own time). The local launcher forks its runs from a warm python (`warm_start`);
`--cold` measures it with a fresh interpreter per run instead.

    python scripts/bench_launch.py                  # 8 runs of model=cnn, 40 epochs, best of 3
    python scripts/bench_launch.py --epochs 20 --runs 8 --repeats 3 --out /tmp/bench_launch
    python scripts/bench_launch.py --foreign        # another Hydra app: 4 one-second jobs, warm vs cold

Target (issue 6): local parallel >= 1.6x the basic launcher on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAMP = r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]"
SUBMIT = re.compile(STAMP + r"\[HYDRA\] \t#(\d+) :")
FIRST_EPOCH = re.compile(STAMP + r"\[pab_campaign\.run\]\[INFO\] - run \w+ epoch 1/\d+ .*\| ([\d.]+)s$")


def _time(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")


def sweep(launcher: str, campaign: Path, runs: int, epochs: int, model: str, batch_size: int,
          extra: list[str]) -> tuple[float, str]:
    """Train `runs` seeds with `launcher`; returns (wall seconds, the launcher's output)."""
    overrides = [f"hydra/launcher={launcher}", *extra, f"campaign.root={campaign.parent}",
                 f"campaign.name={campaign.name}",
                 f"model={model}", "optimizer.lr=0.05", f"seed={','.join(str(s) for s in range(runs))}",
                 f"train.epochs={epochs}", f"train.batch_size={batch_size}", "tracking=minimal",
                 "checkpoint.every=0", "runtime.threads=1"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pab_campaign", "-m", *overrides], cwd=REPO, env=env,
                            capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"bench_launch: the {launcher} sweep failed:\n{result.stderr[-3000:]}")
    return wall, result.stdout + result.stderr


def overheads(output: str, campaign: Path) -> list[float]:
    """Per job: seconds from its launch (the launcher's `#N :` line) to the end of its first epoch,
    minus the first epoch's own duration; read from the launcher's and the jobs' Hydra logs."""
    submitted = {int(m.group(2)): _time(m.group(1)) for m in SUBMIT.finditer(output)}
    sweep_dir = max((campaign / "hydra").iterdir())
    result = []
    for job, launched in sorted(submitted.items()):
        for log in (sweep_dir / str(job)).glob("*.log"):
            match = next(filter(None, map(FIRST_EPOCH.search, log.read_text().splitlines())), None)
            if match:
                result.append((_time(match.group(1)) - launched).total_seconds() - float(match.group(2)))
    return result


FOREIGN_APP = """
import time

import hydra


@hydra.main(version_base="1.3", config_path=None, config_name=None)
def main(cfg) -> None:
    time.sleep(1.0)


if __name__ == "__main__":
    main()
"""


# What the warm python preloaded for every app before it preloaded only the app's imports.
TORCH_PRELOAD = "torch,torch._dynamo,numpy,pyarrow.parquet,pandas,pab_campaign.training.run"


def foreign(out: Path, runs: int, repeats: int) -> None:
    """Another Hydra app (no torch, none of our keys) under hydra/launcher=local: `runs` one-second
    jobs with the warm fork server (which preloads only what that app imported) and without it,
    alternately; prints each one's best wall time and their ratio."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "app.py").write_text(FOREIGN_APP)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    modes = {"warm": ["hydra.launcher.warm_start=true"], "cold": ["hydra.launcher.warm_start=false"],
             "warm, torch preloaded": ["hydra.launcher.warm_start=true", f"hydra.launcher.preload=[{TORCH_PRELOAD}]"]}
    walls: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(repeats):
        for mode, overrides in modes.items():
            started = time.perf_counter()
            subprocess.run([sys.executable, "app.py", "-m", "hydra/launcher=local", *overrides,
                            f"+x={','.join(map(str, range(runs)))}", f"hydra.sweep.dir={out}/sweep"],
                           cwd=out, env=env, check=True, capture_output=True)
            walls[mode].append(time.perf_counter() - started)
    print(f"foreign app, {runs} one-second jobs, {len(os.sched_getaffinity(0))} cores, best of {repeats}, "
          f"load average {os.getloadavg()[0]:.1f}")
    for mode, times in walls.items():
        print(f"  {mode:>22}: wall {min(times):5.1f}s (all: {', '.join(f'{t:.1f}' for t in times)})")
    print(f"warm / cold wall time: {min(walls['warm']) / min(walls['cold']):.2f}; warm with torch preloaded / cold: "
          f"{min(walls['warm, torch preloaded']) / min(walls['cold']):.2f} (<= 1: warm start costs the app nothing)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="sweeps per launcher, alternating; best counts")
    parser.add_argument("--cold", action="store_true", help="local launcher without its warm fork server")
    parser.add_argument("--out", type=Path, default=Path("/tmp/pab_bench_launch"))
    parser.add_argument("--foreign", action="store_true", help="measure another Hydra app (4 one-second jobs)")
    args = parser.parse_args()
    if args.foreign:
        foreign(args.out / "foreign", 4, args.repeats)
        return
    load_before = os.getloadavg()[0]
    extra = {"basic": [], "local": [f"hydra.launcher.warm_start={not args.cold}"]}
    walls: dict[str, list[float]] = {"basic": [], "local": []}
    over: dict[str, list[float]] = {"basic": [], "local": []}
    for _ in range(args.repeats):
        for launcher in walls:
            campaign = args.out / launcher
            shutil.rmtree(campaign, ignore_errors=True)
            wall, output = sweep(launcher, campaign, args.runs, args.epochs, args.model, args.batch_size,
                                 extra[launcher])
            walls[launcher].append(wall)
            over[launcher] += overheads(output, campaign)
    cores = len(os.sched_getaffinity(0))
    print(f"{args.runs} runs of model={args.model}, {args.epochs} epochs, batch {args.batch_size}, "
          f"{cores} cores, best of {args.repeats}, load average {load_before:.1f} before / "
          f"{os.getloadavg()[0]:.1f} after")
    for launcher, times in walls.items():
        o = over[launcher]
        spread = f"median {statistics.median(o):.2f}s (min {min(o):.2f}, max {max(o):.2f})" if o else "n/a"
        name = f"{launcher}{' (cold)' if launcher == 'local' and args.cold else ''}"
        print(f"  {name:>12}: wall {min(times):7.1f}s (all: {', '.join(f'{t:.1f}' for t in times)})   "
              f"overhead per run, launch to first epoch: {spread}")
    ratio = min(walls["basic"]) / min(walls["local"])
    print(f"local parallel / basic speed-up: {ratio:.2f}x (target >= 1.6x on 2 cores)")


if __name__ == "__main__":
    main()
