"""The data of the page's interactive charts (JSON-able dicts the page's script draws), built from
the same frames as the PNG figures beside them. Per-run lines are never carried: a curves chart
holds per group and epoch the mean, CI95 half-width and run count, for the default grouping and for
each hyper-parameter alone (the chart's selector), at most MAX_GROUPS groups each (the best by the
first panel's final mean, the rest counted), and per group the ids of its runs; so the page's size
grows with groups × epochs, not with runs."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pab_campaign.analysis.campaign.campaign import Campaign, completed_runs
from pab_campaign.analysis.campaign.index import HPARAM_SUFFIX, hparam_key
from pab_campaign.analysis.mbe.figures import rank_regression
from pab_campaign.analysis.plots.curves import curves_caption, default_log, final_means
from pab_campaign.analysis.plots.groups import MAX_GROUPS, choose_groups, group_style
from pab_campaign.analysis.plots.style import NOT_SIGNIFICANT, SIGNIFICANT, STATE_COLOURS, metric_range, metric_unit
from pab_campaign.formatting import group_label as name_of
from pab_campaign.formatting import value_text

MAX_RUN_IDS = 40  # run ids listed per group (the count is always exact)
REGRESSION_POINTS = 100  # points of an audit chart's rank-regression curve (a monotone line, 480 px wide)


def _value(value: object) -> float | None:
    """A JSON number, None for NaN or ±inf."""
    number = float(value)  # type: ignore[arg-type]  # a frame's numeric cell (numpy or Python number)
    return number if math.isfinite(number) else None


def styles(count: int) -> list[dict]:
    """The first `count` group styles as the script draws them (colour, canvas dash pattern)."""
    return [{"colour": s.colour, "dash": list(s.dash)} for s in map(group_style, range(count))]


def _grouping(curves: pd.DataFrame, groupby: list[str], labels: list[str], runs: pd.DataFrame) -> dict:
    """One choice of the selector: its groups (best MAX_GROUPS), their runs, and per label aligned arrays."""
    choice = choose_groups(final_means(curves, groupby, labels[0]), labels[0], MAX_GROUPS)
    members: dict[str, list[str]] = {}
    if groupby:
        # `groupby` names output columns: a hyper-parameter's plain name, or its index column where that is taken.
        values = runs[[c if c.endswith(HPARAM_SUFFIX) else hparam_key(c) for c in groupby]].set_axis(groupby, axis=1)
        for key, rows in runs[["run_id"]].join(values).groupby(groupby, dropna=False, sort=True):
            members[name_of(groupby, key if isinstance(key, tuple) else (key,))] = rows["run_id"].tolist()
    else:
        members["all runs"] = runs["run_id"].tolist()
    named = curves.assign(group=[name_of(groupby, tuple(row)) for row in curves[groupby].itertuples(index=False)]
                          if groupby else "all runs")
    panels = []
    for label in labels:
        rows = named[named["label"] == label]
        epochs = sorted(int(e) for e in rows["epoch"].unique())
        panel: dict = {"epochs": epochs, "mean": [], "ci": [], "runs": []}
        for name in choice.shown:
            group = rows[rows["group"] == name].set_index("epoch").reindex(epochs)
            panel["mean"].append([_value(v) for v in group["mean"]])
            panel["ci"].append([_value(v) for v in group["ci95"].astype(float)])  # None: under two runs
            panel["runs"].append([0 if math.isnan(v) else int(v) for v in group["runs"].astype(float)])
        panels.append(panel)
    title = (f"{', '.join(groupby)} ({choice.total} groups)" if groupby else "all runs (one group)")
    return {"title": title, "note": curves_caption(curves, groupby, choice),
            "groups": [{"name": name, "runs": members.get(name, [])[:MAX_RUN_IDS],
                        "total": len(members.get(name, []))} for name in choice.shown],
            "panels": panels}


def curves_chart(campaign: Campaign, groupby: list[str], curves: pd.DataFrame, lead: str = "") -> dict:
    """The curves chart of `curves` (`build_curves` output grouped by `groupby`): that grouping
    first, then each hyper-parameter of it alone, then all runs as one group. The figure's caption
    becomes `lead` followed by what the chosen grouping shows. Per panel: `log`, whether it starts
    on a log scale (as the PNG: a loss spanning more than two decades), and `loggable`, whether
    every mean is positive (a log scale would drop the others); a CI95 is null under two runs."""
    from pab_campaign.analysis.summary.report import coarser_curves

    labels = list(dict.fromkeys(curves["label"]))
    runs = completed_runs(campaign)
    choices = [(groupby, curves)]
    if len(groupby) > 1:
        choices += [([name], coarser_curves(curves, groupby, [name], labels)) for name in groupby]
    if groupby:
        choices.append(([], coarser_curves(curves, groupby, [], labels)))
    means = [curves.loc[curves["label"] == label, "mean"].to_numpy(float) for label in labels]
    # a panel may go on a log scale when every mean is positive (the coarser groupings' means are
    # averages of these); it starts there as the PNG does
    loggable = [bool((values[np.isfinite(values)] > 0).all()) for values in means]
    log = [default_log(label, values) and ok for label, values, ok in zip(labels, means, loggable)]
    return {"kind": "curves", "lead": lead, "labels": labels, "log": log, "loggable": loggable,
            "styles": styles(MAX_GROUPS),
            "units": [metric_unit(label) for label in labels],
            "ranges": [[_value(v) if math.isfinite(v) else (-1e300 if v < 0 else 1e300) for v in metric_range(label)]
                       for label in labels],
            "groupings": [_grouping(frame, names, labels, runs) for names, frame in choices]}


def audit_chart(rows: pd.DataFrame, runs: pd.DataFrame, metric: str, target: str, hparams: list[str],
                colour_by: pd.Series | None, alpha: float) -> dict:
    """The audit chart of one candidate: a point per run (`runs`: run_id, the `hparams` columns,
    `metric`, `target`; a point's hover lists the hyper-parameters that vary) coloured by `colour_by`
    (named; 'missing' where a run lacks it), the rank-regression curve (`curve`, as the PNG draws it,
    at REGRESSION_POINTS points; empty where it has none), and the signed raw and partial ρ of each
    group of `rows` (the audit table's rows of this metric) with interval and significance on the
    adjusted p."""
    usable = runs.dropna(subset=[metric, target])
    labels = (colour_by.reindex(usable.index).map(value_text) if colour_by is not None
              else pd.Series("all runs", index=usable.index)).reset_index(drop=True)
    usable = usable.reset_index(drop=True)
    varying = [h for h in hparams if usable[h].nunique(dropna=False) > 1]  # a point's hover lists these
    groups = sorted(labels.unique())
    points = [[float(x), float(y), groups.index(g), i] for i, (x, y, g) in
              enumerate(zip(usable[metric], usable[target], labels))]
    line = rank_regression(usable[metric].to_numpy(float), usable[target].to_numpy(float), REGRESSION_POINTS)
    curve = [] if line is None else [[float(x), float(y)] for x, y in zip(*line)]
    table = []
    for row in rows.to_dict("records"):
        entry = {"group": str(row["group"]), "n": int(row["n"]), "verdict": str(row["verdict"]),
                 "effect": str(row["effect_class"])}
        for kind in ("raw", "partial"):
            p_adj = float(row[f"{kind}_p_adj"])
            entry[kind] = {"rho": _value(row[f"{kind}_rho"]), "low": _value(row[f"{kind}_ci_low"]),
                           "high": _value(row[f"{kind}_ci_high"]), "p_adj": _value(p_adj),
                           "significant": bool(p_adj < alpha if kind == "raw" else p_adj <= alpha)}
        table.append(entry)
    return {"kind": "audit", "metric": metric, "target": target, "alpha": alpha, "points": points, "curve": curve,
            "groups": groups, "colour_by": None if colour_by is None else str(colour_by.name),
            "styles": styles(len(groups)), "significant": SIGNIFICANT, "not_significant": NOT_SIGNIFICANT,
            "runs": [{"id": str(r["run_id"]), "hparams": [f"{h} = {r[h]}" for h in varying if pd.notna(r[h])]}
                     for r in usable.to_dict("records")], "rows": table}


def transitions_chart(phases: pd.DataFrame, transitions: pd.DataFrame) -> dict:
    """The phases (phases.csv) and their transitions (transitions.csv, up to three features each)."""
    states = [{"state": int(r["state"]), "occupancy": float(r["occupancy"]), "runs": int(r["runs"]),
               "epochs": f"{r['epoch_from']}–{r['epoch_to']}", "description": str(r["description"])}
              for r in phases.to_dict("records")]
    edges = []
    for (source, target), rows in transitions.groupby(["from_state", "to_state"], sort=True):
        top = rows.sort_values("rank").head(3) if "rank" in rows else rows.head(3)
        edges.append({"from": int(source), "to": int(target), "p": float(rows["probability"].iloc[0]),
                      "runs": int(rows["runs"].iloc[0]),
                      "features": [f"{f}: SMD {s:+.2f}" for f, s in zip(top["feature"], top["smd"])]})
    return {"kind": "transitions", "states": states, "edges": edges, "colours": list(STATE_COLOURS)}


def directions_chart(directions: pd.DataFrame, composition: pd.DataFrame | None, a: str, b: str) -> dict:
    """ModelDiff's directions (directions.csv): A's and B's variance along each, with the classes
    each singles out (composition.csv) for the hover."""
    found: dict[tuple, list[str]] = {}
    if composition is not None:
        top = composition.sort_values("share", ascending=False).groupby(
            ["comparison", "direction", "subpopulation"]).head(3)
        for (comparison, direction, subpopulation), rows in top.groupby(["comparison", "direction", "subpopulation"]):
            found.setdefault((comparison, int(direction)), []).append(
                f"{subpopulation}: " + ", ".join(f"{label} {share:.0%}" for label, share in
                                                 zip(rows["label"], rows["share"])))
    return {"kind": "directions", "a": a, "b": b, "colour_a": SIGNIFICANT, "colour_b": NOT_SIGNIFICANT,
            "directions": [{"name": f"{r['comparison']} #{int(r['direction'])}", "direction": int(r["direction"]),
                            "a": float(r["variance_a"]), "b": float(r["variance_b"]),
                            "residual": _value(r.get("residual_variance", np.nan)),
                            "composition": found.get((r["comparison"], int(r["direction"])), [])}
                           for r in directions.to_dict("records")]}
