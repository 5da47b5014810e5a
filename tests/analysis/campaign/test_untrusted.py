"""A campaign from someone else is untrusted input: hostile hyper-parameter names never reach SQL or
a file name unbounded, paths are never read as patterns, special files never hang or exhaust a
reader, and a hyper-parameter named like an index column is neither dropped nor pooled."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pab_campaign.analysis.campaign import index
from pab_campaign.analysis.campaign.campaign import open_campaign, properties
from pab_campaign.analysis.summary.report import build_curves, build_report, write_curves, write_report
from pab_campaign.store import MAX_RUN_JSON_BYTES, runs_dir
from tests.helpers import command_env, write_run

INJECTION = "run_id\" FROM groups g; COPY (SELECT 'owned' AS a) TO 'pwned.csv'; SELECT $labels AS l --"
HOSTILE = [INJECTION, 'a"b', "it's", "x; DROP TABLE traj; --", "$1 $ids", "back\\slash\\", "nul\0byte", "k" * 10240,
           "$\\frac$", "../../escape"]
# Names of the index's own columns (and of report columns) used as hyper-parameter names.
CLASHING = ["status", "run_id", "host", "campaign", "error", "val/acc@last", "runs", "label", "duration_s"]
# Hostile names a command line can carry (no NUL), grouped by explicitly; `html` groups by its own choice.
GROUPBY = ["--groupby", INJECTION, 'a"b', "it's", "x; DROP TABLE traj; --", "back\\slash\\"]
COMMANDS = [
    ["ls"], ["properties"], ["report", *GROUPBY], ["curves", "--metrics", "val/acc", *GROUPBY],
    ["audit", "--metric", "test/acc@3", "--baseline", "val/loss@3", "--target", "val/acc", "--n-boot", "50",
     "--groupby", INJECTION],
    ["states", "--metrics", "val/loss", "val/acc", "--max-states", "2", "--restarts", "1", "--jobs", "1", "--no-plots",
     *GROUPBY],
    ["html"],
]


def _cli(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pab_campaign.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=command_env(XDG_CACHE_HOME=str(cwd / "cache")))


def _tree(root: Path, campaign: Path) -> set[Path]:
    """Every path under `root`, except the campaign's summary/ (where analysis writes)."""
    summary = campaign / "summary"
    return {p for p in root.rglob("*") if summary not in p.parents and p != summary}


def _assert_clean(result: subprocess.CompletedProcess, what: str) -> None:
    assert result.returncode in (0, 1, 2), f"{what}: exit {result.returncode}"
    assert "Traceback" not in result.stderr + result.stdout and "internal error" not in result.stderr, \
        f"{what}: {result.stderr[-2000:]}"


def _hostile_campaign(campaign: Path, names: list[str], runs: int = 8) -> pd.DataFrame:
    """`runs` runs; hyper-parameter k of `names` is 'v<bit k % 3 of the run index>', so three of them
    split the runs into 8 groups and the others restate those. Returns the values written (one row
    per run, indexed by run id: the hyper-parameters, val/acc at the last epoch)."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(runs):
        hparams = {name: f"v{(i >> (k % 3)) & 1}" for k, name in enumerate(names)}
        values = {(c, m): list(rng.uniform(0, 1, 4)) for c in ("train", "val", "test") for m in ("acc", "loss")}
        write_run(campaign, f"r{i}", {**hparams, "seed": i}, values,
                  keyed={("val", "class_acc", "0"): list(rng.uniform(0, 1, 4))})
        rows.append({**hparams, "val/acc": values[("val", "acc")][-1]})
    return pd.DataFrame(rows, index=[f"r{i}" for i in range(runs)])


def test_hostile_hyperparameter_names_reach_no_sql_and_no_file_outside_summary(tmp_path):
    """The SQL-injection name of the issue (and quotes, semicolons, `--`, `$`, backslashes, NUL, a
    10 kB name) through every command that builds SQL: each exits cleanly, nothing appears outside
    the campaign's summary/ (no pwned.csv in the working directory), every name is kept."""
    campaign = tmp_path / "camp"
    _hostile_campaign(campaign, HOSTILE)
    before = _tree(tmp_path, campaign)
    for command in COMMANDS:
        result = _cli([command[0], str(campaign), *command[1:]], cwd=tmp_path)
        _assert_clean(result, command[0])
        assert result.returncode == 0, f"{command[0]}: {result.stderr[-2000:]}"
    after = _tree(tmp_path, campaign)
    assert not {p for p in after - before if tmp_path / "cache" not in p.parents and p != tmp_path / "cache"}
    assert not list(tmp_path.rglob("pwned.csv")) and not list(Path.cwd().glob("pwned.csv"))
    assert all(len(p.name) < 256 for p in (campaign / "summary").rglob("*"))


def test_reports_grouped_by_hostile_names_match_pandas(tmp_path):
    """Grouped by every hostile name at once (in-process, so NUL and the 10 kB name are groupby keys
    too): the groups and means equal pandas' over the values written, and the file names stay short."""
    campaign = tmp_path / "camp"
    written = _hostile_campaign(campaign, HOSTILE)
    opened = open_campaign(campaign)
    assert sorted(opened.hparam_names) == sorted([*HOSTILE, "seed"])
    report = build_report(opened, groupby=HOSTILE, metrics=["val/acc"])
    assert report.groupby == HOSTILE
    expected = written.groupby(HOSTILE)["val/acc"].mean().sort_index()
    got = report.summary.set_index(HOSTILE)["val/acc.mean"].sort_index()
    assert len(got) == 8 and np.allclose(got.to_numpy(), expected.to_numpy())
    path = write_report(opened, report, "last")
    groupby, curves = build_curves(opened, groupby=HOSTILE, metrics=["val/acc"])
    assert groupby == HOSTILE and len(curves.drop_duplicates(HOSTILE)) == 8
    last = curves[curves["epoch"] == 3].set_index(HOSTILE)["mean"].sort_index()
    assert np.allclose(last.to_numpy(), expected.to_numpy())
    parquet, png = write_curves(opened, groupby, curves)
    for output in (path, parquet, png):
        assert output.parent == campaign / "summary" and output.exists() and len(output.name) < 200


def test_a_hyperparameter_named_like_an_index_column_is_kept_apart(tmp_path):
    """Hyper-parameters called status, run_id, host, campaign, error, val/acc@last, runs, label and
    duration_s are listed, grouped by with their plain names, and never pooled: the index's own
    status, run ids and metrics stay what the run files say."""
    campaign = tmp_path / "camp"
    written = _hostile_campaign(campaign, CLASHING)
    opened = open_campaign(campaign)
    assert sorted(opened.hparam_names) == sorted([*CLASHING, "seed"])
    assert set(opened.runs["status"]) == {"completed"} and sorted(opened.runs["run_id"]) == sorted(written.index)
    rows = {row.name: row.values for row in properties(opened)}
    assert all(rows[name] == "v0, v1" for name in CLASHING)
    for name in ("status", "run_id", "runs", "duration_s", "val/acc@last"):
        report = build_report(opened, groupby=[name], metrics=["val/acc"])
        column = report.groupby[0]
        assert report.summary["runs"].tolist() == [4, 4], name
        expected = written.groupby(name)["val/acc"].mean().to_numpy()
        assert np.allclose(report.summary.sort_values(column)["val/acc.mean"], expected), name
    result = _cli(["report", str(campaign), "--groupby", "status", "--metrics", "val/acc"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    csv = pd.read_csv(campaign / "summary" / "summary_status_last.csv")
    assert csv["status"].tolist() == ["v0", "v1"] and csv["runs"].tolist() == [4, 4]
    result = _cli(["properties", str(campaign)], cwd=tmp_path)
    assert result.returncode == 0 and "8 (completed 8;" in " ".join(result.stdout.split())


def _trajectory_run(campaign: Path, run_id: str, acc: float, seed: int) -> None:
    write_run(campaign, run_id, {"lr": 0.1, "seed": seed}, {("val", "acc"): [0.0, acc], ("val", "loss"): [1.0, 0.5]})


def test_paths_are_never_read_as_patterns(tmp_path):
    """`h[1]/camp` beside `h1/camp` reports its own numbers; run directories `x[b]` and `xb`, `zz*`,
    `q\\[x` and `v=1` (a hive-partition look-alike) keep their own values, at the last epoch (the
    index) and at a fixed epoch (the compacted trajectories)."""
    for seed, acc in enumerate([0.1, 0.2]):
        _trajectory_run(tmp_path / "h[1]" / "camp", f"a{seed}", acc, seed)
    for seed, acc in enumerate([0.7, 0.8, 0.9]):
        _trajectory_run(tmp_path / "h1" / "camp", f"a{seed}", acc, seed)
    result = _cli(["report", "h[1]/camp", "--metrics", "val/acc", "--groupby"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    csv = pd.read_csv(tmp_path / "h[1]" / "camp" / "summary" / "summary_all_last.csv")
    assert csv["runs"].tolist() == [2] and np.isclose(csv["val/acc.mean"].iloc[0], 0.15)

    names = ["x[b]", "xb", "zz*", "q\\[x", "v=1", "c**d", "cd"]
    campaign = tmp_path / "g"
    for seed, name in enumerate(names):
        _trajectory_run(campaign, name, (seed + 1) / 10, seed)
    result = _cli(["ls", str(campaign)], cwd=tmp_path)
    assert result.returncode == 0 and "7 runs" in result.stdout, result.stderr
    for epoch in ("last", "1"):
        result = _cli(["report", str(campaign), "--metrics", "val/acc", "--groupby", "seed", "--epoch", epoch],
                      cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        csv = pd.read_csv(campaign / "summary" / f"summary_seed_{epoch}.csv")
        assert np.allclose(csv.sort_values("seed")["val/acc.mean"], [(s + 1) / 10 for s in range(len(names))]), epoch


def test_special_files_are_listed_unreadable_with_their_reason_without_hanging(tmp_path):
    """A FIFO as trajectory.parquet or run.json, run.json -> /dev/zero, a run.json over the cap, links
    out of the campaign (a file, a whole run directory): `ls` and `report` finish at once, name each
    run with its reason, and report the one good run."""
    campaign = tmp_path / "camp"
    for seed, name in enumerate(["fifo-traj", "fifo-json", "zero", "huge", "link-json", "link-traj", "good"]):
        _trajectory_run(campaign, name, 0.5, seed)
    runs = runs_dir(campaign)
    secret = tmp_path / "secret.json"
    secret.write_text('{"run_id": "s", "status": "completed"}')
    (runs / "fifo-traj" / "trajectory.parquet").unlink()
    os.mkfifo(runs / "fifo-traj" / "trajectory.parquet")
    (runs / "fifo-json" / "run.json").unlink()
    os.mkfifo(runs / "fifo-json" / "run.json")
    (runs / "zero" / "run.json").unlink()
    (runs / "zero" / "run.json").symlink_to("/dev/zero")
    (runs / "huge" / "run.json").write_text(" " * (MAX_RUN_JSON_BYTES + 1) + "{}")
    (runs / "link-json" / "run.json").unlink()
    (runs / "link-json" / "run.json").symlink_to(secret)
    (runs / "link-traj" / "trajectory.parquet").unlink()
    (runs / "link-traj" / "trajectory.parquet").symlink_to(runs / "good" / "trajectory.parquet")  # inside: fine
    outside = tmp_path / "elsewhere"
    _trajectory_run(outside, "x", 0.9, 9)
    (runs / "outside").symlink_to(runs_dir(outside) / "x")
    reasons = {"fifo-traj": "trajectory.parquet is a FIFO, not a regular file",
               "fifo-json": "run.json is a FIFO, not a regular file",
               "zero": "leads outside", "huge": f"more than the {MAX_RUN_JSON_BYTES}",
               "link-json": "links out of a campaign are not followed", "outside": "leads outside"}
    for command in (["ls"], ["report", "--metrics", "val/acc", "--groupby"]):
        result = _cli([command[0], str(campaign), *command[1:]], cwd=tmp_path, timeout=60)
        assert result.returncode == 0, result.stderr
        out = " ".join(result.stdout.split())
        for run_id, reason in reasons.items():
            if command[0] == "ls" and run_id == "fifo-traj":
                assert "fifo-traj" in out and reason in out
                continue
            assert f"skipped run {run_id}: " in out and reason in out.split(f"skipped run {run_id}: ")[1], run_id
    csv = pd.read_csv(campaign / "summary" / "summary_all_last.csv")
    assert csv["runs"].tolist() == [2]  # good, and link-traj (its link stays inside the campaign)


@pytest.mark.parametrize("with_groups", [False, True])
def test_html_says_nothing_to_show_when_no_class_accuracy_is_finite(tmp_path, with_groups):
    campaign = tmp_path / "camp"
    for i in range(4):
        write_run(campaign, f"r{i}", {"lr": [0.1, 0.2][i % 2] if with_groups else 0.1, "seed": i},
                  {("val", "acc"): [0.1, 0.5], ("val", "loss"): [1.0, 0.5]},
                  keyed={("val", "class_acc", "0"): [np.nan, np.nan], ("val", "class_acc", "1"): [np.inf, np.nan]})
    result = _cli(["html", str(campaign)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    page = (campaign / "summary" / "report.html").read_text()
    assert "Nothing to show: no completed run has a finite val/class_acc value" in page


def test_values_at_the_ends_of_the_float_range_are_reported_and_drawn(tmp_path):
    """Metric values near ±1.8e308 (their spans and sums overflow), the smallest subnormal, ±inf and
    NaN, and durations past what a sum can hold: every command answers without an internal error
    or numpy's warnings (matplotlib failed to place ticks on a span past the float range), and a
    figure is drawn."""
    campaign = tmp_path / "camp"
    extremes = [1e308, -1e308, np.inf, -np.inf, np.nan, 5e-324, 0.0, 1.0]
    for i in range(8):
        series = [extremes[(i + k) % len(extremes)] for k in range(6)]
        write_run(campaign, f"r{i}", {"width": i, "seed": i},  # a group each: curves has a mean of 1e308 and of -1e308
                  {("val", "loss"): series, ("val", "acc"): series[::-1]}, duration=[1e308, 2.0][i % 2])
    for args in (["report"], ["properties"], ["curves", "--output-folder", str(tmp_path / "out")],
                 ["html", "--out", str(tmp_path / "page.html")]):
        result = _cli([args[0], str(campaign), *args[1:]], cwd=tmp_path)
        _assert_clean(result, args[0])
        assert result.returncode == 0 and "Warning" not in result.stderr, f"{args[0]}: {result.stderr[-2000:]}"
    assert [p.suffix for p in sorted((tmp_path / "out").iterdir())] == [".parquet", ".png"]
    assert (tmp_path / "page.html").stat().st_size > 0


def test_whole_numbers_past_64_bits(tmp_path, capsys):
    """A hyper-parameter past int64 (a 128-bit seed) makes its column text, its exact digits, instead
    of breaking every command on the campaign; a run.json count or duration past what a float or
    int64 holds sets that run aside with its reason."""
    campaign = tmp_path / "camp"
    for i, width in enumerate([2**70, -(2**64), 3, 3]):
        write_run(campaign, f"r{i}", {"width": width, "seed": i}, {("val", "loss"): [1.0, 0.5 + i / 10]})
    record = runs_dir(campaign) / "r3" / "run.json"
    record.write_text(record.read_text().replace('"epochs_done": 1', '"epochs_done": ' + "9" * 400))
    opened = open_campaign(campaign)
    assert opened.runs.set_index("run_id")["width@hparam"].tolist() == [str(2**70), str(-(2**64)), "3"]
    assert [run_id for run_id, _ in opened.skipped] == ["r3"]
    assert "field 'epochs_done' is int 999" in opened.skipped[0][1]
    for args in (["ls"], ["report", "--groupby", "width"]):
        result = _cli([args[0], str(campaign), *args[1:]], cwd=tmp_path)
        _assert_clean(result, args[0])
        assert result.returncode == 0 and str(2**70) in result.stdout and "skipped run r3" in result.stdout


def test_two_series_spelling_one_label_set_their_run_aside(tmp_path):
    """Context 'a/b' with metric 'c' and context 'a' with metric 'b/c' are both labelled a/b/c: that
    run is set aside naming both (the build failed on the whole campaign), on the cold build and
    when the run is added to an indexed campaign."""
    campaign = tmp_path / "camp"
    write_run(campaign, "good", {"seed": 0}, {("val", "loss"): [1.0, 0.5], ("a/b", "c"): [1.0, 2.0]})
    write_run(campaign, "clash", {"seed": 1}, {("val", "loss"): [1.0, 0.4], ("a/b", "c"): [1.0, 2.0],
                                               ("a", "b/c"): [3.0, 4.0]})
    for _ in range(2):
        reasons = open_campaign(campaign).runs.set_index("run_id")["skip_reason"]
        assert reasons.isna().to_dict() == {"clash": False, "good": True}
        assert "are labelled a/b/c (context 'a' with metric 'b/c', and context 'a/b' with metric 'c')" \
            in reasons["clash"]
        shutil.rmtree(runs_dir(campaign) / "clash")
        index.refresh_runs(campaign)  # indexed without it; then it comes back
        write_run(campaign, "clash", {"seed": 1}, {("val", "loss"): [1.0, 0.4], ("a/b", "c"): [1.0, 2.0],
                                                   ("a", "b/c"): [3.0, 4.0]})


def test_trajectory_rows_without_a_context_set_their_run_aside(tmp_path):
    """A row whose context is null (a trajectory another writer made) sets its run aside with the
    reason; the campaign page failed on the label it made. A trajectory without a `key` column is
    set aside naming the columns a trajectory has."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    campaign = tmp_path / "camp"
    for i in range(3):
        last = write_run(campaign, f"r{i}", {"seed": i}, {("val", "loss"): [1.0, 0.5 + i / 10],
                                                          ("val", "acc"): [0.1, 0.5]})
    pq.write_table(pa.table({"epoch": pa.array([0, 1], pa.int64()), "context": pa.array([None, "val"], pa.string()),
                             "metric": ["loss", "loss"], "key": pa.array([None, None], pa.string()),
                             "value": [1.0, 0.5]}), last / "trajectory.parquet")
    keyless = pa.table({"epoch": pa.array([0, 1], pa.int64()), "context": ["val", "val"], "metric": ["loss", "loss"],
                        "value": [1.0, 0.5]})
    pq.write_table(keyless, last.parent / "r1" / "trajectory.parquet")
    reasons = open_campaign(campaign).runs.set_index("run_id")["skip_reason"]
    assert reasons.isna().tolist() == [True, False, False]
    assert reasons["r1"].startswith("unreadable trajectory.parquet (not the columns of a trajectory: int epoch, text "
                                    "context, metric, key, float value; Binder Error: ")
    assert reasons["r2"].endswith("trajectory.parquet: the trajectory has rows without a context or metric; every "
                                  "row needs both")
    result = _cli(["html", str(campaign), "--out", str(tmp_path / "page.html")], cwd=tmp_path)
    _assert_clean(result, "html")
    assert result.returncode == 0 and "skipped run r2" in result.stdout


@pytest.mark.parametrize("folder, argv", [
    ("states", ["states", "{campaign}", "--metrics", "val/loss", "val/acc", "--max-states", "2", "--restarts", "1",
                "--jobs", "1", "--no-plots"]),
    ("run-r0", ["report", "{campaign}/runs/r0"]),
    ("run-r0", ["curves", "{campaign}/runs/r0", "--metrics", "val/acc"]),
])
def test_an_output_folder_in_summary_that_links_out_is_refused(tmp_path, folder, argv):
    """A campaign's summary/ may hold a link where a command makes its folder (summary/states, the
    folder of a one-run report): nothing is written or removed where it leads."""
    campaign = tmp_path / "camp"
    _hostile_campaign(campaign, ["model"])
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "phases.csv").write_text("a user's own file\n")
    (campaign / "summary").mkdir(exist_ok=True)
    (campaign / "summary" / folder).symlink_to(outside, target_is_directory=True)
    result = _cli([arg.format(campaign=campaign) for arg in argv], cwd=tmp_path)
    _assert_clean(result, argv[0])
    assert result.returncode == 2 and f"summary/{folder} is a symbolic link, not a folder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in outside.iterdir()) == ["phases.csv"]
    assert (outside / "phases.csv").read_text() == "a user's own file\n"


def test_output_folder_checks_every_part_below_its_base(tmp_path):
    from pab_campaign.analysis.campaign.workspace import output_folder
    from pab_campaign.errors import CampaignError

    summary = tmp_path / "summary"
    (summary / "diff").mkdir(parents=True)
    assert output_folder(summary, "diff", "a_vs_b") == summary / "diff" / "a_vs_b"  # missing: made as written
    (summary / "diff" / "a_vs_b").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(CampaignError, match="diff/a_vs_b is a symbolic link, not a folder"):
        output_folder(summary, "diff", "a_vs_b")
    (summary / "states").write_text("")
    with pytest.raises(CampaignError, match="states is a regular file, not a folder"):
        output_folder(summary, "states")


def test_a_run_file_declaring_too_many_rows_is_set_aside_before_it_is_read(tmp_path, monkeypatch, capsys):
    """A few kB of Parquet can declare hundreds of millions of equal rows (16 GB read into the index):
    past the limit a trajectory is set aside by its footer's row count, by the index (a run dir with
    pattern characters included) and by every reader of one run."""
    from pab_campaign import cli, store
    from pab_campaign.analysis.campaign import patch
    from pab_campaign.errors import StoreError

    for module in (store, index, patch):
        monkeypatch.setattr(module, "MAX_RUN_FILE_ROWS", 30)
    campaign = tmp_path / "camp"
    for run_id, epochs in (("small", 3), ("big", 3), ("big[1]*", 20)):
        write_run(campaign, run_id, {"seed": 0}, {("val", "acc"): [0.5] * epochs, ("val", "loss"): [1.0] * epochs})
    assert cli.main(["ls", str(campaign)]) == 0  # the index, then one run grows: the warm refresh patches it
    write_run(campaign, "big", {"seed": 0}, {("val", "acc"): [0.5] * 20, ("val", "loss"): [1.0] * 20})
    assert cli.main(["ls", str(campaign)]) == 0
    opened = open_campaign(campaign)
    reasons = dict(zip(opened.runs["run_id"], opened.runs["skip_reason"]))
    assert reasons["small"] is None
    for run_id in ("big", "big[1]*"):
        assert "40 rows, more than the 30 a run file may hold" in reasons[run_id]
        with pytest.raises(StoreError, match="40 rows, more than the 30"):
            store.read_trajectory(runs_dir(campaign) / run_id)


def test_a_steps_file_is_read_under_the_rules_of_every_run_file(tmp_path):
    from pab_campaign import store
    from pab_campaign.errors import StoreError

    campaign = tmp_path / "camp"
    run = write_run(campaign, "r0", {"seed": 0}, {("val", "acc"): [0.5, 0.6]})
    secret = tmp_path / "outside.parquet"
    shutil.copy(run / store.TRAJECTORY, secret)
    (run / store.STEPS).symlink_to(secret)
    with pytest.raises(StoreError, match="leads outside"):
        store.read_steps(run)
    (run / store.STEPS).unlink()
    os.mkfifo(run / store.STEPS)
    with pytest.raises(StoreError, match="FIFO"):
        store.read_steps(run)
