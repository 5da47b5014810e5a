"""The sections of the campaign page (`pab_campaign.analysis.html`), one builder per section.

Each builder reads the campaign through the analysis functions the command line uses (`properties`,
`build_report`, `build_curves`, `plot_curves`), so the page and `pab-campaign report` / `curves`
show the same numbers. A builder that has nothing to show returns its section with `missing` set:
why, and the command that produces it.
"""
from __future__ import annotations

import base64
import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from pab_campaign.analysis.campaign import Campaign, properties
from pab_campaign.analysis.html import Cell, HtmlTable, Missing, PageFigure, Section, png_uri
from pab_campaign.errors import CampaignError
from pab_campaign.store import RunStatus, summary_dir

CURVE_METRICS = ("train/loss", "val/loss", "test/loss", "train/acc", "val/acc", "test/acc")
GAP_METRICS = ("val/gen_gap", "val/loss_gap")
MAX_CSV_ROWS = 200


def _number(value: object, digits: int = 4) -> Cell:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Cell("–", "num")
    if isinstance(value, float):
        return Cell(f"{value:.{digits}g}", "num")
    return Cell(str(value), "num" if isinstance(value, int) else "")


def _mean_ci(mean: float, ci95: float) -> Cell:
    return Cell("–" if math.isnan(mean) else f"{mean:.4g} ± {ci95:.2g}", "num")


def _text(value: object) -> Cell:
    return Cell("–" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value))


def _duration(seconds: float) -> str:
    """`seconds` in the largest unit that keeps it readable: 42 s, 3.5 min, 2.1 h."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _status(status: object) -> Cell:
    return Cell(str(status), f"status-{status}")


def _frame_table(key: str, caption: str, frame: pd.DataFrame, limit: int = MAX_CSV_ROWS) -> HtmlTable:
    """A table of every column of `frame` (numbers formatted, at most `limit` rows)."""
    rows = [[_number(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else _text(v) for v in row]
            for row in frame.head(limit).itertuples(index=False)]
    caption += f" (first {limit} of {len(frame)} rows)" if len(frame) > limit else ""
    return HtmlTable(key, caption, [str(c) for c in frame.columns], rows)


def _file_figure(path: Path, caption: str) -> PageFigure:
    """A PNG written by another command, inline."""
    uri = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    return PageFigure(path.stem, path.stem, caption, uri)


def overview(campaign: Campaign) -> Section:
    runs = campaign.runs
    section = Section("overview", "Overview", "What the campaign holds: its properties, how its runs ended, "
                      "and every run that could not be used, with the reason.")
    section.tables.append(HtmlTable("properties", "Properties", ["property", "No. unique", "values"],
                                    [[_text(name), Cell(count, "num"), _text(values)]
                                     for name, count, values in properties(campaign)]))
    counts = runs["status"].value_counts()
    section.tables.append(HtmlTable(
        "statuses", f"Runs by status ({_duration(float(runs['duration_s'].astype(float).sum()))} of training in all)",
        ["status", "runs"],
        [[_status(status), _number(int(counts[status]))] for status in RunStatus if status in counts]))
    problems = runs[runs["status"].isin([RunStatus.FAILED, RunStatus.DIVERGED])]
    if len(problems):
        section.tables.append(HtmlTable(
            "problems", "Failed and diverged runs", ["run_id", "status", "epochs", "reason"],
            [[_text(r.run_id), _status(r.status), _number(r.epochs_done), _text(r.error)]
             for r in problems.itertuples()]))
    unreadable = [(run_id, reason) for run_id, reason in campaign.skipped]
    unreadable += [(r.run_id, r.skip_reason) for r in runs.itertuples() if pd.notna(r.skip_reason)]
    if unreadable:
        section.tables.append(HtmlTable("unreadable", "Unreadable runs (left out of every section)",
                                        ["run_id", "reason"], [[_text(a), _text(b)] for a, b in unreadable]))
    return section


def summary(campaign: Campaign) -> Section:
    from pab_campaign.analysis.report import build_report

    section = Section("summary", "Grouped summary", "Mean ± CI95 (Student t, over the runs of each group) of "
                      "accuracy and loss, at each run's last epoch and at its epoch of minimal val/loss.")
    for epoch in ("last", "best"):
        report = build_report(campaign, epoch=epoch)
        columns = [*report.groupby, "runs", *report.metrics, "duration_s"]
        rows = []
        for row in report.summary.to_dict("records"):
            cells = [_text(row[g]) for g in report.groupby] + [_number(int(row["runs"]))]
            cells += [_mean_ci(row[f"{m}.mean"], row[f"{m}.ci95"]) for m in [*report.metrics, "duration_s"]]
            rows.append(cells)
        section.tables.append(HtmlTable(f"summary-{epoch}", f"At the {epoch} epoch", columns, rows))
        section.notes += [note for note in report.notes if note not in section.notes]
    return section


def _curves_figure(campaign: Campaign, key: str, metrics: list[str], caption: str) -> PageFigure:
    from pab_campaign.analysis.plots.curves import plot_curves
    from pab_campaign.analysis.report import build_curves

    groupby, curves = build_curves(campaign, metrics=metrics)
    figure = plot_curves(curves, groupby, campaign=campaign.directory.name)
    return PageFigure(key, f"{campaign.directory.name}: {', '.join(metrics)}", caption, png_uri(figure))


def _tracked(campaign: Campaign, labels: tuple[str, ...]) -> list[str]:
    from pab_campaign.analysis.campaign import indexed_metrics

    known = set(indexed_metrics(campaign.runs))
    return [label for label in labels if label in known]


def learning_curves(campaign: Campaign) -> Section:
    section = Section("curves", "Learning curves", "Per group of hyper-parameters, the mean over its runs at "
                      "each epoch with a CI95 band — the same figure as `pab-campaign curves`.")
    losses = _tracked(campaign, CURVE_METRICS)
    if losses:
        section.figures.append(_curves_figure(campaign, "curves", losses, "Loss (nats) and accuracy per split."))
    gaps = _tracked(campaign, GAP_METRICS)
    if gaps:
        section.figures.append(_curves_figure(
            campaign, "gaps", gaps, "Generalization gaps: val/gen_gap = train acc − val acc (positive = "
            "overfitting), val/loss_gap = val loss − train loss."))
    if not section.figures:
        section.missing = Missing("No run recorded loss or accuracy.")
    return section


def _keyed_or_missing(section: Section, build: Callable[[], list[PageFigure]], missing: Missing) -> Section:
    """Fill `section` with the figures `build` makes; a campaign without the keyed metric they need
    gets `missing` instead."""
    try:
        section.figures += build()
    except CampaignError as exc:
        section.missing = Missing(f"{missing.text} ({exc})", missing.command)
    return section


def classes(campaign: Campaign) -> Section:
    from pab_campaign.analysis.plots.curves import class_heatmap
    from pab_campaign.analysis.report import build_curves

    def build() -> list[PageFigure]:
        groupby, accuracy = build_curves(campaign, metrics=["val/class_acc[*]"])
        _, learned = build_curves(campaign, metrics=["val/class_learned_epoch[*]"])
        figure = class_heatmap(accuracy, learned, groupby, campaign.directory.name)
        return [PageFigure("class-progression", f"{campaign.directory.name}: val/class_acc by class and epoch",
                           "Validation accuracy of each class over epochs (mean over the group's runs); the "
                           "white marks are the mean epoch at which the class was first learned (accuracy ≥ τ).",
                           png_uri(figure))]

    section = Section("classes", "Class progression", "Which classes are learned early, late or never.")
    return _keyed_or_missing(section, build, Missing(
        "This campaign did not record class-wise accuracy; train with the default or full tracking.",
        "python -m pab_campaign -m tracking=default"))


def robustness(campaign: Campaign) -> Section:
    from pab_campaign.analysis.plots.curves import robustness_figure
    from pab_campaign.analysis.report import build_curves

    def build() -> list[PageFigure]:
        groupby, curves = build_curves(campaign, metrics=["probe/clean_acc", "probe/fgsm_acc[*]", "probe/pgd_acc[*]"])
        figures = [PageFigure("robustness-epsilon", f"{campaign.directory.name}: accuracy vs ε",
                              "Accuracy under FGSM and PGD attacks against the attack size ε (input units) at "
                              "each group's last measured epoch; ε = 0 is the clean accuracy.",
                              png_uri(robustness_figure(curves, groupby, campaign.directory.name)))]
        figures.append(_curves_figure(campaign, "robustness-epochs", ["probe/fgsm_acc[*]", "probe/pgd_acc[*]"],
                                      "Adversarial accuracy at each ε over epochs."))
        return figures

    section = Section("robustness", "Robustness", "Accuracy under adversarial perturbation of the probe set.")
    return _keyed_or_missing(section, build, Missing(
        "This campaign did not record robustness; train with the full tracking preset.",
        "python -m pab_campaign -m tracking=full"))


def spectra(campaign: Campaign) -> Section:
    def build() -> list[PageFigure]:
        return [_curves_figure(campaign, "spectra", ["weights/erank[*]"],
                               "Effective rank exp(H(σ/Σσ)) of each layer's weight matrix over epochs.")]

    section = Section("spectra", "Weight spectra", "How the effective rank of every layer's weights evolves.")
    return _keyed_or_missing(section, build, Missing(
        "This campaign did not record weight spectra; train with the default or full tracking.",
        "python -m pab_campaign -m tracking=default"))


def _folder_section(section: Section, folder: Path, missing: Missing) -> Section:
    """Every CSV (as a table) and PNG (inline) an analysis command wrote into `folder`."""
    if not folder.is_dir() or not any(folder.iterdir()):
        section.missing = missing
        return section
    for path in sorted(folder.rglob("*.csv")):
        section.tables.append(_frame_table(path.stem, str(path.relative_to(folder)), pd.read_csv(path)))
    for path in sorted(folder.rglob("*.png")):
        section.figures.append(_file_figure(path, str(path.relative_to(folder))))
    return section


def audit(campaign: Campaign) -> Section:
    section = Section("audit", "MBE audit", "Does a candidate metric predict the final result beyond early "
                      "validation loss? The last `pab-campaign audit` run on this campaign.")
    folder = summary_dir(campaign.directory)
    csv = folder / "audit.csv"
    if not csv.exists():
        section.missing = Missing("No audit has been run on this campaign yet.",
                                  f"pab-campaign audit {campaign.directory} --all-metrics --baseline val/loss@3 "
                                  "--target test/acc")
        return section
    section.tables.append(_frame_table("audit", "summary/audit.csv", pd.read_csv(csv)))
    for path in sorted((folder / "audit").glob("*.png")):
        section.figures.append(_file_figure(path, f"summary/audit/{path.name}"))
    return section


def states(campaign: Campaign) -> Section:
    section = Section("states", "Latent training phases", "Hidden Markov model phases of the runs' per-epoch "
                      "statistics (`pab-campaign states`).")
    return _folder_section(section, summary_dir(campaign.directory) / "states", Missing(
        "No latent-phase analysis has been run on this campaign yet.", f"pab-campaign states {campaign.directory}"))


def modeldiff(campaign: Campaign) -> Section:
    section = Section("diff", "ModelDiff", "How two learning algorithms of this campaign differ in what they "
                      "learn (`pab-campaign diff`).")
    return _folder_section(section, summary_dir(campaign.directory) / "diff", Missing(
        "No ModelDiff comparison has been run on this campaign yet.",
        f"pab-campaign diff {campaign.directory} --a KEY=VALUE --b KEY=VALUE"))


SECTIONS = (overview, summary, learning_curves, classes, robustness, spectra, audit, states, modeldiff)


def all_sections(campaign: Campaign) -> list[Section]:
    return [build(campaign) for build in SECTIONS]
