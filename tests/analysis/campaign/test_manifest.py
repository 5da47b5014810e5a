"""The manifest scan (one `lstat` per run file where nothing is a link) answers exactly what the full
check of every file (`file_stat`) answers, over hostile run entries: links in and out of the
campaign, a linked run directory, a dangling link, a FIFO, a directory where a file should be."""
from __future__ import annotations

import os
from pathlib import Path

from pab_campaign.analysis.campaign.manifest import file_stat, scan_rows
from pab_campaign.store import RUN_JSON, TRAJECTORY, run_entry_names
from tests.helpers import write_run


def _full_check(campaign: Path) -> list[tuple]:
    root = campaign / "runs"
    return [(name, *file_stat(root / name / RUN_JSON, campaign), *file_stat(root / name / TRAJECTORY, campaign))
            for name in run_entry_names(campaign)]


def test_the_fast_scan_equals_the_full_check_of_every_file(tmp_path):
    campaign, outside = tmp_path / "c", tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text("{}")
    for rid in ("plain", "traj-link-in", "json-link-out", "fifo", "dir-as-file", "no-trajectory"):
        write_run(campaign, rid, {"lr": 0.1}, {("val", "loss"): [1.0, 0.5]})
    runs = campaign / "runs"
    (runs / "traj-link-in" / TRAJECTORY).unlink()
    (runs / "traj-link-in" / TRAJECTORY).symlink_to(runs / "plain" / TRAJECTORY)
    (runs / "json-link-out" / RUN_JSON).unlink()
    (runs / "json-link-out" / RUN_JSON).symlink_to(outside / "secret.json")
    (runs / "fifo" / TRAJECTORY).unlink()
    os.mkfifo(runs / "fifo" / TRAJECTORY)
    (runs / "dir-as-file" / RUN_JSON).unlink()
    (runs / "dir-as-file" / RUN_JSON).mkdir()
    (runs / "no-trajectory" / TRAJECTORY).unlink()
    (runs / "linked-run").symlink_to(runs / "plain")
    (runs / "dangling").symlink_to(tmp_path / "gone")
    (runs / "run-outside").symlink_to(outside)
    rows = scan_rows(campaign)
    assert rows == _full_check(campaign)
    found = {row[0]: row[1:] for row in rows}
    plain = found["plain"]
    assert plain[0] > 0 and found["traj-link-in"][2:] == plain[2:]  # a link inside the campaign is followed
    assert found["json-link-out"][:2] == (-1, -1) and found["fifo"][2:] == (-1, -1)
    assert found["dir-as-file"][:2] == (-1, -1) and found["no-trajectory"][2:] == (-1, -1)
    assert found["linked-run"] == plain and found["dangling"] == (-1, -1, -1, -1)
    assert found["run-outside"] == (-1, -1, -1, -1)


def test_a_linked_runs_folder_takes_the_full_check(tmp_path):
    """`runs/` itself a link (inside the campaign, then out of it): the scan answers what the full
    check of every file answers; files reached through a link out of the campaign are not read."""
    campaign = tmp_path / "c"
    write_run(tmp_path / "elsewhere", "r1", {"lr": 0.1}, {("val", "loss"): [1.0, 0.5]})
    inside = campaign / "stored-runs"
    inside.parent.mkdir(parents=True)
    os.rename(tmp_path / "elsewhere" / "runs", inside)
    (campaign / "runs").symlink_to(inside, target_is_directory=True)
    rows = scan_rows(campaign)
    assert rows == _full_check(campaign) and rows[0][0] == "r1" and rows[0][1] > 0
    (campaign / "runs").unlink()
    outside = tmp_path / "outside-runs"
    os.rename(inside, outside)
    (campaign / "runs").symlink_to(outside, target_is_directory=True)
    rows = scan_rows(campaign)
    assert rows == _full_check(campaign) == [("r1", -1, -1, -1, -1)]
