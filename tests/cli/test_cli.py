"""The analysis command line: ls, properties, report, curves, merge; --campaign-id; bad input."""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from pab_campaign import cli
from pab_campaign.store import TRAJECTORY, runs_dir, summary_dir
from tests.helpers import assert_one_line_error, make_grid, write_run
from tests.helpers import cli as run_cli

HP = {"model.name": "mlp", "model.hidden": 64, "optimizer.lr": 0.1, "seed": 7}


def _run(argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out + err


def test_analysis_cli_never_imports_torch():
    code = "import pab_campaign.cli, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_campaign_id_filter_is_honoured(tmp_path, capsys):
    a, b, merged = tmp_path / "a", tmp_path / "b", tmp_path / "m"
    make_grid(a, seeds=2, campaign="alpha", seed=1)
    make_grid(b, seeds=3, campaign="beta", seed=2, prefix="b-")
    code, out = _run(["merge", "--src", str(a), str(b), "--dst", str(merged)], capsys)
    assert code == 0 and "added 20 runs, updated 0, skipped 0" in out
    code, out = _run(["report", str(merged), "--campaign-id", "beta", "--groupby", "model.name"], capsys)
    assert code == 0
    summary = pd.read_csv(summary_dir(merged) / "summary_model.name_last_beta.csv")
    assert summary["runs"].tolist() == [6, 6]
    code, out = _run(["report", str(merged), "--groupby", "model.name"], capsys)
    both = pd.read_csv(summary_dir(merged) / "summary_model.name_last.csv")  # per campaign id, as tcbench reports
    assert both["campaign"].tolist() == ["alpha", "alpha", "beta", "beta"] and both["runs"].tolist() == [4, 4, 6, 6]
    assert "campaign_id: alpha" in out and "runs: 8" in out and "runs: 12" in out
    code, out = _run(["ls", str(merged), "--campaign-id", "alpha"], capsys)
    assert "8 runs" in out and "b-" not in out
    code, out = _run(["properties", str(merged), "--campaign-id", "alpha", "beta"], capsys)
    assert "alpha, beta" in out and "20 (completed 20" in out
    code, out = _run(["curves", str(merged), "--campaign-id", "alpha", "--contexts", "val", "--metrics", "acc"], capsys)
    curves = pd.read_parquet(next(summary_dir(merged).glob("curves_*_alpha.parquet")))
    assert code == 0 and set(curves["runs"]) == {2}
    code, out = _run(["report", str(merged), "--campaign-id", "gamma"], capsys)
    assert code == 2 and "alpha, beta" in out


def test_properties_lists_hparams_metrics_contexts(tmp_path, capsys):
    make_grid(tmp_path, seeds=2)
    code, out = _run(["properties", str(tmp_path)], capsys)
    assert code == 0
    for text in ("run duration (s, mean ± std)", "acc, loss", "test, train, val", "optimizer.lr", "0.01, 0.1",
                 "cnn, mlp"):
        assert text in out


def test_bad_input_is_skipped_with_reasons(tmp_path, capsys):
    ids = make_grid(tmp_path, seeds=2)
    runs = runs_dir(tmp_path)
    data = (runs / ids[0] / TRAJECTORY).read_bytes()
    (runs / ids[0] / TRAJECTORY).write_bytes(data[: len(data) // 2])  # truncated parquet
    (runs / ids[1] / TRAJECTORY).write_bytes(b"PAR1" + b"\x00" * 64 + b"PAR1")  # corrupt parquet
    (runs / ids[2] / "run.json").write_text("{not json")
    (runs / ids[3] / TRAJECTORY).unlink()
    write_run(tmp_path, "other-metrics", HP, {("val", "f1"): [0.1, 0.2]})
    write_run(tmp_path, "nan-run", HP, {("val", "loss"): [math.nan] * 3, ("val", "acc"): [math.nan] * 3})
    write_run(tmp_path, "half-nan", {**HP, "seed": 8},
              {("val", "loss"): [1.0, math.nan], ("val", "acc"): [0.2, 0.9], ("test", "acc"): [0.1, 0.3],
               ("test", "loss"): [1.0, 0.4]})
    code, out = _run(["report", str(tmp_path)], capsys)
    assert code == 0 and "Traceback" not in out
    lines = out.splitlines()
    for run_id, reason in [(ids[0], "unreadable trajectory"), (ids[1], "unreadable trajectory"),
                           (ids[2], "not valid JSON"), (ids[3], "missing trajectory"),
                           ("other-metrics", "no finite value"), ("nan-run", "no finite value")]:
        assert any(f"skipped run {run_id}" in line and reason in line for line in lines), (run_id, out)
    summary = pd.read_csv(next(summary_dir(tmp_path).glob("summary_*_last.csv")))
    assert summary["runs"].sum() == 8 - 4 + 1  # the half-NaN run stays
    assert "have no finite val/loss" in out


@pytest.mark.parametrize("setup", ["empty", "all-bad"])
def test_no_usable_run_exits_non_zero(tmp_path, setup):
    runs_dir(tmp_path).mkdir(parents=True)
    if setup == "all-bad":
        write_run(tmp_path, "r1", HP, {("val", "loss"): [1.0]})
        (runs_dir(tmp_path) / "r1" / "run.json").write_text("[")
    result = subprocess.run([sys.executable, "-m", "pab_campaign.cli", "report", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout and "error:" in result.stderr
    if setup == "all-bad":
        assert "skipped run r1" in result.stdout


def test_report_and_curves_show_the_group_of_runs_lacking_a_key_as_missing(tmp_path, capsys):
    make_grid(tmp_path, seeds=2)
    for seed in range(2):
        write_run(tmp_path, f"wide-{seed}", {**HP, "seed": seed, "width": 3}, {("val", "loss"): [1.0, 0.5]})
    for command in ("report", "curves"):
        code, out = _run([command, str(tmp_path), "--groupby", "width", "--contexts", "val", "--metrics", "loss"],
                         capsys)
        keys = [cells[0] for cells in _table_rows(out)]
        assert code == 0 and keys[:2] == ["3", "-"] and "nan" not in keys, out


def test_merge_takes_its_sources_as_arguments_or_with_src(tmp_path, capsys):
    make_grid(tmp_path / "a", seeds=1)
    write_run(tmp_path / "b", "extra", HP, {("val", "loss"): [1.0, 0.5]})
    code, out = _run(["merge", str(tmp_path / "a"), "--dst", str(tmp_path / "ab"), "--src", str(tmp_path / "b")],
                     capsys)
    assert code == 0 and f"{tmp_path / 'ab'}: added 5 runs" in " ".join(out.split())
    code, out = _run(["merge", "--dst", str(tmp_path / "c")], capsys)
    assert code == 2 and "give the campaigns to copy from" in out and not (tmp_path / "c").exists()


def test_merge_takes_src_given_again(tmp_path, capsys):
    """tcbench's `aimrepo merge --src a --src b` form: each --src adds its campaigns."""
    make_grid(tmp_path / "a", seeds=1)
    write_run(tmp_path / "b", "extra", HP, {("val", "loss"): [1.0, 0.5]})
    code, out = _run(["merge", "--src", str(tmp_path / "a"), "--src", str(tmp_path / "b"),
                      "--dst", str(tmp_path / "ab")], capsys)
    assert code == 0 and f"{tmp_path / 'ab'}: added 5 runs" in " ".join(out.split()), out


def test_merge_cli_refuses_non_campaign_dst(tmp_path, capsys):
    make_grid(tmp_path / "a", seeds=1)
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "keep.txt").write_text("x")
    code, out = _run(["merge", "--src", str(tmp_path / "a"), "--dst", str(tmp_path / "dst")], capsys)
    assert code == 2 and "not a campaign" in out and (tmp_path / "dst" / "keep.txt").read_text() == "x"


def test_bad_epoch_and_non_campaign(tmp_path, capsys):
    code, out = _run(["report", str(tmp_path), "--epoch", "final"], capsys)
    assert code == 2 and "--epoch final" in out
    code, out = _run(["ls", str(tmp_path / "missing")], capsys)
    assert code == 2 and "does not exist" in out


def test_metric_keys_are_printed_literally(tmp_path, capsys):
    """A key in brackets is text, not rich markup: `[features.1]` stays in the table's cells and title."""
    rng = np.random.default_rng(0)
    for index in range(8):
        write_run(tmp_path, f"r{index}", {**HP, "seed": index},
                  {("val", "loss"): list(rng.uniform(0, 1, 4)), ("val", "acc"): list(rng.uniform(0, 1, 4))},
                  keyed={("weights", "erank", "features.1"): list(rng.uniform(1, 5, 4)),
                         ("weights", "stable_rank", "classifier"): list(rng.uniform(1, 5, 4))})
    code, out = _run(["audit", str(tmp_path), "--metric", "weights/erank[features.1]@3", "--baseline", "val/loss@3",
                      "--target", "val/acc", "--controls", "weights/stable_rank[classifier]", "--n-boot", "20",
                      "--no-plots"], capsys)
    assert code == 0, out
    assert "weights/erank[features.1]@3" in out  # the audit table's metric cell
    assert "val/loss@3, weights/stable_rank[classifier]@3" in out  # the title's controls
    assert pd.read_csv(summary_dir(tmp_path) / "audit.csv")["metric"].tolist() == ["val/loss@3",
                                                                                    "weights/erank[features.1]@3"]


def test_ls_shows_each_runs_problem_or_a_dash(tmp_path, capsys):
    ids = make_grid(tmp_path, seeds=1)
    (runs_dir(tmp_path) / ids[0] / TRAJECTORY).unlink()
    code, out = _run(["ls", str(tmp_path)], capsys)
    assert code == 0
    lines = [line.strip().strip("│").split("│") for line in out.splitlines() if line.startswith("│")]
    problems = {cells[0].strip(): cells[-1].strip() for cells in lines if cells[0].strip()}
    assert set(problems) == set(ids)
    assert all(problems[run_id] == "-" for run_id in ids[1:])  # no error, nothing set aside: a dash, not nan
    problem_column = "".join(cells[-1].strip() for cells in lines)  # the long reason folds over lines
    assert "missingtrajectory" in problem_column.replace(" ", "")


def test_list_options_take_commas_spaces_or_both():
    from pab_campaign.cli import build_parser

    args = build_parser().parse_args(["report", "c", "--groupby", "model.name,optimizer.lr", "--metrics", "val/acc,",
                                      "val/class_acc[1,2]", "test/loss", "--campaign-id", "a,b"])
    assert args.groupby == ["model.name", "optimizer.lr"]
    assert args.metrics == ["val/acc", "val/class_acc[1,2]", "test/loss"]
    assert args.campaign_id == ["a", "b"]
    assert build_parser().parse_args(["report", "c", "--groupby"]).groupby == []


def test_groupby_given_with_commas_groups_like_spaces(tmp_path):
    make_grid(tmp_path, seeds=3)
    commas = run_cli(["report", str(tmp_path), "--groupby", "model.name,optimizer.lr", "--metrics", "val/acc"])
    spaces = run_cli(["report", str(tmp_path), "--groupby", "model.name", "optimizer.lr", "--metrics", "val/acc"])
    assert commas.returncode == spaces.returncode == 0, commas.stderr
    assert commas.stdout == spaces.stdout and "0.1" in commas.stdout and "cnn" in commas.stdout


def test_a_name_given_twice_counts_once(tmp_path):
    """`--groupby lr lr` and `--metrics acc acc` ended in an internal error (a frame with a column twice)."""
    make_grid(tmp_path, seeds=3)
    for command in ("report", "curves"):
        once = run_cli([command, str(tmp_path), "--groupby", "optimizer.lr", "--metrics", "val/acc"])
        twice = run_cli([command, str(tmp_path), "--groupby", "optimizer.lr,optimizer.lr", "--metrics", "val/acc",
                         "val/acc", "--contexts", "val", "val"])
        assert once.returncode == twice.returncode == 0, twice.stderr
        assert once.stdout == twice.stdout and "0.1" in once.stdout


def _table_rows(out: str) -> list[list[str]]:
    """The cells of every body row of the rich tables in `out`."""
    return [[cell.strip() for cell in line.strip().strip("│").split("│")] for line in out.splitlines()
            if line.startswith("│")]


def test_properties_has_a_no_unique_column(tmp_path, capsys):
    make_grid(tmp_path, seeds=3)
    code, out = _run(["properties", str(tmp_path)], capsys)
    assert code == 0 and "No. unique" in out
    counts = {cells[0]: cells[1] for cells in _table_rows(out)}
    assert counts["model.name"] == "2" and counts["optimizer.lr"] == "2" and counts["seed"] == "3"
    assert counts["metrics"] == "2" and counts["contexts"] == "3" and counts["campaigns"] == "1"
    assert counts["runs"] == "-"


def test_every_list_option_takes_commas():
    """Every option that takes several values splits commas (tcbench's lists) as well as spaces."""
    from pab_campaign.cli import build_parser
    from pab_campaign.cli.common import SplitList

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    lists = [(name, action.option_strings) for name, sub in commands.items() for action in sub._actions
             if action.nargs in ("+", "*") and action.option_strings]
    assert len(lists) >= 10
    assert [entry for entry in lists if not isinstance(
        next(a for a in commands[entry[0]]._actions if a.option_strings == entry[1]), SplitList)] == []


def test_a_list_option_given_again_adds_its_items_and_replaces_the_default():
    from pab_campaign.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["report", "c", "--metrics", "acc", "--groupby", "lr", "--metrics", "loss,acc",
                              "--groupby", "seed"])
    assert args.metrics == ["acc", "loss"] and args.groupby == ["lr", "seed"]
    assert parser.parse_args(["summarize", "r", "--class-cutoffs", "0.5"]).class_cutoffs == ["0.5"]
    assert parser.parse_args(["summarize", "r"]).class_cutoffs == ["1/3", "2/3"]


def test_report_precision_std_and_split_layout(tmp_path, capsys):
    make_grid(tmp_path, seeds=3)
    code, out = _run(["report", str(tmp_path), "--groupby", "model.name", "--metrics", "acc,loss", "--precision", "2",
                      "--std"], capsys)
    assert code == 0, out
    summary = pd.read_csv(summary_dir(tmp_path) / "summary_model.name_last.csv").set_index("model.name")
    rows = {cells[0]: cells for cells in _table_rows(out) if cells[0]}
    cnn = summary.loc["cnn"]
    assert rows["cnn"][2] == f"{cnn['val/acc.mean']:.2g} ± {cnn['val/acc.ci95']:.2g}"
    assert rows["cnn"][3] == f"{cnn['val/acc.std']:.2g}"  # the std beside its metric
    assert "(mean ± ci95, std)" in out

    code, out = _run(["report", str(tmp_path), "--groupby", "model.name", "--layout", "split"], capsys)
    assert code == 0, out
    split = pd.read_csv(summary_dir(tmp_path) / "summary_model.name_last_split.csv")
    assert split[["context", "model.name"]].values.tolist() == [["val", "cnn"], ["val", "mlp"], ["test", "cnn"],
                                                                 ["test", "mlp"]]
    body = _table_rows(out)
    assert [cells[:2] for cells in body] == [["val", "cnn"], ["val", "mlp"], ["test", "cnn"], ["test", "mlp"]]
    test_cnn = split[(split["context"] == "test") & (split["model.name"] == "cnn")].iloc[0]
    assert body[2][3] == f"{test_cnn['acc.mean']:.4g} ± {test_cnn['acc.ci95']:.4g}"
    assert "├" in out  # a line between the contexts, as tcbench draws it


def test_output_folder_takes_the_files_of_report_and_curves(tmp_path, capsys):
    campaign, folder = tmp_path / "c", tmp_path / "figs"
    make_grid(campaign, seeds=2)
    code, out = _run(["report", str(campaign), "--output-folder", str(folder), "--groupby", "model.name"], capsys)
    assert code == 0 and (folder / "summary_model.name_last.csv").exists()
    assert f"wrote {folder / 'summary_model.name_last.csv'}" in out
    code, out = _run(["curves", str(campaign), "--output-folder", str(folder), "--metrics", "val/acc",
                      "--precision", "3"], capsys)
    assert code == 0, out
    assert sorted(p.suffix for p in folder.glob("curves_*")) == [".parquet", ".png"]
    assert not list(summary_dir(campaign).glob("summary_*")) and not list(summary_dir(campaign).glob("curves_*"))
    curves = pd.read_parquet(next(folder.glob("curves_*.parquet")))
    last = curves[curves["epoch"] == curves["epoch"].max()].iloc[0]
    assert f"{last['mean']:.3g} ± {last['ci95']:.3g}" in out


@pytest.mark.parametrize("args, fragment", [
    (["report", "{c}", "--precision", "0"], "--precision 0 must be a whole number from 1 to 17"),
    (["curves", "{c}", "--precision", "two"], "--precision two"),
    (["report", "{c}", "--output-folder", "{file}"], "is a file; name a folder"),
    (["curves", "{c}", "--output-folder", "{file}"], "is a file; name a folder"),
    (["report", "{c}", "--layout", "tall"], "invalid choice: 'tall'"),
    (["ls", "{c}", "--status", "completed,finished"], "finished is not a run status"),
    (["ls", "{c}", "--status", "complted"], "complted is not a run status (did you mean completed?)"),
])
def test_report_options_refuse_bad_values_in_one_line(tmp_path, args, fragment):
    make_grid(tmp_path / "c", seeds=1)
    (tmp_path / "file").write_text("x")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = run_cli([a.format(c=tmp_path / "c", file=tmp_path / "file") for a in args])
    assert result.returncode == 2
    assert_one_line_error(result, fragment)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before and (tmp_path / "file").read_text() == "x"


def test_no_output_is_written_over_a_runs_files(tmp_path):
    """`summarize --json`, `html --out`, `--output-folder` and `export --to` once replaced a run's
    run.json or trajectory.parquet (every command then skipped the run); an empty --output-folder
    wrote into the working directory."""
    from pab_campaign.store import iter_run_dirs

    make_grid(tmp_path / "c", seeds=1)
    run = next(iter_run_dirs(tmp_path / "c"))
    (tmp_path / "link").symlink_to(run.parent)
    before = {p: p.read_bytes() for p in (tmp_path / "c" / "runs").rglob("*") if p.is_file()}
    for args in (["summarize", str(run), "--json", str(run / "run.json")],
                 ["html", str(tmp_path / "c"), "--out", str(run / "trajectory.parquet")],
                 ["html", str(tmp_path / "c"), "--out", str(tmp_path / "link" / run.name / "page.html")],
                 ["report", str(tmp_path / "c"), "--output-folder", str(run)],
                 ["export", str(tmp_path / "c"), "--to", "csv", str(run / "x.csv")],
                 ["export", str(tmp_path / "c"), "--to", "mlflow", f"sqlite:///{run / 'm.db'}"]):
        result = run_cli(args)
        assert result.returncode == 2, args
        assert_one_line_error(result, "whose files belong to the runs; name a place outside it")
        assert result.stdout == ""
    assert {p: p.read_bytes() for p in (tmp_path / "c" / "runs").rglob("*") if p.is_file()} == before
    result = run_cli(["report", str(tmp_path / "c"), "--output-folder", ""], cwd=tmp_path)
    assert_one_line_error(result, "--output-folder is empty")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "link"]


@pytest.mark.parametrize("args, fragment", [
    (["report", "{c}", "--groupby", "model.nme"], "model.nme: no such hyper-parameter (did you mean model.name?)"),
    (["report", "{c}", "--metrics", "los"], "never tracked in these runs (or NaN at every run's last and best epoch) "
                                            "(did you mean val/loss?)"),
    (["report", "{c}", "--where", "optimizer.l=0.1"], "'optimizer.l' (did you mean optimizer.lr?)"),
    (["report", "{c}", "--sort", "val/ac"], "--sort val/ac: not a metric of this report (did you mean val/acc?)"),
    (["audit", "{c}", "--metric", "val/acc", "--baseline", "val/los@1", "--target", "val/acc"],
     "metric val/los@1 was never tracked in this campaign (did you mean val/loss@1?)"),
])
def test_a_mistyped_name_is_refused_with_the_closest_one(tmp_path, args, fragment):
    make_grid(tmp_path / "c", seeds=1)
    assert_one_line_error(run_cli([a.format(c=tmp_path / "c") for a in args]), fragment)


def test_ls_status_takes_a_list(tmp_path, capsys):
    make_grid(tmp_path, seeds=1)
    write_run(tmp_path, "broken", HP, {("val", "loss"): [1.0]}, status="failed")
    write_run(tmp_path, "nan", HP, {("val", "loss"): [math.nan]}, status="diverged")
    code, out = _run(["ls", str(tmp_path), "--status", "failed,diverged"], capsys)
    assert code == 0 and "2 runs" in out and "broken" in out and "nan" in out and "mlp-0.1-0" not in out


def test_watch_ends_on_runs_no_process_writes_and_honours_status(tmp_path):
    write_run(tmp_path, "done", {**HP, "seed": 1}, {("val", "acc"): [0.1, 0.2]})
    write_run(tmp_path, "bad", {**HP, "seed": 2}, {("val", "acc"): [0.1, 0.2]}, status="failed")
    write_run(tmp_path, "killed", {**HP, "seed": 3}, {("val", "acc"): [0.1]}, status="running")  # no run.lock
    write_run(tmp_path, "young", {**HP, "seed": 4}, {("val", "loss"): [1.0]}, status="running", duration=None)
    result = run_cli(["ls", str(tmp_path), "--watch", "--interval", "0.1"], timeout=60)
    assert result.returncode == 0, result.stderr
    assert "no process writes it" in " ".join(result.stdout.split())
    young = next(cells for cells in _table_rows(result.stdout) if cells[0] == "young")
    assert young[3:5] == ["-", "-"]  # no val/acc and no duration yet: not 'nan'
    failed = run_cli(["ls", str(tmp_path), "--watch", "--interval", "0.1", "--status", "failed"], timeout=60)
    assert failed.returncode == 0 and "bad" in failed.stdout and "done" not in failed.stdout
    assert_one_line_error(run_cli(["ls", str(tmp_path), "--watch", "--interval", "nan"]), "--interval nan must be > 0")
    assert_one_line_error(run_cli(["ls", str(tmp_path), "--watch", "--expect", "-3"]),
                          "--expect -3 must be a whole number from 1")  # it was taken


def test_tcbench_hparams_prefix_names_the_hyper_parameter(tmp_path, capsys):
    """tcbench's `aimrepo report --groupby hparams.<name>` form, on the cold (full) and warm paths."""
    make_grid(tmp_path, seeds=2)
    code, cold = _run(["report", str(tmp_path), "--groupby", "hparams.optimizer.lr", "--metrics", "acc"], capsys)
    code_warm, warm = _run(["report", str(tmp_path), "--groupby", "hparams.optimizer.lr", "--metrics", "acc"], capsys)
    bare_code, bare = _run(["report", str(tmp_path), "--groupby", "optimizer.lr", "--metrics", "acc"], capsys)
    assert code == code_warm == bare_code == 0 and cold == warm == bare and "optimizer.lr" in bare, cold
    _code, curves = _run(["curves", str(tmp_path), "--groupby", "hparams.model.name", "--metrics", "val/acc",
                          "--output-folder", str(tmp_path / "figs")], capsys)
    assert [cells[0] for cells in _table_rows(curves)][:2] == ["cnn", "mlp"], curves
    _code, listed = _run(["ls", str(tmp_path), "--where", "hparams.model.name=cnn", "--json"], capsys)
    assert sorted(row["run_id"] for row in json.loads(listed)) == ["cnn-0.01-0", "cnn-0.01-1", "cnn-0.1-0", "cnn-0.1-1"]


def test_tcbench_hparams_prefix_in_the_audit(tmp_path, capsys):
    make_grid(tmp_path, seeds=4)
    audit = ["audit", str(tmp_path), "--metric", "val/acc@2", "--baseline", "val/loss@1", "--target", "test/acc",
             "--n-boot", "20", "--no-plots"]
    prefixed = _run([*audit, "--controls", "hparams.model.name", "--groupby", "hparams.optimizer.lr"], capsys)
    written = (summary_dir(tmp_path) / "audit.csv").read_text()
    bare = _run([*audit, "--controls", "model.name", "--groupby", "optimizer.lr"], capsys)
    assert prefixed[0] == bare[0] == 0 and (summary_dir(tmp_path) / "audit.csv").read_text() == written, prefixed


def test_a_place_the_user_cannot_write_is_one_line_not_an_internal_error(tmp_path, capsys, monkeypatch):
    """A read-only mount or a full disk under `import` or `export` ended in 'internal error: OSError'."""
    import errno

    from pab_campaign.workflows.importers import writer

    (tmp_path / "runs.csv").write_text("run,epoch,metric,value\na,0,val/loss,1.0\n")

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "ro" / "c"))

    monkeypatch.setattr(writer, "import_runs", read_only)
    code, out = _run(["import", str(tmp_path / "ro" / "c"), "--from", "csv", str(tmp_path / "runs.csv")], capsys)
    assert code == 2 and len(out.splitlines()) == 1, out
    assert f"{tmp_path / 'ro' / 'c'}: Read-only file system; give a place this user can read and write" in out


def test_an_error_line_quoting_a_campaigns_value_shows_its_control_characters(tmp_path, capsys):
    """A stranger's hyper-parameter value with a terminal escape reached the error line as it was
    (`--where` lists the values there), able to recolour or move the cursor."""
    write_run(tmp_path, "r", {"model.name": "a\x1b[2Jb", "seed": 0}, {("val", "loss"): [1.0, 0.5]})
    code, out = _run(["ls", str(tmp_path), "--where", "model.name=zz"], capsys)
    assert code == 2 and "\x1b" not in out and "a\\x1b[2Jb" in out, out
