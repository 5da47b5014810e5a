"""Caches a campaign brings with it (copied, unpacked, from someone else) are never believed: a
summary/ whose marker does not name that very folder (device, inode) has its caches made again."""
from __future__ import annotations

import shutil

import pyarrow as pa
import pyarrow.parquet as pq

from pab_campaign.analysis.campaign import curve_store, index, provenance
from pab_campaign.analysis.campaign.campaign import open_campaign
from pab_campaign.analysis.campaign.index_layout import RUNS_INDEX
from pab_campaign.analysis.modeldiff import outputs
from pab_campaign.store import summary_dir
from tests.helpers import write_run


def _campaign(root):
    for i in range(4):
        write_run(root, f"r{i}", {"optimizer.lr": 0.1, "seed": i}, {("val", "acc"): [0.1, 0.5 + i / 10]})
    open_campaign(root)  # the index, and the marker of its folder
    return root


def _forge(campaign) -> None:
    """Every run's val/acc@last in the stored index set to 0.999, its manifest kept (as a stranger can)."""
    path = summary_dir(campaign) / RUNS_INDEX
    table = pq.read_table(path)
    column = table.schema.get_field_index("val/acc@last")
    table = table.set_column(column, "val/acc@last", pa.array([0.999] * len(table)))
    pq.write_table(table, path)


def test_a_copied_campaigns_forged_index_is_made_again_from_its_runs(tmp_path):
    original = _campaign(tmp_path / "mine")
    shipped = tmp_path / "shipped"
    shutil.copytree(original, shipped)  # mtimes kept, as `cp -a` and `tar` keep them
    _forge(shipped)
    runs = open_campaign(shipped).runs.set_index("run_id")
    assert runs["val/acc@last"].tolist() == [0.5, 0.6, 0.7, 0.8]
    assert provenance.made_here(summary_dir(shipped))
    _forge(shipped)  # its own index now: believed as any index this file system's commands wrote
    assert open_campaign(shipped).runs["val/acc@last"].tolist() == [0.999] * 4


def test_claim_removes_only_the_caches_and_never_follows_a_link(tmp_path):
    folder = tmp_path / "summary"
    outside = tmp_path / "outside"
    (folder / "diff" / "a_vs_b").mkdir(parents=True)
    outside.mkdir()
    for name in (*provenance.CACHES, "summary_all_last.csv", "diff/a_vs_b/scores_a.json", "diff/a_vs_b/scores_a.npy"):
        (folder / name).write_text("x")
    (outside / "scores_b.json").write_text("theirs")
    (folder / "diff" / "linked").symlink_to(outside, target_is_directory=True)
    removed = provenance.claim(folder)
    assert sorted(p.relative_to(folder).as_posix() for p in removed) == sorted(
        [*provenance.CACHES, "diff/a_vs_b/scores_a.json"])
    assert (folder / "summary_all_last.csv").exists() and (outside / "scores_b.json").read_text() == "theirs"
    assert provenance.made_here(folder) and provenance.claim(folder) == []


def test_the_caches_named_are_the_ones_commands_reuse():
    assert provenance.CACHES == (RUNS_INDEX, index.TRAJECTORIES_INDEX, curve_store.CURVE_STORE)
    assert provenance.DIFF_FOLDER == outputs.DIFF_DIR
