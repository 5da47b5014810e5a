"""The Marginal Baseline Eval (MBE): does a candidate metric predict the final result beyond a
trivial baseline? For every candidate, the raw Spearman ρ(candidate, target) against the partial ρ
given the baseline (and any further controls), with bootstrap intervals and the verdict of
`stats.effect_class`; for the acid test and the architecture check, ρ of every metric against each
driver hyper-parameter, per group.

Candidates and baseline are taken at epoch K (`--at-epoch`, else the baseline's `@epoch`, else the
last epoch), the target at each run's last epoch. One row of values per completed run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pab_campaign.analysis.campaign import (
    Campaign,
    CampaignError,
    MetricSpec,
    completed_runs,
    load_trajectories,
    metric_series,
    tracked_metrics,
)
from pab_campaign.analysis.stats import MIN_RUNS, bootstrap_rho_cis, effect_class, partial_spearman
from pab_campaign.store import atomic_write, summary_dir

AUDIT_COLUMNS = ["group", "metric", "n", "raw_rho", "raw_p", "raw_ci_low", "raw_ci_high",
                 "partial_rho", "partial_p", "partial_ci_low", "partial_ci_high", "verdict"]
DRIVER_COLUMNS = ["group", "metric", "driver", "n", "rho", "p", "monotone"]
POOLED = "all"


@dataclass(frozen=True)
class AuditRequest:
    """What to audit. `controls` are hyper-parameter names or metric specs; `drivers` hyper-parameters."""

    metrics: list[MetricSpec]
    baseline: MetricSpec
    target: MetricSpec
    controls: list[str] = field(default_factory=list)
    at_epoch: int | None = None
    groupby: str | None = None
    drivers: list[str] = field(default_factory=list)
    all_metrics: bool = False
    n_boot: int = 1000
    seed: int = 0


@dataclass
class AuditData:
    """One row per completed run: `values` (candidates, baseline, target and metric controls as columns),
    `hparams` (the runs' hyper-parameters), and which columns play which part."""

    values: pd.DataFrame
    hparams: pd.DataFrame
    candidates: list[str]
    baseline: str
    target: str
    numeric_controls: list[str]
    categorical_controls: list[str]
    notes: list[str] = field(default_factory=list)


@dataclass
class AuditResult:
    """The audit table (AUDIT_COLUMNS), the driver table (DRIVER_COLUMNS), the values they came from,
    notes for the user, and the request that asked for them."""

    table: pd.DataFrame
    drivers: pd.DataFrame
    data: AuditData
    notes: list[str]
    request: AuditRequest


def _at(spec: MetricSpec, epoch: int | None) -> MetricSpec:
    """`spec` at `epoch` unless it names its own epoch."""
    return spec if spec.epoch is not None or epoch is None else MetricSpec(spec.context, spec.metric, spec.key, epoch)


def _is_numeric(column: pd.Series) -> bool:
    present = column.dropna()
    return bool(len(present)) and all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                                      for v in present)


def _check_hparam(campaign: Campaign, name: str, role: str) -> None:
    if name not in campaign.hparam_names:
        raise CampaignError(f"{role} '{name}' is not a hyper-parameter of this campaign; "
                            f"choose from: {', '.join(campaign.hparam_names)}")


def gather(campaign: Campaign, request: AuditRequest) -> AuditData:
    """Collect, per completed run, every value the audit needs (see the module docstring)."""
    epoch = request.at_epoch if request.at_epoch is not None else request.baseline.epoch
    for name in ([request.groupby] if request.groupby else []) + request.drivers:
        _check_hparam(campaign, name, "--groupby" if name == request.groupby else "driver")
    done = completed_runs(campaign)
    trajectories = load_trajectories(campaign, done["run_id"].tolist())
    baseline, target = _at(request.baseline, epoch), request.target
    columns = {baseline.label: metric_series(trajectories, baseline),
               target.label: metric_series(trajectories, target)}
    notes: list[str] = []
    specs = list(request.metrics)
    if request.all_metrics:
        named = {(s.context, s.metric) for s in [*specs, baseline, target]}
        specs += [MetricSpec.parse(name) for name in tracked_metrics(trajectories)
                  if tuple(name.split("/")) not in named]
    candidates = []
    for named_spec in specs:
        spec = _at(named_spec, epoch)
        try:
            series = metric_series(trajectories, spec)
        except CampaignError:
            if named_spec in request.metrics:
                raise
            notes.append(f"{spec.label}: not measured at epoch {epoch}, left out")
            continue
        if spec.label not in columns:
            columns[spec.label] = series
            candidates.append(spec.label)
    numeric, categorical = [], []
    hparams = done.set_index("run_id")[campaign.hparam_names]
    for control in request.controls:
        if control in campaign.hparam_names:
            (numeric if _is_numeric(hparams[control]) else categorical).append(control)
            if control in numeric:
                columns[control] = hparams[control].astype(float)
            continue
        if "/" not in control:
            _check_hparam(campaign, control, "control")
        spec = _at(MetricSpec.parse(control), epoch)
        columns[spec.label] = metric_series(trajectories, spec)
        numeric.append(spec.label)
    values = pd.DataFrame(columns)
    for name in categorical:
        values[name] = hparams[name].astype(str).reindex(values.index)
    needed = [baseline.label, target.label, *numeric, *categorical]
    usable = values[needed].dropna()
    if len(usable) < MIN_RUNS:
        raise CampaignError(f"only {len(usable)} completed runs have every audited value; the audit needs at "
                            f"least {MIN_RUNS}: launch more seeds or configurations into {campaign.directory}")
    for label in (baseline.label, target.label):
        if usable[label].nunique() < 2:
            raise CampaignError(f"{label} is constant across the {len(usable)} runs; a constant cannot rank runs, "
                                "audit against another baseline, target or epoch")
    if not candidates:
        raise CampaignError("no candidate metric to audit: name them with --metric or use --all-metrics")
    return AuditData(values, hparams.reindex(values.index), candidates, baseline.label, target.label,
                     numeric, categorical, notes)


def _groups(data: AuditData, groupby: str | None) -> list[tuple[str, pd.Index]]:
    """(name, run ids): every run as `all`, then one group per value of `groupby`."""
    groups = [(POOLED, data.values.index)]
    if groupby:
        labels = data.hparams[groupby].astype(str)
        groups += [(f"{groupby}={value}", labels.index[labels == value]) for value in sorted(labels.unique())]
    return groups


def audit_rows(data: AuditData, group: str, runs: pd.Index, n_boot: int, seed: int) -> list[list]:
    """The audit table's rows for the runs `runs`: the baseline first, then every candidate."""
    rows = []
    controls = [data.baseline, *data.numeric_controls]
    for metric in [data.baseline, *data.candidates]:
        own_controls = [c for c in controls if c != metric]
        needed = dict.fromkeys([metric, data.target, *own_controls, *data.categorical_controls])
        usable = data.values.loc[runs, list(needed)].dropna()
        n = len(usable)
        x, y = usable[metric].to_numpy(float), usable[data.target].to_numpy(float)
        numeric = [usable[c].to_numpy(float) for c in own_controls]
        categorical = [usable[c].to_numpy() for c in data.categorical_controls]
        if n < MIN_RUNS or np.ptp(x) == 0:
            rows.append([group, metric, n, *[math.nan] * 8, "insufficient-data" if n < MIN_RUNS else "constant"])
            continue
        raw, raw_p, _ = partial_spearman(x, y)
        has_controls = bool(numeric or categorical)
        partial, partial_p = partial_spearman(x, y, numeric, categorical)[:2] if has_controls else (math.nan, math.nan)
        raw_ci, partial_ci = bootstrap_rho_cis(x, y, numeric, categorical, n_boot, seed)
        verdict = "baseline" if metric == data.baseline else effect_class(raw, partial, n)
        rows.append([group, metric, n, raw, raw_p, *raw_ci, partial, partial_p, *partial_ci, verdict])
    return rows


def _monotone(x: np.ndarray, driver: np.ndarray) -> bool:
    """Whether the mean of x per driver level moves strictly one way as the driver grows (≥ 3 levels)."""
    means = pd.Series(x).groupby(driver).mean().sort_index().to_numpy()
    steps = np.diff(means)
    return len(means) >= 3 and (bool(np.all(steps > 0)) or bool(np.all(steps < 0)))


def driver_rows(data: AuditData, group: str, runs: pd.Index, drivers: list[str]) -> list[list]:
    """Spearman ρ of every metric (baseline, candidates, target) against each driver over `runs`."""
    rows = []
    for metric in [data.baseline, *data.candidates, data.target]:
        for driver in drivers:
            both = pd.DataFrame({"x": data.values.loc[runs, metric], "d": data.hparams.loc[runs, driver]}).dropna()
            x, d = both["x"].to_numpy(float), both["d"].to_numpy(float)
            if len(both) < MIN_RUNS or np.ptp(x) == 0 or np.ptp(d) == 0:
                rows.append([group, metric, driver, len(both), math.nan, math.nan, False])
                continue
            rho, p, _ = partial_spearman(x, d)
            rows.append([group, metric, driver, len(both), rho, p, _monotone(x, d)])
    return rows


def run_audit(campaign: Campaign, request: AuditRequest) -> AuditResult:
    """The Marginal Baseline Eval of `campaign`: does each candidate metric rank the runs' final
    result beyond what the baseline already does?

    Parameters
    ----------
    campaign : Campaign
        The campaign, from `pab_campaign.analysis.campaign.open_campaign`; its completed runs are
        audited, one row of values per run.
    request : AuditRequest
        Candidates (or ``all_metrics``), baseline, target, further controls, the epoch K, an
        optional hyper-parameter to audit within each value of, driver hyper-parameters, and the
        bootstrap's resamples and seed.

    Returns
    -------
    AuditResult
        ``table``: per group (``all``, then one per ``groupby`` value) the baseline and then each
        candidate, with the columns AUDIT_COLUMNS: ``n``, raw ρ and p, its bootstrap CI, partial ρ
        and p, its CI, and the verdict; ``drivers``: per group, metric and driver the columns
        DRIVER_COLUMNS (ρ, p, whether the group means move strictly one way with the driver);
        ``data``: the values they came from; ``notes``; ``request``.

    Raises
    ------
    CampaignError
        When a name is unknown, fewer than 5 runs have every value, the baseline or target is
        constant, or every candidate is.

    Notes
    -----
    Candidates and baseline are read at epoch K (``at_epoch``, else the baseline's ``@epoch``, else
    each run's last), the target at each run's last epoch. Raw ρ is Spearman's ρ(candidate,
    target); partial ρ is `partial_spearman` given the baseline and the controls (numeric ones
    ranked, categorical ones one-hot); both intervals come from `bootstrap_rho_cis` over the same
    resamples of runs; the verdict is `effect_class` (e.g. washout: ``|raw| ≥ 0.2`` and
    ``|partial| < 0.1``, the candidate only restated the baseline). Tested on campaigns written in
    the on-disk format from constructed values: raw ρ and the drivers' ρ equal
    ``scipy.stats.spearmanr``; a noisy copy of the baseline washes out, an independent predictor
    survives.

    Examples
    --------
    Eight runs: ``probe/proxy`` is a noisy copy of the early val loss, ``probe/signal`` predicts the
    final accuracy on its own.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from pab_campaign import store
    >>> from pab_campaign.analysis.campaign import MetricSpec, open_campaign
    >>> tmp = tempfile.TemporaryDirectory()
    >>> early_loss = [0.9, 0.5, 0.7, 0.3, 0.8, 0.4, 0.6, 0.2]
    >>> proxy = [0.8, 0.5, 0.8, 0.4, 0.7, 0.35, 0.65, 0.1]
    >>> signal = [0.3, 0.1, 0.8, 0.4, 0.6, 0.9, 0.2, 0.7]
    >>> for seed in range(8):
    ...     run = store.run_dir(Path(tmp.name) / "mbe", f"seed{seed}")
    ...     buffer = store.TrajectoryBuffer()
    ...     buffer.add(1, "val", "loss", early_loss[seed])
    ...     buffer.add(1, "probe", "proxy", proxy[seed])
    ...     buffer.add(1, "probe", "signal", signal[seed])
    ...     buffer.add(2, "val", "acc", 1 - early_loss[seed] + signal[seed])
    ...     store.write_trajectory(run, buffer.to_table())
    ...     store.write_run_json(run, store.RunRecord(run.name, store.RunStatus.COMPLETED, epochs_done=2,
    ...                                               hparams={"seed": seed}))
    >>> campaign = open_campaign(Path(tmp.name) / "mbe")
    >>> request = AuditRequest(metrics=[MetricSpec.parse("probe/proxy"), MetricSpec.parse("probe/signal")],
    ...                        baseline=MetricSpec.parse("val/loss@1"), target=MetricSpec.parse("val/acc"),
    ...                        n_boot=200)
    >>> result = run_audit(campaign, request)
    >>> print(result.table[["metric", "n", "raw_rho", "partial_rho", "verdict"]].round(2).to_string(index=False))
            metric  n  raw_rho  partial_rho  verdict
        val/loss@1  8    -0.70          NaN baseline
     probe/proxy@1  8    -0.66        -0.03  washout
    probe/signal@1  8     0.83         0.98 survives
    >>> [path.name for path in write_audit(campaign, result, plots=False)]
    ['audit.csv']
    >>> tmp.cleanup()
    """
    data = gather(campaign, request)
    for driver in request.drivers:
        if not _is_numeric(data.hparams[driver]):
            raise CampaignError(f"driver '{driver}' is not numeric; drivers are numeric hyper-parameters such as "
                                "dataset.train_fraction or dataset.label_noise")
    rows, drivers = [], []
    for group, runs in _groups(data, request.groupby):
        rows += audit_rows(data, group, runs, request.n_boot, request.seed)
        drivers += driver_rows(data, group, runs, request.drivers)
    table = pd.DataFrame(rows, columns=AUDIT_COLUMNS)
    notes = list(data.notes)
    for row in table[table["verdict"] == "constant"].itertuples():
        notes.append(f"{row.metric} is constant across the {row.n} runs of group {row.group}: "
                     "a constant cannot rank runs, so it has no ρ")
    if (table.loc[table["verdict"] != "baseline", "verdict"] == "constant").all():
        raise CampaignError(f"every candidate is constant across the runs ({', '.join(data.candidates)}); "
                            "audit other metrics or another epoch")
    return AuditResult(table, pd.DataFrame(drivers, columns=DRIVER_COLUMNS), data, notes, request)


def write_audit(campaign: Campaign, result: AuditResult, plots: bool = True) -> list[Path]:
    """Write the audit's files under `<campaign>/summary/` and return their paths: `audit.csv` (the
    audit table), `audit_drivers.csv` (when drivers were asked for) and, with `plots`, one PNG per
    candidate under `audit/` (its values against the target and the baseline, per group)."""
    from pab_campaign.analysis.plots import audit_figure, figure_name, save_png

    out = summary_dir(campaign.directory)
    table, data = result.table, result.data
    atomic_write(out / "audit.csv", lambda tmp: table.to_csv(tmp, index=False))
    written = [out / "audit.csv"]
    if result.request.drivers:
        atomic_write(out / "audit_drivers.csv", lambda tmp: result.drivers.to_csv(tmp, index=False))
        written.append(out / "audit_drivers.csv")
    if plots:
        groupby = result.request.groupby
        groups = data.hparams[groupby].rename(groupby) if groupby else None
        for metric in data.candidates:
            figure = audit_figure(data.values, groups, table[table["metric"] == metric], metric, data.target,
                                  data.baseline)
            written.append(save_png(figure, out / "audit" / figure_name(metric)))
    return written
