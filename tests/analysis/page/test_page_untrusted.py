"""The page reads only the campaign's own regular files: a figure or table that links outside the
campaign, a FIFO, or a file named .png that is no PNG is left out with a note; a summary/ that links
outside the campaign is never written to."""
from __future__ import annotations

import base64
import os

from PIL import Image

from pab_campaign.analysis.campaign.campaign import open_campaign
from pab_campaign.analysis.page.render import build_page, render
from pab_campaign.store import summary_dir
from tests.helpers import cli, command_env, make_grid

SECRET = b"-----BEGIN OPENSSH PRIVATE KEY----- not for the page"


def test_figures_and_tables_that_leave_the_campaign_are_left_out(tmp_path):
    outside = tmp_path / "home"
    outside.mkdir()
    (outside / "id_rsa").write_bytes(SECRET)
    (outside / "secret.csv").write_text("k,chosen\n99,True\n")
    campaign = tmp_path / "c"
    make_grid(campaign, seeds=1, epochs=2)
    states = summary_dir(campaign) / "states"
    states.mkdir(parents=True)
    (states / "selection.csv").write_text("k,chosen\n2,True\n")
    (states / "phases.csv").symlink_to(outside / "secret.csv")
    Image.new("RGB", (4, 4), "red").save(states / "real.png")
    (states / "leak.png").symlink_to(outside / "id_rsa")
    (states / "fake.png").write_bytes(SECRET)
    os.mkfifo(states / "pipe.png")
    with open(states / "transitions.csv", "wb") as sparse:  # 3 GB that take no disk: read, 22 GB of memory
        sparse.truncate(3 << 30)
    page = build_page(open_campaign(campaign), "pab-campaign html c")
    section = next(s for s in page.sections if s.key == "states")
    assert [f.key for f in section.figures] == ["real"]
    notes = " ".join(section.notes)
    assert "leak.png leads outside the campaign" in notes and "phases.csv leads outside the campaign" in notes
    assert "fake.png is not a PNG image" in notes and "pipe.png is a FIFO, not a regular file" in notes
    assert "transitions.csv holds 3,221,225,472 bytes, more than the 268,435,456" in notes
    html = render(page)
    assert base64.b64encode(SECRET).decode() not in html
    assert [t.key for t in section.tables] == ["selection"]


def test_a_summary_linking_outside_the_campaign_is_not_written_to(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    campaign = tmp_path / "c"
    make_grid(campaign, seeds=1, epochs=2)
    summary_dir(campaign).symlink_to(elsewhere, target_is_directory=True)
    cache = tmp_path / "cache"
    result = cli(["html", str(campaign)], env=command_env(XDG_CACHE_HOME=str(cache)), timeout=300)
    assert result.returncode == 0, result.stderr
    assert os.listdir(elsewhere) == []
    assert "has a summary/ that leads outside it" in " ".join(result.stdout.split())
    assert list(cache.rglob("report.html"))
