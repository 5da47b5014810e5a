"""`store.replace_outputs`: a folder's outputs are replaced as a whole, a failure or a kill at any step
never loses the earlier result, and what a killed command left is cleaned up by the next one."""
import subprocess
import sys
import textwrap

import pytest

from pab_campaign import store
from tests.helpers import command_env


def _fill(names):
    def fill(staging):
        for name in names:
            (staging / name).write_text(f"new {name}")
        return [staging / name for name in names]
    return fill


def _old(folder, names=("a.png", "b.png")):
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_text(f"old {name}")


@pytest.mark.parametrize("exchange", [True, False])
def test_the_folder_holds_exactly_the_new_outputs(tmp_path, monkeypatch, exchange):
    if not exchange:  # the two-rename way, where the system cannot exchange two paths atomically
        monkeypatch.setattr(store, "_exchange", lambda a, b: False)
    folder = tmp_path / "summary" / "audit"
    _old(folder)
    written = store.replace_outputs(folder, _fill(["a.png", "c.png"]))
    assert written == [folder / "a.png", folder / "c.png"]
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "c.png"]
    assert (folder / "a.png").read_text() == "new a.png"
    assert [p.name for p in folder.parent.iterdir()] == ["audit"]  # no staging or backup left


def test_a_failing_fill_leaves_the_old_folder_and_no_staging(tmp_path):
    folder = tmp_path / "audit"
    _old(folder)

    def fill(staging):
        (staging / "a.png").write_text("half")
        raise RuntimeError("figure failed")

    with pytest.raises(RuntimeError):
        store.replace_outputs(folder, fill)
    assert (folder / "a.png").read_text() == "old a.png" and (folder / "b.png").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["audit"]


def test_a_shared_folder_keeps_files_that_are_not_ours(tmp_path):
    folder = tmp_path / "out"
    _old(folder, ("a.png", "b.png", "notes.txt", "scores.npy"))
    written = store.replace_outputs(folder, _fill(["a.png"]), ours=lambda name: name.endswith(".png"))
    assert written == [folder / "a.png"]
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "notes.txt", "scores.npy"]
    assert (folder / "a.png").read_text() == "new a.png" and (folder / "notes.txt").read_text() == "old notes.txt"


def _killed(tmp_path, folder, body: str) -> None:
    """Run `body` in a process of its own that ends abruptly (os._exit) inside it, as a kill would."""
    script = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from pab_campaign import store
        folder = Path({str(folder)!r})
    """) + textwrap.dedent(body)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            cwd=str(tmp_path), env=command_env())
    assert result.returncode == 9, result.stderr


def test_a_kill_while_filling_leaves_a_temp_the_next_command_removes(tmp_path):
    folder = tmp_path / "summary" / "audit"
    _old(folder)
    _killed(tmp_path, folder, """
        staging = store.stage_dir(folder)
        (staging / "a.png").write_text("half")
        os._exit(9)
    """)
    leftovers = [p for p in folder.parent.iterdir() if p.name != "audit"]
    assert len(leftovers) == 1 and store.is_stale_temp(leftovers[0])  # named as the clean-up knows
    assert store.remove_stale_temps(folder.parent) == leftovers
    assert [p.name for p in folder.parent.iterdir()] == ["audit"] and (folder / "a.png").read_text() == "old a.png"


def test_a_kill_between_the_two_renames_is_undone_by_the_next_command(tmp_path):
    folder = tmp_path / "summary" / "audit"
    _old(folder)
    _killed(tmp_path, folder, """
        staging = store.stage_dir(folder)
        (staging / "a.png").write_text("new")
        renames = []
        real_rename = os.rename
        def rename(src, dst):  # the second rename (staging -> folder) never happens
            if renames:
                os._exit(9)
            renames.append(src)
            real_rename(src, dst)
        os.rename = rename
        store.swap_in(staging, folder, exchange=False)
    """)
    assert not folder.exists()  # the moment the kill left: the old folder sits under its backup name
    assert sorted(p.name.rsplit(".", 1)[-1] for p in folder.parent.iterdir()) == ["new", "old"]
    store.remove_stale_temps(folder.parent)  # what the next command does first (workspace.choose)
    assert [p.name for p in folder.parent.iterdir()] == ["audit"]
    assert sorted(p.read_text() for p in folder.iterdir()) == ["old a.png", "old b.png"]


def test_a_backup_left_after_the_new_folder_was_in_place_is_removed(tmp_path):
    folder = tmp_path / "summary" / "audit"
    _old(folder)
    _killed(tmp_path, folder, """
        import shutil
        shutil.rmtree = lambda *args, **kwargs: os._exit(9)  # killed before the backup is removed
        staging = store.stage_dir(folder)
        (staging / "a.png").write_text("new")
        store.swap_in(staging, folder, exchange=False)
    """)
    assert len(list(folder.parent.iterdir())) == 2
    store.remove_stale_temps(folder.parent)
    assert [p.name for p in folder.parent.iterdir()] == ["audit"] and (folder / "a.png").read_text() == "new"
