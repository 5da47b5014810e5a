"""merge on untrusted and live campaigns: links out and special files are never copied, a run that
had not ended is updated by one that went further, a running run is copied only when asked, and two
merges into one destination at once keep every run once."""
from __future__ import annotations

import os
import subprocess
import sys

from pab_campaign.analysis.campaign.merge import merge
from pab_campaign.runlock import RunLock
from pab_campaign.store import read_run_json, runs_dir
from tests.helpers import cli, command_env, make_grid, write_run

CURVE = {("val", "loss"): [1.0, 0.8, 0.6, 0.4]}


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_links_out_and_special_files_are_not_copied(tmp_path):
    outside = tmp_path / "home"
    (outside / ".ssh").mkdir(parents=True)
    (outside / ".ssh" / "id_rsa").write_text("SECRET")
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_run(src, "good", {"seed": 0}, CURVE)
    (runs_dir(src) / "evil").symlink_to(outside, target_is_directory=True)  # a run entry linking out
    (runs_dir(src) / "notes").mkdir()  # a directory without run.json is no run
    leaky = write_run(src, "leaky", {"seed": 1}, CURVE)
    (leaky / "key").symlink_to(outside / ".ssh" / "id_rsa")  # a link inside a run leading out
    (leaky / "alias.parquet").symlink_to("trajectory.parquet")  # a link that stays inside the run
    os.mkfifo(leaky / "pipe")
    fifo = write_run(src, "fifo", {"seed": 2}, CURVE)
    (fifo / "trajectory.parquet").unlink()
    os.mkfifo(fifo / "trajectory.parquet")
    result = cli(["merge", "--src", str(src), "--dst", str(dst)], timeout=120)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert sorted(os.listdir(runs_dir(dst))) == ["good", "leaky"]
    assert _files(runs_dir(dst) / "leaky") == ["alias.parquet", "run.json", "trajectory.parquet"]
    assert os.readlink(runs_dir(dst) / "leaky" / "alias.parquet") == "trajectory.parquet"
    assert "SECRET" not in "".join(p.read_text(errors="replace") for p in runs_dir(dst).rglob("*") if p.is_file())
    assert "skipped evil from" in text and "not a run directory; links are not copied" in text
    assert "skipped notes from" in text and "no run.json" in text
    assert "skipped fifo from" in text and "is a FIFO, not a regular file" in text
    assert "left out of leaky" in text and "a link leading out of the run" in text and "a FIFO" in text


def test_a_run_that_had_not_ended_is_updated_by_one_that_went_further(tmp_path):
    early, late, dst = tmp_path / "early", tmp_path / "late", tmp_path / "dst"
    write_run(early, "r", {"seed": 0}, {("val", "loss"): CURVE[("val", "loss")][:2]}, status="preempted")
    write_run(late, "r", {"seed": 0}, CURVE, status="preempted")
    assert merge([early], dst).added == [("r", early)]
    further = merge([late], dst)
    assert [(r, why) for r, _, why in further.updated] == [("r", "it got further (epoch 3 against 1)")]
    assert read_run_json(runs_dir(dst) / "r").epochs_done == 3
    back = merge([early], dst)  # the shorter copy never replaces the longer one
    assert back.updated == [] and "the destination's got further" in back.skipped[0][2]
    # same trajectory, but the source has now completed: the destination's is updated, not "the same"
    write_run(late, "r", {"seed": 0}, CURVE, status="completed")
    done = merge([late], dst)
    assert [r for r, _, _ in done.updated] == ["r"] and read_run_json(runs_dir(dst) / "r").status == "completed"
    assert not [p for p in os.listdir(runs_dir(dst)) if p != "r"]  # no temp or conflict copy left
    write_run(early, "r", {"seed": 0}, CURVE, status="failed")
    final = merge([early], dst)  # a run that ended beats one that had not
    assert final.updated == [] and "a run that ended beats one that had not" in final.skipped[0][2]
    assert read_run_json(runs_dir(dst) / "r").status == "completed"


def test_a_run_being_written_is_copied_only_when_asked(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    run = write_run(src, "r", {"seed": 0}, CURVE, status="running")
    with RunLock(run):
        plain = cli(["merge", "--src", str(src), "--dst", str(dst)], timeout=120)
        assert plain.returncode == 0, plain.stderr
        assert "a live process is writing it" in " ".join(plain.stdout.split())
        assert not (runs_dir(dst) / "r").exists()
        asked = cli(["merge", "--src", str(src), "--dst", str(dst), "--include-running"], timeout=120)
        assert asked.returncode == 0, asked.stderr
        assert "added r from" in asked.stdout and "copied while a process writes it" in " ".join(asked.stdout.split())
        assert not (runs_dir(dst) / "r" / "run.lock").exists()
    write_run(src, "r", {"seed": 0}, CURVE, status="completed")
    after = merge([src], dst)  # the sweep ended: the half run is replaced by the finished one
    assert [r for r, _, _ in after.updated] == ["r"] and read_run_json(runs_dir(dst) / "r").status == "completed"


def test_two_merges_into_one_destination_at_once_keep_every_run_once(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    ids = make_grid(src, seeds=5)
    argv = [sys.executable, "-m", "pab_campaign.cli", "merge", "--src", str(src), "--dst", str(dst)]
    merges = [subprocess.Popen(argv, env=command_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(2)]
    outputs = [m.communicate(timeout=300) for m in merges]
    assert [m.returncode for m in merges] == [0, 0], outputs
    assert sorted(os.listdir(runs_dir(dst))) == sorted(ids)
    report = cli(["ls", str(dst)], timeout=120)
    assert f"{len(ids)} runs" in report.stdout


def test_a_sparse_file_stays_sparse_in_the_copy(tmp_path):
    """A run from someone else may hold a sparse file of any size (no disk used): its copy keeps the
    holes, and its bytes."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    run = write_run(src, "r0", {"seed": 0}, CURVE)
    checkpoints = run / "checkpoints"
    checkpoints.mkdir()
    with open(checkpoints / "epoch_0001.pt", "wb") as sparse:
        sparse.write(b"head")
        sparse.seek(1 << 33)  # 8 GB further on
        sparse.write(b"tail")
    merge([src], dst)
    copy = runs_dir(dst) / "r0" / "checkpoints" / "epoch_0001.pt"
    assert copy.stat().st_size == (1 << 33) + 4 and copy.stat().st_blocks * 512 < (1 << 20)
    with open(copy, "rb") as handle:
        assert handle.read(4) == b"head" and handle.seek(1 << 33) and handle.read() == b"tail"


def test_a_run_whose_name_cannot_be_kept_is_skipped_and_the_merge_goes_on(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    long_new, long_conflict = "n" * 240, "c" * 250
    for run_id in (long_new, long_conflict, "short"):
        write_run(src, run_id, {"seed": 0}, CURVE)
    write_run(dst, long_conflict, {"seed": 1}, {("val", "loss"): [2.0, 1.0]})  # a different result: a new name
    result = merge([src], dst)
    assert [name for name, _ in result.added] == ["short"]
    reasons = {name: why for name, _, why in result.skipped}
    assert set(reasons) == {long_new, long_conflict}
    assert all("longer than this file system takes" in why and "rename the run's folder" in why
               for why in reasons.values())
    assert sorted(os.listdir(runs_dir(dst))) == sorted([long_conflict, "short"])
