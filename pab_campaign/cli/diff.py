"""`diff` and `diff-test`: ModelDiff between two learning algorithms of a campaign, and the
counterfactual test of a transformation. Both read checkpoints, so they import the training package
(and torch) inside their handlers, after the cheap checks of their input: the rest of the command
line never imports torch."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from pab_campaign.cli.common import Commands, SplitList, add_campaign_filter, whole_number
from pab_campaign.errors import CampaignError
from pab_campaign.render import Column, fmt, print_line, print_table

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from pab_campaign.analysis.algorithms import Algorithms


def _select(args: argparse.Namespace) -> Algorithms:
    from pab_campaign.analysis.algorithms import read_records, select_algorithms

    return select_algorithms(read_records(Path(args.campaign), args.campaign_id), args.a, args.b)


def _classes(composition: pd.DataFrame, comparison: str, direction: int, subpopulation: str, top: int = 3) -> str:
    part = composition[(composition["comparison"] == comparison) & (composition["direction"] == direction)
                       & (composition["subpopulation"] == subpopulation)]
    return ", ".join(f"{label}: {share:.0%}" for label, share in zip(part["label"][:top], part["share"][:top]))


def _ensembles(args: argparse.Namespace, campaign: Path, algorithms: Algorithms) -> tuple[dict, object]:
    """Each algorithm's ensemble (checkpoints, data, model) and the device; every check of the input
    that needs the training package, before anything is written."""
    from pab_campaign.training import attribution
    from pab_campaign.training.record_config import algorithm_config, check_same_examples

    device = attribution.resolve_device(args.device)
    sides = {"A": algorithms.a, "B": algorithms.b}
    checkpoints = {side: attribution.ensemble_checkpoints(campaign, runs, args.checkpoints)
                   for side, runs in sides.items()}
    configs = {side: algorithm_config(runs) for side, runs in sides.items()}
    check_same_examples(configs["A"], configs["B"])
    ensembles = {side: attribution.ensemble_of(configs[side], checkpoints[side], args.val_examples, device)
                 for side in sides}
    n_val, n_train = len(ensembles["A"].val), len(ensembles["A"].train)
    if args.components > min(n_val, n_train):
        raise CampaignError(f"--components {args.components} must be at most {min(n_val, n_train)} (the validation "
                            "and training examples bound it)")
    if args.proj_dim > n_train // 4:
        print_line(f"note: a {args.proj_dim}-dimensional projection for {n_train} training examples leaves TRAK's "
                   "X^T X (nearly) singular and its scores noisy; pick --proj-dim well below the number of training "
                   "examples (the digits case study uses 32)", "yellow")
    return ensembles, device


def _scores(args: argparse.Namespace, algorithms: Algorithms, ensembles: dict, device, directory: Path
            ) -> tuple[dict[str, np.ndarray], list[Path]]:
    """Each algorithm's TRAK scores: read back when the stored sidecar records the same request, else
    computed and stored."""
    from pab_campaign.analysis import modeldiff_outputs as outputs
    from pab_campaign.training import attribution

    scores, written = {}, []
    for side, ensemble in ensembles.items():
        runs = algorithms.a if side == "A" else algorithms.b
        request = {"runs": [r.run_id for r in runs], "checkpoints": [c.describe() for c in ensemble.checkpoints],
                   "projection": {"dimension": args.proj_dim, "seed": args.proj_seed},
                   "val_examples": len(ensemble.val), "train_examples": len(ensemble.train)}
        cached = outputs.cached_scores(directory, side.lower(), request)
        if cached is not None:
            print_line(f"algorithm {side}: reusing {directory / f'scores_{side.lower()}.npy'}")
            scores[side] = cached
            continue
        timings = attribution.Timings()
        print_line(f"algorithm {side} ({algorithms.describe(side)}): TRAK scores of {len(ensemble.checkpoints)} "
                   f"checkpoints of {len(runs)} runs on {device.type}, {len(ensemble.val)} validation x "
                   f"{len(ensemble.train)} training examples, projection {args.proj_dim}")
        scores[side] = attribution.trak_scores(ensemble, args.proj_dim, args.proj_seed, timings)
        sidecar = {"algorithm": side, "filters": algorithms.describe(side), **request, "device": device.type,
                   "timings": timings.as_dict()}
        peak = attribution.peak_cuda_mib(device)
        if peak is not None:
            sidecar["peak_cuda_mib"] = peak
        written += outputs.save_scores(directory, side.lower(), scores[side], sidecar)
    return scores, written


def cmd_diff(args: argparse.Namespace) -> int:
    from pab_campaign.analysis import modeldiff
    from pab_campaign.analysis import modeldiff_outputs as outputs

    campaign = Path(args.campaign)
    algorithms = _select(args)
    ensembles, device = _ensembles(args, campaign, algorithms)
    from pab_campaign.training.data.pixels import display_images, pixel_range

    directory, note = outputs.diff_directory(campaign, algorithms.name)
    if note:
        print_line(f"note: {note}", "yellow")
    scores, written = _scores(args, algorithms, ensembles, device, directory)
    results = [modeldiff.a_minus_b(scores["A"], scores["B"], args.components),
               modeldiff.b_minus_a(scores["A"], scores["B"], args.components)]
    labels = {side: e.train.y.numpy() for side, e in ensembles.items()}
    interpretation = modeldiff.interpret(results, labels, ensembles["A"].val.y.numpy(), args.top)
    written += outputs.write_directions(directory, results, interpretation)
    pixels = {side: pixel_range(e.train) for side, e in ensembles.items()}

    def images(first: str, subpopulation: str, indices: list[int]) -> np.ndarray:
        ensemble = ensembles[first]
        split = ensemble.val if subpopulation.startswith("val") else ensemble.train
        return display_images(split, indices, pixels[first])

    figures = outputs.write_grids(directory, results, interpretation, images)
    composition = interpretation.composition
    print_table(f"ModelDiff — A: {algorithms.describe('A')} ({len(algorithms.a)} runs) vs B: "
                f"{algorithms.describe('B')} ({len(algorithms.b)} runs); variance of each algorithm's row-normalised "
                f"scores along each direction, classes of its top {args.top} examples",
                ["direction", Column("var A", justify="right"), Column("var B", justify="right"),
                 "train + classes", "train − classes", "val + classes", "val − classes"],
                [[f"{row.comparison} #{row.direction}", fmt(row.variance_a, 3), fmt(row.variance_b, 3),
                  *(_classes(composition, row.comparison, row.direction, s) for s in modeldiff.SUBPOPULATIONS)]
                 for row in interpretation.directions.itertuples()])
    print_line(f"wrote {len(written)} files and {len(figures)} figures in {directory}")
    return 0


def cmd_diff_test(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from pab_campaign.analysis import modeldiff
    from pab_campaign.analysis import modeldiff_outputs as outputs

    campaign = Path(args.campaign)
    algorithms = _select(args)
    from pab_campaign.training import attribution
    from pab_campaign.training.counterfactual import TRANSFORMS, transform_effects
    from pab_campaign.training.record_config import algorithm_config, check_same_examples

    TRANSFORMS.get(args.transform)
    device = attribution.resolve_device(args.device)
    sides = {"A": algorithms.a, "B": algorithms.b}
    configs = {side: algorithm_config(runs) for side, runs in sides.items()}
    check_same_examples(configs["A"], configs["B"])
    effects = {side: transform_effects(campaign, runs, configs[side], args.transform, args.val_examples, device)
               for side, runs in sides.items()}
    shifts = np.array([e.probability_transformed - e.probability_clean for side in sides for e in effects[side]])
    classes = shifts.shape[1]
    if args.target_class is not None and not 0 <= args.target_class < classes:
        raise CampaignError(f"--target-class {args.target_class} is not a class of this data set (0..{classes - 1})")
    target = modeldiff.choose_target_class(shifts) if args.target_class is None else args.target_class
    rows = [{"algorithm": side, "run_id": e.run_id, "accuracy_clean": e.accuracy_clean,
             "accuracy_transformed": e.accuracy_transformed,
             "accuracy_shift": e.accuracy_transformed - e.accuracy_clean,
             f"p{target}_clean": float(e.probability_clean[target]),
             f"p{target}_transformed": float(e.probability_transformed[target]),
             f"p{target}_shift": float(e.probability_transformed[target] - e.probability_clean[target])}
            for side in sides for e in effects[side]]
    per_run = pd.DataFrame(rows)
    summary = modeldiff.shift_summary(per_run[["algorithm", "run_id", "accuracy_shift", f"p{target}_shift"]])
    directory, note = outputs.diff_directory(campaign, algorithms.name)
    if note:
        print_line(f"note: {note}", "yellow")
    outputs.write_csv(directory / f"counterfactual_{args.transform}_runs.csv", per_run)
    outputs.write_csv(directory / f"counterfactual_{args.transform}.csv", summary)
    how = "given by --target-class" if args.target_class is not None else "the class the transformation raises most"
    print_table(f"Counterfactual test — {args.transform} on {args.val_examples or 'all'} "
                f"validation inputs; A: {algorithms.describe('A')}, B: {algorithms.describe('B')}; class {target} "
                f"({how}); mean ± CI95 over runs, Welch's t-test of B vs A",
                ["change in", Column("A", justify="right"), Column("B", justify="right"), Column("t", justify="right"),
                 Column("dof", justify="right"), Column("p", justify="right")],
                [[_quantity(row.quantity, target), f"{fmt(row.mean_a, 3)} ± {fmt(row.ci95_a, 2)} (n={row.n_a})",
                  f"{fmt(row.mean_b, 3)} ± {fmt(row.ci95_b, 2)} (n={row.n_b})", fmt(row.t, 3), fmt(row.dof, 3),
                  fmt(row.p, 2)] for row in summary.itertuples()])
    print_line(f"wrote counterfactual_{args.transform}.csv and counterfactual_{args.transform}_runs.csv in {directory}")
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
    add_campaign_filter(parser)


def register(commands: Commands) -> None:
    diff = commands.add(
        "diff", cmd_diff,
        "ModelDiff: TRAK attributions of two algorithms' checkpoints, residual PCA, the examples each "
        "distinguishing direction singles out",
        "pab-campaign diff outputs/modeldiff_digits --a dataset.corner_patch.train_class=null "
        "--b dataset.corner_patch.train_class=8 --checkpoints every --proj-dim 32")
    _algorithm_options(diff)
    diff.add_argument("--checkpoints", choices=("last", "every"), default="last",
                      help="each run's final checkpoint, or every checkpoint it kept (default last)")
    diff.add_argument("--proj-dim", type=whole_number("--proj-dim", 1, 10**6, "32"), default=2048,
                      help="TRAK projection dimension (default 2048; keep it well below the training examples)")
    diff.add_argument("--proj-seed", type=int, default=0, help="seed of the TRAK projection (default 0)")
    diff.add_argument("--components", type=whole_number("--components", 1, 10**4, "4"), default=4,
                      help="distinguishing directions per comparison, A−B and B−A (default 4)")
    diff.add_argument("--top", type=whole_number("--top", 1, 10**4, "50"), default=50,
                      help="examples shown and counted per end of a direction (default 50)")

    test = commands.add(
        "diff-test", cmd_diff_test,
        "counterfactual test: how a transformation of the validation inputs moves each algorithm's predictions",
        "pab-campaign diff-test outputs/modeldiff_digits --a dataset.corner_patch.train_class=null "
        "--b dataset.corner_patch.train_class=8 --transform corner_patch")
    _algorithm_options(test)
    test.add_argument("--transform", required=True,
                      help="corner_patch (bright top-left square), grayscale (RGB only) or texture (stripes)")
    test.add_argument("--target-class", type=whole_number("--target-class", 0, 9999, "8"), default=None, metavar="K",
                      help="class whose probability is reported (default: the one the transformation raises most)")
