"""merge: copies, never deletes or overwrites, refuses a non-campaign destination, idempotent."""
from __future__ import annotations

import pytest

from pab_campaign.analysis.merge import merge
from pab_campaign.errors import CampaignError
from pab_campaign.store import runs_dir
from tests.helpers import make_grid, write_run


def _tree(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_merge_copies_dedups_and_is_idempotent(tmp_path):
    a, b, dst = tmp_path / "a", tmp_path / "b", tmp_path / "ab"
    ids_a = make_grid(a, seeds=1, campaign="ca")
    ids_b = make_grid(b, seeds=1, campaign="cb", prefix="b-")
    write_run(b, ids_a[0], {"seed": 9}, {("val", "loss"): [1.0]}, campaign="cb")  # same run_id as in a
    before_a, before_b = _tree(a), _tree(b)
    result = merge([a, b], dst)
    assert sorted(r for r, _ in result.added) == sorted(ids_a + ids_b)
    assert [(r, reason) for r, _, reason in result.skipped] == [(ids_a[0], f"duplicate of the run from {a}")]
    assert _tree(a) == before_a and _tree(b) == before_b  # sources untouched
    assert (runs_dir(dst) / ids_a[0] / "run.json").read_bytes() == (runs_dir(a) / ids_a[0] / "run.json").read_bytes()
    merged = _tree(dst)
    again = merge([a, b], dst)
    assert again.added == [] and len(again.skipped) == len(ids_a) + len(ids_b) + 1
    assert _tree(dst) == merged
    assert not [p for p in runs_dir(dst).iterdir() if p.name.startswith(".")]


def test_merge_never_overwrites_and_refuses_non_campaign(tmp_path):
    a, dst = tmp_path / "a", tmp_path / "dst"
    ids = make_grid(a, seeds=1)
    write_run(dst, ids[0], {"seed": 1}, {("val", "loss"): [5.0]}, campaign="mine")
    mine = (runs_dir(dst) / ids[0] / "run.json").read_bytes()
    result = merge([a], dst)
    assert (ids[0], a, "already in the destination") in result.skipped
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
