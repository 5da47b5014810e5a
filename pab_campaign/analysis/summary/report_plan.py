"""What a `report` shows, decided the same way by the full path (`report`) and the warm one
(`warm_report`): the labels asked for, which of them are tracked, the output column names, the
CSV's file name and the order of the groups. Plain Python (no pandas)."""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from pab_campaign.analysis.campaign.naming import ids_suffix, slug
from pab_campaign.analysis.campaign.warm import HPARAM_SUFFIX
from pab_campaign.errors import CampaignError, did_you_mean

DEFAULT_CONTEXTS = ("val", "test")
# `summary/<name>` labels are whole-run process summaries (`trajectory`).
SUMMARY_CONTEXT = "summary"
DEFAULT_METRICS = ("acc", "loss")
STATS = ("mean", "std", "ci95")
# The index column of a run's campaign id (run.json's `campaign`), the first grouping key when runs have several.
CAMPAIGN_KEY = "campaign"


def requested_labels(contexts: Sequence[str] | None, metrics: Sequence[str] | None) -> list[str]:
    """The labels `--contexts`/`--metrics` ask for: full `context/metric` names as given, then each
    plain metric name in every context (defaults: val, test × acc, loss); a name with `@epoch` is
    refused with the option that chooses the epoch."""
    chosen = metrics or DEFAULT_METRICS
    at_epoch = next((m for m in chosen if "@" in m), None)
    if at_epoch is not None:
        name, epoch = at_epoch.split("@", 1)
        if not name.strip() or not epoch.strip() or "@" in epoch:
            raise CampaignError(f"--metrics {at_epoch} is not a metric name; name metrics as context/metric without "
                                "@epoch, e.g. --metrics val/loss --epoch 3")
        raise CampaignError(f"--metrics {at_epoch}: name metrics without @epoch (`report` takes the epoch from "
                            f"--epoch, e.g. --metrics {name} --epoch {epoch}; `curves` draws every epoch)")
    labels = [m for m in chosen if "/" in m]
    return labels + [f"{c}/{m}" for c in (contexts or DEFAULT_CONTEXTS) for m in chosen if "/" not in m]


def drop_untracked(labels: list[str], tracked: list[str], contexts: Sequence[str] | None,
                   metrics: Sequence[str] | None, notes: list[str]) -> list[str]:
    """`labels` (`requested_labels(contexts, metrics)`) without those never tracked (`tracked`: the
    index's scalar metrics), left out with a note. An error instead where the user named one in full
    (`--metrics ctx/metric`, or a metric with `--contexts`), or where a metric or context the user
    named keeps no label (`--metrics acc` on runs without a test split reports val/acc alone); keyed
    and `summary/` labels are kept."""
    missing = [label for label in labels if label not in tracked and not label.startswith(f"{SUMMARY_CONTEXT}/")
               and not label.endswith("]")]
    kept = [label for label in labels if label not in missing]
    plain = [m for m in metrics or [] if "/" not in m]
    named = {m for m in metrics or [] if "/" in m} | {f"{c}/{m}" for c in contexts or [] for m in plain}
    absent_labels = [label for label in missing if label in named]
    absent_metrics = [m for m in plain if not any(_metric(label) == _metric(m) for label in kept)]
    absent_contexts = [c for c in contexts or [] if not any(label.split("/", 1)[0] == c for label in kept)]
    searched = list(contexts or DEFAULT_CONTEXTS)
    if absent_labels:
        what, first = ", ".join(absent_labels), absent_labels[0]
    elif absent_metrics:
        what, first = f"{', '.join(absent_metrics)} (in {', '.join(searched)})", f"{searched[0]}/{absent_metrics[0]}"
    elif absent_contexts:
        what, first = f"context {', '.join(absent_contexts)}", absent_contexts[0]
    else:
        what = first = ""
    if what:
        raise CampaignError(f"{what} never tracked in these runs (or NaN at every run's last and best epoch)"
                            f"{did_you_mean(first, tracked)}; tracked: {', '.join(tracked)}")
    if missing:
        notes.append(f"not tracked, left out: {', '.join(missing)}")
    if not kept:
        raise CampaignError(f"none of the default metrics is tracked; pick some with --contexts/--metrics "
                            f"from: {', '.join(tracked) or 'none'}")
    return kept


def _metric(name: str) -> str:
    """The metric of a label or of a plain `--metrics` name: `val/class_acc[3]` → `class_acc`."""
    return name.split("/", 1)[-1].split("[", 1)[0]


def output_names(names: Sequence[str], taken: Iterable[str]) -> list[str]:
    """Column names for the hyper-parameters `names` in an output beside the columns `taken`: each
    plain name, or its index column (`name@hparam`) where the plain name is taken."""
    reserved = set(taken)
    return [name if name not in reserved else f"{name}{HPARAM_SUFFIX}" for name in names]


def hparam_columns(hparams: Sequence[str], labels: Sequence[str]) -> list[str]:
    """`output_names` of the hyper-parameters a report groups by, beside its columns (those of its
    split layout too)."""
    names = [*labels, "duration_s", *(label.split("/", 1)[-1] for label in labels)]
    return output_names(hparams, ["run_id", "runs", "context", CAMPAIGN_KEY, *names,
                                  *(f"{name}.{stat}" for name in names for stat in STATS)])


def report_name(groupby: Sequence[str], epoch: str | int, campaign_ids: list[str] | None, layout: str = "wide") -> str:
    """`summary_<groupby>_<epoch>[_<campaign ids>][_split].csv` (`groupby` without the campaign key)."""
    suffix = ids_suffix(campaign_ids) + ("_split" if layout == "split" else "")
    return f"summary_{slug([key for key in groupby if key != CAMPAIGN_KEY])}_{epoch}{suffix}.csv"


def best_order(rows: list[dict[str, Any]], metrics: list[str], sort: str | None, top: int | None) -> list[int]:
    """Positions of the report's group `rows` ordered by the mean of `sort` (a metric of the report),
    best first (highest where the registry says higher is better, else lowest; NaN last; ties kept
    in order), then the first `top` of them."""
    from pab_campaign.metrics import MetricSpec, lookup

    order = list(range(len(rows)))
    if sort is not None:
        column = f"{sort}.mean"
        if not rows or column not in rows[0]:
            raise CampaignError(f"--sort {sort}: not a metric of this report{did_you_mean(sort, metrics)}; choose one "
                                f"of {', '.join(metrics)} (or add it with --metrics)")
        spec = MetricSpec.parse(sort)
        metric = lookup(spec.metric, spec.context)
        higher = metric is not None and metric.lower_is_better is False
        missing = [i for i in order if math.isnan(rows[i][column])]
        present = sorted((i for i in order if not math.isnan(rows[i][column])), key=lambda i: rows[i][column],
                         reverse=higher)
        order = present + missing
    return order[:top] if top is not None else order
