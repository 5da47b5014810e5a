"""Refusals that say what is wrong: a refused command creates no --output-folder, a path inside a
file is named as such, and a metric name that is only '@' is called what it is."""
from __future__ import annotations

from tests.helpers import assert_one_line_error, cli, make_grid


def test_output_folder_is_created_only_when_the_command_writes(tmp_path):
    campaign = tmp_path / "c"
    make_grid(campaign, seeds=1, epochs=2)
    folder = tmp_path / "out" / "nested"
    refused = cli(["report", str(campaign), "--metrics", "val/nothing", "--output-folder", str(folder)], timeout=300)
    assert refused.returncode == 2 and not (tmp_path / "out").exists(), refused.stderr
    done = cli(["report", str(campaign), "--output-folder", str(folder)], timeout=300)
    assert done.returncode == 0, done.stderr
    assert [p.suffix for p in folder.iterdir()] == [".csv"]
    (tmp_path / "a_file").write_text("")
    inside = cli(["report", str(campaign), "--output-folder", str(tmp_path / "a_file" / "x")], timeout=300)
    assert inside.returncode == 2 and "which is a file" in inside.stderr


def test_paths_inside_a_file_and_an_empty_metric_name(tmp_path):
    campaign = tmp_path / "c"
    ids = make_grid(campaign, seeds=1, epochs=2)
    blocker = tmp_path / "a_file"
    blocker.write_text("keep")
    page = cli(["html", str(campaign), "--out", str(blocker / "x.html")], timeout=300)
    assert page.returncode == 2
    assert_one_line_error(page, f"{blocker} is a file, not a directory")
    summary = cli(["summarize", str(campaign / "runs" / ids[0]), "--json", str(blocker / "x.json")], timeout=300)
    assert summary.returncode == 2
    assert_one_line_error(summary, f"{blocker} is a file, not a directory")
    assert "File exists" not in summary.stderr and blocker.read_text() == "keep"
    at = cli(["report", str(campaign), "--metrics", "@"], timeout=300)
    assert at.returncode == 2
    assert_one_line_error(at, "--metrics @ is not a metric name", "e.g. --metrics val/loss --epoch 3")
