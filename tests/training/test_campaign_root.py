"""Where runs are written: an empty campaign.root (or PAB_CAMPAIGN_ROOT='') and a root that is a file
are refused in one line with exit 2, and hydra.job.chdir=true leaves the campaign where the command
was launched, so a relaunch skips the finished run instead of training it again inside Hydra's folder."""
from __future__ import annotations

import pytest

from tests.helpers import assert_one_line_error, command_env, run_command

TINY = ["train.epochs=1", "tracking=minimal", "runtime.verbose=false"]


@pytest.mark.parametrize("root_args, env, fragment", [
    (["campaign.root="], {}, "campaign.root is empty"),
    ([], {"PAB_CAMPAIGN_ROOT": ""}, "unset PAB_CAMPAIGN_ROOT"),
    (["campaign.root=a_file"], {}, "campaign.root=a_file is a file"),
    (["campaign.root=a_file/below"], {}, "is inside a_file, which is a file"),
])
def test_a_root_that_is_empty_or_a_file_is_refused(tmp_path, root_args, env, fragment):
    (tmp_path / "a_file").write_text("keep")
    result = run_command(["pab_campaign", *root_args, "campaign.name=c", *TINY], cwd=tmp_path,
                         env=command_env(**env), timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert_one_line_error(result, fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"] and (tmp_path / "a_file").read_text() == "keep"


def test_chdir_leaves_the_campaign_where_the_command_was_launched(tmp_path):
    argv = ["pab_campaign", "campaign.root=rel", "campaign.name=c", "hydra.job.chdir=true", *TINY]
    first = run_command(argv, cwd=tmp_path, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    runs = sorted((tmp_path / "rel" / "c" / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "trajectory.parquet").is_file()
    assert not list((tmp_path / "rel" / "c" / "hydra").rglob("runs"))  # nothing nested in Hydra's folder
    again = run_command(argv, cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "already completed after epoch 1; kept as it is" in again.stdout + again.stderr
    assert sorted((tmp_path / "rel" / "c" / "runs").iterdir()) == runs
