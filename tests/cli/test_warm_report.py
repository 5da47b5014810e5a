"""A warm `report` (answered from a current runs index without pandas) prints and writes exactly
what the full path prints and writes: same table, CSV bytes, JSON, notes and skipped runs."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from pab_campaign import cli
from pab_campaign.analysis.campaign import warm
from pab_campaign.analysis.summary import warm_report
from pab_campaign.store import run_dir
from tests.helpers import command_env, write_run


def _campaign(root: Path) -> Path:
    """Runs over lr (float), width (int), opt (text, missing in one run), flag (bool) and seed,
    with NaN and ±inf values, a failed run, a run without any value and an unreadable one."""
    for i in range(12):
        lr, width, seed = (0.1, 0.01, 1e-5)[i % 3], (16, 64)[i // 6], i % 2
        acc = [0.1, 0.5 + i / 40]
        loss = [2.0, 1.0 - i / 30]
        if i == 4:
            acc[-1] = math.nan
        if i == 7:
            loss[-1] = math.inf
        if i == 8:
            acc[-1] = -math.inf
        hparams = {"optimizer.lr": lr, "model.width": width, "seed": seed, "flag": i % 2 == 0, "runs": i % 3 == 1,
                   **({"opt": "adam" if i % 4 else "sgd, ' \"momentum\""} if i != 5 else {})}
        write_run(root, f"r{i:02d}", hparams, {("val", "acc"): acc, ("val", "loss"): loss, ("train", "loss"): loss},
                  duration=10.0 + i * 0.37)
    write_run(root, "x-empty", {"optimizer.lr": 0.1, "model.width": 16, "seed": 0, "flag": True, "runs": False},
              {("val", "acc"): [0.2, math.nan], ("val", "loss"): [1.0, math.nan]})
    write_run(root, "x-failed", {"optimizer.lr": 0.1, "model.width": 16, "seed": 3, "flag": True},
              {("val", "acc"): [0.2, 0.3], ("val", "loss"): [1.0, 0.9]}, status="failed")
    broken = run_dir(root, "x-broken")
    broken.mkdir(parents=True)
    (broken / "run.json").write_text("{not json")
    return root


def _outputs(root: Path, out: Path, capsys) -> tuple[str, dict[str, bytes]]:
    text = capsys.readouterr().out
    files = {path.name: path.read_bytes() for path in sorted(out.glob("*.csv"))}
    for path in out.glob("*.csv"):
        path.unlink()
    return text, files


def _both(argv: list[str], out: Path, capsys, monkeypatch) -> tuple[tuple, tuple]:
    """stdout and CSV files of `argv` on the warm path (checked to be taken) and on the full path."""
    taken = []
    real = warm_report.warm_report

    def spy(*args, **kwargs):
        taken.append(result := real(*args, **kwargs))
        return result

    with monkeypatch.context() as patch:
        patch.setattr(warm_report, "warm_report", spy)
        assert cli.main(argv) == 0
    assert taken and taken[0] is not None, "the warm path was not taken"
    fast = _outputs(out, out, capsys)
    with monkeypatch.context() as patch:
        patch.setattr(warm, "read_warm", lambda *args, **kwargs: None)
        assert cli.main(argv) == 0
    return fast, _outputs(out, out, capsys)


@pytest.mark.parametrize("options", [
    [],
    ["--epoch", "best", "--std", "--precision", "6"],
    ["--groupby", "opt", "flag", "--sort", "val/acc", "--top", "2"],
    ["--groupby", "optimizer.lr", "--sort", "val/loss", "--metrics", "val/loss", "val/acc", "train/loss"],
    ["--groupby", "--contexts", "val", "train", "--metrics", "loss"],
    ["--groupby", "model.width", "opt", "--json"],
    ["--campaign-id", "c1", "--groupby", "seed", "--top", "1"],
    ["--groupby", "runs", "--metrics", "val/acc"],  # a hyper-parameter named as a column: runs@hparam
])
def test_warm_report_equals_the_full_path(tmp_path, capsys, monkeypatch, options):
    root = _campaign(tmp_path / "camp")
    out = tmp_path / "out"
    out.mkdir()
    assert cli.main(["ls", str(root)]) == 0  # builds the index
    capsys.readouterr()
    fast, full = _both(["report", str(root), "--output-folder", str(out), *options], out, capsys, monkeypatch)
    assert fast == full
    text, files = fast
    assert len(files) == 1  # --json writes the files too
    if "--json" in options:
        assert [row["runs"] for row in json.loads(text)]
    else:
        assert "skipped run x-broken" in text
        assert ("skipped run x-empty: no finite value" in text) == ("best" not in options)
    if not options:
        assert "val/loss is ±inf in 1 run(s) (r07)" in text and "test/acc" in text  # untracked defaults noted
        assert b'"sgd, \' ""momentum""",' in next(iter(files.values()))  # quoted as pandas quotes it


def test_refusals_and_unanswerable_options_take_the_full_path(tmp_path, capsys, monkeypatch):
    root = _campaign(tmp_path / "camp")
    write_run(root, "y-other", {"optimizer.lr": 0.1, "model.width": 16, "seed": 0, "flag": True},
              {("val", "acc"): [0.2, 0.4], ("val", "loss"): [1.0, 0.8]}, campaign="c2")
    assert cli.main(["ls", str(root)]) == 0
    capsys.readouterr()
    with monkeypatch.context() as patch:
        patch.setattr(warm_report, "warm_report", lambda *args, **kwargs: pytest.fail("warm path taken"))
        assert cli.main(["report", str(root), "--epoch", "1"]) == 0
    assert warm.read_warm(root) is not None
    assert warm_report.warm_report(warm.read_warm(root), None, None, None, "last") is None  # two campaign ids
    capsys.readouterr()
    for options, error in ((["--sort", "test/acc"], "--sort test/acc: not a metric of this report"),
                           (["--metrics", "val/nope"], "val/nope never tracked in these runs")):
        argv = ["report", str(root), "--campaign-id", "c1", "--output-folder", str(tmp_path), *options]
        assert cli.main(argv) == 2
        warm_answer = capsys.readouterr()
        with monkeypatch.context() as patch:
            patch.setattr(warm, "read_warm", lambda *args, **kwargs: None)
            assert cli.main(argv) == 2
        assert capsys.readouterr() == warm_answer and error in warm_answer.err


@pytest.mark.parametrize("options, outcome", [
    (["--metrics", "acc"], "not tracked, left out: test/acc"),  # named plainly: where it is tracked
    (["--metrics", "acc", "loss", "--layout", "split"], "not tracked, left out: test/acc, test/loss"),
    (["--contexts", "train"], "not tracked, left out: train/acc"),
    (["--metrics", "val/acc", "test/acc"], "error: test/acc never tracked"),  # named in full
    (["--contexts", "train", "--metrics", "acc"], "error: train/acc never tracked"),
    (["--metrics", "f1"], "error: f1 (in val, test) never tracked"),
    (["--contexts", "nope"], "error: context nope never tracked"),
])
def test_a_metric_named_plainly_is_reported_where_it_is_tracked(tmp_path, capsys, monkeypatch, options, outcome):
    """Runs without a test split (pabkit's, a user's loop): `--metrics acc` reports val/acc and notes
    test/acc, as the defaults do, on both paths; a metric or context tracked nowhere is refused."""
    for i in range(4):
        write_run(tmp_path, f"r{i}", {"optimizer.lr": [0.1, 0.2][i % 2], "seed": i},
                  {("val", "acc"): [0.1, 0.5 + i / 20], ("val", "loss"): [1.0, 0.5 + i / 10],
                   ("train", "loss"): [1.0, 0.4]})
    argv = ["report", str(tmp_path), "--output-folder", str(tmp_path / "out"), *options]
    code = cli.main(argv)
    answers = [capsys.readouterr()]
    with monkeypatch.context() as patch:
        patch.setattr(warm, "read_warm", lambda *args, **kwargs: None)
        assert cli.main(argv) == code
    answers.append(capsys.readouterr())
    assert code == (2 if outcome.startswith("error") else 0)
    for answer in answers:
        assert outcome in " ".join((answer.out + answer.err).split())


def test_the_warm_report_imports_neither_pandas_nor_scipy(tmp_path):
    root = _campaign(tmp_path / "camp")
    code = ("import sys; from pab_campaign.cli import main; code = main(sys.argv[1:]); "
            "print(sorted(m for m in ('pandas', 'numpy', 'pyarrow', 'scipy') if m in sys.modules)); sys.exit(code)")
    argv = [sys.executable, "-c", code, "report", str(root), "--output-folder", str(tmp_path)]
    first = subprocess.run(argv, capture_output=True, text=True, env=command_env())
    assert first.returncode == 0 and "'pandas'" in first.stdout.splitlines()[-1]  # built the index: full path
    warm_run = subprocess.run(argv, capture_output=True, text=True, env=command_env())
    assert warm_run.returncode == 0, warm_run.stderr
    assert warm_run.stdout.splitlines()[-1] == "[]"
    assert warm_run.stdout.split("\n[]")[0] == first.stdout.rsplit("\n", 2)[0]


@pytest.mark.parametrize("values", [[0.0, -0.0, 0.5], [True, None, False]])
def test_keys_pandas_orders_otherwise_take_the_full_path(tmp_path, values):
    """A -0.0 next to 0.0 (pandas merges them) or a boolean some runs lack (pandas keeps the order of
    appearance) is grouped by the full path."""
    for i, value in enumerate(values):
        write_run(tmp_path, f"r{i}", {"seed": i, **({} if value is None else {"key": value})},
                  {("val", "acc"): [0.1, 0.5], ("val", "loss"): [1.0, 0.5]})
    assert cli.main(["ls", str(tmp_path)]) == 0
    index = warm.read_warm(tmp_path)
    assert index is not None and warm_report.warm_report(index, ["seed"], None, None, "last") is not None
    assert warm_report.warm_report(index, ["key"], None, None, "last") is None
