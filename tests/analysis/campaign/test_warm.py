"""Warm `ls` and `properties` answer from a current index without pandas, and print exactly what
the full path (refresh the index, read it with pandas) prints; a stale index is never answered from."""
from __future__ import annotations

import json

from pab_campaign import cli
from pab_campaign.analysis.campaign import warm
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
    write_run(tmp_path, "odd", {"model.name": "mlp", "flag": True, "a.b": "x"}, {("val", "loss"): [1.0, 0.5]},
              status="failed", campaign="c2")
    (run_dir(tmp_path, "broken")).mkdir()
    (run_dir(tmp_path, "broken") / "run.json").write_text("{not json")
    assert cli.main(["ls", str(tmp_path)]) == 0  # builds the index
    capsys.readouterr()
    assert warm.read_warm(tmp_path) is not None
    for argv in (["ls", str(tmp_path)], ["properties", str(tmp_path)], ["ls", str(tmp_path), "--status", "failed"],
                 ["properties", str(tmp_path), "--campaign-id", "c2"]):
        fast, full = _both(capsys, monkeypatch, argv)
        assert fast == full
    assert "skipped run broken" in full and "flag" in full
    record = run_dir(tmp_path, "odd") / "run.json"
    changed = json.loads(record.read_text())
    changed["status"] = "completed"
    record.write_text(json.dumps(changed) + "  ")
    assert warm.read_warm(tmp_path) is None  # the index no longer matches the run files
    assert cli.main(["ls", str(tmp_path), "--status", "completed"]) == 0
    assert "odd" in capsys.readouterr().out
    assert warm.read_warm(tmp_path) is not None


def test_names_duckdb_would_rename_take_the_full_path(tmp_path, capsys, monkeypatch):
    """DuckDB folds the case of column names (`LR` and `lr` would read as `LR` and `lr_1`): such an
    index is not answered from, and `properties` still names both hyper-parameters."""
    write_run(tmp_path, "r1", {"LR": 1, "lr": 2}, {("val", "loss"): [1.0, 0.5]})
    assert cli.main(["properties", str(tmp_path)]) == 0
    capsys.readouterr()
    assert warm.read_warm(tmp_path) is None
    fast, full = _both(capsys, monkeypatch, ["properties", str(tmp_path)])
    assert fast == full and "│ LR " in full and "│ lr " in full
