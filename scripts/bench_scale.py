"""Scale benchmark of issue 27: every row of its table, each command timed as a whole process beside
DuckDB doing the same job in its own process, with each process's peak resident memory.

    python scripts/bench_scale.py --runs 2000 --keep /tmp/scale2000     # build once, reuse later
    python scripts/bench_scale.py                                        # 50,000 runs x 100 epochs
    python scripts/bench_scale.py --runs 5000 --skip html,audit,states   # leave the slow rows out

The synthetic campaign is written once with the project's own writer (`store.write_run_json`,
`store.write_trajectory`, through `bench_report.make_campaign`, in a child process) and reused when `--keep` names a
folder that holds one. Each row is the median of `--repeats` whole-process runs (`pab-campaign ...`
as a user starts it, output discarded), and its DuckDB contender runs in a fresh `python -c`
process too, so both pay their imports (the package byte-compiled first, as an installed wheel
is). Peak RSS is the child's own (`os.wait4`). The machine's load average is printed before and
after: on a shared machine read the ratios, not the seconds.
"""
from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYTHON = sys.executable
CLI = [PYTHON, "-m", "pab_campaign.cli"]

# DuckDB contenders, each a whole `python -c` process; {runs} is the campaign's runs/ folder.
DUCK_TRAJECTORIES = """
import duckdb
duckdb.connect().execute('''
    SELECT context, metric, count(*), avg(v), stddev_samp(v) FROM (
      SELECT split_part(filename, '/', -2) AS run_id, context, metric, arg_max(value, epoch) AS v
      FROM read_parquet('{runs}/*/trajectory.parquet', filename=true)
      WHERE key IS NULL AND context IN ('val', 'test') AND metric IN ('acc', 'loss') GROUP BY ALL)
    GROUP BY ALL''').fetchall()
"""
DUCK_WITH_RUN_JSON = """
import duckdb
duckdb.connect().execute('''
    WITH r AS (SELECT run_id, hparams FROM read_json('{runs}/*/run.json')),
    t AS (SELECT split_part(filename, '/', -2) AS run_id, context, metric, arg_max(value, epoch) AS v
          FROM read_parquet('{runs}/*/trajectory.parquet', filename=true)
          WHERE key IS NULL AND context IN ('val', 'test') AND metric IN ('acc', 'loss') GROUP BY ALL)
    SELECT r.hparams."model.name", r.hparams."optimizer.lr", r.hparams."optimizer.name", context, metric,
           count(*), avg(v), stddev_samp(v)
    FROM t JOIN r USING (run_id) GROUP BY ALL''').fetchall()
"""
DUCK_INDEX_BUILD = """
import duckdb
con = duckdb.connect()
con.execute('''
    COPY (SELECT split_part(filename, '/', -2) AS run_id, context, metric, max(epoch) AS last_epoch,
                 arg_max(value, epoch) AS last
          FROM read_parquet('{runs}/*/trajectory.parquet', filename=true) WHERE key IS NULL GROUP BY ALL)
    TO '{tmp}/duck_scalars.parquet' (FORMAT parquet)''')
con.execute('''COPY (SELECT * FROM read_json('{runs}/*/run.json')) TO '{tmp}/duck_runs.parquet' (FORMAT parquet)''')
"""
DUCK_CURVES = """
import duckdb
duckdb.connect().execute('''
    WITH r AS (SELECT run_id, hparams FROM read_json('{runs}/*/run.json')),
    t AS (SELECT split_part(filename, '/', -2) AS run_id, epoch, context, metric, value
          FROM read_parquet('{runs}/*/trajectory.parquet', filename=true)
          WHERE key IS NULL AND context IN ('val', 'test') AND metric IN ('acc', 'loss'))
    SELECT r.hparams."model.name", r.hparams."optimizer.lr", r.hparams."optimizer.name", context, metric, epoch,
           count(*), avg(value), stddev_samp(value)
    FROM t JOIN r USING (run_id) GROUP BY ALL''').fetchall()
"""


def run_child(argv: list[str], timeout: float) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB, exit code) of one child process, its output discarded."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = start + timeout
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            child.kill()
            pid, status, usage = os.wait4(child.pid, 0)
            break
        time.sleep(0.005)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    error = child.stderr.read().decode(errors="replace").strip() if child.stderr else ""
    if child.returncode != 0:
        print(f"    ! {' '.join(argv[-6:])[:100]} exited {child.returncode}: {error.splitlines()[-1:] or ''}")
    return wall, usage.ru_maxrss / 1024, child.returncode


def median_of(argv: list[str], repeats: int, timeout: float, setup=lambda: None) -> tuple[float, float]:
    """Median wall seconds and the largest peak RSS (MiB) of `repeats` runs, each after `setup()`."""
    walls, peaks = [], []
    for _ in range(repeats):
        setup()
        wall, peak, _ = run_child(argv, timeout)
        walls.append(wall)
        peaks.append(peak)
    return statistics.median(walls), max(peaks)


def paired(ours: list[str], theirs: list[str], repeats: int, timeout: float,
           setup=lambda: None) -> tuple[tuple[float, float], tuple[float, float]]:
    """Medians and peaks of `ours` and `theirs` run alternately (each of ours after `setup()`), so
    that both meet the same load on a shared machine."""
    runs: dict[int, list[tuple[float, float, int]]] = {0: [], 1: []}
    for _ in range(repeats):
        setup()
        runs[0].append(run_child(ours, timeout))
        runs[1].append(run_child(theirs, timeout))
    return tuple((statistics.median(w for w, _, _ in runs[k]), max(p for _, p, _ in runs[k]))  # type: ignore[return-value]
                 for k in (0, 1))


def duck(script: str, root: Path, tmp: Path) -> list[str]:
    return [PYTHON, "-c", script.format(runs=root / "runs", tmp=tmp)]


def row(label: str, ours: tuple[float, float], target: str, base: tuple[float, float] | None = None) -> None:
    """One line of the table: our median and peak, the ratio to DuckDB's (when it has one), the target."""
    ratio = f"{ours[0] / base[0]:6.2f}x DuckDB ({base[0]:6.2f} s, {base[1]:5.0f} MiB)" if base else " " * 37
    print(f"{label:<44} {ours[0]:7.2f} s {ours[1]:6.0f} MiB  {ratio}  target {target}", flush=True)


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def drop_index(root: Path) -> None:
    shutil.rmtree(root / "summary", ignore_errors=True)


def drop_curve_aggregates(root: Path) -> None:
    """Remove the curve aggregates kept beside the index: the next `curves` computes them again."""
    (root / "summary" / "curve_aggregates.parquet").unlink(missing_ok=True)


def touch_runs(root: Path, count: int) -> None:
    """Rewrite the trajectory of `count` runs (same bytes, new mtime): a refresh must read them again."""
    for directory in sorted((root / "runs").iterdir())[:count]:
        path = directory / "trajectory.parquet"
        os.utime(path, ns=(time.time_ns(), time.time_ns()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3, help="median of this many runs per warm row")
    parser.add_argument("--keep", type=Path, default=None, help="build (or reuse) the campaign here and keep it")
    parser.add_argument("--skip", default="",
                        help="rows to leave out, comma-separated: cold,cold-report,curves,html,audit,states")
    parser.add_argument("--timeout", type=float, default=900, help="seconds one child may run")
    args = parser.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_scale_"))
    if not (root / "runs").is_dir():
        start = time.perf_counter()
        # In a child: this process stays small, so that its children's peak RSS (which counts what
        # they held when forked from it) is their own.
        subprocess.run([PYTHON, "-c", f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); "
                        f"from bench_report import make_campaign; from pathlib import Path; "
                        f"make_campaign(Path({str(root)!r}), {args.runs}, {args.epochs})"], check=True)
        print(f"built {args.runs} runs x {args.epochs} epochs in {time.perf_counter() - start:.0f} s at {root}")
    # The package byte-compiled, as pip leaves an installed wheel: where PYTHONDONTWRITEBYTECODE is set
    # (as on the development machine), every process would otherwise compile it from source (50 ms).
    compileall.compile_dir(Path(__file__).resolve().parent.parent / "pab_campaign", quiet=1)
    runs = sum(1 for _ in (root / "runs").iterdir())
    tmp = Path(tempfile.mkdtemp(prefix="bench_scale_duck_"))
    print(f"campaign {root}: {runs} runs; load average {load()} on {os.cpu_count()} cores")
    for directory in (root / "runs").iterdir():  # the page cache, warmed for every contender alike
        for name in ("run.json", "trajectory.parquet"):
            (directory / name).read_bytes()
    r, n, t = args.repeats, args.timeout, tmp
    c = str(root)

    ours, theirs = paired([*CLI, "--help"], [PYTHON, "-c", "import duckdb"], r, n)
    row("--help (vs python -c 'import duckdb')", ours, "fast", theirs)
    if "cold" not in skip:
        ours, theirs = paired([*CLI, "ls", c], duck(DUCK_INDEX_BUILD, root, t), 1, n, setup=lambda: drop_index(root))
        row(f"cold index build (ls, no index) @{runs}", ours, "<= 1.0x DuckDB; <= 1.5 GB at 50k", theirs)
    if "cold" not in skip and "cold-report" not in skip:
        ours, theirs = paired([*CLI, "report", c], duck(DUCK_WITH_RUN_JSON, root, t), r, n,
                              setup=lambda: drop_index(root))
        row(f"cold report (no index) @{runs}", ours, "<= 0.6x DuckDB (at 2k)", theirs)
    median_of([*CLI, "report", c], 1, n)  # the index, built for the warm rows
    for command in ("ls", "report", "properties"):
        ours, theirs = paired([*CLI, command, c], duck(DUCK_TRAJECTORIES, root, t), r, n)
        row(f"warm {command} @{runs}", ours, "<= 0.4 s and <= 1.0x DuckDB (2k); <= 1 s (50k)", theirs)
    row(f"refresh after 10 runs changed (report) @{runs}",
        median_of([*CLI, "report", c], r, n, setup=lambda: touch_runs(root, 10)), "<= 1 s + those 10 runs")
    if "curves" not in skip:
        curves = [*CLI, "curves", c, "--contexts", "val", "test", "--metrics", "acc", "loss", "--output-folder", str(t)]
        median_of(curves, 1, n)  # trajectories.parquet and the curve aggregates, built once
        ours, theirs = paired(curves, duck(DUCK_CURVES, root, t), r, n)
        row(f"warm curves (4 metrics, grouped) @{runs}", ours, "<= 3 s, <= 1 GB at 50k", theirs)
        row(f"curves, aggregates computed (first call) @{runs}",
            median_of(curves, r, n, setup=lambda: drop_curve_aggregates(root)), "what warm curves saves")
    if "html" not in skip:
        page = t / "page.html"
        row(f"html @{runs}", median_of([*CLI, "html", c, "--out", str(page)], 1, n), "<= 60 s at 50k")
        if page.exists():
            print(f"    page size {page.stat().st_size / 1e6:.2f} MB")
    if "audit" not in skip:
        row(f"audit --all-metrics @{runs}", median_of(
            [*CLI, "audit", c, "--all-metrics", "--baseline", "val/loss@10", "--target", "test/acc", "--no-plots",
             "--output-folder", str(t)], 1, n), "<= 60 s at 50k")
    if "states" not in skip:
        row(f"states (subsampled selection) @{runs}", median_of(
            [*CLI, "states", c, "--metrics", "val/loss", "val/acc", "train/loss", "--no-plots", "--output-folder",
             str(t)], 1, n), "<= 300 s at 50k")
    print(f"load average after: {load()}")
    shutil.rmtree(tmp, ignore_errors=True)
    if args.keep is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
