"""Chaos test: random SIGKILLs during training, report, curves and merge, and two sweeps at once on one
campaign; then every completed run must equal its uninterrupted reference, value for value, and no
run may ever have gone backwards.

    PYTHONPATH=. python scripts/chaos.py                 # 20 rounds
    PYTHONPATH=. python scripts/chaos.py --rounds 5 --seed 3 --keep /tmp/chaos

A small grid (digits MLP, 10 epochs, seeds 0..11) is trained once without interruption as the
reference. Each round then does one of these to the chaos campaign, killing at a random moment of
the process's expected life (the last measured duration of one of its kind left to finish); a sweep
takes 4 random seeds of the grid, so that it meets new, half-done and finished runs alike:

- `sweep`: launch it (basic launcher) and SIGKILL it mid-run;
- `local`: launch it on the local launcher (warm fork server) and SIGKILL the launching process;
  its runs go on as orphans while the next rounds launch again (the run lock keeps them apart);
- `concurrent`: launch the same sweep twice at once, killing one of the two (or neither);
- `report`, `curves`: run the analysis command and SIGKILL it (or let it finish);
- `merge`: merge the campaign into a second one and SIGKILL the merge (or let it finish).

A watcher polls every run.json all along and records any run whose epochs go down or that leaves
`completed`. At the end the grid is launched once more to finish every run, the orphans are waited
for, report / curves / merge run to their end, and then: every completed run of the campaign (and
of the merge destination) is compared with the reference's, and no stale temp file may be left.
Prints rounds, kills, runs compared, mismatches and runs gone backwards; exits 1 unless the last
two are 0.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from pab_campaign.errors import StoreError
from pab_campaign.store import iter_run_dirs, read_run_json, read_trajectory, runs_dir, summary_dir

REPO = Path(__file__).resolve().parents[1]
GRID = ["model=mlp", "optimizer.lr=0.05", "train.epochs=10", "tracking=default", "checkpoint.every=2",
        "runtime.verbose=false"]
SEEDS = range(12)
PER_SWEEP = 4
ACTIONS = ("sweep", "sweep", "local", "concurrent", "report", "curves", "merge")
KEY = ["epoch", "context", "metric", "key"]


def environment() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}


def sweep_argv(campaign: Path, seeds: list[int], *extra: str) -> list[str]:
    return [sys.executable, "-m", "pab_campaign", "-m", f"campaign.root={campaign.parent}",
            f"campaign.name={campaign.name}", *GRID, f"seed={','.join(map(str, seeds))}", *extra]


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "pab_campaign.cli", *args]


class Chaos:
    """The campaigns, the counters and the watcher of one chaos session."""

    def __init__(self, work: Path, seed: int) -> None:
        self.work, self.rng = work, random.Random(seed)
        self.reference, self.campaign, self.merged = work / "reference", work / "chaos", work / "merged"
        self.kills = 0
        # Expected seconds a process of each kind lives (updated when one is left to finish).
        self.expected = {"sweep": 10.0, "report": 3.0, "curves": 4.0, "merge": 2.0}
        self.backwards: list[str] = []
        self.seen: dict[str, tuple[str, int]] = {}
        self.stop = threading.Event()

    # ---- processes ---------------------------------------------------------------------------
    def start(self, argv: list[str]) -> subprocess.Popen:
        return subprocess.Popen(argv, cwd=REPO, env=environment(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)

    def kill_later(self, process: subprocess.Popen, kind: str) -> None:
        """SIGKILL `process` (only that process, by its pid) at a random moment of its expected life
        (the last measured duration of a `kind` process that was left to finish), if still running."""
        started = time.monotonic()
        deadline = started + self.rng.uniform(0.05, 0.8) * self.expected[kind]
        while time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.02)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            self.kills += 1
        else:
            self.expected[kind] = 0.5 * self.expected[kind] + 0.5 * (time.monotonic() - started)
        process.wait()

    def finish(self, process: subprocess.Popen, timeout: float = 600) -> int:
        return process.wait(timeout=timeout)

    # ---- rounds ------------------------------------------------------------------------------
    def seeds(self) -> list[int]:
        """The seeds of one sweep: a random few of the grid's, so that rounds meet new, half-done and
        finished runs alike."""
        return sorted(self.rng.sample(list(SEEDS), PER_SWEEP))

    def round(self, action: str) -> None:
        if action == "sweep":
            self.kill_later(self.start(sweep_argv(self.campaign, self.seeds())), "sweep")
        elif action == "local":
            self.kill_later(self.start(sweep_argv(self.campaign, self.seeds(), "hydra/launcher=local")), "sweep")
        elif action == "concurrent":
            seeds = self.seeds()
            first = self.start(sweep_argv(self.campaign, seeds))
            time.sleep(self.rng.uniform(0.0, 3.0))
            second = self.start(sweep_argv(self.campaign, seeds))
            victim, other = (first, second) if self.rng.random() < 0.5 else (second, first)
            if self.rng.random() < 0.7:
                self.kill_later(victim, "sweep")
            self.finish(other)
            victim.wait()
        elif action in ("report", "curves"):
            extra = ["--metrics", "val/acc"] if action == "curves" else []
            self.kill_later(self.start(cli_argv(action, str(self.campaign), *extra)), action)
        else:
            self.kill_later(self.start(cli_argv("merge", "--src", str(self.campaign), "--dst", str(self.merged))),
                            "merge")

    # ---- the watcher -------------------------------------------------------------------------
    def watch(self) -> None:
        while not self.stop.is_set():
            for directory in iter_run_dirs(self.campaign):
                try:
                    record = read_run_json(directory)
                except StoreError:
                    continue
                now = (str(record.status), record.epochs_done)
                before = self.seen.get(directory.name)
                if before and (now[1] < before[1] or (before[0] == "completed" and now[0] != "completed")):
                    self.backwards.append(f"{directory.name}: {before} -> {now}")
                self.seen[directory.name] = now
            time.sleep(0.05)

    # ---- the end -----------------------------------------------------------------------------
    def settle(self) -> None:
        """Finish every run (waiting out orphans of killed local sweeps), then let every command run."""
        for _ in range(40):
            self.finish(self.start(sweep_argv(self.campaign, list(SEEDS))))
            records = [read_run_json(d) for d in iter_run_dirs(self.campaign)]
            if len(records) == len(SEEDS) and all(r.status == "completed" for r in records) and not list(
                    runs_dir(self.campaign).glob("*/run.lock")):
                break
            time.sleep(3)
        for argv in (cli_argv("report", str(self.campaign)), cli_argv("curves", str(self.campaign)),
                     cli_argv("merge", "--src", str(self.campaign), "--dst", str(self.merged)),
                     cli_argv("ls", str(self.merged))):
            self.finish(self.start(argv))

    def compare(self) -> tuple[int, list[str]]:
        """Runs compared with the reference, and the mismatches."""
        reference = {d.name: d for d in iter_run_dirs(self.reference)}
        compared, mismatches = 0, []
        for campaign in (self.campaign, self.merged):
            for directory in iter_run_dirs(campaign):
                try:
                    record = read_run_json(directory)
                except StoreError as exc:
                    mismatches.append(f"{directory}: {exc}")
                    continue
                if record.status != "completed":
                    if campaign == self.campaign:
                        mismatches.append(f"{directory}: {record.status} after the final sweep")
                    continue
                compared += 1
                problem = same_trajectory(directory, reference.get(directory.name.split("~")[0]))
                if problem:
                    mismatches.append(f"{directory}: {problem}")
        for folder in (summary_dir(self.campaign), runs_dir(self.campaign), runs_dir(self.merged)):
            mismatches += [f"left behind: {p}" for p in folder.glob(".*")] if folder.is_dir() else []
        return compared, mismatches


def same_trajectory(directory: Path, reference: Path | None) -> str | None:
    """None when `directory`'s trajectory equals `reference`'s row for row, value for value."""
    if reference is None:
        return "no reference run of this id"
    got, want = (read_trajectory(d).to_pandas().astype({"context": str, "metric": str, "key": object})
                 .sort_values(KEY, ignore_index=True) for d in (directory, reference))
    if got.duplicated(KEY).any():
        return "an epoch recorded twice"
    if not got[KEY].astype(str).equals(want[KEY].astype(str)):
        return f"rows differ ({len(got)} vs {len(want)} rows)"
    if not got["value"].equals(want["value"]):  # exact, NaN equal to NaN
        return "values differ"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="work here (and keep it) instead of a temp dir")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="pab_chaos_"))
    work.mkdir(parents=True, exist_ok=True)
    chaos = Chaos(work, args.seed)
    started = time.monotonic()
    if chaos.finish(chaos.start(sweep_argv(chaos.reference, list(SEEDS)))) != 0:
        sys.exit("chaos: the reference sweep failed")
    watcher = threading.Thread(target=chaos.watch, daemon=True)
    watcher.start()
    for number in range(1, args.rounds + 1):
        action = "sweep" if number <= 2 else chaos.rng.choice(ACTIONS)  # something to analyse and merge
        chaos.round(action)
        print(f"round {number:2d}: {action:10s} kills so far {chaos.kills}", flush=True)
    chaos.settle()
    chaos.stop.set()
    watcher.join()
    compared, mismatches = chaos.compare()
    for line in mismatches + chaos.backwards:
        print(f"  {line}")
    print(f"rounds {args.rounds}, kills {chaos.kills}, runs compared {compared}, mismatches {len(mismatches)}, "
          f"runs gone backwards {len(chaos.backwards)} ({time.monotonic() - started:.0f} s, work dir {work})")
    if args.keep is None and not mismatches and not chaos.backwards:
        shutil.rmtree(work)
    sys.exit(1 if mismatches or chaos.backwards else 0)


if __name__ == "__main__":
    main()
