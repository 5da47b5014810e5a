"""The `states` analysis of a campaign: read its completed runs, fit the latent phases (`states`),
say what they mean (`phases`), and write everything under `<campaign>/summary/states/`."""
from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pab_campaign.analysis.campaign.campaign import Campaign, completed_runs, hparam_values, varying_hparams
from pab_campaign.analysis.campaign.index_layout import as_hparam_name
from pab_campaign.analysis.campaign.naming import ids_suffix
from pab_campaign.analysis.campaign.workspace import output_folder
from pab_campaign.analysis.phases.hmm import StatesFit, StatesRequest, fit_states, load_sequences
from pab_campaign.analysis.phases.interpretation import (
    convergence_epochs,
    detour_table,
    group_curves,
    hparam_predictors,
    phase_profiles,
    transition_features,
    visits,
)
from pab_campaign.errors import CampaignError, did_you_mean
from pab_campaign.formatting import group_label
from pab_campaign.metrics import MetricSpec
from pab_campaign.store import atomic_write, replace_outputs

CONVERGENCE_METRIC = MetricSpec("val", "acc")


@dataclass
class StatesReport:
    """A fitted state model (`fit`) and what it means: `profiles` (one row per state), `feature_means`
    (state × feature), `transitions` (top features per observed transition), `transmat` (K × K),
    `detours` (None without val/acc), `predictors` (hyper-parameters against visiting each state),
    the learning curves per run group with their state bands, and notes."""

    fit: StatesFit
    profiles: pd.DataFrame
    feature_means: pd.DataFrame
    transitions: pd.DataFrame
    transmat: pd.DataFrame
    detours: pd.DataFrame | None
    predictors: pd.DataFrame
    curve: pd.DataFrame
    bands: pd.DataFrame
    curve_metric: str | None
    groupby: list[str]
    notes: list[str] = field(default_factory=list)


def metric_curves(campaign: Campaign, run_ids: list[str], spec: MetricSpec) -> pd.DataFrame:
    """run_id, epoch, value of `spec` (no @epoch) for `run_ids`; empty when it was never tracked."""
    return campaign.query_trajectories(
        "SELECT run_id, epoch, value FROM traj WHERE run_id IN (SELECT unnest($ids::VARCHAR[])) "
        "AND context = $context AND metric = $metric AND coalesce(key, '') = $key ORDER BY run_id, epoch",
        {"ids": run_ids, "context": spec.context, "metric": spec.metric, "key": spec.key or ""})


def _check_curve_metric(spec: MetricSpec | None) -> None:
    if spec is not None and spec.epoch is not None:
        raise CampaignError(f"--curve-metric {spec.label}: a learning curve spans every epoch; drop the @{spec.epoch}")


def run_states(campaign: Campaign, request: StatesRequest, curve_metric: MetricSpec | None = None,
               groupby: list[str] | None = None, progress=None) -> StatesReport:
    """Fit and explain the latent phases of `campaign`'s completed runs.

    `curve_metric` is drawn per run group under the state bands (default val/acc, left out with a
    note when not tracked; a named metric that was never tracked is an error); `groupby` names the
    hyper-parameters of the groups (default: those that vary, except the seed). Detours use each
    run's val/acc. CampaignError for an unknown name, a feature never tracked, or too few runs.
    """
    _check_curve_metric(curve_metric)
    groupby = None if groupby is None else [as_hparam_name(name, campaign.hparam_names) for name in groupby]
    unknown = [name for name in groupby or [] if name not in campaign.hparam_names]
    if unknown:
        raise CampaignError(f"--groupby {', '.join(unknown)}: not a hyper-parameter of this campaign"
                            f"{did_you_mean(unknown[0], campaign.hparam_names)}; choose from: "
                            f"{', '.join(campaign.hparam_names)}")
    done = completed_runs(campaign)
    sequences = load_sequences(campaign, done["run_id"].tolist(), request.features)
    named_curve = curve_metric or CONVERGENCE_METRIC
    curves = metric_curves(campaign, sequences.run_ids, named_curve)
    if curves.empty and curve_metric is not None:
        raise CampaignError(f"--curve-metric {curve_metric.label} was never tracked by these runs; "
                            "name a tracked metric, e.g. val/acc or val/loss")
    fit = fit_states(sequences, request, progress)
    notes = list(fit.notes)
    per_run = [fit.states["state"].to_numpy()[s:e] for s, e in _bounds(sequences.lengths)]
    z = fit.z
    k = fit.chosen_k
    profiles, feature_means = phase_profiles(sequences.values, z, sequences.epochs, per_run, sequences.features, k)
    transmat = pd.DataFrame(fit.model.transmat_, index=pd.Index(range(k), name="from_state"),
                            columns=[f"to_{j}" for j in range(k)])
    transitions = transition_features(sequences.values, z, per_run, sequences.features, fit.model.transmat_)
    visited = visits(fit.states, k)
    runs = done.set_index("run_id").loc[sequences.run_ids]
    hparams = hparam_values(runs, campaign.hparam_names)
    varying = varying_hparams(runs.reset_index(), campaign.hparam_names)  # one test per way to split the runs
    predictors = hparam_predictors(visited, hparams[varying])
    accuracy = curves if named_curve == CONVERGENCE_METRIC else metric_curves(campaign, sequences.run_ids,
                                                                              CONVERGENCE_METRIC)
    detours = detour_table(visited, convergence_epochs(accuracy)) if not accuracy.empty else None
    if detours is None:
        notes.append("val/acc was not tracked: no convergence epochs, so no detour tests")
    chosen_groupby = groupby if groupby is not None else varying
    labels = _group_labels(hparams, chosen_groupby)
    if curves.empty:
        notes.append(f"{named_curve.label} was not tracked: no phase-coloured learning curves")
    curve, bands = group_curves(curves, fit.states, labels)
    return StatesReport(fit, profiles, feature_means, transitions, transmat, detours, predictors, curve, bands,
                        None if curves.empty else named_curve.label, chosen_groupby, notes)


def _group_labels(runs: pd.DataFrame, names: list[str]) -> pd.Series:
    """run_id → 'name=value, ...' of the grouping hyper-parameters ('all runs' without any)."""
    if not names:
        return pd.Series("all runs", index=runs.index)
    return pd.Series([group_label(names, row) for row in runs[names].itertuples(index=False, name=None)],
                     index=runs.index)


def _bounds(lengths) -> list[tuple[int, int]]:
    ends = pd.Series(lengths).cumsum().tolist()
    return list(zip([0, *ends[:-1]], ends))


def states_dir(campaign: Campaign, campaign_ids: list[str] | None = None) -> Path:
    """`<campaign>/summary/states/` (`states_<ids>/` for a run filter by campaign id)."""
    return output_folder(campaign.summary_dir, f"states{ids_suffix(campaign_ids)}")


def _csv(path: Path, frame: pd.DataFrame, index: bool = False) -> Path:
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=index))
    return path


# The files `write_states` writes; any other file in its folder (a user's, with --output-folder) stays.
STATES_FILES = ("model.pkl", "states.parquet", "selection.csv", "transitions.csv", "transition_matrix.csv",
                "phases.csv", "phase_features.csv", "hyperparameters.csv", "split.csv", "detours.csv",
                "left_out.csv", "selection.png", "transitions.png")


def _is_states_file(name: str) -> bool:
    return name in STATES_FILES or (name.startswith("phases_") and name.endswith(".png"))


def write_states(report: StatesReport, directory: Path, title: str, plots: bool = True) -> list[Path]:
    """Write the report's files into `directory` and return their paths: model.pkl (a dict with the
    fitted hmmlearn model, its feature list and how the features were scaled), states.parquet,
    selection.csv, transitions.csv, transition_matrix.csv, phases.csv, phase_features.csv,
    hyperparameters.csv, split.csv (each run's part in model selection: fit, held_out or not in the
    selection subsample), detours.csv, left_out.csv (when runs were left out) and, with `plots`,
    selection.png, transitions.png and phases_<metric>.png. `title` names the campaign in figures.
    The files are written aside first (`store.replace_outputs`): what an earlier `states` wrote and
    this one did not (detours, left-out runs, figures) is removed, so nothing of another fit stands
    beside this one's results, and a failure leaves the earlier results as they were."""
    return replace_outputs(directory, lambda staging: _write_files(report, staging, title, plots), _is_states_file)


def _write_files(report: StatesReport, directory: Path, title: str, plots: bool) -> list[Path]:
    fit = report.fit
    payload = {"model": fit.model, "features": fit.sequences.features, "chosen_k": fit.chosen_k,
               "reason": fit.reason, "scaling": "z-score within each run (ddof 0; constant features 0)"}
    atomic_write(directory / "model.pkl", lambda tmp: tmp.write_bytes(pickle.dumps(payload)))
    atomic_write(directory / "states.parquet", lambda tmp: fit.states.to_parquet(tmp, index=False))
    written = [directory / "model.pkl", directory / "states.parquet",
               _csv(directory / "selection.csv", fit.selection),
               _csv(directory / "transitions.csv", report.transitions),
               _csv(directory / "transition_matrix.csv", report.transmat, index=True),
               _csv(directory / "phases.csv", report.profiles),
               _csv(directory / "phase_features.csv", report.feature_means),
               _csv(directory / "hyperparameters.csv", report.predictors)]
    roles = pd.DataFrame({"run_id": fit.sequences.run_ids, "role": "not in the selection subsample"})
    roles.loc[roles["run_id"].isin(fit.fit_runs), "role"] = "fit"
    roles.loc[roles["run_id"].isin(fit.held_out_runs), "role"] = "held_out"
    written.append(_csv(directory / "split.csv", roles))
    if report.detours is not None:
        written.append(_csv(directory / "detours.csv", report.detours))
    if fit.sequences.left_out:
        written.append(_csv(directory / "left_out.csv", pd.DataFrame(fit.sequences.left_out,
                                                                      columns=["run_id", "reason"])))
    if plots:
        written += _figures(report, directory, title)
    return written


def _figures(report: StatesReport, directory: Path, title: str) -> list[Path]:
    from pab_campaign.analysis.campaign.naming import figure_name
    from pab_campaign.analysis.phases.figures import (
        states_curves_figure,
        states_selection_figure,
        states_transition_figure,
    )
    from pab_campaign.analysis.plots.style import save_png

    fit = report.fit
    features = f"{len(fit.sequences.features)} features"
    paths = [save_png(states_selection_figure(fit.selection, fit.chosen_k, f"{title} — HMM selection over K "
                                              f"({features}, {len(fit.fit_runs)} fit / {len(fit.held_out_runs)} "
                                              "held-out runs)"), directory / "selection.png"),
             save_png(states_transition_figure(fit.model.transmat_, report.profiles["occupancy"].to_numpy(),
                                               f"{title} — transitions between the {fit.chosen_k} phases"),
                      directory / "transitions.png")]
    if report.curve_metric is not None:
        name = "phases_" + figure_name(report.curve_metric)
        figure = states_curves_figure(report.curve, report.bands, fit.chosen_k, report.curve_metric,
                                      f"{title} — {report.curve_metric} per run group, background = phase of most "
                                      "runs", report.groupby)
        paths.append(save_png(figure, directory / name))
    return paths
