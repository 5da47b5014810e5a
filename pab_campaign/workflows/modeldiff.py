"""ModelDiff over a campaign's checkpoints: choose each algorithm's runs, rebuild their ensembles,
compute (or reuse) their TRAK scores, find the distinguishing directions, and test a transformation.

`diff` and `diff_test` return what the command line prints; progress goes to `say`, one line at a
time. Every check of the input runs before anything is written.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pab_campaign.analysis.modeldiff import outputs
from pab_campaign.analysis.modeldiff import residual_pca as modeldiff
from pab_campaign.analysis.modeldiff.algorithms import Algorithms, read_records, select_algorithms
from pab_campaign.errors import CampaignError, one_line
from pab_campaign.training import attribution, checkpoint
from pab_campaign.training.counterfactual import TRANSFORMS, transform_effects
from pab_campaign.training.data import Split
from pab_campaign.training.data.pixels import display_images, pixel_range
from pab_campaign.training.record_config import algorithm_config, check_same_examples
from pab_campaign.training.state import MODEL
from pab_campaign.workflows import factories

Say = Callable[[str], None]


@dataclass(frozen=True)
class DiffRequest:
    """What `pab-campaign diff` asks for: the campaign, each algorithm's filters, and TRAK's settings."""

    campaign: Path
    a: list[str]
    b: list[str]
    campaign_ids: list[str] | None = None
    checkpoints: str = "last"
    val_examples: int | None = None
    device: str = "auto"
    proj_dim: int = 2048
    proj_seed: int = 0
    components: int = 4
    top: int = 50
    # `module:function`s of a user's own model (hparams -> nn.Module) and data (() -> (train, val)), for
    # runs whose run.json does not rebuild a model from our configs (`workflows.factories`).
    model_factory: str | None = None
    data_factory: str | None = None
    # where the runs' data set lies on this machine (`--data-root`; default: the config's own)
    data_root: str | None = None


@dataclass
class DiffResult:
    algorithms: Algorithms
    directory: Path
    interpretation: modeldiff.Interpretation
    written: list[Path]
    figures: list[Path]


@dataclass
class CounterfactualResult:
    algorithms: Algorithms
    directory: Path
    target: int
    per_run: pd.DataFrame
    summary: pd.DataFrame


def select(campaign: Path, a: list[str], b: list[str], campaign_ids: list[str] | None) -> Algorithms:
    """Each algorithm's completed runs, chosen by its filters."""
    return select_algorithms(read_records(campaign, campaign_ids), a, b)


def _ensembles(request: DiffRequest, algorithms: Algorithms, say: Say
               ) -> tuple[dict[str, attribution.Ensemble], torch.device]:
    """Each algorithm's ensemble (checkpoints, data, model) and the device; every check of the input
    that needs the training package, before anything is written."""
    device = attribution.resolve_device(request.device)
    sides = {"A": algorithms.a, "B": algorithms.b}
    checkpoints = {side: attribution.ensemble_checkpoints(request.campaign, runs, request.checkpoints)
                   for side, runs in sides.items()}
    if request.model_factory is not None:
        ensembles = _user_ensembles(request, sides, checkpoints, device)
    else:
        configs = {side: algorithm_config(runs, request.data_root) for side, runs in sides.items()}
        check_same_examples(configs["A"], configs["B"])
        ensembles = {side: attribution.ensemble_of(configs[side], checkpoints[side], request.val_examples, device)
                     for side in sides}
    n_val, n_train = len(ensembles["A"].val), len(ensembles["A"].train)
    if request.components > min(n_val, n_train):
        raise CampaignError(f"--components {request.components} must be at most {min(n_val, n_train)} (the "
                            "validation and training examples bound it)")
    if request.proj_dim > n_train // 4:
        say(f"note: a {request.proj_dim}-dimensional projection for {n_train} training examples leaves TRAK's "
            "X^T X (nearly) singular and its scores noisy; pick --proj-dim well below the number of training "
            "examples (the digits case study uses 32)")
    return ensembles, device


def _user_ensembles(request: DiffRequest, sides: dict[str, list], checkpoints: dict[str, list],
                    device: torch.device) -> dict[str, attribution.Ensemble]:
    """Each algorithm's ensemble from the user's factories: the model `--model-factory` builds from
    the algorithm's first run's hyper-parameters, whose weights every checkpoint must fit, and the
    examples `--data-factory` gives (the first `--val-examples` validation ones)."""
    assert request.model_factory is not None
    if request.data_factory is None:
        raise CampaignError("--model-factory needs --data-factory module:function returning (train, val), the "
                            "examples the runs learnt from and those to attribute")
    build = factories.load_callable(request.model_factory, "--model-factory")
    train, val = factories.user_data(factories.load_callable(request.data_factory, "--data-factory"),
                                     request.data_factory)
    count = len(val) if request.val_examples is None else request.val_examples
    if not 1 <= count <= len(val):
        raise CampaignError(f"--val-examples {request.val_examples} is outside 1..{len(val)}, the validation "
                            "examples --data-factory gives")
    ensembles = {}
    for side, runs in sides.items():
        model = factories.build_user_model(build, request.model_factory, runs[0].hparams).to(device)
        for item in checkpoints[side]:
            weights = checkpoint.load(item.path)[MODEL]
            try:
                model.load_state_dict(weights)
            except RuntimeError as exc:
                raise CampaignError(f"run {item.run_id}: its checkpoint {item.path.name} does not fit the model "
                                    f"--model-factory {request.model_factory} builds ({one_line(exc)})") from None
        ensembles[side] = attribution.Ensemble(model, checkpoints[side], train, Split(val.x[:count], val.y[:count]),
                                               device)
    return ensembles


def _scores(request: DiffRequest, algorithms: Algorithms, ensembles: dict[str, attribution.Ensemble],
            device: torch.device, directory: Path, say: Say) -> tuple[dict[str, np.ndarray], list[Path]]:
    """Each algorithm's TRAK scores (validation × training examples): read back when the stored
    sidecar records the same request, else computed and stored."""
    scores, written = {}, []
    for side, ensemble in ensembles.items():
        runs = algorithms.a if side == "A" else algorithms.b
        wanted = {"runs": [r.run_id for r in runs], "checkpoints": [c.describe() for c in ensemble.checkpoints],
                  "projection": {"dimension": request.proj_dim, "seed": request.proj_seed},
                  "val_examples": len(ensemble.val), "train_examples": len(ensemble.train)}
        cached = outputs.cached_scores(directory, side.lower(), wanted)
        if cached is not None:
            say(f"algorithm {side}: reusing {directory / f'scores_{side.lower()}.npy'}")
            scores[side] = cached
            continue
        timings = attribution.Timings()
        say(f"algorithm {side} ({algorithms.describe(side)}): TRAK scores of {len(ensemble.checkpoints)} "
            f"checkpoints of {len(runs)} runs on {device.type}, {len(ensemble.val)} validation x "
            f"{len(ensemble.train)} training examples, projection {request.proj_dim}")
        scores[side] = attribution.trak_scores(ensemble, request.proj_dim, request.proj_seed, timings)
        sidecar = {"algorithm": side, "filters": algorithms.describe(side), **wanted, "device": device.type,
                   "timings": timings.as_dict()}
        peak = attribution.peak_cuda_mib(device)
        if peak is not None:
            sidecar["peak_cuda_mib"] = peak
        written += outputs.save_scores(directory, side.lower(), scores[side], sidecar)
    return scores, written


def diff(request: DiffRequest, say: Say) -> DiffResult:
    """ModelDiff of A against B: scores, the A−B and B−A directions, what each singles out, and the
    image grids of their top examples, written under the comparison's directory."""
    algorithms = select(request.campaign, request.a, request.b, request.campaign_ids)
    ensembles, device = _ensembles(request, algorithms, say)
    directory, note = outputs.diff_directory(request.campaign, algorithms.name)
    if note:
        say(f"note: {note}")
    scores, written = _scores(request, algorithms, ensembles, device, directory, say)
    results = [modeldiff.a_minus_b(scores["A"], scores["B"], request.components),
               modeldiff.b_minus_a(scores["A"], scores["B"], request.components)]
    labels = {side: e.train.y.numpy() for side, e in ensembles.items()}
    interpretation = modeldiff.interpret(results, labels, ensembles["A"].val.y.numpy(), request.top)
    written += outputs.write_directions(directory, results, interpretation)
    inputs = getattr(ensembles["A"].train, "x", None)  # None: a split that batches itself (image folders)
    if inputs is not None and inputs.ndim != 4:
        say("note: the examples are not images (N x C x H x W): no image grids drawn")
        return DiffResult(algorithms, directory, interpretation, written, [])
    pixels = {side: pixel_range(e.train) for side, e in ensembles.items()}

    def images(first: str, subpopulation: str, indices: list[int]) -> np.ndarray:
        ensemble = ensembles[first]
        split = ensemble.val if subpopulation.startswith("val") else ensemble.train
        return display_images(split, indices, pixels[first])

    figures = outputs.write_grids(directory, results, interpretation, images)
    return DiffResult(algorithms, directory, interpretation, written, figures)


def diff_test(campaign: Path, a: list[str], b: list[str], transform: str, say: Say, *,
              campaign_ids: list[str] | None = None, val_examples: int | None = None, device: str = "auto",
              target_class: int | None = None, data_root: str | None = None) -> CounterfactualResult:
    """How `transform` of the validation inputs moves each algorithm's accuracy and the probability of
    one class (`target_class`, else the class it raises most), per run and as mean ± CI95 with
    Welch's t-test of B against A; both tables written under the comparison's directory."""
    algorithms = select(campaign, a, b, campaign_ids)
    TRANSFORMS.get(transform)
    resolved = attribution.resolve_device(device)
    sides = {"A": algorithms.a, "B": algorithms.b}
    configs = {side: algorithm_config(runs, data_root) for side, runs in sides.items()}
    check_same_examples(configs["A"], configs["B"])
    effects = {side: transform_effects(campaign, runs, configs[side], transform, val_examples, resolved, target_class)
               for side, runs in sides.items()}
    shifts = np.array([e.probability_transformed - e.probability_clean for side in sides for e in effects[side]])
    target = modeldiff.choose_target_class(shifts) if target_class is None else target_class
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
        say(f"note: {note}")
    outputs.write_csv(directory / f"counterfactual_{transform}_runs.csv", per_run)
    outputs.write_csv(directory / f"counterfactual_{transform}.csv", summary)
    return CounterfactualResult(algorithms, directory, target, per_run, summary)
