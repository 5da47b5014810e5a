"""merge: copies, never deletes or overwrites, refuses a non-campaign destination and nested
campaigns, keeps both runs of a conflicting run id, idempotent."""
from __future__ import annotations

import shutil

import pytest

from pab_campaign.analysis.campaign.merge import merge
from pab_campaign.errors import CampaignError
from pab_campaign.store import read_run_json, runs_dir
from tests.helpers import cli, make_grid, write_run


def _tree(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_merge_copies_dedups_and_is_idempotent(tmp_path):
    a, b, dst = tmp_path / "a", tmp_path / "b", tmp_path / "ab"
    ids_a = make_grid(a, seeds=1, campaign="ca")
    ids_b = make_grid(b, seeds=1, campaign="cb", prefix="b-")
    shutil.copytree(runs_dir(a) / ids_a[1], runs_dir(b) / ids_a[1])  # the same run in both sources
    before_a, before_b = _tree(a), _tree(b)
    result = merge([a, b], dst)
    assert sorted(r for r, _ in result.added) == sorted(ids_a + ids_b)
    assert [(r, reason) for r, _, reason in result.skipped] == [(ids_a[1], f"the same as the run from {a}")]
    assert result.conflicts == []
    assert _tree(a) == before_a and _tree(b) == before_b  # sources untouched
    assert (runs_dir(dst) / ids_a[0] / "run.json").read_bytes() == (runs_dir(a) / ids_a[0] / "run.json").read_bytes()
    merged = _tree(dst)
    again = merge([a, b], dst)
    assert again.added == [] and again.conflicts == [] and len(again.skipped) == len(ids_a) + len(ids_b) + 1
    assert _tree(dst) == merged
    assert not [p for p in runs_dir(dst).iterdir() if p.name.startswith(".")]


def test_a_run_id_with_other_results_is_a_conflict_and_both_are_kept(tmp_path):
    a, b, dst = tmp_path / "a", tmp_path / "b", tmp_path / "ab"
    ids = make_grid(a, seeds=1, campaign="ca")
    write_run(b, ids[0], {"seed": 0}, {("val", "loss"): [1.0, 0.25]}, campaign="gpu replica")  # same id, other values
    result = merge([a, b], dst)
    kept_as = f"{ids[0]}~gpu_replica@test"
    assert result.conflicts == [(ids[0], b, kept_as)]
    assert (runs_dir(dst) / ids[0] / "run.json").read_bytes() == (runs_dir(a) / ids[0] / "run.json").read_bytes()
    assert (runs_dir(dst) / kept_as / "trajectory.parquet").read_bytes() == (
        runs_dir(b) / ids[0] / "trajectory.parquet").read_bytes()
    assert read_run_json(runs_dir(dst) / kept_as).campaign == "gpu replica"
    tree = _tree(dst)
    again = merge([a, b], dst)  # idempotent: the conflicting run is already kept
    assert again.added == [] and again.conflicts == [] and _tree(dst) == tree
    assert (ids[0], b, f"already in the destination as {kept_as}") in again.skipped
    write_run(tmp_path / "c", ids[0], {"seed": 0}, {("val", "loss"): [9.0]}, campaign="gpu replica")
    third = merge([tmp_path / "c"], dst)  # a third result under the same origin: the next free id
    assert third.conflicts == [(ids[0], tmp_path / "c", f"{kept_as}-2")]


def test_merge_command_reports_conflicts_with_exit_1(tmp_path):
    a, b, dst = tmp_path / "a", tmp_path / "b", tmp_path / "ab"
    write_run(a, "r1", {"seed": 0}, {("val", "loss"): [1.0, 0.5]}, campaign="ca")
    write_run(b, "r1", {"seed": 0}, {("val", "loss"): [1.0, 0.6]}, campaign="cb")
    result = cli(["merge", "--src", str(a), str(b), "--dst", str(dst)])
    assert result.returncode == 1, result.stderr
    text = " ".join(result.stdout.split())
    assert "conflict: r1 from" in text and "both kept, the incoming one as r1~cb@test" in text
    assert f"{dst}: added 1 runs, updated 0, skipped 0, 1 conflicts (kept under suffixed ids)" in text
    assert cli(["merge", "--src", str(a), str(b), "--dst", str(dst)]).returncode == 0  # nothing new


def test_same_values_in_another_file_layout_are_not_a_conflict(tmp_path):
    a, b, dst = tmp_path / "a", tmp_path / "b", tmp_path / "ab"
    write_run(a, "r1", {"seed": 0}, {("val", "loss"): [1.0, float("nan")], ("val", "acc"): [0.1, 0.2]})
    write_run(b, "r1", {"seed": 0}, {("val", "acc"): [0.1, 0.2], ("val", "loss"): [1.0, float("nan")]})
    assert (runs_dir(a) / "r1" / "trajectory.parquet").read_bytes() != (runs_dir(b) / "r1" / "trajectory.parquet"
                                                                         ).read_bytes()
    result = merge([a, b], dst)
    assert result.conflicts == [] and [r for r, _, _ in result.skipped] == ["r1"]


def test_nested_source_and_destination_are_refused(tmp_path):
    a = tmp_path / "a"
    make_grid(a, seeds=1)
    before = _tree(a)
    for dst in (runs_dir(a) / "nested", a / "summary" / "merged"):
        with pytest.raises(CampaignError, match="is inside --src"):
            merge([a], dst)
    outer = tmp_path / "outer"
    make_grid(outer / "inner", seeds=1)
    (outer / "runs").mkdir()
    with pytest.raises(CampaignError, match="is inside --dst"):
        merge([outer / "inner"], outer)
    assert _tree(a) == before and not (runs_dir(a) / "nested").exists()
    result = cli(["merge", "--src", str(a), "--dst", str(runs_dir(a) / "nested")])
    assert result.returncode == 2 and "is inside --src" in result.stderr


def test_merge_never_overwrites_and_refuses_non_campaign(tmp_path):
    a, dst = tmp_path / "a", tmp_path / "dst"
    ids = make_grid(a, seeds=1)
    write_run(dst, ids[0], {"seed": 1}, {("val", "loss"): [5.0]}, campaign="mine")
    mine = (runs_dir(dst) / ids[0] / "run.json").read_bytes()
    result = merge([a], dst)
    assert [(r, kept) for r, _, kept in result.conflicts] == [(ids[0], f"{ids[0]}~c1@test")]
    assert (runs_dir(dst) / ids[0] / "run.json").read_bytes() == mine
    other = tmp_path / "notes"
    other.mkdir()
    (other / "thesis.tex").write_text("keep me")
    with pytest.raises(CampaignError, match="not a campaign"):
        merge([a], other)
    assert [p.name for p in other.iterdir()] == ["thesis.tex"]
    with pytest.raises(CampaignError, match="--src"):
        merge([other], tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_a_killed_merges_temp_directory_is_removed_by_the_next_merge(tmp_path):
    import subprocess

    from pab_campaign.store import host_name

    a, dst = tmp_path / "a", tmp_path / "ab"
    make_grid(a, seeds=1)
    dead = subprocess.Popen(["true"])
    dead.wait()
    left = runs_dir(dst) / f".merge-x~{host_name()}~{dead.pid}~0badc0de"
    (left / "x").mkdir(parents=True)
    merge([a], dst)
    assert not left.exists()
