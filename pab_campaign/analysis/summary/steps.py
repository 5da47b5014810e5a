"""Learning curves per training step: the values runs recorded per step (`steps.parquet`, written by
`tracker.log(step=...)` and by `import --steps-per-epoch`), over seeds per group, as `curves --steps`
draws them."""
from __future__ import annotations

import pandas as pd

from pab_campaign.analysis.campaign.campaign import Campaign, completed_runs, hparam_values
from pab_campaign.analysis.stats.descriptive import ci95_halfwidths
from pab_campaign.analysis.summary.report import choose_groupby
from pab_campaign.analysis.summary.report_plan import DEFAULT_CONTEXTS
from pab_campaign.errors import CampaignError, StoreError, one_line
from pab_campaign.store import STEPS, read_steps, runs_dir


def _steps_of(campaign: Campaign, run_ids: list[str]) -> pd.DataFrame:
    """Every step row of the runs `run_ids` that have a readable steps file, with run_id and label."""
    frames = []
    for run_id in run_ids:
        directory = runs_dir(campaign.directory) / run_id
        if not (directory / STEPS).is_file():
            continue
        try:
            frame = read_steps(directory).to_pandas()
        except StoreError as exc:
            campaign.note(f"run {run_id}: {one_line(exc)}; its steps are left out")
            continue
        frame = frame.astype({"context": str, "metric": str, "key": object})
        frame["label"] = [f"{c}/{m}" + (f"[{k}]" if isinstance(k, str) else "")
                          for c, m, k in zip(frame["context"], frame["metric"], frame["key"])]
        frame["run_id"] = run_id
        frames.append(frame[["run_id", "label", "step", "value"]])
    if not frames:
        raise CampaignError(f"{campaign.directory}: no completed run recorded values per step (steps.parquet); "
                            "tracker.log(step=..., ...) and import --steps-per-epoch write them")
    return pd.concat(frames, ignore_index=True)


def build_step_curves(campaign: Campaign, groupby: list[str] | None = None, contexts: list[str] | None = None,
                      metrics: list[str] | None = None) -> tuple[list[str], pd.DataFrame]:
    """Per group, label and step: runs with a finite value, mean, std (ddof=1), CI95 half-width.
    Labels: `metrics` as full names or crossed with `contexts` (default val, test); every label
    recorded per step when neither is given. Returns (groupby, curves)."""
    done = completed_runs(campaign)
    groupby = choose_groupby(campaign, done, groupby)
    steps = _steps_of(campaign, done["run_id"].tolist())
    recorded = list(dict.fromkeys(sorted(steps["label"])))
    if metrics or contexts:
        chosen = [m for m in metrics or [] if "/" in m]
        chosen += [f"{c}/{m}" for c in (contexts or DEFAULT_CONTEXTS) for m in (metrics or []) if "/" not in m]
        missing = [label for label in chosen if label not in recorded]
        if missing or not chosen:
            raise CampaignError(f"{', '.join(missing) or 'no metric named'}: not recorded per step; recorded per step: "
                                f"{', '.join(recorded)}")
    else:
        chosen = recorded
    steps = steps[steps["label"].isin(chosen) & steps["value"].map(pd.notna) & ~steps["value"].isin([float("inf"),
                                                                                                      float("-inf")])]
    frame = steps.merge(done[["run_id"]].join(hparam_values(done, groupby)), on="run_id")
    curves = (frame.groupby([*groupby, "label", "step"], dropna=False, sort=True)["value"]
              .agg(runs="count", mean="mean", std="std").reset_index())
    curves["ci95"] = ci95_halfwidths(curves["runs"].to_numpy(), curves["std"].to_numpy())
    position = {label: i for i, label in enumerate(chosen)}
    curves = curves.sort_values(["label", *groupby, "step"], key=lambda c: c.map(position) if c.name == "label" else c,
                                kind="stable", ignore_index=True)
    return groupby, curves
