"""The campaign on one page: a self-contained HTML file written to `summary/report.html`: Jinja2
template, figures inline as PNG data URIs, interactive charts drawn by one inline script (the pinned
uPlot and the page's own code, `assets`) from inline JSON, a CSP that allows only that script and
style by hash, and no request to anything outside the file. With scripts off the PNGs stay.

`build_page` gathers the sections (`sections`, one builder each, over the page model of `model`), `render` fills the
template `templates/campaign.html.j2`, `write_page` writes the file atomically. A section whose
analysis has not been run (the MBE audit, latent phases, ModelDiff) says how to produce it.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from pab_campaign.analysis.campaign.campaign import Campaign
from pab_campaign.analysis.campaign.workspace import file_in_the_way, is_unwritable, unwritable_message, write_error
from pab_campaign.analysis.page import sections
from pab_campaign.analysis.page.model import Page
from pab_campaign.errors import CampaignError
from pab_campaign.store import atomic_write_bytes

PAGE_NAME = "report.html"


def render(page: Page) -> str:
    """The page as HTML text (every value escaped by the template engine)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    environment = Environment(loader=PackageLoader("pab_campaign.analysis.page", "templates"),
                              autoescape=select_autoescape(["j2", "html"]), undefined=StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True)
    from markupsafe import Markup

    from pab_campaign.analysis.page import assets

    script = assets.script()
    style = assets.style()
    return environment.get_template("campaign.html.j2").render(
        page=page, script=Markup(script), style=Markup(style), csp=assets.csp(script, style),
        uplot_version=assets.UPLOT_VERSION)


def build_page(campaign: Campaign, command: str, campaign_ids: list[str] | None = None,
               where: list[str] | None = None) -> Page:
    """Every section of the page for `campaign` (its runs of `campaign_ids`, when given, chosen by the
    `where` conditions, when given); `command` is how the page was made (shown in it)."""
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    subtitle = [f"{campaign.directory.resolve()}", f"written {generated} by `{command}`"]
    return Page(f"Campaign {campaign.directory.name}", subtitle, sections.all_sections(campaign, campaign_ids, where))


def write_page(campaign: Campaign, out: Path | None, command: str, campaign_ids: list[str] | None = None,
               where: list[str] | None = None) -> Path:
    """Build, render and atomically write the page to `out` (default `summary/report.html`)."""
    if out is None:
        data = render(build_page(campaign, command, campaign_ids, where)).encode("utf-8")
        return campaign.write_output(PAGE_NAME, lambda tmp: tmp.write_bytes(data))
    path = Path(out)
    blocker = file_in_the_way(path)
    if blocker is not None:
        raise CampaignError(f"--out {path}: {blocker} is a file, not a directory; choose another path")
    if not path.parent.is_dir():
        raise CampaignError(f"--out {path}: directory {path.parent} does not exist; create it or choose another path")
    if path.is_dir():
        raise CampaignError(f"--out {path} is a directory; name the page's file, e.g. --out {path / PAGE_NAME}")
    error = write_error(path.parent)
    if error is not None:
        raise CampaignError(f"--out {path}: cannot write in {path.parent} ({error.strerror or error}); choose "
                            "another path")
    data = render(build_page(campaign, command, campaign_ids, where)).encode("utf-8")
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        if not is_unwritable(exc):
            raise
        raise CampaignError(unwritable_message(path, exc, "choose another --out")) from None
    return path
