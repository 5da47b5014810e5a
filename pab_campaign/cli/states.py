"""`states`: latent training phases — a Gaussian HMM over every run's per-epoch statistics."""
from __future__ import annotations

import argparse
import math
import os
from typing import TYPE_CHECKING

from pab_campaign.cli.common import (
    Commands,
    SplitList,
    add_campaign_filter,
    add_json_flag,
    add_output_options,
    print_json,
    print_skipped,
    whole_number,
)
from pab_campaign.render import Column, console, fmt, print_line, print_table

if TYPE_CHECKING:
    from pab_campaign.analysis.phases.report import StatesReport


def _print_selection(report: StatesReport, digits: int) -> None:
    fit = report.fit
    headers = ["K", "params", "held-out LL ± SE", "restarts: mean ± sd", "best", "AIC", "BIC", ""]
    rows = []
    for row in fit.selection.to_dict("records"):
        if not row["restarts_ok"]:
            rows.append([str(row["k"]), str(row["n_params"]), "every fit failed", "", "", "", "", ""])
            continue
        rows.append([str(row["k"]), str(row["n_params"]),
                     f"{row['heldout_ll']:.1f} ± {fmt(row['heldout_ll_se'], digits)}",
                     f"{row['heldout_ll_mean']:.1f} ± {fmt(row['heldout_ll_std'], digits)}"
                     if row["heldout_ll_std"] == row["heldout_ll_std"] else f"{row['heldout_ll_mean']:.1f} (one fit)",
                     f"{row['heldout_ll_best']:.1f}", f"{row['aic']:.1f}", f"{row['bic']:.1f}",
                     "← chosen" if row["chosen"] else ""])
    print_table(f"HMM selection — {len(fit.fit_runs)} fit runs, {len(fit.held_out_runs)} held-out runs, "
                f"{len(fit.sequences.features)} features (log-likelihoods in nats)",
                [Column(h, justify="right") for h in headers], rows)


def _print_phases(report: StatesReport) -> None:
    rows = [[str(r["state"]), f"{r['occupancy']:.0%}", str(r["runs"]),
             "-" if math.isnan(r["epoch_from"]) else f"{r['epoch_from']:g}–{r['epoch_to']:g}", r["description"]]
            for r in report.profiles.to_dict("records")]
    print_table("Phases — share of epochs, runs visiting, typical epochs (median first–last), largest within-run "
                "z-score means", ["phase", Column("epochs", justify="right"), Column("runs", justify="right"),
                                  "typical epochs", "description"], rows)
    k = report.fit.chosen_k
    matrix = report.transmat.to_numpy()
    print_table("P(from → to)", ["from", *(Column(str(j), justify="right") for j in range(k))],
                [[str(i), *(f"{matrix[i, j]:.3f}" for j in range(k))] for i in range(k)])
    if report.transitions.empty:
        print_line("no run changes phase")
        return
    rows = []
    for (a, b), group in report.transitions.groupby(["from_state", "to_state"], sort=True):
        first = group.iloc[0]
        top = ", ".join(f"{r.feature} {r.smd:+.2f}" for r in group.head(3).itertuples())
        rows.append([f"{a} → {b}", str(first["occurrences"]), str(first["runs"]), f"{first['probability']:.3f}", top])
    print_table("Transitions seen — top features by standardised mean difference, after − before (within-run z)",
                ["transition", Column("times", justify="right"), Column("runs", justify="right"),
                 Column("P", justify="right"), "features"], rows)


def _print_detours(report: StatesReport, digits: int) -> None:
    detours = report.detours
    if detours is not None and not ((detours["runs_visiting"] > 0) & (detours["runs_not"] > 0)).any():
        print_line("no detour: every phase is visited by every run or by none")
    elif detours is not None:
        shown = detours[(detours["runs_visiting"] > 0) & (detours["runs_not"] > 0)]
        columns = ("conv_visiting", "conv_not", "difference", "t", "dof", "p", "p_holm", "cohen_d")
        rows = [[str(r["state"]), str(r["runs_visiting"]), str(r["runs_not"]), *(fmt(r[c], digits) for c in columns)]
                for r in shown.to_dict("records")]
        print_table("Detours — convergence epoch (val/acc reaches 95 % of its final value) of runs visiting each "
                    "phase vs not (phases some runs skip); Welch's two-sided t-test, Holm over phases",
                    ["phase", *(Column(h, justify="right") for h in
                                ("visit", "not", "conv. visit", "conv. not", "Δ", "t", "dof", "p", "p Holm", "d"))],
                    rows)
    if report.predictors.empty:
        return
    best = report.predictors.groupby("state", sort=True).head(2)
    rows = [[str(r["state"]), r["hparam"], f"{'ρ' if r['test'] == 'spearman' else 'V'} = {fmt(r['effect'], digits)}",
             fmt(r["p"], digits), fmt(r["p_holm"], digits), r["visit_rate_by_value"]] for r in best.to_dict("records")]
    print_table("Hyper-parameters that predict visiting a phase (strongest two per phase; p Holm over every "
                "phase × hyper-parameter test; share of runs visiting per value)",
                ["phase", "hyper-parameter", Column("effect", justify="right"), Column("p", justify="right"),
                 Column("p Holm", justify="right"), "visiting"], rows)


def _written(paths: list) -> str:
    directory = paths[0].parent
    return f"wrote {', '.join(p.name for p in paths)} in {directory}"


def cmd_states(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pab_campaign.analysis.campaign.campaign import open_campaign
    from pab_campaign.analysis.phases.hmm import StatesRequest
    from pab_campaign.analysis.phases.report import run_states, states_dir, write_states
    from pab_campaign.metrics import MetricSpec

    features = {"features": tuple(MetricSpec.parse(m) for m in args.metrics)} if args.metrics else {}
    request = StatesRequest(**features, max_states=args.max_states, restarts=args.restarts,
                            covariance=args.covariance, select=args.select, seed=args.seed,
                            selection_runs=args.selection_runs, jobs=args.jobs)
    curve_metric = MetricSpec.parse(args.curve_metric) if args.curve_metric else None
    campaign = open_campaign(args.campaign, args.campaign_id, args.where)
    with Progress(TextColumn("fitting HMMs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("fits", total=None)
        report = run_states(campaign, request, curve_metric, args.groupby,
                            progress=lambda done, total: bar.update(task, completed=done, total=total))
    fit = report.fit
    if args.as_json:
        directory = args.output_folder or states_dir(campaign, args.campaign_id)
        written = write_states(report, directory, campaign.directory.name, plots=not args.no_plots)
        print_json({"chosen_k": fit.chosen_k, "select": args.select, "reason": fit.reason,
                    "phases": report.profiles.to_dict("records"), "transitions": report.transitions.to_dict("records"),
                    "transition_matrix": report.transmat.to_numpy().tolist(),
                    "detours": None if report.detours is None else report.detours.to_dict("records"),
                    "predictors": report.predictors.to_dict("records"), "notes": report.notes,
                    "left_out": [list(pair) for pair in fit.sequences.left_out],
                    "skipped": [list(pair) for pair in campaign.skipped], "files": [str(p) for p in written]})
        return 0
    _print_selection(report, args.precision)
    print_line(f"chosen K={fit.chosen_k} ({args.select} rule): {fit.reason}", "green")
    _print_phases(report)
    _print_detours(report, args.precision)
    for note in report.notes:
        print_line(f"note: {note}", "yellow")
    title = f"{campaign.directory.name}"
    directory = args.output_folder or states_dir(campaign, args.campaign_id)
    written = write_states(report, directory, title, plots=not args.no_plots)
    print_line(_written(written))
    print_skipped(campaign.skipped, campaign.notes)
    print_skipped([(run_id, f"left out of the phases: {reason}") for run_id, reason in fit.sequences.left_out])
    return 0


def _cores() -> int:
    """The cores this process may use (all of the machine's where the OS cannot say)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


def register(commands: Commands) -> None:
    states = commands.add(
        "states", cmd_states,
        "latent training phases: a Gaussian HMM over every run's per-epoch statistics (K chosen on held-out runs), "
        "what each phase and transition means, and detours that slow convergence",
        "pab-campaign states outputs/phases_digits\n"
        "         pab-campaign states outputs/phases_digits --max-states 6 --restarts 4 --select bic "
        "--metrics weights/l2 weights/sv_var val/loss")
    states.add_argument("--metrics", nargs="+", action=SplitList, default=None,
                        help="per-epoch features, context/metric[key] (default: the 14 weight statistics "
                             "weights/w_mean ... weights/sv_var)")
    states.add_argument("--max-states", type=whole_number("--max-states", 1, 30, "8"), default=8,
                        help="fit K = 1..this many states (default 8)")
    states.add_argument("--restarts", type=whole_number("--restarts", 1, 1000, "8"), default=8,
                        help="EM starts per K (default 8; K = 1 is fitted once)")
    states.add_argument("--covariance", choices=("diag", "full"), default="diag",
                        help="each state's covariance (default diag)")
    states.add_argument("--select", choices=("heldout", "bic"), default="heldout",
                        help="heldout: smallest K within one standard error of the best held-out log-likelihood "
                             "(default); bic: lowest BIC on the fit runs")
    states.add_argument("--seed", type=whole_number("--seed", 0, 2**32 - 1, "0"), default=0,
                        help="seed of the fit/held-out split and the EM starts")
    states.add_argument("--selection-runs", type=whole_number("--selection-runs", 5, 10 ** 9, "500"), default=500,
                        help="model selection uses a seeded subsample of this many runs when there are more "
                             "(default 500); the chosen K is fitted on all runs")
    states.add_argument("--jobs", type=whole_number("--jobs", 1, 4096, "2"), default=_cores(),
                        help="processes fitting at once (default: every core this process may use)")
    states.add_argument("--curve-metric", default=None,
                        help="metric of the phase-coloured learning curves (default val/acc)")
    states.add_argument("--groupby", nargs="*", action=SplitList, default=None,
                        help="hyper-parameters of the run groups (default: all that vary, except the seed)")
    states.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    add_output_options(states, 4, "the model, tables and figures")
    add_campaign_filter(states)
    add_json_flag(states)
