"""`diff` and `diff-test`: ModelDiff between two learning algorithms of a campaign, and the
counterfactual test of a transformation. Both read checkpoints, so their handlers import the workflow
(and torch) when they run: the rest of the command line never imports torch."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from pab_campaign.cli.common import Commands, SplitList, add_campaign_filter, whole_number
from pab_campaign.render import Column, fmt, print_line, print_table

if TYPE_CHECKING:
    import pandas as pd


def _say(line: str) -> None:
    """A workflow's progress line; notes in yellow."""
    print_line(line, "yellow" if line.startswith("note:") else None)


def _classes(composition: pd.DataFrame, comparison: str, direction: int, subpopulation: str, top: int = 3) -> str:
    part = composition[(composition["comparison"] == comparison) & (composition["direction"] == direction)
                       & (composition["subpopulation"] == subpopulation)]
    return ", ".join(f"{label}: {share:.0%}" for label, share in zip(part["label"][:top], part["share"][:top]))


def cmd_diff(args: argparse.Namespace) -> int:
    from pab_campaign.analysis.modeldiff.residual_pca import SUBPOPULATIONS
    from pab_campaign.workflows.modeldiff import DiffRequest, diff

    request = DiffRequest(Path(args.campaign), args.a, args.b, args.campaign_id, args.checkpoints, args.val_examples,
                          args.device, args.proj_dim, args.proj_seed, args.components, args.top, args.model_factory,
                          args.data_factory, args.data_root)
    result = diff(request, _say)
    algorithms, interpretation = result.algorithms, result.interpretation
    composition = interpretation.composition
    print_table(f"ModelDiff — A: {algorithms.describe('A')} ({len(algorithms.a)} runs) vs B: "
                f"{algorithms.describe('B')} ({len(algorithms.b)} runs); variance of each algorithm's row-normalised "
                f"scores along each direction, classes of its top {args.top} examples",
                ["direction", Column("var A", justify="right"), Column("var B", justify="right"),
                 "train + classes", "train − classes", "val + classes", "val − classes"],
                [[f"{row.comparison} #{row.direction}", fmt(row.variance_a, 3), fmt(row.variance_b, 3),
                  *(_classes(composition, row.comparison, row.direction, s) for s in SUBPOPULATIONS)]
                 for row in interpretation.directions.itertuples()])
    print_line(f"wrote {len(result.written)} files and {len(result.figures)} figures in {result.directory}")
    return 0


def cmd_diff_test(args: argparse.Namespace) -> int:
    from pab_campaign.workflows.modeldiff import diff_test

    result = diff_test(Path(args.campaign), args.a, args.b, args.transform, _say, campaign_ids=args.campaign_id,
                       val_examples=args.val_examples, device=args.device, target_class=args.target_class,
                       data_root=args.data_root)
    algorithms, target = result.algorithms, result.target
    how = "given by --target-class" if args.target_class is not None else "the class the transformation raises most"
    print_table(f"Counterfactual test — {args.transform} on {args.val_examples or 'all'} "
                f"validation inputs; A: {algorithms.describe('A')}, B: {algorithms.describe('B')}; class {target} "
                f"({how}); mean ± CI95 over runs, Welch's t-test of B vs A",
                ["change in", Column("A", justify="right"), Column("B", justify="right"), Column("t", justify="right"),
                 Column("dof", justify="right"), Column("p", justify="right")],
                [[_quantity(row.quantity, target), f"{fmt(row.mean_a, 3)} ± {fmt(row.ci95_a, 2)} (n={row.n_a})",
                  f"{fmt(row.mean_b, 3)} ± {fmt(row.ci95_b, 2)} (n={row.n_b})", fmt(row.t, 3), fmt(row.dof, 3),
                  fmt(row.p, 2)] for row in result.summary.itertuples()])
    print_line(f"wrote counterfactual_{args.transform}.csv and counterfactual_{args.transform}_runs.csv in "
               f"{result.directory}")
    return 0


def _quantity(name: str, target: int) -> str:
    return "accuracy" if name == "accuracy_shift" else f"p(class {target}), examples not of class {target}"


def _algorithm_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--a", nargs="+", action=SplitList, required=True, metavar="KEY=VALUE",
                        help="hyper-parameter filters selecting algorithm A's runs (at least 2), "
                             "e.g. dataset.augment=true")
    parser.add_argument("--b", nargs="+", action=SplitList, required=True, metavar="KEY=VALUE",
                        help="filters selecting algorithm B's runs (disjoint from A's)")
    parser.add_argument("--val-examples", type=whole_number("--val-examples", 1, 10**9, "200"), default=None,
                        metavar="N", help="the first N validation examples (default: all)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where to compute (default auto: CUDA when there is one)")
    parser.add_argument("--data-root", default=None, metavar="DIR",
                        help="where the runs' data set lies on this machine (default: the config's, e.g. "
                             "$PAB_CIFAR10_ROOT); a path a run recorded is never read, a campaign may come from "
                             "elsewhere")
    add_campaign_filter(parser, where=False)


def register(commands: Commands) -> None:
    diff = commands.add(
        "diff", cmd_diff,
        "ModelDiff: TRAK attributions of two algorithms' checkpoints, residual PCA, the examples each "
        "distinguishing direction singles out",
        "pab-campaign diff outputs/modeldiff_digits --a dataset.corner_patch.train_class=null "
        "--b dataset.corner_patch.train_class=8 --checkpoints every --proj-dim 32", several=False)
    _algorithm_options(diff)
    diff.add_argument("--checkpoints", choices=("last", "every"), default="last",
                      help="each run's final checkpoint, or every checkpoint it kept (default last)")
    diff.add_argument("--proj-dim", type=whole_number("--proj-dim", 1, 10**6, "32"), default=2048,
                      help="TRAK projection dimension (default 2048; keep it well below the training examples)")
    diff.add_argument("--proj-seed", type=whole_number("--proj-seed", 0, 2**32 - 1, "0"), default=0,
                      help="seed of the TRAK projection (default 0)")
    diff.add_argument("--components", type=whole_number("--components", 1, 10**4, "4"), default=4,
                      help="distinguishing directions per comparison, A−B and B−A (default 4)")
    diff.add_argument("--top", type=whole_number("--top", 1, 10**4, "50"), default=50,
                      help="examples shown and counted per end of a direction (default 50)")
    diff.add_argument("--model-factory", default=None, metavar="MODULE:FUNCTION",
                      help="runs written by the Tracker from a loop of your own: FUNCTION(hparams) builds the model "
                           "their checkpoints load into (with --data-factory), e.g. mymodels:build")
    diff.add_argument("--data-factory", default=None, metavar="MODULE:FUNCTION",
                      help="with --model-factory: FUNCTION() returns (train, val), each (x, y) tensors, a dataset "
                           "or a DataLoader: the examples the runs learnt from and those to attribute")

    test = commands.add(
        "diff-test", cmd_diff_test,
        "counterfactual test: how a transformation of the validation inputs moves each algorithm's predictions",
        "pab-campaign diff-test outputs/modeldiff_digits --a dataset.corner_patch.train_class=null "
        "--b dataset.corner_patch.train_class=8 --transform corner_patch", several=False)
    _algorithm_options(test)
    test.add_argument("--transform", required=True,
                      help="corner_patch (bright top-left square), grayscale (RGB only) or texture (stripes)")
    test.add_argument("--target-class", type=whole_number("--target-class", 0, 9999, "8"), default=None, metavar="K",
                      help="class whose probability is reported (default: the one the transformation raises most)")
