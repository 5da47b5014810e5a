"""`import --from csv`: the long and wide layouts (the README's examples), idempotence, conflicts, bad input."""
from __future__ import annotations

import math

import pandas as pd

from pab_campaign import cli
from pab_campaign.store import iter_run_dirs, read_run_json, read_trajectory
from tests.helpers import assert_one_line_error
from tests.helpers import cli as run_cli

LONG = """run,epoch,metric,value,lr
a,1,val/loss,0.9,0.1
a,2,val/loss,0.7,0.1
b,1,val/loss,0.8,0.01
b,2,val/f1,,0.01
"""
WIDE = """run,epoch,lr,val_loss,val/acc
a,1,0.1,0.9,0.5
a,2,0.1,0.7,0.6
b,1,0.01,0.8,0.55
b,2,0.01,0.6,
"""


def _values(campaign):
    """{(lr, epoch, name): value} over every run of `campaign`."""
    values = {}
    for directory in iter_run_dirs(campaign):
        lr = read_run_json(directory).hparams["lr"]
        for row in read_trajectory(directory).to_pylist():
            values[(lr, row["epoch"], f"{row['context']}/{row['metric']}")] = row["value"]
    return values


def _import(capsys, campaign, path, *extra):
    code = cli.main(["import", str(campaign), "--from", "csv", str(path), *extra])
    out, err = capsys.readouterr()
    return code, out + err


def test_long_and_wide_layouts_give_the_values_written(tmp_path, capsys):
    (tmp_path / "long.csv").write_text(LONG)
    (tmp_path / "wide.csv").write_text(WIDE)
    code, out = _import(capsys, tmp_path / "c1", tmp_path / "long.csv")
    assert code == 0 and "imported 2 of 2 runs" in out, out
    values = _values(tmp_path / "c1")
    assert values[(0.1, 1, "val/loss")] == 0.9 and values[(0.01, 1, "val/loss")] == 0.8
    assert math.isnan(values[(0.01, 2, "val/f1")])  # an empty value is NaN, kept
    assert len(values) == 4
    code, out = _import(capsys, tmp_path / "c2", tmp_path / "wide.csv")
    assert code == 0, out
    values = _values(tmp_path / "c2")
    assert values[(0.1, 2, "val/loss")] == 0.7 and values[(0.01, 1, "val/acc")] == 0.55
    assert (0.01, 2, "val/acc") not in values  # an empty cell of the wide layout was not recorded
    records = [read_run_json(d) for d in iter_run_dirs(tmp_path / "c2")]
    assert {r.status.value for r in records} == {"completed"} and {r.epochs_done for r in records} == {2}
    assert {r.versions["import.source"] for r in records} == {"csv:a", "csv:b"}


def test_import_again_adds_nothing_and_a_changed_run_is_kept_aside(tmp_path, capsys):
    (tmp_path / "long.csv").write_text(LONG)
    _import(capsys, tmp_path / "c", tmp_path / "long.csv")
    before = sorted(d.name for d in iter_run_dirs(tmp_path / "c"))
    code, out = _import(capsys, tmp_path / "c", tmp_path / "long.csv")
    assert code == 0 and "imported 0 of 2 runs" in out and "skipped 2" in out, out
    assert sorted(d.name for d in iter_run_dirs(tmp_path / "c")) == before
    (tmp_path / "long.csv").write_text(LONG.replace("a,2,val/loss,0.7", "a,2,val/loss,0.6"))
    code, out = _import(capsys, tmp_path / "c", tmp_path / "long.csv")
    assert code == 1 and "1 conflicts" in out, out
    after = sorted(d.name for d in iter_run_dirs(tmp_path / "c"))
    assert len(after) == 3 and set(before) <= set(after)  # the first import's runs are untouched
    kept = [d for d in iter_run_dirs(tmp_path / "c") if d.name not in before]
    assert read_trajectory(kept[0]).to_pandas()["value"].tolist() == [0.9, 0.6]


def test_map_renames_and_bad_input_is_one_line(tmp_path):
    (tmp_path / "wide.csv").write_text(WIDE.replace("val_loss", "eval_accuracy"))
    result = run_cli(["import", str(tmp_path / "c"), "--from", "csv", str(tmp_path / "wide.csv"), "--map",
                      "eval_accuracy=val/acc"])
    assert_one_line_error(result, "tags ['eval_accuracy', 'val/acc']", "--map")
    result = run_cli(["import", str(tmp_path / "c"), "--from", "csv", str(tmp_path / "wide.csv"), "--map",
                      "eval_accuracy=val/acc2"])
    assert result.returncode == 0, result.stderr
    assert set(pd.concat(read_trajectory(d).to_pandas() for d in iter_run_dirs(tmp_path / "c"))["metric"]) == {
        "acc", "acc2"}
    (tmp_path / "bad.csv").write_text(LONG.replace("a,2,val/loss,0.7,0.1", "a,2,val/loss,0.7,0.2"))
    assert_one_line_error(run_cli(["import", str(tmp_path / "d"), "--from", "csv", str(tmp_path / "bad.csv")]),
                          "column 'lr' has several values in run 'a'")
    assert_one_line_error(run_cli(["import", str(tmp_path / "d"), "--from", "excel", "x"]),
                          "--from excel: choose one of csv, tensorboard, mlflow, wandb")
    assert_one_line_error(run_cli(["import", str(tmp_path / "d"), "--from", "csv", str(tmp_path / "wide.csv"),
                                   "--map", "x=not a name"]), "--map 'x=not a name'")
    (tmp_path / "wide_header.csv").write_text(",".join(f"col{i}" for i in range(500)) + "\n" + "[" * 3000 + "\n")
    result = run_cli(["import", str(tmp_path / "d"), "--from", "csv", str(tmp_path / "wide_header.csv")])
    assert_one_line_error(result, "needs a `run` column", "it has col0, col1,", "col7 and 492 more")
    assert len(result.stderr) < 400
    (tmp_path / "far.csv").write_text("run,epoch,val/loss\nr1,0,1.0\nr1,99999999999999999999999,0.5\n")
    assert_one_line_error(run_cli(["import", str(tmp_path / "d"), "--from", "csv", str(tmp_path / "far.csv")]),
                          "csv run 'r1': tag 'val/loss' has step 9999999999999999", "below 2**63")  # it overflowed
    (tmp_path / "late.csv").write_text("run,epoch,val/loss\nr1,0,1.0\nr1,3000000000,0.5\n")  # past int32 epochs
    assert_one_line_error(run_cli(["import", str(tmp_path / "d"), "--from", "csv", str(tmp_path / "late.csv")]),
                          "tag 'val/loss' has step 3000000000, past the last epoch a run holds (2147483647)",
                          "--steps-per-epoch")  # an internal error, ArrowInvalid
    assert not (tmp_path / "d").exists()
