"""Benchmark of the campaign aggregator against a pandas baseline and raw DuckDB (issue 4).

    python scripts/bench_report.py                       # 5,000 runs x 100 epochs x ~21 rows/epoch
    python scripts/bench_report.py --runs 500 --keep /tmp/c   # smaller, keep the campaign

Builds a synthetic campaign with the project's own writer (`store.write_run_json`,
`store.write_trajectory`), then measures in this one process:
(a) a cold `report` (no index), (b) a warm `report` (index present), (c) a tcbench-style baseline
(read every run with pandas, concat, groupby), (d) DuckDB over the same per-run files (glob
`read_parquet` + group by). The OS page cache is warmed first (every file read once) and (a), (b), (d)
are the best of `--repeats`. Prints times, ratios and the peak resident memory after each step.
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from pab_campaign.store import (
    TRAJECTORY_SCHEMA,
    RunRecord,
    RunStatus,
    run_dir,
    summary_dir,
    write_run_json,
    write_trajectory,
)

MODELS = ("mlp", "cnn")
LRS = (0.1, 0.01, 0.001)
OPTIMIZERS = ("sgd", "adam")
LAYERS = ("fc1", "fc2", "fc3")
CLASSES = 10


def _trajectory(rng: np.random.Generator, epochs: int, quality: float) -> pa.Table:
    """~21 rows per epoch: train/val/test × loss/acc, gen_gap, stability, 3 layer eranks, 10 class accs."""
    scalar = [("train", "loss"), ("train", "acc"), ("val", "loss"), ("val", "acc"), ("test", "loss"),
              ("test", "acc"), ("train", "gen_gap"), ("val", "stability")]
    keyed = [("weights", "erank", layer) for layer in LAYERS] + [("val", "class_acc", str(c)) for c in range(CLASSES)]
    per_epoch = len(scalar) + len(keyed)
    epoch = np.repeat(np.arange(epochs + 1, dtype=np.int32), per_epoch)
    t = epoch / max(epochs, 1)
    context = np.tile([c for c, _ in scalar] + [c for c, _, _ in keyed], epochs + 1)
    metric = np.tile([m for _, m in scalar] + [m for _, m, _ in keyed], epochs + 1)
    key = np.tile([None] * len(scalar) + [k for _, _, k in keyed], epochs + 1)
    value = quality * (1 - np.exp(-4 * t)) + rng.normal(0, 0.02, len(epoch))
    is_loss = metric == "loss"
    value[is_loss] = 2.3 * np.exp(-3 * quality * t[is_loss]) + rng.normal(0, 0.02, is_loss.sum())
    return pa.table({"epoch": epoch, "context": context, "metric": metric, "key": pa.array(key, pa.string()),
                     "value": value}).cast(TRAJECTORY_SCHEMA)


def make_campaign(root: Path, runs: int, epochs: int, seed: int = 0) -> None:
    """Write `runs` completed runs (a grid of model × lr × optimizer, then seeds) under `root`."""
    rng = np.random.default_rng(seed)
    grid = [(m, lr, o) for m in MODELS for lr in LRS for o in OPTIMIZERS]
    for index in range(runs):
        model, lr, optimizer = grid[index % len(grid)]
        hparams = {"model.name": model, "optimizer.lr": lr, "optimizer.name": optimizer,
                   "train.epochs": epochs, "seed": index // len(grid)}
        rid = f"{index:012x}"
        directory = run_dir(root, rid)
        directory.mkdir(parents=True)
        quality = (0.9 - 0.1 * math.log10(1 / lr) / 3 + (0.05 if model == "cnn" else 0)
                   + (0.02 if optimizer == "adam" else 0))
        write_trajectory(directory, _trajectory(rng, epochs, quality))
        write_run_json(directory, RunRecord(
            run_id=rid, status=RunStatus.COMPLETED, campaign="bench", hparams=hparams, seed=hparams["seed"],
            started_at="2025-01-01T00:00:00", ended_at="2025-01-01T00:01:00",
            duration_s=float(rng.uniform(50, 70)), epochs_done=epochs, host="bench"))


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(label: str, action, results: dict[str, float], repeats: int = 1, setup=lambda: None) -> None:
    """Best wall time of `repeats` calls of `action`, each after an untimed `setup()`."""
    best = math.inf
    for _ in range(repeats):
        setup()
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    results[label] = best
    print(f"{label:<34} {results[label]:8.3f} s   peak RSS so far {_peak_mib():7.0f} MiB", flush=True)


def _warm_page_cache(campaign: Path) -> None:
    """Read every run file once, so that no contender pays (or is spared) the first disk read."""
    for directory in (campaign / "runs").iterdir():
        for name in ("run.json", "trajectory.parquet"):
            (directory / name).read_bytes()


def _report(campaign: Path) -> None:
    """The product's `pab-campaign report CAMPAIGN` in this process, output discarded."""
    import contextlib
    import io

    from pab_campaign import cli

    with contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["report", str(campaign)])
    if code != 0:
        raise SystemExit(f"report failed with exit code {code}")


def _pandas_baseline(campaign: Path) -> None:
    """tcbench-style: read every run (run.json + trajectory) with pandas, concat, group by."""
    import pandas as pd

    frames = []
    for directory in sorted((campaign / "runs").iterdir()):
        record = json.loads((directory / "run.json").read_text())
        frame = pd.read_parquet(directory / "trajectory.parquet")
        for name, value in record["hparams"].items():
            frame[name] = value
        frame["run_id"] = record["run_id"]
        frames.append(frame)
    rows = pd.concat(frames, ignore_index=True)
    rows = rows[rows["key"].isna() & rows["context"].isin(["val", "test"]) & rows["metric"].isin(["acc", "loss"])]
    last = rows[rows["epoch"] == rows.groupby("run_id")["epoch"].transform("max")]
    last.groupby(["model.name", "optimizer.lr", "optimizer.name", "context", "metric"], observed=True)["value"].agg(
        ["count", "mean", "std"])


def _duckdb_baseline(campaign: Path) -> None:
    """DuckDB over the same per-run files: glob read_parquet (+ run.json for the hparams) + group by."""
    import duckdb

    runs = campaign / "runs"
    duckdb.connect().execute(f"""
        WITH r AS (SELECT run_id, hparams FROM read_json('{runs}/*/run.json')),
        t AS (SELECT split_part(filename, '/', -2) AS run_id, context, metric, arg_max(value, epoch) AS v
              FROM read_parquet('{runs}/*/trajectory.parquet', filename=true)
              WHERE key IS NULL AND context IN ('val', 'test') AND metric IN ('acc', 'loss') GROUP BY ALL)
        SELECT r.hparams."model.name", r.hparams."optimizer.lr", r.hparams."optimizer.name", context, metric,
               count(*), avg(v), stddev_samp(v)
        FROM t JOIN r USING (run_id) GROUP BY ALL""").fetchall()


def _duckdb_parquet_only(campaign: Path) -> None:
    """The trajectory half of (d) alone: glob read_parquet + group by, no run.json."""
    import duckdb

    duckdb.connect().execute(f"""
        SELECT split_part(filename, '/', -2) AS run_id, context, metric, arg_max(value, epoch) AS v
        FROM read_parquet('{campaign}/runs/*/trajectory.parquet', filename=true)
        WHERE key IS NULL AND context IN ('val', 'test') AND metric IN ('acc', 'loss') GROUP BY ALL""").fetchall()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many timings for (a), (b), (d)")
    parser.add_argument("--keep", type=Path, default=None, help="build (or reuse) the campaign here and keep it")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_report_"))
    if not (root / "runs").is_dir():
        start = time.perf_counter()
        make_campaign(root, args.runs, args.epochs)
        print(f"built {args.runs} runs x {args.epochs} epochs in {time.perf_counter() - start:.1f} s at {root}")
    runs = len(list((root / "runs").iterdir()))
    print(f"campaign {root}: {runs} runs")
    import duckdb  # noqa: F401 - imports are paid before timing, as in a started command
    import pandas  # noqa: F401

    from pab_campaign import cli  # noqa: F401

    _warm_page_cache(root)
    results: dict[str, float] = {}

    _timed("(a) cold report (no index)", lambda: _report(root), results, args.repeats,
           setup=lambda: shutil.rmtree(summary_dir(root), ignore_errors=True))
    peak_product = _peak_mib()
    _timed("(b) warm report (index present)", lambda: _report(root), results, args.repeats)
    _timed("(d) DuckDB glob read_parquet+group", lambda: _duckdb_baseline(root), results, args.repeats)
    _timed("(d') DuckDB parquet only, no run.json", lambda: _duckdb_parquet_only(root), results, args.repeats)
    _timed("(c) pandas baseline (tcbench-style)", lambda: _pandas_baseline(root), results)
    cold, warm, pandas_time, duck, duck_parquet = (results[k] for k in (
        "(a) cold report (no index)", "(b) warm report (index present)", "(c) pandas baseline (tcbench-style)",
        "(d) DuckDB glob read_parquet+group", "(d') DuckDB parquet only, no run.json"))
    print(f"\ncold / DuckDB   = {cold / duck:6.2f}  (target <= 1.5)")
    print(f"cold / DuckDB parquet only = {cold / duck_parquet:6.2f}")
    print(f"warm            = {warm:6.3f} s (target <= 0.5 s at 5,000 runs)")
    print(f"pandas / cold   = {pandas_time / cold:6.1f}x  (target >= 10x)")
    print(f"pandas / warm   = {pandas_time / warm:6.1f}x")
    print(f"peak RSS after the product's reports: {peak_product:.0f} MiB; overall {_peak_mib():.0f} MiB "
          "(target <= 2048)")
    if args.keep is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
