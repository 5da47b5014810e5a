"""TRAK attribution scores of a learning algorithm from its runs' checkpoints (ModelDiff, step A).

An algorithm is a set of runs (seeds) of one configuration; its ensemble is their checkpoints. For
every checkpoint the `traker` package takes the per-example gradient of the margin
`log p(y|x) − log(1 − p(y|x))` of every training example, projects it to `proj_dim` dimensions with a
random matrix seeded by (`seed`, checkpoint), and scores each validation example against the
training set; the scores are averaged over the ensemble. Score (i, j) > 0: training example j raises
validation example i's margin.

`traker` runs on the CPU with its block-wise projector (Gaussian) and on CUDA with its fast projector
when `fast_jl` is installed (else the block-wise one, Rademacher). The time spent in per-example
gradients and in the projection is measured apart (`Timings`). `import trak` happens in
`trak_scores` only, so importing this module stays cheap.
"""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from pab_campaign.errors import CampaignError
from pab_campaign.store import RunRecord, run_dir
from pab_campaign.training import checkpoint
from pab_campaign.training.data import Split, build_dataset
from pab_campaign.training.data.pixels import every_example
from pab_campaign.training.models import build_model
from pab_campaign.training.state import MODEL

CHECKPOINT_MODES = ("last", "every")
# Bytes of one block of the CPU projection matrix, and of one batch of per-example gradients.
PROJECTION_BLOCK_BYTES = 256 * 2**20
GRADIENT_BATCH_BYTES = 512 * 2**20
MAX_BATCH = 256


@dataclass(frozen=True)
class Checkpoint:
    """One model of an ensemble: the run, the file and the epoch it holds."""

    run_id: str
    path: Path
    epoch: int

    def describe(self) -> dict[str, object]:
        return {"run_id": self.run_id, "file": self.path.name, "epoch": self.epoch}


def run_checkpoints(directory: Path, epochs_done: int, mode: str) -> list[Checkpoint]:
    """The checkpoints of the run in `directory` an ensemble takes: `last` (the final model, `last.pt`,
    else the highest-numbered file) or `every` (every numbered file and the final model, each epoch
    once). Empty when the run has none."""
    if mode not in CHECKPOINT_MODES:
        raise ValueError(f"checkpoint mode {mode!r} is not one of {CHECKPOINT_MODES}")
    folder = checkpoint.checkpoint_dir(directory)
    numbered = [Checkpoint(directory.name, path, epoch) for epoch, path in checkpoint.numbered_checkpoints(folder)]
    last = folder / checkpoint.LAST
    final = [Checkpoint(directory.name, last, epochs_done)] if last.is_file() else numbered[-1:]
    if mode == "last":
        return final
    return [c for c in numbered if all(c.epoch != f.epoch for f in final)] + final


@dataclass
class Timings:
    """Seconds spent in per-example gradients, in projecting them, and in all of the scoring."""

    gradients: float = 0.0
    projection: float = 0.0
    total: float = 0.0

    @contextlib.contextmanager
    def measure(self, part: str, device: torch.device | str) -> Iterator[None]:
        """Add the block's wall time to `part` (waiting for CUDA kernels to finish first)."""
        cuda = torch.device(device).type == "cuda"
        if cuda:
            torch.cuda.synchronize()
        started = time.perf_counter()
        try:
            yield
        finally:
            if cuda:
                torch.cuda.synchronize()
            setattr(self, part, getattr(self, part) + time.perf_counter() - started)

    def as_dict(self) -> dict[str, float]:
        return {"gradients_s": self.gradients, "projection_s": self.projection, "total_s": self.total}


C = TypeVar("C", Checkpoint, dict[str, torch.Tensor])


@dataclass
class Ensemble(Generic[C]):
    """One algorithm ready to score: a model of its architecture (on `device`), the checkpoints whose
    weights it takes in turn (run checkpoints, or state dicts held in memory), its training split and
    the validation examples to attribute."""

    model: nn.Module
    checkpoints: list[C]
    train: Split
    val: Split
    device: torch.device


def peak_cuda_mib(device: torch.device) -> float | None:
    """Peak CUDA memory this process allocated so far (MiB), None off CUDA."""
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def resolve_device(name: str) -> torch.device:
    """`cpu`, `cuda`, or `auto` (CUDA when there is one); CampaignError for `cuda` without one."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise CampaignError("--device cuda but no CUDA device is visible; use --device cpu or auto")
    return torch.device(name)


def ensemble_checkpoints(campaign: Path, records: list[RunRecord], mode: str) -> list[Checkpoint]:
    """The checkpoints of every run of `records` by `mode`; CampaignError naming a run that has none."""
    found = []
    for record in records:
        directory = run_dir(campaign, record.run_id)
        mine = run_checkpoints(directory, record.epochs_done, mode)
        if not mine:
            raise CampaignError(f"run {record.run_id} has no checkpoint in {directory}/checkpoints; the comparison "
                                "needs its trained weights (train with checkpoint.every > 0 and keep its files)")
        found += mine
    return found


def ensemble_of(cfg: DictConfig, checkpoints: list[Checkpoint], val_examples: int | None,
                device: torch.device) -> Ensemble[Checkpoint]:
    """The ensemble of `checkpoints` (runs of one algorithm, whose shared config is `cfg`): its data set
    and model rebuilt from `cfg`, and the first `val_examples` validation examples (all when None);
    CampaignError when there are not that many."""
    data = build_dataset(cfg.dataset)
    available = len(data.val)
    count = available if val_examples is None else val_examples
    if not 1 <= count <= available:
        raise CampaignError(f"--val-examples {val_examples} is outside 1..{available}, the validation examples "
                            f"of {cfg.dataset.name}")
    model = build_model(cfg.model, data.input_shape, data.num_classes).to(device)
    return Ensemble(model, checkpoints, data.train, data.probe(count), device)


def _weights(item: Checkpoint | dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    weights = checkpoint.weights(item.path, MODEL) if isinstance(item, Checkpoint) else item
    return {name: value.to(device) for name, value in weights.items()}


def _batch_size(grad_dim: int) -> int:
    return int(max(1, min(MAX_BATCH, GRADIENT_BATCH_BYTES // (4 * grad_dim))))


def _projector(grad_dim: int, proj_dim: int, seed: int, device: torch.device, timings: Timings):
    """traker's projector for `device`, timed: its CUDA kernel when `fast_jl` is there, else its
    block-wise one (Gaussian on the CPU, Rademacher on CUDA) in blocks of at most
    PROJECTION_BLOCK_BYTES."""
    from trak.projectors import AbstractProjector, BasicProjector, CudaProjector, ProjectionType

    class BlockProjector(BasicProjector):
        """traker 0.3.2's block-wise projector, which leaves a single-block matrix freed after
        `finalize_features` and then fails to score; this one draws it again when needed."""

        def project(self, grads, model_id: int) -> torch.Tensor:
            if not self.proj_matrix_available and self.num_blocks == 1 and model_id == self.model_id:
                self.generate_sketch_matrix(self.generator_states[0])
            return super().project(grads, model_id)

    class TimedProjector(AbstractProjector):
        """Delegates to `inner`, adding the time of each projection to `timings.projection`."""

        def __init__(self, inner: AbstractProjector) -> None:
            super().__init__(inner.grad_dim, inner.proj_dim, inner.seed, inner.proj_type, inner.device)
            self.inner = inner

        def project(self, grads, model_id: int) -> torch.Tensor:
            with timings.measure("projection", device):
                return self.inner.project(grads, model_id)

        def free_memory(self) -> None:
            self.inner.free_memory()

    inner: AbstractProjector
    if device.type == "cuda" and _has_fast_jl():
        inner = CudaProjector(grad_dim=grad_dim, proj_dim=proj_dim, seed=seed, proj_type=ProjectionType.rademacher,
                              device=device, max_batch_size=32, dtype=torch.float32)
    else:
        block = int(min(proj_dim, max(1, PROJECTION_BLOCK_BYTES // (4 * grad_dim))))
        kind = ProjectionType.rademacher if device.type == "cuda" else ProjectionType.normal
        inner = BlockProjector(grad_dim=grad_dim, proj_dim=proj_dim, seed=seed, proj_type=kind, device=device,
                               block_size=block, dtype=torch.float32)
    return TimedProjector(inner)


def _has_fast_jl() -> bool:
    try:
        import fast_jl  # noqa: F401
    except ImportError:
        return False
    return True


def _timed_gradients(timings: Timings, device: torch.device) -> type:
    """traker's functional (vmap) gradient computer, adding its time to `timings.gradients`."""
    from trak.gradient_computers import FunctionalGradientComputer

    class TimedGradients(FunctionalGradientComputer):
        def compute_per_sample_grad(self, batch):
            with timings.measure("gradients", device):
                return super().compute_per_sample_grad(batch)

        def compute_loss_grad(self, batch):
            with timings.measure("gradients", device):
                return super().compute_loss_grad(batch)

    return TimedGradients


def trak_scores(ensemble: Ensemble, proj_dim: int, seed: int, timings: Timings | None = None) -> np.ndarray:
    """TRAK scores of `ensemble`, float32 of shape (validation examples, training examples), averaged
    over its checkpoints; projection `proj_dim` and seed `seed` (the same seed gives the same scores).
    traker's working files live in a temporary directory and its progress bars are kept off the
    terminal; `timings`, when given, collects where the time went."""
    from trak import TRAKer

    timings = timings if timings is not None else Timings()
    device, model = ensemble.device, ensemble.model
    grad_dim = sum(p.numel() for p in model.parameters())
    batch_size = _batch_size(grad_dim)
    n_train, n_val = len(ensemble.train), len(ensemble.val)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pab-trak-") as store, contextlib.redirect_stderr(io.StringIO()):
        traker = TRAKer(model=model, task="image_classification", train_set_size=n_train, save_dir=store,
                        device=str(device), proj_dim=proj_dim, projector_seed=seed,
                        projector=_projector(grad_dim, proj_dim, seed, device, timings),
                        gradient_computer=_timed_gradients(timings, device), use_half_precision=False,
                        logging_level=logging.WARNING)
        for model_id, item in enumerate(ensemble.checkpoints):
            traker.load_checkpoint(_weights(item, device), model_id=model_id)
            seen = 0
            for x, y in _batches(ensemble.train, batch_size):
                traker.featurize(batch=(x.to(device), y.to(device)), num_samples=len(y))
                seen += len(y)
            if seen != n_train:
                raise RuntimeError(f"featurized {seen} of {n_train} training examples")
        traker.finalize_features(del_grads=True)
        for model_id, item in enumerate(ensemble.checkpoints):
            traker.start_scoring_checkpoint(exp_name="val", checkpoint=_weights(item, device), model_id=model_id,
                                            num_targets=n_val)
            for start in range(0, n_val, batch_size):
                x, y = ensemble.val.x[start:start + batch_size], ensemble.val.y[start:start + batch_size]
                traker.score(batch=(x.to(device), y.to(device)), num_samples=len(y))
        scores = np.array(traker.finalize_scores(exp_name="val"), dtype=np.float32).T
    timings.total += time.perf_counter() - started
    return np.ascontiguousarray(scores)


def _batches(split, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Every example of `split` once, in order, un-augmented, in batches of `batch_size`."""
    pending_x: list[torch.Tensor] = []
    pending_y: list[torch.Tensor] = []
    held = 0
    for x, y in every_example(split):
        pending_x.append(x)
        pending_y.append(y)
        held += len(y)
        while held >= batch_size:
            xs, ys = torch.cat(pending_x), torch.cat(pending_y)
            yield xs[:batch_size], ys[:batch_size]
            pending_x, pending_y, held = [xs[batch_size:]], [ys[batch_size:]], held - batch_size
    if held:
        yield torch.cat(pending_x), torch.cat(pending_y)
