"""The sections of the campaign page (`render` puts them together), one builder per section.

Each builder reads the campaign through the analysis functions the command line uses (`properties`,
`build_report`, `build_curves`, `plot_curves`), so the page and `pab-campaign report` / `curves`
show the same numbers. A builder that has nothing to show returns its section with `missing` set:
why, and the command that produces it.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from pab_campaign import confined
from pab_campaign.analysis.campaign.campaign import Campaign, properties
from pab_campaign.analysis.campaign.naming import ids_suffix
from pab_campaign.analysis.campaign.warm import LISTED_VALUES
from pab_campaign.analysis.modeldiff.residual_pca import SUBPOPULATIONS
from pab_campaign.analysis.page.inputs import SCHEMAS, checked
from pab_campaign.analysis.page.model import Cell, HtmlTable, Missing, PageFigure, Section, png_data_uri, png_uri
from pab_campaign.errors import CampaignError, one_line
from pab_campaign.formatting import duration, number, value_text
from pab_campaign.metrics import (
    ACC,
    ADVERSARIAL_METRICS,
    CLASS_ACC,
    CLASS_LEARNED_EPOCH,
    CLEAN_ACC,
    ERANK,
    GEN_GAP,
    LOSS,
    LOSS_GAP,
    SPLITS,
)
from pab_campaign.store import RunStatus, summary_dir

CURVE_METRICS = tuple(metric.label(split) for metric in (LOSS, ACC) for split in SPLITS)
GAP_METRICS = (GEN_GAP.label("val"), LOSS_GAP.label("val"))
ATTACK_CURVES = tuple(metric.label(key="*") for metric in ADVERSARIAL_METRICS)
MAX_CSV_ROWS = 200
MAX_AUDIT_FIGURES = 6
MAX_SUMMARY_GROUPS = 200  # rows of a grouped summary table (`report` lists them all)
MAX_ERROR_CHARACTERS = 500
# The largest analysis file (CSV or figure) read into the page: an audit of 50,000 runs writes
# about 10 MB; a file past this is left out with a note (a sparse 3 GB CSV took 22 GB of memory).
MAX_INPUT_BYTES = 256 << 20


def _number(value: object, digits: int = 4) -> Cell:
    numeric = value is None or isinstance(value, (int, float))
    return Cell(number(value, digits, none="–", nan="–"), "num" if numeric else "")


def _mean_ci(mean: float, ci95: float) -> Cell:
    """'mean ± ci95'; the mean alone where there is no interval (a group of one run)."""
    if math.isnan(mean):
        return Cell("–", "num")
    return Cell(f"{mean:.4g}" if math.isnan(ci95) else f"{mean:.4g} ± {ci95:.2g}", "num")


def _error(text: object) -> Cell:
    """A run's error: its first line, and how many more follow (run.json holds them all)."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return Cell("–")
    lines = str(text).strip().splitlines() or [""]
    more = f"\n… {len(lines) - 1} more line{'s' if len(lines) > 2 else ''} in its run.json" if len(lines) > 1 else ""
    return Cell(lines[0][:MAX_ERROR_CHARACTERS] + more, "error")


def _text(value: object) -> Cell:
    return Cell("–" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value))


def _status(status: object) -> Cell:
    return Cell(str(status), f"status-{status}")


def _frame_table(key: str, caption: str, frame: pd.DataFrame, limit: int = MAX_CSV_ROWS) -> HtmlTable:
    """A table of every column of `frame` (numbers formatted, at most `limit` rows)."""
    rows = [[_number(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else _text(v) for v in row]
            for row in frame.head(limit).itertuples(index=False)]
    caption += f" (first {limit} of {len(frame)} rows)" if len(frame) > limit else ""
    return HtmlTable(key, caption, [str(c) for c in frame.columns], rows)


def _file_figure(path: Path, caption: str) -> PageFigure:
    """A PNG written by another command, inline (checked by `_figures`)."""
    return PageFigure(path.stem, path.stem, caption, png_data_uri(path.read_bytes()))


def _roots(campaign: Campaign) -> list[Path]:
    """The directories whose files the page may read: the campaign, and the cache this command
    writes to when the campaign cannot be written (the campaign's own summary/ is inside it)."""
    workspace = campaign.workspace
    roots = [campaign.directory]
    if workspace is not None and workspace.directory is not None and not workspace.is_summary:
        roots.append(workspace.directory)
    return roots


def _refused(campaign: Campaign, section: Section, path: Path) -> bool:
    """True, with a note in `section`, when `path` must not be read into the page: it leads outside
    the campaign, is not a regular file or is larger than MAX_INPUT_BYTES (a campaign's files are
    untrusted input)."""
    reason = confined.problem(path, _roots(campaign), MAX_INPUT_BYTES)
    if reason is not None:
        section.notes.append(f"left out: {reason}")
    return reason is not None


def overview(campaign: Campaign) -> Section:
    runs = campaign.runs
    section = Section("overview", "Overview", "What the campaign holds: its properties, how its runs ended, "
                      "and every run that could not be used, with the reason.")
    section.tables.append(HtmlTable("properties", "Properties", ["property", "No. unique", "values"],
                                    [[_text(row.name), Cell(row.unique, "num"), _text(row.shown())]
                                     for row in properties(campaign, LISTED_VALUES)]))
    counts = runs["status"].value_counts()
    section.tables.append(HtmlTable(
        "statuses", f"Runs by status ({duration(float(runs['duration_s'].astype(float).sum()))} of training in all)",
        ["status", "runs"],
        [[_status(status), _number(int(counts[status]))] for status in RunStatus if status in counts]))
    problems = runs[runs["status"].isin([RunStatus.FAILED, RunStatus.DIVERGED])]
    if len(problems):
        section.tables.append(HtmlTable(
            "problems", "Failed and diverged runs", ["run_id", "status", "epochs", "reason"],
            [[_text(r.run_id), _status(r.status), _number(r.epochs_done), _error(r.error)]
             for r in problems.itertuples()]))
    unreadable = [(run_id, reason) for run_id, reason in campaign.skipped]
    unreadable += [(r.run_id, r.skip_reason) for r in runs.itertuples() if pd.notna(r.skip_reason)]
    if unreadable:
        section.tables.append(HtmlTable("unreadable", "Unreadable runs (left out of every section)",
                                        ["run_id", "reason"], [[_text(a), _text(b)] for a, b in unreadable]))
    return section


def summary(campaign: Campaign) -> Section:
    from pab_campaign.analysis.summary.report import build_report

    section = Section("summary", "Grouped summary", "Mean ± CI95 (Student t, over the runs of each group) of "
                      "accuracy and loss, at each run's last epoch and at its epoch of minimal val/loss.")
    for epoch in ("last", "best"):
        try:
            report = build_report(campaign, epoch=epoch)
        except CampaignError as exc:
            section.notes.append(f"no table at the {epoch} epoch: {exc}")
            continue
        columns = [*report.groupby, "runs", *report.metrics, "duration_s"]
        rows = []
        records = report.summary.to_dict("records")
        for row in records[:MAX_SUMMARY_GROUPS]:
            cells = [_text(row[g]) for g in report.groupby] + [_number(int(row["runs"]))]
            cells += [_mean_ci(row[f"{m}.mean"], row[f"{m}.ci95"]) for m in [*report.metrics, "duration_s"]]
            rows.append(cells)
        shown = (f" (the first {MAX_SUMMARY_GROUPS} of {len(records)} groups; `pab-campaign report --sort METRIC "
                 "--top K` orders and lists them)" if len(records) > MAX_SUMMARY_GROUPS else "")
        section.tables.append(HtmlTable(f"summary-{epoch}", f"At the {epoch} epoch{shown}", columns, rows))
        section.notes += [note for note in report.notes if note not in section.notes]
    return section


def _curves_figure(campaign: Campaign, key: str, metrics: list[str], caption: str) -> PageFigure:
    from pab_campaign.analysis.page.charts import curves_chart
    from pab_campaign.analysis.plots.curves import curves_caption, plot_curves
    from pab_campaign.analysis.summary.report import build_curves

    groupby, curves = build_curves(campaign, metrics=metrics)
    figure = plot_curves(curves, groupby, campaign=campaign.directory.name)
    return PageFigure(key, f"{campaign.directory.name}: {', '.join(metrics)}",
                      f"{caption} {curves_caption(curves, groupby)}", png_uri(figure),
                      curves_chart(campaign, groupby, curves, lead=caption))


def _tracked(campaign: Campaign, labels: tuple[str, ...]) -> list[str]:
    from pab_campaign.analysis.campaign.campaign import indexed_metrics

    known = set(indexed_metrics(campaign.runs))
    return [label for label in labels if label in known]


def learning_curves(campaign: Campaign) -> Section:
    section = Section("curves", "Learning curves", "Per group of hyper-parameters, the mean over its runs at "
                      "each epoch with a CI95 band — the same figure as `pab-campaign curves`.")
    if not (campaign.runs["status"] == RunStatus.COMPLETED).any():
        section.missing = Missing("No run has completed yet; the curves are of completed runs. Follow the runs "
                                  "with `pab-campaign ls --watch`.", f"pab-campaign ls {campaign.directory} --watch")
        return section
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
    from pab_campaign.analysis.summary.report import build_curves

    def build() -> list[PageFigure]:
        groupby, accuracy = build_curves(campaign, metrics=[CLASS_ACC.label("val", "*")])
        if accuracy.empty:
            return []
        try:
            _, learned = build_curves(campaign, metrics=[CLASS_LEARNED_EPOCH.label("val", "*")])
            marks = "the white marks are the mean epoch at which the class was first learned (accuracy ≥ τ)."
        except CampaignError:  # class-wise accuracy without first-learned epochs (e.g. imported)
            learned = accuracy.iloc[:0]
            marks = "the runs recorded no val/class_learned_epoch, so no first-learned epochs are marked."
        figure = class_heatmap(accuracy, learned, groupby, campaign.directory.name)
        return [PageFigure("class-progression", f"{campaign.directory.name}: val/class_acc by class and epoch",
                           f"Validation accuracy of each class over epochs (mean over the group's runs); {marks}",
                           png_uri(figure))]

    section = Section("classes", "Class progression", "Which classes are learned early, late or never.")
    section = _keyed_or_missing(section, build, Missing(
        "This campaign did not record class-wise accuracy; train with the default or full tracking.",
        "python -m pab_campaign -m tracking=default"))
    if not section.figures and section.missing is None:
        section.missing = Missing("Nothing to show: no completed run has a finite val/class_acc value (every one is "
                                  "NaN or ±inf).")
    return section


def robustness(campaign: Campaign) -> Section:
    from pab_campaign.analysis.plots.curves import robustness_figure
    from pab_campaign.analysis.summary.report import build_curves

    def build() -> list[PageFigure]:
        groupby, curves = build_curves(campaign, metrics=[CLEAN_ACC.label(), *ATTACK_CURVES])
        if curves.empty:
            return []
        figures = [PageFigure("robustness-epsilon", f"{campaign.directory.name}: accuracy vs ε",
                              "Accuracy under FGSM and PGD attacks against the attack size ε (input units) at "
                              "each group's last measured epoch; ε = 0 is the clean accuracy.",
                              png_uri(robustness_figure(curves, groupby, campaign.directory.name)))]
        figures.append(_curves_figure(campaign, "robustness-epochs", [*ATTACK_CURVES],
                                      "Adversarial accuracy at each ε over epochs."))
        return figures

    section = Section("robustness", "Robustness", "Accuracy under adversarial perturbation of the probe set.")
    section = _keyed_or_missing(section, build, Missing(
        "This campaign did not record robustness; train with the full tracking preset.",
        "python -m pab_campaign -m tracking=full"))
    if not section.figures and section.missing is None:
        section.missing = Missing("Nothing to show: no completed run has a finite robustness value (every one is NaN "
                                  "or ±inf).")
    return section


def spectra(campaign: Campaign) -> Section:
    def build() -> list[PageFigure]:
        return [_curves_figure(campaign, "spectra", [ERANK.label(key="*")],
                               "Effective rank exp(H(σ/Σσ)) of each layer's weight matrix over epochs.")]

    section = Section("spectra", "Weight spectra", "How the effective rank of every layer's weights evolves.")
    return _keyed_or_missing(section, build, Missing(
        "This campaign did not record weight spectra; train with the default or full tracking.",
        "python -m pab_campaign -m tracking=default"))


def _output_places(campaign: Campaign) -> list[Path]:
    """Where the analysis commands may have written their files: the place this command writes to
    (a user cache for a read-only campaign), then the campaign's own `summary/`."""
    places = [summary_dir(campaign.directory)]
    if campaign.workspace is not None and campaign.workspace.directory is not None:
        places.insert(0, campaign.workspace.directory)
    return list(dict.fromkeys(places))


def _found(campaign: Campaign, name: str) -> Path:
    """`name` in the first output place that has it (else in the first place)."""
    places = _output_places(campaign)
    return next((place / name for place in places if (place / name).exists()), places[0] / name)


def _csv(campaign: Campaign, section: Section, path: Path, schema: str | None = None) -> pd.DataFrame | None:
    """The CSV an analysis command wrote, or None when it has not written one (or it may not be
    read: see `_refused`; or it breaks `inputs.SCHEMAS[schema]`, with a note saying how)."""
    if not os.path.lexists(path) or _refused(campaign, section, path):
        return None
    try:
        frame = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        section.notes.append(f"left out: {path} is not a readable CSV ({one_line(exc)})")
        return None
    if schema is None:
        return frame
    typed, reason = checked(frame, schema)
    if reason is not None:
        section.notes.append(f"left out: {path} is not as `pab-campaign` writes it: {reason}; run the analysis again")
    return typed


# What the figures other commands write show, by file name (the file is named after the caption).
FIGURE_CAPTIONS = {
    "selection": "Model selection over the number of phases K: held-out log-likelihood per run (± one standard "
                 "error over held-out runs) and AIC/BIC on the fit runs; the chosen K is marked.",
    "transitions": "The phases in order of occurrence (area ∝ share of all epochs) and every transition with "
                   "probability ≥ 0.05 (width ∝ probability), over all runs of the analysis.",
    "phases": "Per group of runs, the metric's mean over its runs (band: CI95 of the mean, Student t) on a "
              "background coloured by the phase most of the group's runs are in at each epoch.",
}


def _figure_caption(path: Path, folder: Path) -> str:
    """What a figure written by another command shows, and its file."""
    where = f"({path.relative_to(folder.parent)})"
    if path.parent.name.startswith("audit"):
        return ("Left: one point per run, candidate against target, with the rank-regression curve. Right: "
                "signed raw and partial Spearman ρ per group with percentile-bootstrap 95 % intervals (filled "
                f"= significant on the adjusted p). {where}")
    if "_dir" in path.stem:
        return f"Examples a ModelDiff direction singles out, with their labels. {where}"
    return f"{FIGURE_CAPTIONS.get(path.stem.split('_')[0], '')} {where}".strip()


def _figures(campaign: Campaign, section: Section, paths: list[Path], folder: Path) -> list[PageFigure]:
    """Add the PNG files `paths` to `section` and return them; a file that leads outside the
    campaign, is not a regular file or is no PNG (by its signature) is left out with a note."""
    added = []
    for path in paths:
        if _refused(campaign, section, path):
            continue
        if not confined.is_png(path):
            section.notes.append(f"left out: {path} is not a PNG image")
            continue
        added.append(_file_figure(path, _figure_caption(path, folder)))
    section.figures += added
    return added


def _rho_cell(rho: float, low: float, high: float) -> Cell:
    if math.isnan(rho):
        return Cell("–", "num")
    interval = "" if math.isnan(low) else f" [{low:.2f}, {high:.2f}]"
    return Cell(f"{rho:.3f}{interval}", "num")


def audit(campaign: Campaign, campaign_ids: list[str] | None) -> Section:
    section = Section("audit", "MBE audit", "Does a candidate metric predict the final result beyond the baseline "
                      "(early validation loss)? Stage 1: the raw Spearman ρ with the target is significant; stage 4: "
                      "so is the partial ρ given the baseline, else the metric is a loss proxy. From the last "
                      "`pab-campaign audit` on this campaign.")
    suffix = ids_suffix(campaign_ids)
    csv = _found(campaign, f"audit{suffix}.csv")
    folder = csv.parent
    table = _csv(campaign, section, csv)
    command = f"pab-campaign audit {campaign.directory} --all-metrics --baseline val/loss@3 --target test/acc"
    if table is None:
        section.missing = Missing("No audit has been run on this campaign yet.", command)
        return section
    if table.empty or not set(SCHEMAS["audit"]) <= set(table.columns):
        section.missing = Missing(f"{csv} was written by an earlier version of pab-campaign, or is empty; run the "
                                  "audit again.", command)
        return section
    table, reason = checked(table, "audit")
    if table is None:
        section.missing = Missing(f"{csv} is not as `pab-campaign audit` writes it: {reason}; run the audit again.",
                                  command)
        return section
    first = table.iloc[0]
    rows = [[_text(r.group), _text(r.metric), _number(int(r.n)), _rho_cell(r.raw_rho, r.raw_ci_low, r.raw_ci_high),
             _number(r.raw_p_adj, 2), _text(r.stage1), _rho_cell(r.partial_rho, r.partial_ci_low, r.partial_ci_high),
             _number(r.partial_p_adj, 2), Cell(str(r.verdict), "verdict-proxy" if r.is_loss_proxy is True else ""),
             _text(r.effect_class)] for r in table.itertuples()]
    section.tables.append(HtmlTable(
        "audit", f"Adjusted p-values: {first.correction} over a family of {int(first.family_size)} tests "
        f"(stage 4: {int(first.get('partial_family_size', first.family_size))}), "
        f"α = {first.alpha:g}; 95 % bootstrap intervals", ["group", "metric", "n", "raw ρ [95 % CI]", "p adj",
                                                           "stage 1", "partial ρ [95 % CI]", "p adj", "stage 4",
                                                           "effect class"], rows))
    section.notes += [str(d) for d in table["diagnosis"].dropna()]
    figures = _figures(campaign, section, _audit_figures(table, folder / f"audit{suffix}"), folder)
    runs = _csv(campaign, section, folder / f"audit_runs{suffix}.csv")
    for figure in figures:
        metric = next((m for m in table["metric"] if _figure_stem(m) == figure.key), None)
        if runs is not None and metric is not None:
            figure.chart = _audit_chart(table, runs, metric)
    return section


def _figure_stem(metric: str) -> str:
    from pab_campaign.analysis.campaign.naming import figure_name

    return Path(figure_name(metric)).stem


def _audit_chart(table: pd.DataFrame, runs: pd.DataFrame, metric: str) -> dict | None:
    """The interactive audit chart of `metric`: points coloured by the audit's --groupby (read from its
    group names), else by the hyper-parameter explaining most of the candidate's variance."""
    from pab_campaign.analysis.campaign.campaign import as_written
    from pab_campaign.analysis.mbe.figures import colour_groups
    from pab_campaign.analysis.page.charts import audit_chart

    rows = table[table["metric"] == metric]
    # `write_audit` writes run_id, the hyper-parameters, then the baseline, the target, the candidates
    # and any metric controls (a hyper-parameter may have a '/' in its name, as imported ones do)
    baseline = next(iter(table.loc[table["verdict"] == "baseline", "metric"]), None)
    columns = [str(c) for c in runs.columns]
    if baseline not in columns or columns.index(baseline) + 1 >= len(columns) or metric not in columns:
        return None
    at = columns.index(baseline)
    target, names = columns[at + 1], [c for c in columns[:at] if c != "run_id"]
    values = {name: pd.to_numeric(runs[name], errors="coerce").astype("float64") for name in (metric, target)}
    runs = runs.assign(**values)[values[metric].abs().lt(math.inf) & values[target].abs().lt(math.inf)]  # finite
    runs = runs.assign(**{name: as_written(runs[name]) for name in names})  # the CSV's seeds 0, 1 and '' as ints
    hparams = runs[names]
    grouped = [g.split("=", 1)[0] for g in rows["group"] if "=" in g]
    colour_by = (hparams[grouped[0]].map(value_text).rename(grouped[0]) if grouped and grouped[0] in hparams
                 else colour_groups(runs[metric], hparams))
    return audit_chart(rows, runs, metric, target, names, colour_by, float(rows["alpha"].iloc[0]))


def _audit_figures(table: pd.DataFrame, folder: Path) -> list[Path]:
    """The figures of at most MAX_AUDIT_FIGURES candidates: those that pass stage 4 first, then by
    |partial ρ| over all runs (every figure stays in the audit's folder)."""
    from pab_campaign.analysis.campaign.naming import figure_name

    pooled = table[(table["verdict"] != "baseline") & (table["group"] == table["group"].iloc[0])]
    ranked = pooled.assign(strength=pooled["partial_rho"].abs()).sort_values(
        ["is_loss_proxy", "strength"], ascending=[True, False], na_position="last")
    paths = [folder / figure_name(metric) for metric in ranked["metric"]]
    return [path for path in paths if os.path.lexists(path)][:MAX_AUDIT_FIGURES]


STATES_TABLES = (
    ("selection.csv", "Model selection over the number of phases K (held-out log-likelihood per run, nats)",
     ["k", "n_params", "heldout_ll", "heldout_ll_se", "aic", "bic", "chosen"]),
    ("phases.csv", "The phases: share of all epochs, runs visiting, typical epochs and what sets them apart",
     ["state", "occupancy", "runs", "epoch_from", "epoch_to", "description"]),
    ("transitions.csv", "Transitions seen in the data, with the features that change most (standardised mean "
     "difference before vs after)", ["from_state", "to_state", "runs", "probability", "rank", "feature", "smd"]),
    ("detours.csv", "Detours: runs visiting a phase vs not, on convergence epoch (Welch's t, Holm-adjusted p)",
     ["state", "runs_visiting", "runs_not", "conv_visiting", "conv_not", "t", "p", "p_holm", "cohen_d"]),
    ("hyperparameters.csv", "Which hyper-parameters predict visiting a phase (Holm-adjusted p over the table)",
     ["state", "hparam", "test", "effect", "p", "p_holm", "visit_rate_by_value"]),
)


def states(campaign: Campaign, campaign_ids: list[str] | None) -> Section:
    section = Section("states", "Latent training phases", "A Gaussian hidden Markov model over every run's "
                      "per-epoch statistics: each run becomes a sequence of phases (`pab-campaign states`).")
    folder = _found(campaign, f"states{ids_suffix(campaign_ids)}")
    if _csv(campaign, section, folder / "selection.csv") is None:
        section.missing = Missing("No latent-phase analysis has been run on this campaign yet.",
                                  f"pab-campaign states {campaign.directory}")
        return section
    frames = {}
    for name, caption, columns in STATES_TABLES:
        stem = name.removesuffix(".csv")
        frame = frames[name] = _csv(campaign, section, folder / name, stem if stem in SCHEMAS else None)
        if frame is not None:
            shown = frame[frame["rank"] <= 3] if name == "transitions.csv" and "rank" in frame else frame
            section.tables.append(_frame_table(name.removesuffix(".csv"), caption,
                                               shown[[c for c in columns if c in shown.columns]]))
    _figures(campaign, section, sorted(folder.glob("*.png")), folder)
    phases, transitions = frames["phases.csv"], frames["transitions.csv"]
    for figure in section.figures:
        if figure.key == "transitions" and phases is not None and transitions is not None:
            from pab_campaign.analysis.page.charts import transitions_chart

            figure.chart = transitions_chart(phases, transitions)
    return section


def _composition(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per direction: for each subpopulation its three most frequent classes with their shares."""
    top = frame.sort_values("share", ascending=False).groupby(["comparison", "direction", "subpopulation"]).head(3)
    cells = top.groupby(["comparison", "direction", "subpopulation"], sort=False).apply(
        lambda rows: ", ".join(f"{label}: {share:.0%}" for label, share in zip(rows["label"], rows["share"])),
        include_groups=False)
    wide = cells.unstack("subpopulation")
    wide = wide[[name for name in SUBPOPULATIONS if name in wide.columns]]
    return wide.reset_index().sort_values(["comparison", "direction"])


def modeldiff(campaign: Campaign, campaign_ids: list[str] | None) -> Section:
    from pab_campaign.analysis.modeldiff.outputs import DIFF_DIR

    section = Section("diff", "ModelDiff", "How two learning algorithms of this campaign differ in what they "
                      "learn: residual PCA of TRAK attribution scores (`pab-campaign diff`), and counterfactual "
                      "tests of the transformation a direction suggests (`pab-campaign diff-test`).")
    root = _found(campaign, DIFF_DIR)
    comparisons = sorted(path for path in root.glob("*") if os.path.lexists(path / "directions.csv"))
    if not comparisons:
        section.missing = Missing("No ModelDiff comparison has been run on this campaign yet.",
                                  f"pab-campaign diff {campaign.directory} --a KEY=VALUE --b KEY=VALUE")
        return section
    for folder in comparisons:
        directions = _csv(campaign, section, folder / "directions.csv", "directions")
        if directions is None:
            continue
        section.tables.append(_frame_table(f"{folder.name}-directions", f"{folder.name}: distinguishing directions, "
                                           "with the variance of A's and B's row-normalised scores along each",
                                           directions))
        composition = _csv(campaign, section, folder / "composition.csv", "composition")
        from pab_campaign.analysis.page.charts import directions_chart

        a, _, b = folder.name.partition("_vs_")
        section.figures.append(PageFigure(
            f"{folder.name}-directions-chart", f"{folder.name}: variance along each direction",
            f"{folder.name}: the variance of A's and B's row-normalised attribution scores along each distinguishing "
            "direction (the table above, as a chart); hover a bar for the classes the direction singles out.", "",
            directions_chart(directions, composition, a, b or "B")))
        if composition is not None:
            section.tables.append(_frame_table(f"{folder.name}-composition", f"{folder.name}: the three most "
                                               "frequent classes among the examples each direction singles out "
                                               "(train±: largest / most negative weights, val±: projections)",
                                               _composition(composition)))
        for path in sorted(folder.glob("counterfactual_*.csv")):
            test = None if path.stem.endswith("_runs") else _csv(campaign, section, path)
            if test is not None:
                section.tables.append(_frame_table(f"{folder.name}-{path.stem}", f"{folder.name}: counterfactual "
                                                   f"test, {path.stem.removeprefix('counterfactual_')}", test))
        _figures(campaign, section, sorted(folder.glob("*_dir1_*.png")), root)
    return section


CAMPAIGN_SECTIONS = (overview, summary, learning_curves, classes, robustness, spectra)
ANALYSIS_SECTIONS = (audit, states, modeldiff)


def all_sections(campaign: Campaign, campaign_ids: list[str] | None = None,
                 where: list[str] | None = None) -> list[Section]:
    """Every section in page order; the analyses' sections read the files written for `campaign_ids`
    (over the runs their command was given: a page of the runs `where` chose says so). The campaign's
    notes gathered while building them (values left out, where the index is kept) close the overview."""
    sections = ([build(campaign) for build in CAMPAIGN_SECTIONS]
                + [build(campaign, campaign_ids) for build in ANALYSIS_SECTIONS])
    if where:
        chosen = " ".join(f"--where {condition}" for condition in where)
        for section in sections[len(CAMPAIGN_SECTIONS):]:
            if section.missing is None:
                section.notes.insert(0, f"computed by its own command over the runs it was given, not only the runs "
                                        f"this page shows ({chosen})")
    sections[0].notes += list(dict.fromkeys(campaign.notes))
    return sections
