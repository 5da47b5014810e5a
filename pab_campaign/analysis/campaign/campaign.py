"""Read a campaign for analysis: discover its runs (through the index), pick metrics, describe it.

Bad run directories never stop the analysis: each is set aside with a one-line reason. Reading needs
no write access to the campaign: the index and the outputs go where `workspace` says, and
`Campaign.notes` tells the user when that is not the campaign's own `summary/`.

`open_campaign` also takes one run directory (`<campaign>/runs/<run_id>`: that run alone) or
several campaigns (read side by side, without a merge). Each campaign's index stays in its own
`summary/` (or its cache); such a view writes its outputs in a folder of its own inside the first
campaign's output folder (`run-<run_id>/`, `combined-<hash>/`), never over that campaign's own
files, unless the command is given `--output-folder`.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pab_campaign.analysis.campaign import index
from pab_campaign.analysis.campaign.manifest import ScanRow, Scans
from pab_campaign.analysis.campaign.warm import PropertyRow, duration_text, values_text, varying_names
from pab_campaign.analysis.campaign.where import filter_runs
from pab_campaign.analysis.campaign.workspace import (
    Workspace,
    fallback,
    is_unwritable,
    output_folder,
    unwritable_message,
)
from pab_campaign.errors import CampaignError, did_you_mean
from pab_campaign.metrics import MetricSpec
from pab_campaign.store import RUN_JSON, RunStatus, atomic_write, is_campaign, summary_dir


@dataclass
class Campaign:
    """Runs of one campaign (or of the chosen `campaign_ids` in a merged one): `runs` (one row per
    run: run.json fields, hparams as columns `<name>@hparam` (`hparam_values` gives them by name),
    `<ctx>/<metric>@last|@best`, `skip_reason`), `hparam_names`, the runs set aside with their
    reason, where the index and outputs go (`workspace`), and `notes` for the user (where that is,
    values left out)."""

    directory: Path
    runs: pd.DataFrame
    hparam_names: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    workspace: Workspace | None = field(default=None, repr=False)
    notes: list[str] = field(default_factory=list)
    _trajectories: index.TrajectorySource | None = field(default=None, repr=False)
    # Answers an analysis computes once per command and asks for again (the index does not change
    # under one command), by a key of its choice.
    memo: dict[tuple, Any] = field(default_factory=dict, repr=False, compare=False)
    # Whether `runs` are every run of the campaign directory (no --campaign-id or --where chose
    # some): answers kept beside the index for the whole campaign (`curve_store`) apply to them.
    whole: bool = field(default=False, repr=False)

    def skip(self, run_id: str, reason: str) -> None:
        if (run_id, reason) not in self.skipped:
            self.skipped.append((run_id, reason))

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    @property
    def label(self) -> str:
        """How titles name what is analysed: the campaign directory."""
        return str(self.directory)

    @property
    def summary_dir(self) -> Path:
        """Where this command writes its files: the campaign's `summary/`, or the fallback the
        workspace chose (CampaignError when nothing can be written)."""
        workspace = self.workspace or Workspace(self.directory, summary_dir(self.directory))
        return workspace.output_dir()

    @property
    def index_dir(self) -> Path | None:
        """Where the index files are kept (None: in memory only)."""
        return self.workspace.directory if self.workspace is not None else summary_dir(self.directory)

    def query_trajectories(self, sql: str, params: dict, tables: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
        """Run `sql` (DuckDB, the trajectories as `traj`) over the compacted
        `trajectories.parquet`, brought up to date once per Campaign (one command)."""
        return index.query_trajectories(self.trajectory_source(), sql, params, tables=tables)

    def trajectory_source(self) -> index.TrajectorySource:
        """The compacted trajectories of this campaign's runs, brought up to date on first use."""
        if self._trajectories is None:
            self._trajectories = index.refresh_trajectories(self.directory, self.runs, self.workspace)
            self._move_to(self._trajectories.workspace)
        return self._trajectories

    def write_output(self, name: str, write: Callable[[Path], object], folder: Path | None = None) -> Path:
        """Write the output file `name` all-or-nothing (`write(tmp)` fills a temp file) into `folder`
        (the one the user named) or else `summary_dir`, and return its path. When the place turns
        out full or read-only, the next place of the workspace (the cache) takes it, with a note; a
        folder the user named that cannot take it is a CampaignError naming it."""
        while True:
            target = (folder or self.summary_dir) / name
            try:
                atomic_write(target, write)
                return target
            except OSError as exc:
                if not is_unwritable(exc):
                    raise
                if folder is not None:
                    raise CampaignError(unwritable_message(target, exc, "choose another --output-folder")) from None
                self._move_to(fallback(self.workspace or Workspace(self.directory, summary_dir(self.directory)), exc))

    def _move_to(self, workspace: Workspace | None) -> None:
        if workspace is not None and workspace != self.workspace:
            self.workspace = workspace
            if workspace.note:
                self.note(workspace.note)


@dataclass
class RunView(Campaign):
    """One run of a campaign (`<campaign>/runs/<run_id>` given where a campaign is taken): its
    outputs go to `run-<run_id>/` inside the campaign's output folder."""

    run_id: str = ""
    # Every run of the campaign: the compacted trajectories stay those of the whole campaign.
    campaign_runs: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return str(self.directory / "runs" / self.run_id)

    def trajectory_source(self) -> index.TrajectorySource:
        if self._trajectories is None:
            runs = self.campaign_runs if self.campaign_runs is not None else self.runs
            self._trajectories = index.refresh_trajectories(self.directory, runs, self.workspace)
            self._move_to(self._trajectories.workspace)
        return self._trajectories

    @property
    def summary_dir(self) -> Path:
        return output_folder(super().summary_dir, f"run-{self.run_id}")


@dataclass
class CombinedCampaign(Campaign):
    """Several campaigns read side by side: `runs` holds every part's runs with `run_id` written
    `<prefix>/<run_id>` (the prefix is the campaign directory's name, numbered when two share it);
    trajectories are queried over every part's own compacted file. `directory` is the first part's."""

    parts: list[tuple[str, Campaign]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return " + ".join(part.label for _, part in self.parts)

    @property
    def summary_dir(self) -> Path:
        """`combined-<hash of the campaigns' resolved paths>/` inside the first campaign's output folder."""
        key = "\n".join(str(part.directory.resolve()) for _, part in self.parts)
        return output_folder(self.parts[0][1].summary_dir, f"combined-{hashlib.sha1(key.encode()).hexdigest()[:8]}")

    @property
    def index_dir(self) -> Path | None:
        return None

    def query_trajectories(self, sql: str, params: dict, tables: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
        sources = [(prefix, part.trajectory_source()) for prefix, part in self.parts]
        for _, part in self.parts:
            for text in part.notes:
                self.note(text)
        return index.query_several(sources, sql, params, tables=tables)


def open_campaign(directory: Path | str | Sequence[Path | str], campaign_ids: list[str] | None = None,
                  where: list[str] | None = None, scans: Scans | None = None) -> Campaign:
    """Refresh the campaign index of `directory` and read it; runs whose run.json cannot be read go to
    `skipped`. `campaign_ids` keeps only runs whose run.json `campaign` field is one of them, `where`
    only those meeting every condition (`where.filter_runs`). `scans` holds scans of campaign
    directories this command made moments ago (`warm.read_warm`), taken instead of scanning again.

    `directory` may also be one run directory (`<campaign>/runs/<run_id>`: a `RunView` of that run)
    or a list of campaign or run directories (a `CombinedCampaign` when there are several).

    >>> import tempfile
    >>> from pab_campaign import store
    >>> tmp = Path(tempfile.mkdtemp())
    >>> for name in ("a", "b"):
    ...     run = store.run_dir(tmp / name, "r1")
    ...     buffer = store.TrajectoryBuffer()
    ...     buffer.add(0, "val", "acc", 0.5 if name == "a" else 0.7)
    ...     store.write_trajectory(run, buffer.to_table())
    ...     store.write_run_json(run, store.RunRecord("r1", store.RunStatus.COMPLETED, campaign=name))
    >>> both = open_campaign([tmp / "a", tmp / "b"])
    >>> print(both.runs[["run_id", "campaign", "val/acc@last"]].to_string(index=False))
    run_id campaign  val/acc@last
      a/r1        a           0.5
      b/r1        b           0.7
    >>> one = open_campaign(tmp / "b" / "runs" / "r1")
    >>> one.runs["run_id"].tolist(), one.summary_dir == tmp / "b" / "summary" / "run-r1"
    (['r1'], True)
    """
    if not isinstance(directory, (str, Path)):
        given = [Path(d) for d in directory]
        if not given:
            raise CampaignError("no campaign directory given; pass one or more, e.g. outputs/demo")
        if len(given) == 1:
            return open_campaign(given[0], campaign_ids, where, scans)
        return _open_several(given, campaign_ids, where)
    directory = Path(directory)
    if (directory / RUN_JSON).exists() or (directory.parent.name == "runs" and is_campaign(directory.parent.parent)):
        return _open_run(directory, campaign_ids, where)
    return _open_one(directory, campaign_ids, where, (scans or {}).pop(directory, None))


def _open_run(directory: Path, campaign_ids: list[str] | None, where: list[str] | None = None) -> RunView:
    """The run `directory` of its campaign (the directory above `runs/`)."""
    campaign_dir = directory.parent.parent
    if directory.parent.name != "runs" or not is_campaign(campaign_dir):
        raise CampaignError(f"{directory} is a run directory outside a campaign (it is not in a runs/ directory); "
                            "pass its campaign, or a run directory <campaign>/runs/<run_id>")
    whole = _open_one(campaign_dir, campaign_ids, where)
    run_id = directory.name
    runs = whole.runs[whole.runs["run_id"] == run_id].reset_index(drop=True)
    skipped = [(rid, reason) for rid, reason in whole.skipped if rid == run_id]
    if runs.empty and not skipped:
        raise CampaignError(f"no run {run_id} in {campaign_dir}" + (f" of campaign {', '.join(campaign_ids)}"
                                                                   if campaign_ids else ""))
    names = [n for n in whole.hparam_names if runs[index.hparam_key(n)].notna().any()]
    return RunView(campaign_dir, runs, names, skipped, whole.workspace, list(whole.notes), run_id=run_id,
                   campaign_runs=whole.runs)


def _prefixes(directories: list[Path]) -> list[str]:
    """Each directory's name, numbered (`name~2`) where an earlier one has the same name."""
    seen: dict[str, int] = {}
    prefixes = []
    for directory in directories:
        name = directory.resolve().name or "campaign"
        seen[name] = seen.get(name, 0) + 1
        prefixes.append(name if seen[name] == 1 else f"{name}~{seen[name]}")
    return prefixes


def _open_several(directories: list[Path], campaign_ids: list[str] | None,
                  where: list[str] | None = None) -> CombinedCampaign:
    """Campaigns (or run directories) side by side; `campaign_ids` must match runs in at least one."""
    resolved = [d.resolve() for d in directories]
    twice = next((d for i, d in enumerate(directories) if resolved[i] in resolved[:i]), None)
    if twice is not None:
        raise CampaignError(f"{twice} is given twice; name each campaign once")
    for i, directory in enumerate(directories):  # a run of a campaign given too would count twice
        within = next((directories[j] for j, other in enumerate(resolved) if j != i and resolved[i] != other
                       and resolved[i].is_relative_to(other)), None)
        if within is not None:
            raise CampaignError(f"{directory} is inside {within}, also given, so its runs would count twice; name "
                                "the campaign or its runs, not both")
    parts: list[tuple[str, Campaign]] = []
    empty: list[str] = []
    for prefix, directory in zip(_prefixes(directories), directories):
        try:
            parts.append((prefix, open_campaign(directory, campaign_ids, where)))
        except CampaignError as exc:
            if not campaign_ids or "no run of campaign" not in str(exc):
                raise
            empty.append(str(directory))
    if not parts:
        raise CampaignError(f"no run of campaign {', '.join(campaign_ids or [])} in {', '.join(empty)}")
    frames = [part.runs.assign(run_id=prefix + "/" + part.runs["run_id"].astype(str)) for prefix, part in parts]
    runs = pd.concat(frames, ignore_index=True)
    hparams = list(dict.fromkeys(name for _, part in parts for name in part.hparam_names))
    combined = CombinedCampaign(parts[0][1].directory, runs, hparams, parts=parts)
    for prefix, part in parts:
        for run_id, reason in part.skipped:
            combined.skip(f"{prefix}/{run_id}", reason)
        for text in part.notes:
            combined.note(text)
    return combined


def _open_one(directory: Path, campaign_ids: list[str] | None, where: list[str] | None = None,
              scanned: list[ScanRow] | None = None) -> Campaign:
    """One campaign directory (`scanned`: its `manifest.scan_rows`, made moments ago)."""
    if not directory.exists():
        raise CampaignError(f"campaign directory {directory} does not exist; pass the directory a sweep wrote, "
                            "e.g. outputs/demo")
    if not is_campaign(directory):
        raise CampaignError(f"{directory} is not a campaign (no runs/ directory); pass the directory a sweep wrote, "
                            "e.g. outputs/demo")
    built = index.refresh_runs(directory, scanned=scanned)
    frame = built.frame
    unreadable = frame["status"].isna()
    skipped = list(zip(frame.loc[unreadable, "run_id"], frame.loc[unreadable, "skip_reason"]))
    runs = frame[~unreadable]
    if campaign_ids:
        present = sorted(runs["campaign"].dropna().unique())
        runs = runs[runs["campaign"].isin(campaign_ids)]
        if runs.empty:
            raise CampaignError(f"no run of campaign {', '.join(campaign_ids)} in {directory}; "
                                f"its runs belong to: {', '.join(present) or 'none'}")
    runs = filter_runs(runs, where or [])
    names = [n for n in built.hparam_names if runs[index.hparam_key(n)].notna().any()]
    campaign = Campaign(directory, runs.reset_index(drop=True), names, skipped, whole=not campaign_ids and not where)
    campaign._move_to(built.workspace)
    return campaign


def completed_runs(campaign: Campaign) -> pd.DataFrame:
    """The completed runs; a campaign without any is an error."""
    done = campaign.runs[campaign.runs["status"] == RunStatus.COMPLETED]
    for run_id, reason in zip(done["run_id"], done["skip_reason"]):
        if reason is not None:
            campaign.skip(run_id, reason)
    done = done[done["skip_reason"].isna()]
    if done.empty:
        counts = campaign.runs["status"].value_counts().to_dict()
        raise CampaignError(
            f"{campaign.directory} has no usable completed run (statuses: {counts or 'no runs'}, "
            f"{len(campaign.skipped)} skipped); launch or finish a sweep into it first"
        )
    return done


def load_trajectories(campaign: Campaign, run_ids: list[str], epochs: Sequence[int] | None = None) -> pd.DataFrame:
    """Long table (run_id, epoch, context, metric, key, value) of the given usable runs, read from the
    compacted `summary/trajectories.parquet` (brought up to date first). With `epochs`, only their
    rows and each metric's last row in each run: what values at those epochs or at a run's last
    epoch need (`metric_series`), a few rows per run instead of every epoch's."""
    rows = ("SELECT run_id, epoch, context, metric, key, value FROM traj "
            "WHERE run_id IN (SELECT unnest($ids::VARCHAR[]))")
    params: dict[str, Any] = {"ids": list(run_ids)}
    if epochs is not None:
        last = (f"SELECT run_id, max(epoch) AS epoch, context, metric, key, arg_max(value, epoch) AS value "
                f"FROM ({rows}) GROUP BY run_id, context, metric, key")
        rows = (f"{rows} AND epoch IN (SELECT unnest($epochs::INTEGER[])) UNION ALL "
                f"SELECT * FROM ({last}) WHERE epoch NOT IN (SELECT unnest($epochs::INTEGER[]))")
        params["epochs"] = sorted({int(epoch) for epoch in epochs})
    frame = campaign.query_trajectories(f"SELECT * FROM ({rows}) ORDER BY run_id, epoch", params)
    for column in ("run_id", "context", "metric", "key"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    twice = frame.assign(key=frame["key"].fillna("")).duplicated(["run_id", "epoch", "context", "metric", "key"])
    for run_id in sorted(set(frame.loc[twice, "run_id"])):
        campaign.skip(run_id, "the trajectory has duplicate rows (an epoch, context, metric and key recorded twice); "
                              "rewrite it with one row each")
    return frame[~frame["run_id"].isin(set(frame.loc[twice, "run_id"]))].reset_index(drop=True)


def metric_series(trajectories: pd.DataFrame, spec: MetricSpec) -> pd.Series:
    """One value per run_id of `spec`: at `spec.epoch` when it names one, else at the run's last
    epoch with this metric. (A run's epoch of minimal val/loss is the index column `best_epoch`.)"""
    rows = trajectories[(trajectories["context"] == spec.context) & (trajectories["metric"] == spec.metric)]
    rows = rows[rows["key"].isna()] if spec.key is None else rows[rows["key"] == spec.key]
    if rows.empty:
        tracked = tracked_metrics(trajectories)
        at = f"@{spec.epoch}" if spec.epoch is not None else ""
        hint = did_you_mean(spec.label.removesuffix(at), tracked).replace("?)", f"{at}?)")
        raise CampaignError(f"metric {spec.label} was never tracked in this campaign{hint}; "
                            f"tracked: {', '.join(tracked[:20])}")
    if spec.epoch is None:
        rows = rows.loc[rows.groupby("run_id")["epoch"].idxmax()]
    else:
        rows = rows[rows["epoch"] == spec.epoch]
        if rows.empty:
            raise CampaignError(f"metric {spec.label} has no value at epoch {spec.epoch}; "
                                "choose an epoch the runs reached")
    return rows.set_index("run_id")["value"].rename(spec.label)


def tracked_metrics(trajectories: pd.DataFrame) -> list[str]:
    """Names `context/metric` of every scalar (null-key) metric in the trajectories."""
    scalar = trajectories[trajectories["key"].isna()][["context", "metric"]].drop_duplicates()
    return sorted(f"{c}/{m}" for c, m in zip(scalar["context"], scalar["metric"]))


def hparam_values(runs: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """The hyper-parameters `names` of `runs` (rows of the index), one column each under its plain
    name, on the index of `runs`, with their values as run.json holds them (`as_written`)."""
    return pd.DataFrame({name: as_written(runs[index.hparam_key(name)]) for name in names}, index=runs.index)


def as_written(column: pd.Series) -> pd.Series:
    """A hyper-parameter's column with run.json's whole numbers back: the index stores a number
    column that some runs lack as float64 with NaN, so seeds 0, 1 read 0.0, 1.0 in every label, CSV
    and JSON. Where some run lacks it and every value is whole (within ±2**53), the column comes back
    as pandas' nullable Int64 (missing: `pd.NA`, grouped last); any other column as it is."""
    if column.dtype.kind != "f" or not column.isna().any():
        return column
    present = column.dropna()
    if not ((present % 1 == 0) & (present.abs() <= 2**53)).all():
        return column
    return column.astype("Int64")


def varying_hparams(runs: pd.DataFrame, names: list[str]) -> list[str]:
    """Hyper-parameters other than `seed` with more than one value across `runs` (rows of the index),
    minus any that only restate the ones before them (e.g. `model.hidden` once `model.name` splits
    the runs): `warm.varying_names`, the rule the warm commands apply, over these rows."""
    values = hparam_values(runs, names)
    return varying_names({name: values[name].astype(object).where(values[name].notna(), None).tolist()
                          for name in names})


def is_numeric(column: pd.Series) -> bool:
    """Whether a hyper-parameter's values (NaN aside) are all numbers (booleans are not)."""
    present = column.dropna()
    return len(present) > 0 and all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                                    for v in present)


def indexed_metrics(runs: pd.DataFrame) -> list[str]:
    """`context/metric` names of the scalar metrics in the index columns of `runs` that some run has
    a value of, at its last or at its best epoch (a metric whose final value is NaN in every run is
    still tracked)."""
    names = [c[: -len("@last")] for c in runs.columns if c.endswith("@last")]
    return sorted(n for n in names if runs[f"{n}@last"].notna().any()
                  or (f"{n}@best" in runs and runs[f"{n}@best"].notna().any()))


def properties(campaign: Campaign, listed: int | None = None) -> list[PropertyRow]:
    """(property, number of unique values, values) rows, as tcbench's `properties` shows them: the
    campaigns, runs by status, run duration mean ± std (s), metrics, contexts, then every
    hyper-parameter with its sorted unique values, shortened past `listed` (`warm.values_text`), and
    how many runs lack it ('-' where a count means nothing)."""
    runs = campaign.runs
    statuses = ", ".join(f"{s} {n}" for s, n in runs["status"].value_counts().sort_index().items())
    names = indexed_metrics(runs)
    campaigns = sorted(runs["campaign"].dropna().unique())
    metrics = sorted({n.split("/", 1)[1] for n in names})
    contexts = sorted({n.split("/", 1)[0] for n in names})
    rows = [
        PropertyRow("campaigns", str(len(campaigns)), ", ".join(campaigns) or "-"),
        PropertyRow("runs", "-", f"{len(runs)} ({statuses or 'none'}; {len(campaign.skipped)} unreadable)"),
        PropertyRow("run duration (s, mean ± std)", "-", duration_text(runs["duration_s"].astype(float).tolist())),
        PropertyRow("metrics", str(len(metrics)), ", ".join(metrics) or "-"),
        PropertyRow("contexts", str(len(contexts)), ", ".join(contexts) or "-"),
    ]
    for name in campaign.hparam_names:
        column = runs[index.hparam_key(name)]
        values, lacking = column.dropna().unique().tolist(), int(column.isna().sum())
        rows.append(PropertyRow(name, str(len(values)), values_text(values, listed, whole=lacking > 0), lacking,
                                len(runs)))
    return rows


def drop_infinite(values: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """`values` (index run_id, numeric columns) with ±inf set to NaN, so that statistics leave them
    out, and one note per column naming the runs that had one."""
    values = values.apply(pd.to_numeric, errors="coerce").astype(float)
    infinite = np.isinf(values.to_numpy())
    for position in np.flatnonzero(infinite.any(axis=0)):
        runs = values.index[infinite[:, position]].astype(str).tolist()
        notes.append(f"{values.columns[position]} is ±inf in {len(runs)} run(s) ({', '.join(runs[:10])}"
                     f"{', ...' if len(runs) > 10 else ''}): left out of its statistics")
    return values.mask(infinite)
