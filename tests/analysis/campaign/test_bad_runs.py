"""One bad run never stops the analysis: every malformed or unreachable run is listed with its reason
and left out, and every command goes on (ls, properties, report, curves, audit, summarize)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pab_campaign import store
from tests.helpers import REPO, assert_one_line_error, cli, command_env, make_grid

COMMANDS = [
    ["ls"], ["properties"], ["report"], ["curves", "--metrics", "val/acc"],
    ["audit", "--metric", "test/acc@3", "--baseline", "val/loss@3", "--target", "val/acc", "--n-boot", "50",
     "--no-plots"],
]
# Root reads any file; without these capabilities it meets file permissions as any user does.
WITHOUT_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"] if os.geteuid() == 0 else []


def _edit_run_json(run, **fields) -> None:
    data = json.loads((run / store.RUN_JSON).read_text())
    data.update(fields)
    (run / store.RUN_JSON).write_text(json.dumps(data))


def _make_directory(run) -> None:
    (run / store.RUN_JSON).unlink()
    (run / store.RUN_JSON).mkdir()


def _unreadable(run) -> None:
    (run / store.RUN_JSON).chmod(0)


def _closed_directory(run) -> None:
    run.chmod(0)


CASES = {
    "hparams a string": (lambda run: _edit_run_json(run, hparams="lr=0.1"), "field 'hparams'"),
    "hparams a list": (lambda run: _edit_run_json(run, hparams=[0.1, 0]), "field 'hparams'"),
    "duration_s a string": (lambda run: _edit_run_json(run, duration_s="12.5"), "field 'duration_s'"),
    "epochs_done a string": (lambda run: _edit_run_json(run, epochs_done="6"), "field 'epochs_done'"),
    "not JSON": (lambda run: (run / store.RUN_JSON).write_text("{'run_id': "), "not valid JSON"),
    "run.json a directory": (_make_directory, "is a directory"),
    "run.json unreadable": (_unreadable, "Permission denied"),
    "run directory closed": (_closed_directory, "Permission denied"),
}


def _run(args: list[str], prefix: list[str] | tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "pab_campaign.cli", *args], cwd=REPO, env=command_env(),
                          capture_output=True, text=True, timeout=300)


def _assert_every_command_skips(campaign, bad: str, fragment: str, run_json_readable: bool = False) -> None:
    """Every command exits 0 and names `bad` as skipped with `fragment` in its reason; a run whose
    run.json is fine (only its trajectory is bad) is listed by `ls` and `properties` as what it is,
    and skipped by the commands that read trajectories."""
    for command in COMMANDS:
        result = _run([command[0], str(campaign), *command[1:]])
        assert result.returncode == 0, f"{command[0]}: {result.stderr[-2000:]}"
        if run_json_readable and command[0] in ("ls", "properties"):
            assert command[0] == "properties" or bad in result.stdout
            continue
        lines = [line for line in " ".join(result.stdout.split()).split("skipped run ")[1:] if line.startswith(bad)]
        assert lines and fragment in lines[0], f"{command[0]}: {result.stdout[-3000:]}"


def test_malformed_and_unreachable_runs_are_skipped_with_their_reasons(tmp_path):
    """Every case at once in one campaign (8 good runs stay): each bad run is named with its reason
    by every command. The commands run without the capabilities that let root read any file."""
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.fail("running as root without setpriv: cannot drop the capability that bypasses permissions")
    campaign = tmp_path / "c"
    ids = make_grid(campaign, seeds=4, epochs=4)
    bad = dict(zip(CASES, ids[::2]))
    for case, run_id in bad.items():
        CASES[case][0](store.run_dir(campaign, run_id))
    os.symlink("loop-b", store.runs_dir(campaign) / "loop-a")
    os.symlink("loop-a", store.runs_dir(campaign) / "loop-b")
    try:
        for command in COMMANDS:
            result = _run([command[0], str(campaign), *command[1:]], WITHOUT_DAC)
            assert result.returncode == 0, f"{command[0]}: {result.stderr[-2000:]}"
            text = " ".join(result.stdout.split())
            expected = [(run_id, CASES[case][1]) for case, run_id in bad.items()]
            for run_id, fragment in [*expected, ("loop-a", "Too many levels of symbolic links")]:
                lines = [line for line in text.split("skipped run ")[1:] if line.startswith(run_id)]
                assert lines and fragment in lines[0], f"{command[0]} on {run_id}: {result.stdout[-3000:]}"
    finally:
        for run_id in bad.values():
            store.run_dir(campaign, run_id).chmod(0o755)


def test_duplicate_trajectory_rows_are_skipped_by_every_command(tmp_path):
    campaign = tmp_path / "c"
    ids = make_grid(campaign, seeds=2, epochs=4)
    for run_id, keyed in ((ids[0], False), (ids[1], True)):
        run = store.run_dir(campaign, run_id)
        table = store.read_trajectory(run)
        twice = table.filter(pa.compute.is_valid(table.column("key"))) if keyed else table
        store.write_trajectory(run, pa.concat_tables([table, twice]))
    _assert_every_command_skips(campaign, ids[0], "duplicate rows", run_json_readable=True)
    result = _run(["audit", str(campaign), "--metric", "val/class_acc[0]@3", "--baseline", "val/loss@3",
                   "--target", "val/acc", "--n-boot", "50", "--no-plots"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"skipped run {ids[1]}: the trajectory has duplicate rows" in " ".join(result.stdout.split())


def test_float_epochs_are_refused_in_one_line_by_summarize(tmp_path):
    campaign = tmp_path / "c"
    ids = make_grid(campaign, seeds=1, epochs=3)
    run = store.run_dir(campaign, ids[0])
    table = pq.read_table(run / store.TRAJECTORY)
    epochs = [e + 0.5 if e else 0.0 for e in table.column("epoch").to_pylist()]
    pq.write_table(table.set_column(0, "epoch", pa.array(epochs, pa.float64())), run / store.TRAJECTORY)
    result = cli(["summarize", str(run)])
    assert result.returncode == 2
    assert_one_line_error(result, "epoch must hold whole numbers")
    assert cli(["summarize", str(store.run_dir(campaign, ids[1]))]).returncode == 0
