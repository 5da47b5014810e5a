"""Fuzz the analysis commands with hostile campaigns: a campaign from someone else is untrusted input.

    PYTHONPATH=. python scripts/fuzz_campaigns.py --minutes 5            # the full run; prints the figures
    PYTHONPATH=. python scripts/fuzz_campaigns.py --examples 3 --seed 1 --keep /tmp/fuzz

Hypothesis draws campaigns from the on-disk contract (`pab_campaign.store`): good runs written with
the project's own writer (run.json + trajectory.parquet), then damaged: odd run names, hyper-parameter
names and values, non-finite values, truncated, garbage or huge files, run.json naming another run
(clashing ids), plain files and dangling links in runs/, links inside the campaign and out of it
(a run directory, a file in a run, a figure or table in summary/, summary/ itself), FIFOs, garbage
run locks, analysis CSVs in summary/ with cells of the wrong kind (the page computes with them).
Every analysis command (`ls, properties, report, curves, audit, states, summarize, html, merge`,
`ls`, `report` and `properties` with `--json`, and two merges into one destination at once) runs
on each in a forked child of this process (the package imported once; a child is killed at its
timeout), and each must:

- exit 0 (with standard JSON on stdout for `--json`: no NaN or Infinity), or 1 with a listed reason
  (never `internal error`), or 2 with one line on stderr;
- print no traceback; finish before its timeout (no hang);
- create or change nothing outside the campaign's `summary/`, the cache ($XDG_CACHE_HOME, a temp
  directory) and the merge's destination: a sentinel tree (the target of every link out, and $HOME)
  and the working directory are compared before and after, as is the campaign outside summary/;
- count every intact run once: in the campaign's index, and in each merge's destination.

A failure is recorded with its kind, command and the damage that caused it; `--keep DIR` keeps each
failing campaign there to reproduce it. Damage that issue 21's other items own (SQL quoting, glob
characters, special files in the index, clashing index columns, the class heatmap, run locks) can be
left out with `--only-mine`; the suite's short run (tests/test_fuzz_campaigns.py) does so.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import stat
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import hypothesis
import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pab_campaign import store

COMMAND_TIMEOUT_S = 20.0
# Damage -> the item of issue 21 that makes the commands cope with it, for damage other engineers own.
OWNED_ELSEWHERE = {"sql-hparam": 1, "glob-name": 2, "fifo-trajectory": 4, "fifo-run-json": 4, "dev-zero-run-json": 4,
                   "clashing-hparam": 8, "nan-class-acc": 9, "garbage-lock": 12, "lock-directory": 12}
RUN_DAMAGE = ("truncate-trajectory", "truncate-run-json", "garbage-run-json", "wrong-types-run-json", "huge-run-json",
              "huge-numbers-run-json", "deep-run-json", "clashing-labels",
              "empty-trajectory", "garbage-trajectory", "link-file-out", "link-file-inside", "dangling-trajectory",
              "other-run-id", "fifo-in-run", "fifo-trajectory", "fifo-run-json",
              "dev-zero-run-json", "garbage-lock", "lock-directory", "nan-class-acc")
# Damage to the whole campaign; the hyper-parameter damage goes into every run (which stays intact).
CAMPAIGN_DAMAGE = ("run-link-out", "run-link-inside", "dangling-run-link", "plain-file-in-runs", "figure-link-out",
                   "figure-not-png", "table-link-out", "summary-link-out", "glob-name", "sql-hparam", "clashing-hparam",
                   "analysis-csv-cells")
# The analyses' files the page computes with, each with cells of the wrong kind (a text count, an
# infinite probability, a count past the float range), and the figures that make the page read them.
ANALYSIS_CSVS = {
    "states/selection.csv": "k,chosen\n2,True\n",
    "states/phases.csv": ("state,epochs,occupancy,runs,epoch_from,epoch_to,description\nzz,5,0.5,4,0,4,a\n"
                          "1,5,inf,4,5,9,b\n"),
    "states/transitions.csv": "from_state,to_state,occurrences,runs,probability,rank,feature,smd\n0,1,4,4,inf,1,f,zz\n",
    "audit.csv": ("group,metric,n,raw_rho,raw_ci_low,raw_ci_high,raw_p_adj,stage1,partial_rho,partial_ci_low,"
                  "partial_ci_high,partial_p_adj,verdict,is_loss_proxy,effect_class,correction,family_size,alpha,"
                  "diagnosis\nall,val/acc@1,1e400,0.5,0.1,0.8,0.04,PASS,zz,0.1,0.7,0.03,PASS,False,survives,holm,1,"
                  "x,d\n"),
    "audit_runs.csv": "run_id,model.name,val/acc@1,test/acc\na,mlp,inf,0.5\nb,mlp,zz,0.6\nc,cnn,3,0.7\n",
}
ANALYSIS_FIGURES = ("states/transitions.png", "audit/val_acc_at1.png")
ODD_NAMES = ("run with spaces", "ünïcødé-run", "it's", 'quo"te', "semi;colon", "dash--dash", "dollar$x", "-leading",
             "back\\slash", "x" * 200)
GLOB_NAMES = ("zz*", "x[b]", "q?")
HOSTILE_KEYS = ('run_id" FROM groups g; COPY (SELECT \'owned\' AS a) TO \'pwned.csv\'; SELECT $labels AS l --',
                'quo"te', "a'b", "semi;colon", "back\\slash", "k" * 10_000)
CLASHING_KEYS = ("status", "run_id", "host", "error", "val/acc@last")


@dataclass
class RunSpec:
    name: str
    lr: float
    seed: int
    status: str
    epochs: int
    special: list[float]  # values planted in val/odd (NaN, inf, near the float range's ends)
    width: int  # a hyper-parameter, past int64 in some runs (its column is then text)


@dataclass
class CampaignSpec:
    runs: list[RunSpec]
    run_damage: list[tuple[str, int]]  # (damage, index of the run it hits)
    campaign_damage: list[str]
    seed: int

    def damages(self) -> list[str]:
        return sorted({d for d, _ in self.run_damage} | set(self.campaign_damage))


def campaign_specs(only_mine: bool) -> st.SearchStrategy[CampaignSpec]:
    run_damage = [d for d in RUN_DAMAGE if not (only_mine and d in OWNED_ELSEWHERE)]
    campaign_damage = [d for d in CAMPAIGN_DAMAGE if not (only_mine and d in OWNED_ELSEWHERE)]
    value = st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e308, -1e308, 5e-324, -0.0, 0.5])
    run = st.builds(RunSpec, name=st.just(""), lr=st.sampled_from([0.1, 0.01, 1e-300]), seed=st.integers(0, 3),
                    status=st.sampled_from(["completed", "completed", "running", "failed", "diverged"]),
                    epochs=st.integers(1, 4), special=st.lists(value, max_size=2),
                    width=st.sampled_from([8, 16, 2**70, -(2**64)]))

    @st.composite
    def build(draw: st.DrawFn) -> CampaignSpec:
        runs = draw(st.lists(run, min_size=2, max_size=6))
        names = draw(st.lists(st.sampled_from(ODD_NAMES), max_size=2, unique=True))
        for index, spec in enumerate(runs):
            spec.name = names[index] if index < len(names) else f"r{index:02d}"
        hits = st.tuples(st.sampled_from(run_damage), st.integers(0, len(runs) - 1))
        return CampaignSpec(runs, draw(st.lists(hits, max_size=4, unique_by=lambda hit: hit[1])),
                            draw(st.lists(st.sampled_from(campaign_damage), max_size=3, unique=True)),
                            draw(st.integers(0, 2 ** 31 - 1)))

    return build()


# ---- building a campaign -----------------------------------------------------------------------
def write_good_run(campaign: Path, spec: RunSpec, rng: np.random.Generator, hparams: dict) -> Path:
    """One run as training writes it (the project's own writer): train/val/test loss and acc and
    val/class_acc per class over epochs 0..E."""
    directory = store.run_dir(campaign, spec.name)
    directory.mkdir(parents=True)
    buffer = store.TrajectoryBuffer()
    for epoch in range(spec.epochs + 1):
        for context in ("train", "val", "test"):
            buffer.add(epoch, context, "loss", float(rng.uniform(0.1, 2)))
            buffer.add(epoch, context, "acc", float(rng.uniform(0, 1)))
        for key in ("0", "1"):
            buffer.add(epoch, "val", "class_acc", float(rng.uniform(0, 1)), key)
        if epoch < len(spec.special):
            buffer.add(epoch, "val", "odd", spec.special[epoch])
    store.write_trajectory(directory, buffer.to_table())
    store.write_run_json(directory, store.RunRecord(
        run_id=spec.name, status=store.RunStatus(spec.status), campaign="fuzz", hparams=hparams, seed=spec.seed,
        started_at="2025-01-01T00:00:00", ended_at="2025-01-01T00:00:10", duration_s=10.0,
        epochs_done=spec.epochs, host="fuzzhost"))
    return directory


def _damage_run(damage: str, run: Path, sentinel: Path, other: str) -> None:
    trajectory, record = run / store.TRAJECTORY, run / store.RUN_JSON
    if damage == "truncate-trajectory":
        trajectory.write_bytes(trajectory.read_bytes()[: trajectory.stat().st_size // 2])
    elif damage == "truncate-run-json":
        record.write_bytes(record.read_bytes()[:40])
    elif damage == "garbage-run-json":
        record.write_bytes(b"\xff\xfe not json \x00")
    elif damage == "wrong-types-run-json":
        record.write_text(json.dumps({"run_id": 7, "status": ["completed"], "hparams": "lr=1"}))
    elif damage == "huge-run-json":
        data = json.loads(record.read_text())
        data["notes"] = "x" * 8_000_000
        record.write_text(json.dumps(data))
    elif damage == "huge-numbers-run-json":  # past what a float or int64 holds
        data = json.loads(record.read_text())
        data["epochs_done"], data["duration_s"] = 10**30, 10**400
        record.write_text(json.dumps(data))
    elif damage == "deep-run-json":  # deeper than the JSON parser recurses
        record.write_text('{"run_id": "x", "status": "completed", "notes": ' + "[" * 50_000 + "]" * 50_000 + "}")
    elif damage == "empty-trajectory":
        trajectory.write_bytes(b"")
    elif damage == "garbage-trajectory":
        trajectory.write_bytes(b"PAR1" + os.urandom(2000) + b"PAR1")
    elif damage == "link-file-out":
        (run / "notes.txt").symlink_to(sentinel / "secret.txt")
    elif damage == "link-file-inside":
        (run / "alias.parquet").symlink_to(store.TRAJECTORY)
    elif damage == "dangling-trajectory":
        trajectory.unlink()
        trajectory.symlink_to(sentinel / "missing.parquet")
    elif damage == "other-run-id":
        data = json.loads(record.read_text())
        data["run_id"] = other
        record.write_text(json.dumps(data))
    elif damage == "fifo-in-run":
        os.mkfifo(run / "pipe")
    elif damage == "fifo-trajectory":
        trajectory.unlink()
        os.mkfifo(trajectory)
    elif damage == "fifo-run-json":
        record.unlink()
        os.mkfifo(record)
    elif damage == "dev-zero-run-json":
        record.unlink()
        record.symlink_to("/dev/zero")
    elif damage == "garbage-lock":
        (run / "run.lock").write_bytes(b"\x00garbage")
    elif damage == "lock-directory":
        (run / "run.lock").mkdir()
    elif damage in ("nan-class-acc", "clashing-labels"):
        table = store.read_trajectory(run).to_pandas()
        if damage == "nan-class-acc":
            table.loc[table["metric"] == "class_acc", "value"] = float("nan")
        buffer = store.TrajectoryBuffer()
        for row in table.itertuples():
            buffer.add(row.epoch, row.context, row.metric, row.value, row.key)
        if damage == "clashing-labels":  # two series both labelled val/x/y
            buffer.extend(0, [("val/x", "y", None, 1.0), ("val", "x/y", None, 2.0)])
        store.write_trajectory(run, buffer.to_table())


def _damage_campaign(damage: str, campaign: Path, sentinel: Path, first: str) -> None:
    runs, summary = store.runs_dir(campaign), store.summary_dir(campaign)
    states = summary / "states"
    if damage in ("figure-link-out", "figure-not-png", "table-link-out") and not summary.is_symlink():
        states.mkdir(parents=True, exist_ok=True)
        if not (states / "selection.csv").exists():
            (states / "selection.csv").write_text("k,chosen\n2,True\n")
    if damage == "run-link-out":
        (runs / "evil").symlink_to(sentinel, target_is_directory=True)
    elif damage == "run-link-inside":
        (runs / "alias").symlink_to(first, target_is_directory=True)
    elif damage == "dangling-run-link":
        (runs / "gone").symlink_to(sentinel / "nowhere")
    elif damage == "plain-file-in-runs":
        (runs / "README").write_text("not a run")
    elif damage == "figure-link-out" and states.is_dir():
        (states / "leak.png").symlink_to(sentinel / "secret.txt")
    elif damage == "figure-not-png" and states.is_dir():
        (states / "fake.png").write_bytes(b"GIF89a not a png")
    elif damage == "table-link-out" and states.is_dir():
        (states / "phases.csv").unlink(missing_ok=True)  # analysis-csv-cells may have written one
        (states / "phases.csv").symlink_to(sentinel / "secret.csv")
    elif damage == "summary-link-out" and not summary.exists():
        summary.symlink_to(sentinel / "summary-target", target_is_directory=True)
    elif damage == "analysis-csv-cells" and not summary.is_symlink():
        from PIL import Image

        for name in (*ANALYSIS_CSVS, *ANALYSIS_FIGURES):  # never through a link another damage made
            path = summary / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if os.path.lexists(path):
                continue
            if name in ANALYSIS_CSVS:
                path.write_text(ANALYSIS_CSVS[name])
            else:
                Image.new("RGB", (4, 4), "white").save(path)
    elif damage == "glob-name":
        rng = np.random.default_rng(0)
        for name in GLOB_NAMES:
            write_good_run(campaign, RunSpec(name, 0.1, 9, "completed", 2, [], 8), rng,
                           {"optimizer.lr": 0.1, "seed": 9})


def build_campaign(spec: CampaignSpec, campaign: Path, sentinel: Path) -> list[str]:
    """Write the campaign of `spec` and damage it (one damage a run at most); returns the names of the
    runs left intact."""
    rng = np.random.default_rng(spec.seed)
    keys = [choices[spec.seed % len(choices)] for damage, choices in (("sql-hparam", HOSTILE_KEYS),
            ("clashing-hparam", CLASHING_KEYS)) if damage in spec.campaign_damage]  # one each, so that it is grouped by
    for index, run in enumerate(spec.runs):
        hostile = {key: f"v{(index >> i) % 2}" for i, key in enumerate(keys)}  # values that vary over the runs
        write_good_run(campaign, run, rng, {"optimizer.lr": run.lr, "seed": run.seed, "model.name": "mlp",
                                            "model.width": run.width, **hostile})
    hit = {index for _, index in spec.run_damage}
    for damage, index in spec.run_damage:
        other = spec.runs[(index + 1) % len(spec.runs)].name
        _damage_run(damage, store.run_dir(campaign, spec.runs[index].name), sentinel, other)
    for damage in spec.campaign_damage:
        _damage_campaign(damage, campaign, sentinel, spec.runs[0].name)
    return [run.name for index, run in enumerate(spec.runs) if index not in hit]


def make_sentinel(root: Path) -> Path:
    """Files every link out of a campaign points at; nothing may change them."""
    root.mkdir(parents=True)
    (root / "secret.txt").write_text("SECRET-KEY-MATERIAL")
    (root / "secret.csv").write_text("k,chosen\n99,True\n")
    (root / "summary-target").mkdir()
    (root / "nested").mkdir()
    (root / "nested" / "data.bin").write_bytes(b"\x00" * 64)
    return root


# ---- running commands --------------------------------------------------------------------------
@dataclass
class Outcome:
    code: int | None  # None: killed at the timeout
    stdout: str
    stderr: str


def start_forked(work: Callable[[], int], cwd: Path, env: dict[str, str], out: Path) -> int:
    """Fork a child that runs `work()` in `cwd` under `env`, its stdout/stderr in `out`.{1,2}."""
    pid = os.fork()
    if pid:
        return pid
    code = 70
    try:
        os.setpgid(0, 0)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        for fd, suffix in ((1, ".1"), (2, ".2")):
            handle = os.open(f"{out}{suffix}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(handle, fd)
            os.close(handle)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 (a test runner may have replaced the streams)
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        code = work()
    except BaseException:  # the child must never return into the fuzzer; a traceback is a finding
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code if isinstance(code, int) else 70)


def wait_forked(pid: int, out: Path, timeout: float) -> Outcome:
    """Wait for the child `pid` (killed with its process group after `timeout` s, or when this
    process is interrupted) and read what it printed."""
    deadline = time.monotonic() + timeout
    code: int | None = None
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                code = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
    finally:
        if code is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    text = [Path(f"{out}{s}").read_text(errors="replace") if Path(f"{out}{s}").exists() else "" for s in (".1", ".2")]
    return Outcome(code, *text)


def cli(argv: list[str]) -> Callable[[], int]:
    def work() -> int:
        from pab_campaign.cli import main

        return main(argv)
    return work


def count_runs(campaign: Path, report: Path) -> Callable[[], int]:
    """Write the ids of the runs the campaign's index holds with no reason to set them aside."""
    def work() -> int:
        from pab_campaign.analysis.campaign.campaign import open_campaign

        runs = open_campaign(campaign).runs
        report.write_text(json.dumps(runs.loc[runs["skip_reason"].isna(), "run_id"].tolist()))
        return 0
    return work


def commands(campaign: Path, first_run: Path, dst: Path) -> dict[str, list[str]]:
    c = str(campaign)
    return {
        "ls": ["ls", c], "properties": ["properties", c], "report": ["report", c],
        "curves": ["curves", c, "--metrics", "val/loss,val/acc,val/odd"],
        "audit": ["audit", c, "--metric", "val/acc,train/loss", "--baseline", "val/loss@1", "--target", "test/acc",
                  "--n-boot", "50"],
        "states": ["states", c, "--max-states", "2", "--restarts", "1", "--jobs", "1", "--selection-runs", "5"],
        "summarize": ["summarize", str(first_run)], "html": ["html", c],
        "merge": ["merge", "--src", c, "--dst", str(dst)],
        "ls --json": ["ls", c, "--json"], "report --json": ["report", c, "--json"],
        "properties --json": ["properties", c, "--json"],
    }


# ---- checking ----------------------------------------------------------------------------------
def snapshot(root: Path, skip: Path | None = None) -> dict[str, tuple]:
    """Every entry under `root` (links not followed): its type, size, mtime and link target."""
    found: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root):
        if skip is not None and Path(folder) == skip.parent:
            dirs[:] = [d for d in dirs if Path(folder, d) != skip]
            files = [f for f in files if Path(folder, f) != skip]
        for name in dirs + files:
            path = Path(folder, name)
            info = os.lstat(path)
            link = os.readlink(path) if stat.S_ISLNK(info.st_mode) else None
            size = None if stat.S_ISDIR(info.st_mode) else info.st_size
            found[str(path)] = (stat.S_IFMT(info.st_mode), size, info.st_mtime_ns if size is not None else None, link)
    return found


def changes(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    created = sorted(set(after) - set(before))
    changed = sorted(p for p in set(before) & set(after) if before[p] != after[p])
    removed = sorted(set(before) - set(after))
    return [f"created {p}" for p in created] + [f"changed {p}" for p in changed] + [f"removed {p}" for p in removed]


def judge(name: str, outcome: Outcome) -> tuple[str, str] | None:
    """(kind, detail) of what is wrong with a command's outcome, or None."""
    text = outcome.stdout + outcome.stderr
    errors = [line for line in outcome.stderr.splitlines() if line.strip()]
    if outcome.code is None:
        return "hang", f"no exit within {COMMAND_TIMEOUT_S:.0f} s"
    if "Traceback" in text:
        return "traceback", text[text.index("Traceback"):][-600:]
    if "internal error" in outcome.stderr:
        return "internal error", outcome.stderr.strip()[-400:]
    if outcome.code not in (0, 1, 2):
        return "bad exit code", f"exit {outcome.code}: {outcome.stderr.strip()[-300:]}"
    if outcome.code == 1 and not (name.startswith("merge") and "conflict" in outcome.stdout):
        return "exit 1 without a listed reason", text.strip()[-300:]
    if outcome.code == 2 and len(errors) != 1:
        return "exit 2 without one line", outcome.stderr.strip()[-400:]
    if name.endswith("--json") and outcome.code == 0:
        try:  # standard JSON: no NaN or Infinity tokens
            json.loads(outcome.stdout, parse_constant=lambda token: (_ for _ in ()).throw(ValueError(token)))
        except ValueError as exc:
            return "not standard JSON", f"{exc}: {outcome.stdout[:200]}"
    return None


@dataclass
class Tally:
    campaigns: int = 0
    commands: int = 0
    failures: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    found: list[dict] = field(default_factory=list)

    def fail(self, kind: str, command: str, spec: CampaignSpec, detail: str) -> None:
        self.failures[kind] += 1
        self.found.append({"kind": kind, "command": command, "damage": spec.damages(), "detail": detail})
        self.examples.setdefault(f"{kind} ({command})", f"damage {spec.damages()}: {detail}")


def fuzz_one(spec: CampaignSpec, tally: Tally, keep: Path | None = None) -> None:
    """Build one campaign from `spec`, run every command on it, and record what goes wrong."""
    base = Path(tempfile.mkdtemp(prefix="pab-fuzz-"))
    try:
        sentinel, home, work, cache = make_sentinel(base / "sentinel"), base / "home", base / "work", base / "cache"
        for folder in (home, work, cache):
            folder.mkdir()
        campaign, dst, dst2 = base / "campaigns" / "fuzz", base / "merged", base / "merged2"
        intact = build_campaign(spec, campaign, sentinel)
        env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(cache), "COLUMNS": "200", "NO_COLOR": "1"}
        env.pop("PAB_DEBUG", None)
        watched = {"sentinel": sentinel, "home": home, "work": work}
        before = {name: snapshot(root) for name, root in watched.items()}
        before["campaign"] = snapshot(campaign, skip=store.summary_dir(campaign))
        failed = len(tally.found)
        first = store.run_dir(campaign, spec.runs[0].name)
        for name, argv in commands(campaign, first, dst).items():
            pid = start_forked(cli(argv), work, env, base / name)
            tally.commands += 1
            problem = judge(name, wait_forked(pid, base / name, COMMAND_TIMEOUT_S))
            if problem:
                tally.fail(problem[0], name, spec, problem[1])
        merge = ["merge", "--src", str(campaign), "--dst", str(dst2)]
        pids = [start_forked(cli(merge), work, env, base / f"merge2-{i}") for i in range(2)]
        for i, pid in enumerate(pids):
            tally.commands += 1
            problem = judge("merge (concurrent)", wait_forked(pid, base / f"merge2-{i}", COMMAND_TIMEOUT_S))
            if problem:
                tally.fail(problem[0], "merge (concurrent)", spec, problem[1])
        _check_counts(spec, tally, campaign, [dst, dst2], intact, work, env, base)
        after = {name: snapshot(root) for name, root in watched.items()}
        after["campaign"] = snapshot(campaign, skip=store.summary_dir(campaign))
        for name in before:
            diff = changes(before[name], after[name])
            if diff:
                tally.fail("wrote outside", name, spec, "; ".join(diff[:5]))
        tally.campaigns += 1
        print(f"campaign {tally.campaigns}: damage {spec.damages()}: {len(tally.found) - failed} failures",
              file=sys.stderr, flush=True)
        if keep is not None and len(tally.found) > failed:
            target = keep / f"campaign-{tally.campaigns:04d}"
            shutil.copytree(base, target, symlinks=True, ignore=_fifos)
            (target / "spec.json").write_text(json.dumps(tally.found[failed:], indent=2, default=str))
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _fifos(folder: str, names: list[str]) -> list[str]:
    return [n for n in names if stat.S_ISFIFO(os.lstat(os.path.join(folder, n)).st_mode)]


def _check_counts(spec: CampaignSpec, tally: Tally, campaign: Path, destinations: list[Path], intact: list[str],
                  work: Path, env: dict[str, str], base: Path) -> None:
    """Every intact run once in the campaign's index and in each merge destination."""
    report = base / "counted.json"
    pid = start_forked(count_runs(campaign, report), work, env, base / "count")
    outcome = wait_forked(pid, base / "count", COMMAND_TIMEOUT_S)
    if outcome.code != 0 or not report.exists():
        tally.fail("index unreadable", "count", spec, (outcome.stderr or "no exit")[-300:])
    else:
        counted = Counter(json.loads(report.read_text()))
        wrong = [name for name in intact if counted[name] != 1]
        if wrong:
            tally.fail("run not counted once", "index", spec, f"{wrong[:3]} counted {[counted[n] for n in wrong[:3]]}")
    for dst in destinations:
        names = os.listdir(store.runs_dir(dst)) if store.runs_dir(dst).is_dir() else []
        copies = Counter(name.split("~")[0] for name in names)
        wrong = [name for name in intact if copies[name] != 1]
        if wrong:
            tally.fail("merge lost or doubled a run", f"merge into {dst.name}", spec,
                       f"{wrong[:3]} kept {[copies[n] for n in wrong[:3]]} times: {sorted(names)[:8]}")


def run(examples: int, seed: int | None, only_mine: bool, minutes: float | None = None,
        keep: Path | None = None) -> Tally:
    """Fuzz `examples` campaigns (or until `minutes` have passed); seeded runs are derandomised."""
    preload()
    tally = Tally()
    stop = time.monotonic() + minutes * 60 if minutes else None

    class TimeUp(Exception):
        pass

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              print_blob=False, phases=[Phase.generate])  # failures are counted, never shrunk
    @given(campaign_specs(only_mine))
    def one(spec: CampaignSpec) -> None:
        if stop is not None and time.monotonic() > stop:
            raise TimeUp
        fuzz_one(spec, tally, keep)

    with contextlib.suppress(TimeUp):
        (one if seed is None else hypothesis.seed(seed)(one))()
    return tally


def preload() -> None:
    """Import what the commands use once, before the children are forked (each then starts at once)."""
    import matplotlib

    matplotlib.use("Agg")
    import duckdb  # noqa: F401
    import hmmlearn.hmm  # noqa: F401
    import jinja2  # noqa: F401
    import matplotlib.pyplot
    import pandas  # noqa: F401

    import pab_campaign.analysis.campaign.campaign
    import pab_campaign.analysis.mbe.audit
    import pab_campaign.analysis.page.render
    import pab_campaign.analysis.phases.report
    import pab_campaign.analysis.summary.report
    import pab_campaign.cli  # noqa: F401


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000, help="campaigns to try at most (default 10000)")
    parser.add_argument("--minutes", type=float, default=None, help="stop drawing campaigns after this long")
    parser.add_argument("--seed", type=int, default=None, help="derandomised, reproducible run")
    parser.add_argument("--only-mine", action="store_true", help="leave out damage other items of issue 21 own")
    parser.add_argument("--keep", type=Path, default=None, help="copy each failing campaign into this folder")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # children are killed on the way out
    started = time.monotonic()
    tally = run(args.examples, args.seed, args.only_mine, args.minutes, args.keep)
    print(f"campaigns tried: {tally.campaigns}; commands run: {tally.commands}; failures: "
          f"{sum(tally.failures.values())} in {time.monotonic() - started:.0f} s")
    for kind, count in tally.failures.most_common():
        print(f"  {kind}: {count}")
    for key, example in sorted(tally.examples.items()):
        print(f"- {key}: {example[:500]}")
    return 1 if tally.failures else 0


if __name__ == "__main__":
    sys.exit(main())
