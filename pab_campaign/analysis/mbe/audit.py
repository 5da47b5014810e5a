"""The Marginal Baseline Eval (MBE) of a campaign: does a candidate metric predict the final result
beyond a trivial baseline? For every candidate (and every group), the raw Spearman ρ(candidate,
target) and the partial ρ given the baseline (and any further controls), with bootstrap intervals;
the p-values adjusted over the family of candidates × groups; mbe-eval's verdict (`mbe.decide`:
stage 1 PASS / FAIL, stage 4 PASS / loss proxy) and the gated effect class; for the acid test and
the architecture check, ρ of every metric against each driver hyper-parameter, per group.

Candidates and baseline are taken at epoch K (`--at-epoch`, else the baseline's `@epoch`, else the
last epoch), the target at each run's last epoch. One row of values per completed run.
"""
from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from pab_campaign.analysis.campaign.campaign import (
    Campaign,
    CampaignError,
    completed_runs,
    drop_infinite,
    hparam_values,
    is_numeric,
    load_trajectories,
    metric_series,
    tracked_metrics,
)
from pab_campaign.analysis.campaign.index_layout import as_hparam_name
from pab_campaign.analysis.campaign.naming import ids_suffix
from pab_campaign.analysis.mbe.rule import ALPHA, MIN_RUNS, Association, check_alpha, check_correction, decide, measure
from pab_campaign.analysis.stats.correlation import partial_spearman
from pab_campaign.analysis.stats.multicomp import adjust_pvalues
from pab_campaign.errors import did_you_mean
from pab_campaign.formatting import value_text
from pab_campaign.metrics import MetricSpec
from pab_campaign.store import atomic_write, replace_outputs

AUDIT_COLUMNS = ["group", "metric", "n", "raw_rho", "raw_p", "raw_p_adj", "raw_ci_low", "raw_ci_high", "stage1",
                 "partial_rho", "partial_p", "partial_p_adj", "partial_ci_low", "partial_ci_high", "verdict",
                 "is_loss_proxy", "effect_class", "diagnosis", "alpha", "correction", "family_size",
                 "partial_family_size"]
DRIVER_COLUMNS = ["group", "metric", "driver", "n", "rho", "p", "p_adj", "monotone"]
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
    alpha: float = ALPHA
    correction: str = "holm"


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
    notes for the user, the request that asked for them, and the size of each family of tests whose
    p-values were adjusted together (`family`: candidate × group tests per stage; `driver_family`)."""

    table: pd.DataFrame
    drivers: pd.DataFrame
    data: AuditData
    notes: list[str]
    request: AuditRequest
    family: int = 0
    driver_family: int = 0


def _at(spec: MetricSpec, epoch: int | None) -> MetricSpec:
    """`spec` at `epoch` unless it names its own epoch."""
    return spec if spec.epoch is not None or epoch is None else MetricSpec(spec.context, spec.metric, spec.key, epoch)


def _check_hparam(campaign: Campaign, name: str, role: str) -> None:
    if name not in campaign.hparam_names:
        raise CampaignError(f"{role} '{name}' is not a hyper-parameter of this campaign"
                            f"{did_you_mean(name, campaign.hparam_names)}; choose from: "
                            f"{', '.join(campaign.hparam_names)}")


def _named_as_hparams(campaign: Campaign, request: AuditRequest) -> AuditRequest:
    """`request` with tcbench's `hparams.<name>` of its groupby, drivers and hyper-parameter controls
    as the hyper-parameters' own names."""
    def named(name: str) -> str:
        return as_hparam_name(name, campaign.hparam_names)

    return replace(
        request, groupby=named(request.groupby) if request.groupby else request.groupby,
        drivers=[named(d) for d in request.drivers],
        controls=[named(c) if "/" not in c else c for c in request.controls])


def gather(campaign: Campaign, request: AuditRequest) -> AuditData:
    """Collect, per completed run, every value the audit needs (see the module docstring)."""
    epoch = request.at_epoch if request.at_epoch is not None else request.baseline.epoch
    for name in ([request.groupby] if request.groupby else []) + request.drivers:
        _check_hparam(campaign, name, "--groupby" if name == request.groupby else "driver")
    done = completed_runs(campaign)
    baseline, target = _at(request.baseline, epoch), request.target
    # every value is at `epoch`, at an epoch a name gives, or at a run's last epoch: those rows alone
    given = [request.baseline, request.target, *request.metrics,
             *(MetricSpec.parse(c) for c in request.controls if "/" in c and c not in campaign.hparam_names)]
    epochs = [e for e in [epoch, *(spec.epoch for spec in given)] if e is not None]
    trajectories = load_trajectories(campaign, done["run_id"].tolist(), epochs)
    columns = {baseline.label: metric_series(trajectories, baseline),
               target.label: metric_series(trajectories, target)}
    notes: list[str] = []
    if epoch is not None and request.baseline.epoch not in (None, epoch):
        notes.append(f"the baseline {baseline.label} keeps the epoch it names; the candidates are at epoch {epoch} "
                     f"(--at-epoch); name the baseline without @{request.baseline.epoch} to move it too")
    specs = list(request.metrics)
    if request.all_metrics:
        named = {(s.context, s.metric) for s in [*specs, baseline, target]}
        unnamed = []
        for name in tracked_metrics(trajectories):
            if tuple(name.split("/")) in named:
                continue
            try:
                specs.append(MetricSpec.parse(name))
            except CampaignError:  # a name some run recorded that no option could name either
                unnamed.append(name)
        if unnamed:
            notes.append(f"{len(unnamed)} recorded metric(s) left out: not a context/metric name the audit can take "
                         f"({', '.join(repr(name) for name in unnamed[:3])}{', …' if len(unnamed) > 3 else ''})")
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
    numeric: list[str] = []
    categorical: list[str] = []
    hparams = hparam_values(done.set_index("run_id"), campaign.hparam_names)
    for control in request.controls:
        if control in campaign.hparam_names:
            (numeric if is_numeric(hparams[control]) else categorical).append(control)
            if control in numeric:
                columns[control] = hparams[control].astype(float)
            continue
        if "/" not in control:
            _check_hparam(campaign, control, "control")
        spec = _at(MetricSpec.parse(control), epoch)
        columns[spec.label] = metric_series(trajectories, spec)
        numeric.append(spec.label)
    values = drop_infinite(pd.DataFrame(columns), notes)
    for name in categorical:  # a run without it is in a 'missing' category, as in --groupby, not left out
        values[name] = _group_labels(hparams, name).reindex(values.index)
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
    """(name, run ids): every run as `all`, then one group per value of `groupby` (none when it has a
    single value: that group would be all runs again, and count twice in the family of tests)."""
    groups = [(POOLED, data.values.index)]
    labels = _group_labels(data.hparams, groupby) if groupby else None
    if labels is not None and labels.nunique() > 1:
        groups += [(f"{groupby}={value}", labels.index[labels == value]) for value in sorted(labels.unique())]
    return groups


def _group_labels(hparams: pd.DataFrame, groupby: str) -> pd.Series:
    """Each run's value of `groupby` as text, `missing` for a run without the hyper-parameter."""
    return hparams[groupby].map(value_text)


def _row(group: str, metric: str, n: int, status: str, association: Association | None = None) -> dict:
    """One audit row before the decision: the measured numbers and `status` (baseline, constant,
    insufficient-data, or tested)."""
    a = association
    nan2 = (math.nan, math.nan)
    raw_ci, partial_ci = (a.absolute_ci, a.partial_ci) if a else (nan2, nan2)
    return {"group": group, "metric": metric, "n": n, "status": status, "association": a,
            "raw_rho": a.absolute_r if a else math.nan, "raw_p": a.absolute_p if a else math.nan,
            "raw_ci_low": raw_ci[0], "raw_ci_high": raw_ci[1],
            "partial_rho": a.partial_r if a else math.nan, "partial_p": a.partial_p if a else math.nan,
            "partial_ci_low": partial_ci[0], "partial_ci_high": partial_ci[1]}


def audit_rows(data: AuditData, group: str, runs: pd.Index, n_boot: int, seed: int) -> list[dict]:
    """The audit's measurements over the runs `runs`: the baseline first, then every candidate (one
    dict each: group, metric, n, status (baseline, tested, constant, constant target or
    insufficient-data), the `mbe.Association` and its numbers)."""
    rows = []
    controls = [data.baseline, *data.numeric_controls]
    for metric in [data.baseline, *data.candidates]:
        own_controls = [c for c in controls if c != metric]
        needed = dict.fromkeys([metric, data.target, *own_controls, *data.categorical_controls])
        usable = data.values.loc[runs, list(needed)].dropna()
        n = len(usable)
        x, y = usable[metric].to_numpy(float), usable[data.target].to_numpy(float)
        if n < MIN_RUNS or np.ptp(x) == 0 or np.ptp(y) == 0:
            status = "insufficient-data" if n < MIN_RUNS else "constant" if np.ptp(x) == 0 else "constant target"
            rows.append(_row(group, metric, n, status))
            continue
        numeric = [usable[c].to_numpy(float) for c in own_controls]
        categorical = [usable[c].to_numpy() for c in data.categorical_controls]
        association = measure(x, y, numeric, categorical, n_boot, seed)
        if not numeric and not categorical:  # the baseline with nothing else to control for
            association = Association(n, association.absolute_r, association.absolute_p, association.absolute_ci,
                                      math.nan, math.nan, (math.nan, math.nan), association.dof)
        rows.append(_row(group, metric, n, "baseline" if metric == data.baseline else "tested", association))
    return rows


_FIXED = {"baseline": ("baseline", "the baseline: every candidate is controlled for it"),
          "constant": ("constant", "constant across the runs of this group: a constant cannot rank runs"),
          "insufficient-data": ("insufficient-data", "fewer than 5 runs have every value in this group"),
          "constant target": ("insufficient-data", "the target is constant across the runs of this group: "
                                                   "nothing to rank")}


def decide_rows(rows: list[dict], data: AuditData, alpha: float, correction: str) -> tuple[pd.DataFrame, int]:
    """The audit table from `audit_rows`' measurements of every group: raw and partial p adjusted
    (`correction`) over the family of tested candidate × group rows, one family per stage, then
    `mbe.decide` on each row; returns the table (AUDIT_COLUMNS) and the family size."""
    tested = [i for i, row in enumerate(rows) if row["status"] == "tested"]
    adjusted = {kind: adjust_pvalues([rows[i][f"{kind}_p"] for i in tested], correction) for kind in ("raw", "partial")}
    controls = ", ".join([data.baseline, *data.numeric_controls, *data.categorical_controls])
    for row in rows:
        row.update(raw_p_adj=math.nan, partial_p_adj=math.nan, stage1="", is_loss_proxy=None)
        if row["status"] in _FIXED:
            row["verdict"] = row["effect_class"] = _FIXED[row["status"]][0]
            row["diagnosis"] = f"{row['metric']}: {_FIXED[row['status']][1]}"
    for position, i in enumerate(tested):
        row = rows[i]
        row["raw_p_adj"], row["partial_p_adj"] = adjusted["raw"][position], adjusted["partial"][position]
        verdict = decide(row["association"], row["raw_p_adj"], row["partial_p_adj"], alpha, row["metric"],
                         data.target, controls)
        row.update(stage1=verdict.stage1, verdict=verdict.stage4, is_loss_proxy=verdict.is_loss_proxy,
                   effect_class=verdict.effect_class, diagnosis=verdict.diagnosis)
    # A candidate the controls rank entirely has no partial p, so it is not in the stage-4 family.
    partial_family = int(np.isfinite([rows[i]["partial_p"] for i in tested]).sum())
    table = pd.DataFrame(rows).assign(alpha=alpha, correction=correction, family_size=len(tested),
                                      partial_family_size=partial_family)
    return table.reindex(columns=AUDIT_COLUMNS), len(tested)


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
                rows.append([group, metric, driver, len(both), math.nan, math.nan, math.nan, False])
                continue
            rho, p, _ = partial_spearman(x, d)
            rows.append([group, metric, driver, len(both), rho, p, math.nan, _monotone(x, d)])
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
        optional hyper-parameter to audit within each value of, driver hyper-parameters, the
        bootstrap's resamples and seed, the significance level α and the multiple-comparison
        correction (``holm``, ``fdr_bh`` or ``none``).

    Returns
    -------
    AuditResult
        ``table``: per group (``all``, then one per ``groupby`` value) the baseline and then each
        candidate, with the columns AUDIT_COLUMNS: ``n``; raw ρ, its p, adjusted p and bootstrap
        CI, ``stage1`` (PASS / FAIL); partial ρ, its p, adjusted p and CI; ``verdict`` (stage 4:
        PASS / loss proxy, or baseline / constant / insufficient-data), ``is_loss_proxy``,
        ``effect_class``, ``diagnosis`` (one line), then α, the correction and the family size;
        ``drivers``: per group, metric and driver the columns DRIVER_COLUMNS (ρ, p, adjusted p,
        whether the group means move strictly one way with the driver); ``data``: the values they
        came from; ``notes``; ``request``; ``family`` and ``driver_family``: the number of tests
        adjusted together.

    Raises
    ------
    CampaignError
        When a name is unknown, fewer than 5 runs have every value, the baseline or target is
        constant, or every candidate is.
    ConfigError
        When α is not in (0, 1) or the correction is unknown.

    Notes
    -----
    Candidates and baseline are read at epoch K (``at_epoch``, else the baseline's ``@epoch``, else
    each run's last), the target at each run's last epoch. Raw ρ is Spearman's ρ(candidate,
    target); partial ρ is `partial_spearman` given the baseline and the controls (numeric ones
    ranked, categorical ones one-hot); both intervals come from `bootstrap_rho_cis` over the same
    resamples of runs. Every tested candidate × group row is one test per stage: the raw p-values
    are adjusted together (`stats.adjust_pvalues`), and so are the partial ones; the driver table's
    p-values form a family of their own. The verdict is mbe-eval's rule on the adjusted p (stage 1
    PASS when p < α; a loss proxy when the partial p > α) and the effect class is
    `stats.effect_class` gated on it (see `mbe.decide`). Tested on campaigns written in the on-disk
    format from constructed values: raw ρ and the drivers' ρ equal ``scipy.stats.spearmanr``, the
    adjusted p equal statsmodels' ``multipletests``; a noisy copy of the baseline is a loss proxy,
    an independent predictor passes and survives.

    Examples
    --------
    Eight runs: ``probe/proxy`` is a noisy copy of the early val loss, ``probe/signal`` predicts the
    final accuracy on its own.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from pab_campaign import store
    >>> from pab_campaign.analysis.campaign.campaign import open_campaign
    >>> from pab_campaign.metrics import MetricSpec
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
    >>> columns = ["metric", "raw_rho", "partial_rho", "partial_p_adj", "verdict", "effect_class"]
    >>> print(result.table[columns].round(3).to_string(index=False))
            metric  raw_rho  partial_rho  partial_p_adj    verdict effect_class
        val/loss@1   -0.699          NaN            NaN   baseline     baseline
     probe/proxy@1   -0.661       -0.031          0.948 loss proxy inconclusive
    probe/signal@1    0.831        0.976          0.000       PASS     survives
    >>> [path.name for path in write_audit(campaign, result, plots=False)]
    ['audit.csv', 'audit_runs.csv']
    >>> tmp.cleanup()
    """
    alpha, correction = check_alpha(request.alpha), check_correction(request.correction)
    request = _named_as_hparams(campaign, request)
    data = gather(campaign, request)
    for driver in request.drivers:
        if not is_numeric(data.hparams[driver]):
            raise CampaignError(f"driver '{driver}' is not numeric; drivers are numeric hyper-parameters such as "
                                "dataset.train_fraction or dataset.label_noise")
    rows, drivers = [], []
    for group, runs in _groups(data, request.groupby):
        rows += audit_rows(data, group, runs, request.n_boot, request.seed)
        drivers += driver_rows(data, group, runs, request.drivers)
    table, family = decide_rows(rows, data, alpha, correction)
    driver_table = pd.DataFrame(drivers, columns=DRIVER_COLUMNS)
    driver_table["p_adj"] = adjust_pvalues(driver_table["p"].to_numpy(float), correction)
    notes = list(data.notes)
    if request.groupby and _group_labels(data.hparams, request.groupby).nunique() < 2:
        notes.append(f"--groupby {request.groupby} has one value in these runs "
                     f"({data.hparams[request.groupby].iloc[0]}): its group is all runs, audited once")
    for row in table[table["verdict"] == "constant"].itertuples():
        notes.append(f"{row.metric} is constant across the {row.n} runs of group {row.group}: "
                     "a constant cannot rank runs, so it has no ρ")
    if (table.loc[table["verdict"] != "baseline", "verdict"] == "constant").all():
        raise CampaignError(f"every candidate is constant across the runs ({', '.join(data.candidates)}); "
                            "audit other metrics or another epoch")
    return AuditResult(table, driver_table, data, notes, request, family, int(driver_table["p"].notna().sum()))


def write_audit(campaign: Campaign, result: AuditResult, plots: bool = True, campaign_ids: list[str] | None = None,
                output_folder: Path | None = None, dpi: int = 150) -> list[Path]:
    """Write the audit's files and return their paths.

    Into `output_folder` (default `<campaign>/summary/`): `audit[_<ids>].csv` (the audit table),
    `audit_runs[_<ids>].csv` (one row per run: run_id, hyper-parameters and the audited values),
    `audit_drivers[_<ids>].csv` (when drivers were asked for) and, with `plots`, one PNG per
    candidate at `dpi` in the folder `audit[_<ids>]/`, which is replaced as a whole (figures of an
    earlier audit do not linger; a driver table of one is removed when this audit has none).
    `<ids>` are the `campaign_ids` the runs were filtered by.
    """
    from pab_campaign.analysis.campaign.naming import figure_name
    from pab_campaign.analysis.mbe.figures import audit_figure
    from pab_campaign.analysis.plots.style import save_png

    out = Path(output_folder) if output_folder is not None else campaign.summary_dir
    suffix = ids_suffix(campaign_ids)
    table, data = result.table, result.data
    written = [out / f"audit{suffix}.csv", out / f"audit_runs{suffix}.csv"]
    atomic_write(written[0], lambda tmp: table.to_csv(tmp, index=False))
    runs = data.hparams.join(data.values[[c for c in data.values.columns if c not in data.hparams.columns]])
    atomic_write(written[1], lambda tmp: runs.rename_axis("run_id").reset_index().to_csv(tmp, index=False))
    drivers = out / f"audit_drivers{suffix}.csv"
    if result.request.drivers:
        atomic_write(drivers, lambda tmp: result.drivers.to_csv(tmp, index=False))
        written.append(drivers)
    else:  # the driver table of an earlier audit would contradict this one
        drivers.unlink(missing_ok=True)
    if not plots:  # the figures of an earlier audit would stand beside this one's table
        shutil.rmtree(out / f"audit{suffix}", ignore_errors=True)
        return written
    groupby = result.request.groupby
    groups = _group_labels(data.hparams, groupby).rename(groupby) if groupby else None  # the table's groups
    title = campaign.directory.name + (f" ({', '.join(campaign_ids)})" if campaign_ids else "")
    controls = ", ".join([data.baseline, *data.numeric_controls, *data.categorical_controls])

    def figures(folder: Path) -> list[Path]:
        return [save_png(audit_figure(data.values, groups, table[table["metric"] == metric], metric, data.target,
                                      controls, title, result.request.alpha, data.hparams),
                         folder / figure_name(metric), dpi)
                for metric in data.candidates]

    return written + replace_outputs(out / f"audit{suffix}", figures)
