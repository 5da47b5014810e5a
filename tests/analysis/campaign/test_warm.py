"""Warm `ls` and `properties` answer from a current index without pandas, and print exactly what
the full path (refresh the index, read it with pandas) prints; a stale index is never answered from."""
from __future__ import annotations

import errno
import json
import threading

import pytest

from pab_campaign import cli
from pab_campaign.analysis.campaign import campaign, warm
from pab_campaign.store import run_dir
from tests.helpers import make_grid, write_run


def _both(capsys, monkeypatch, argv: list[str]) -> tuple[str, str]:
    """The output of `argv` from the warm path and from the full path (read_warm disabled)."""
    assert cli.main(argv) == 0
    fast = capsys.readouterr().out
    with monkeypatch.context() as patch:
        patch.setattr(warm, "read_warm", lambda *args, **kwargs: None)
        assert cli.main(argv) == 0
    return fast, capsys.readouterr().out


def test_warm_answers_equal_the_full_path_and_a_stale_index_is_not_used(tmp_path, capsys, monkeypatch):
    make_grid(tmp_path, seeds=2, epochs=3)
    write_run(tmp_path, "odd", {"model.name": "mlp", "flag": True, "a.b": "x", "optimizer.lr": 0.3},
              {("val", "loss"): [1.0, 0.5]}, status="failed", campaign="c2")
    write_run(tmp_path, "odd2", {"model.name": "mlp", "a.b": "y", "width": 3}, {("val", "loss"): [1.0, 0.4]},
              status="failed", campaign="c2", duration=None)
    (run_dir(tmp_path, "broken")).mkdir()
    (run_dir(tmp_path, "broken") / "run.json").write_text("{not json")
    assert cli.main(["ls", str(tmp_path)]) == 0  # builds the index
    capsys.readouterr()
    assert warm.read_warm(tmp_path) is not None
    for argv in (["ls", str(tmp_path)], ["properties", str(tmp_path)], ["ls", str(tmp_path), "--status", "failed"],
                 ["ls", str(tmp_path), "--campaign-id", "c2"], ["properties", str(tmp_path), "--campaign-id", "c2"]):
        fast, full = _both(capsys, monkeypatch, argv)
        assert fast == full
    with monkeypatch.context() as patch:  # the warm answers never open the campaign with pandas
        patch.setattr(campaign, "open_campaign", lambda *args, **kwargs: pytest.fail("took the full path"))
        assert cli.main(["ls", str(tmp_path)]) == 0
    shown = capsys.readouterr().out
    # the varying hyper-parameters (flag, model.hidden and width only restate them); odd2 has no lr
    header = next(line for line in shown.splitlines() if "run_id" in line)
    cells = [cell.strip() for cell in header.strip("┃ ").split("┃")]
    assert cells[cells.index("status") + 1:][:3] == ["model.name", "a.b", "optimizer.lr"]
    odd2 = [cell.strip() for cell in next(line for line in shown.splitlines() if "odd2" in line).strip("│ ").split("│")]
    assert "flag" not in header and odd2[cells.index("optimizer.lr")] == "-"  # lacks it: not 'nan'
    assert odd2[cells.index("duration_s")] == "-"  # its run.json gives no duration: not 'nan'
    assert "skipped run broken" in full and "flag" in full
    record = run_dir(tmp_path, "odd") / "run.json"
    changed = json.loads(record.read_text())
    changed["status"] = "completed"
    record.write_text(json.dumps(changed) + "  ")
    assert warm.read_warm(tmp_path) is None  # the index no longer matches the run files
    assert cli.main(["ls", str(tmp_path), "--status", "completed"]) == 0
    assert "odd" in capsys.readouterr().out
    assert warm.read_warm(tmp_path) is not None


def test_durations_past_the_float_range_are_described_alike_on_both_paths(tmp_path, capsys, monkeypatch):
    """Durations a run.json may hold (1e300 squares past the float range; Infinity is valid JSON to
    Python) give `properties` the same spread on both paths (finite where it is, NaN with an infinite
    value), never an OverflowError."""
    for i, duration in enumerate((1e300, -1e300, 5.0)):
        write_run(tmp_path, f"r{i}", {"optimizer.lr": 0.1, "seed": i}, {("val", "loss"): [1.0, 0.5]}, duration=duration)
    assert cli.main(["properties", str(tmp_path)]) == 0
    capsys.readouterr()
    fast, full = _both(capsys, monkeypatch, ["properties", str(tmp_path)])
    assert fast == full and "1.667 ± 1e+300" in full  # mean ± std
    record = run_dir(tmp_path, "r2") / "run.json"
    record.write_text(record.read_text().replace('"duration_s": 5.0', '"duration_s": Infinity'))
    assert cli.main(["properties", str(tmp_path)]) == 0
    capsys.readouterr()
    fast, full = _both(capsys, monkeypatch, ["properties", str(tmp_path)])
    assert fast == full and "inf ± nan" in full


def test_names_duckdb_would_rename_take_the_full_path(tmp_path, capsys, monkeypatch):
    """DuckDB folds the case of column names (`LR` and `lr` would read as `LR` and `lr_1`): such an
    index is not answered from, and `properties` still names both hyper-parameters."""
    write_run(tmp_path, "r1", {"LR": 1, "lr": 2}, {("val", "loss"): [1.0, 0.5]})
    assert cli.main(["properties", str(tmp_path)]) == 0
    capsys.readouterr()
    assert warm.read_warm(tmp_path) is None
    fast, full = _both(capsys, monkeypatch, ["properties", str(tmp_path)])
    assert fast == full and "│ LR " in full and "│ lr " in full


def test_a_hyper_parameter_some_runs_lack_is_chosen_alike_on_both_paths(tmp_path, capsys, monkeypatch):
    """`flag` has one value where present and is missing elsewhere: not a varying hyper-parameter on
    either path (`ls`, `report`); `width` has two values besides the missing ones: varying on both."""
    for i in range(3):
        write_run(tmp_path, f"a{i}", {"optimizer.lr": 0.1, "flag": True, "width": 8, "seed": i},
                  {("val", "loss"): [1.0, 0.5 + i / 10], ("val", "acc"): [0.1, 0.5]})
        write_run(tmp_path, f"b{i}", {"optimizer.lr": 0.1, "width": 16 if i else None, "seed": i},
                  {("val", "loss"): [1.0, 0.9 + i / 10], ("val", "acc"): [0.1, 0.6]})
    for argv in (["ls", str(tmp_path)], ["report", str(tmp_path), "--output-folder", str(tmp_path / "out")]):
        assert cli.main(argv) == 0  # the index, current for the warm answers
        capsys.readouterr()
        fast, full = _both(capsys, monkeypatch, argv)
        assert fast == full
        header = next(line for line in full.splitlines() if line.startswith("┃"))
        assert "width" in header and "flag" not in header


def test_whole_numbers_some_runs_lack_are_written_whole_on_both_paths(tmp_path, capsys, monkeypatch):
    """The index stores `seed` as float64 once a run lacks it: the report's CSV (warm and full path
    alike), `ls --json` and the grouped audit still say run.json's 0, 1, not 0.0, 1.0; a float
    column (lr) keeps its floats."""
    for i in range(8):
        write_run(tmp_path, f"r{i}", ({"seed": i % 3} if i < 6 else {}) | {"lr": [0.5, 2.0][i % 2]},
                  {("val", "loss"): [1.0, 0.9 - i / 20, 0.5 + (i * 7 % 5) / 10],
                   ("val", "acc"): [0.1, 0.2 + (i * 3 % 4) / 10, 0.5 - i / 40]})
    out = tmp_path / "out"
    argv = ["report", str(tmp_path), "--groupby", "seed", "lr", "--output-folder", str(out)]
    assert cli.main(argv) == 0
    capsys.readouterr()
    assert cli.main(argv) == 0
    capsys.readouterr()
    fast = (out / "summary_seed-lr_last.csv").read_text()
    with monkeypatch.context() as patch:
        patch.setattr(warm, "read_warm", lambda *args, **kwargs: None)
        assert cli.main(argv) == 0
    capsys.readouterr()
    assert (out / "summary_seed-lr_last.csv").read_text() == fast
    keys = [line.split(",")[:2] for line in fast.splitlines()[1:]]
    assert keys == [["0", "0.5"], ["0", "2.0"], ["1", "0.5"], ["1", "2.0"], ["2", "0.5"], ["2", "2.0"],
                    ["", "0.5"], ["", "2.0"]]
    assert cli.main(["ls", str(tmp_path), "--json"]) == 0
    listed = {run["run_id"]: run["hparams"] for run in json.loads(capsys.readouterr().out)}
    assert listed["r4"] == {"seed": 1, "lr": 0.5} and isinstance(listed["r4"]["seed"], int)
    assert listed["r7"] == {"lr": 2.0}
    assert cli.main(["audit", str(tmp_path), "--metric", "val/acc@1", "--baseline", "val/loss@1", "--target",
                     "val/acc", "--groupby", "seed", "--no-plots", "--output-folder", str(out)]) == 0
    groups = {line.split(",")[0] for line in (out / "audit.csv").read_text().splitlines()[1:]}
    assert {"seed=0", "seed=1", "seed=2", "seed=missing"} <= groups


def test_as_written_gives_whole_numbers_back_only_to_a_column_some_runs_lack():
    import pandas as pd

    lacking = pd.Series([0.0, 2.0, float("nan")])
    assert campaign.as_written(lacking).tolist()[:2] == [0, 2] and campaign.as_written(lacking).isna().iloc[2]
    for kept in (pd.Series([0.0, 2.0]), pd.Series([0.5, float("nan")]), pd.Series([2.0**60, float("nan")]),
                 pd.Series(["a", None])):
        assert campaign.as_written(kept) is kept


def test_a_stale_index_hands_its_scan_to_the_full_path(tmp_path, capsys, monkeypatch):
    """`report` on a stale index scans the run files once: the warm check's scan is the refresh's."""
    from pab_campaign.analysis.campaign import index, manifest

    make_grid(tmp_path, seeds=2, epochs=3)
    assert cli.main(["report", str(tmp_path)]) == 0
    fresh = capsys.readouterr().out
    record = next(run_dir(tmp_path, rid) for rid in sorted(p.name for p in (tmp_path / "runs").iterdir()))
    (record / "run.json").write_text((record / "run.json").read_text() + " ")
    scans = []
    real = manifest.scan_rows

    def counted(directory):
        scans.append(directory)
        return real(directory)

    with monkeypatch.context() as patch:
        patch.setattr(manifest, "scan_rows", counted)
        patch.setattr(warm, "scan_rows", counted)
        patch.setattr(index, "scan_rows", counted)
        assert cli.main(["report", str(tmp_path)]) == 0
    assert len(scans) == 1
    assert capsys.readouterr().out == fresh  # the refreshed index gives the same report
    assert warm.read_warm(tmp_path) is not None


def test_a_few_changed_runs_are_patched_in_and_answered_without_pandas(tmp_path, capsys, monkeypatch):
    """After runs were added or rewritten, ls, properties and report patch the index in place and
    answer from it (the campaign is never opened with pandas), printing what the full path prints."""
    ids = make_grid(tmp_path, seeds=2, epochs=3)
    assert cli.main(["ls", str(tmp_path)]) == 0
    for number, argv in enumerate((["ls", str(tmp_path)], ["properties", str(tmp_path)], ["report", str(tmp_path)])):
        write_run(tmp_path, f"added-{argv[0]}", {"model.name": "mlp", "model.hidden": 64, "optimizer.lr": 0.5,
                                                 "seed": 9}, {("val", "loss"): [1.0, 0.3], ("val", "acc"): [0.2, 0.9]})
        write_run(tmp_path, ids[number], {"model.name": "cnn", "model.hidden": 16, "optimizer.lr": 0.01,
                                                "seed": 1}, {("val", "loss"): [1.0, 0.7], ("val", "acc"): [0.3, 0.4]})
        capsys.readouterr()
        assert warm.read_warm(tmp_path) is None  # stale
        with monkeypatch.context() as patch:
            patch.setattr(campaign, "open_campaign", lambda *args, **kwargs: pytest.fail("took the full path"))
            assert cli.main(argv) == 0
        patched = capsys.readouterr().out
        assert warm.read_warm(tmp_path) is not None and f"added-{argv[0]}" in cli_out(capsys, ["ls", str(tmp_path)])
        with monkeypatch.context() as patch:
            patch.setattr(warm, "read_warm", lambda *args, **kwargs: None)
            assert cli.main(argv) == 0
        assert patched == capsys.readouterr().out


def cli_out(capsys, argv: list[str]) -> str:
    assert cli.main(argv) == 0
    return capsys.readouterr().out


def test_a_patched_index_that_cannot_be_written_still_answers_and_stays_stale(tmp_path, capsys, monkeypatch):
    """The patch answers from memory while its file is written on a thread: where that write fails
    (a full disk), the command still prints the full path's answer, the old file stays byte for
    byte, and the next command sees it stale and patches again."""
    from pab_campaign.analysis.campaign import patch as patching

    ids = make_grid(tmp_path, seeds=2, epochs=3)
    assert cli.main(["ls", str(tmp_path)]) == 0
    index_file = tmp_path / "summary" / "runs.parquet"
    before = index_file.read_bytes()
    write_run(tmp_path, ids[0], {"model.name": "cnn", "model.hidden": 16, "optimizer.lr": 0.01, "seed": 1},
              {("val", "loss"): [1.0, 0.7], ("val", "acc"): [0.3, 0.4]})
    writes = []

    def full_disk(path, write):
        writes.append(threading.current_thread().name)
        raise OSError(errno.ENOSPC, "No space left on device")

    capsys.readouterr()
    with monkeypatch.context() as patch:
        patch.setattr(patching, "atomic_write", full_disk)
        patch.setattr(campaign, "open_campaign", lambda *args, **kwargs: pytest.fail("took the full path"))
        assert cli.main(["report", str(tmp_path)]) == 0
    answered = capsys.readouterr().out
    assert writes == ["pab-index-write"] and index_file.read_bytes() == before
    assert not any(thread.name == "pab-index-write" for thread in threading.enumerate())
    assert warm.read_warm(tmp_path) is None  # still stale
    with monkeypatch.context() as patch:
        patch.setattr(warm, "read_warm", lambda *args, **kwargs: None)
        assert cli.main(["report", str(tmp_path)]) == 0
    assert answered == capsys.readouterr().out


def test_properties_shortens_a_long_list_of_values_alike_on_both_paths_and_json_keeps_them(
        tmp_path, capsys, monkeypatch):
    make_grid(tmp_path, seeds=15, epochs=1)
    assert cli.main(["properties", str(tmp_path)]) == 0  # the index, for the warm path
    capsys.readouterr()
    fast, full = _both(capsys, monkeypatch, ["properties", str(tmp_path)])
    assert fast == full
    listed = ", ".join(str(seed) for seed in range(warm.LISTED_VALUES - 1))
    assert f"{listed}, …, 14" in fast and "11, 12" not in fast
    assert cli.main(["properties", str(tmp_path), "--json"]) == 0
    rows = {row["property"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["seed"] == {"property": "seed", "unique": "15", "value": ", ".join(str(s) for s in range(15)),
                            "runs_lacking": 0}


def test_properties_says_how_many_runs_lack_a_hyper_parameter_alike_on_both_paths(tmp_path, capsys, monkeypatch):
    make_grid(tmp_path, seeds=2, epochs=1)  # 2 models x 2 learning rates x 2 seeds
    write_run(tmp_path, "odd", {"model.name": "mlp", "width": 3}, {("val", "loss"): [1.0]})
    assert cli.main(["properties", str(tmp_path)]) == 0
    capsys.readouterr()
    fast, full = _both(capsys, monkeypatch, ["properties", str(tmp_path)])
    assert fast == full
    rows = {line.split("│")[1].strip(): line.split("│")[3].strip() for line in fast.splitlines() if "│" in line}
    assert rows["width"] == "3 (8 of 9 runs lack it)"  # a whole number only the odd run has (a float column)
    assert rows["optimizer.lr"].endswith("(1 of 9 runs lack it)") and rows["model.name"] == "cnn, mlp"
    assert cli.main(["properties", str(tmp_path), "--json"]) == 0
    listed = {row["property"]: row for row in json.loads(capsys.readouterr().out)}
    assert listed["width"] == {"property": "width", "unique": "1", "value": "3", "runs_lacking": 8}  # values alone
    assert listed["seed"]["runs_lacking"] == 1 and listed["runs"]["runs_lacking"] == 0
