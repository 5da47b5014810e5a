"""The files of a ModelDiff comparison under `<campaign>/summary/diff/<a>_vs_<b>/`, all written
atomically through `pab_campaign.store`:

- `scores_a.npy`, `scores_b.npy`: each algorithm's attribution scores (float32, validation ×
  training examples), each with a JSON sidecar (`scores_a.json`) naming its runs, checkpoints,
  projection dimension and seed, the examples and the time spent; a later call whose request
  matches the sidecar reads the scores instead of computing them again;
- `directions.csv` (variance of A and B along every direction), `subpopulations.csv` (the examples
  each direction singles out), `composition.csv` (their classes), `weights_<A-B|B-A>.npy` (the
  directions, k × training examples) and `projections_<...>.npy` (validation examples × k);
- `<A-B|B-A>_dir<k>_<train+|train-|val+|val->.png`: image grids of those examples with their labels;
- `counterfactual_<transform>.csv` and `counterfactual_<transform>_runs.csv` from `diff-test`.
"""
from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pab_campaign.analysis.campaign.workspace import choose, output_folder
from pab_campaign.analysis.modeldiff.residual_pca import SUBPOPULATIONS, Interpretation, ResidualPCA
from pab_campaign.analysis.plots.style import save_png, styled
from pab_campaign.errors import StoreError
from pab_campaign.store import atomic_write, atomic_write_bytes, read_run_file, replace_outputs

DIFF_DIR = "diff"
# Fields of a score sidecar that must match a request for its scores to be reused.
REQUEST_FIELDS = ("runs", "checkpoints", "projection", "val_examples", "train_examples")
SUBPOPULATION_TITLES = {"train+": "training examples of largest weight",
                        "train-": "training examples of most negative weight",
                        "val+": "validation examples of largest projection",
                        "val-": "validation examples of most negative projection"}


def diff_directory(campaign: Path, name: str) -> tuple[Path, str | None]:
    """`<campaign>/summary/diff/<name>` (not created here), or the same under the user cache the
    analysis falls back to when the campaign cannot be written; and the note saying so (None when
    it is the campaign's own summary/)."""
    workspace = choose(campaign)
    return output_folder(workspace.output_dir(), DIFF_DIR, name), workspace.note


def write_npy(path: Path, array: np.ndarray) -> None:
    """Write `array` to `path` in .npy format, atomically."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array))
    atomic_write_bytes(path, buffer.getvalue())


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, default=str) + "\n").encode())


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))


# Bounds of the cached files read back: a sidecar, and the header of an .npy array.
MAX_SIDECAR_BYTES = 1 << 20
NPY_HEADER_BYTES = 4096


def cached_scores(directory: Path, side: str, request: dict[str, Any]) -> np.ndarray | None:
    """The stored scores of `side` ("a" or "b") when their sidecar records the same `request` (the
    REQUEST_FIELDS) and the array has the requested shape; None otherwise."""
    sidecar, array = directory / f"scores_{side}.json", directory / f"scores_{side}.npy"
    # Regular files inside the folder alone, of bounded size (a stranger's campaign may hold a FIFO or
    # a link there); float32 scores plus the .npy header.
    limit = 4 * int(request["val_examples"]) * int(request["train_examples"]) + NPY_HEADER_BYTES
    try:
        stored = json.loads(read_run_file(sidecar, directory, MAX_SIDECAR_BYTES))
        scores = np.load(io.BytesIO(read_run_file(array, directory, limit)), allow_pickle=False)
    except (OSError, ValueError, RecursionError, StoreError):
        return None
    if not isinstance(stored, dict):
        return None
    if any(stored.get(key) != request.get(key) for key in REQUEST_FIELDS):
        return None
    if scores.shape != (request["val_examples"], request["train_examples"]):
        return None
    return scores


def save_scores(directory: Path, side: str, scores: np.ndarray, sidecar: dict[str, Any]) -> list[Path]:
    """Write `scores_<side>.npy`, then its sidecar (so a sidecar never names missing scores)."""
    paths = [directory / f"scores_{side}.npy", directory / f"scores_{side}.json"]
    write_npy(paths[0], scores.astype(np.float32))
    write_json(paths[1], sidecar)
    return paths


FRAME = (0.12, 0.47, 0.71)


@styled
def image_grid(images: np.ndarray, labels: np.ndarray, values: np.ndarray, title: str, columns: int = 10) -> Figure:
    """A grid of `images` (n × C × H × W in [0, 1], C = 1 grey or 3 RGB), each in a blue frame (so
    bright pixels at its edge stand out from the page) and captioned with its label and its value (a
    weight or projection), in the given order, left to right then down. One mosaic image, so a grid
    of many examples draws fast."""
    n, channels, height, width = images.shape
    columns = max(1, min(columns, n))
    rows = max(1, math.ceil(n / columns))
    frame = max(1, height // 16)
    caption = max(3, round(height * 0.45))
    cell_h, cell_w = caption + height + 2 * frame + frame, width + 2 * frame + 2 * frame
    canvas = np.ones((rows * cell_h, columns * cell_w, 3))
    figure, ax = plt.subplots(figsize=(1.2 * columns, 1.2 * columns * rows * cell_h / (columns * cell_w) + 0.7))
    for index, (image, label, value) in enumerate(zip(images, labels, values)):
        top, left = (index // columns) * cell_h + caption, (index % columns) * cell_w + frame
        canvas[top:top + height + 2 * frame, left:left + width + 2 * frame] = FRAME
        tile = np.repeat(image, 3, axis=0) if channels == 1 else image
        canvas[top + frame:top + frame + height, left + frame:left + frame + width] = np.transpose(tile, (1, 2, 0))
        ax.text(left + frame + width / 2, top - 0.4, f"{label}  {value:+.2g}", ha="center", va="bottom", fontsize=7)
    ax.imshow(canvas, interpolation="nearest")
    ax.set_axis_off()
    figure.suptitle(title, fontsize=10)
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    return figure


def grid_title(comparison: str, direction: int, subpopulation: str, composition: pd.DataFrame) -> str:
    """The grid's title: comparison, direction, subpopulation, and its classes as `label: count`."""
    part = composition[(composition["comparison"] == comparison) & (composition["direction"] == direction)
                       & (composition["subpopulation"] == subpopulation)]
    classes = ", ".join(f"{label}: {count}" for label, count in zip(part["label"], part["count"]))
    value = "weight" if subpopulation.startswith("train") else "projection"
    return (f"{comparison} direction {direction}: {SUBPOPULATION_TITLES[subpopulation]}\n"
            f"(each image: its label and {value}; classes, label: count, {classes})")


def write_directions(directory: Path, results: list[ResidualPCA], interpretation: Interpretation) -> list[Path]:
    """`directions.csv`, `subpopulations.csv`, `composition.csv`, and per comparison its directions
    (`weights_<label>.npy`, k × training examples) and projections (`projections_<label>.npy`)."""
    written = []
    for name in ("directions", "members", "composition"):
        path = directory / f"{'subpopulations' if name == 'members' else name}.csv"
        write_csv(path, getattr(interpretation, name))
        written.append(path)
    for result in results:
        for name, array in (("weights", result.directions), ("projections", result.projections)):
            written.append(directory / f"{name}_{result.label}.npy")
            write_npy(written[-1], array.astype(np.float32))
    return written


def write_grids(directory: Path, results: list[ResidualPCA], interpretation: Interpretation,
                images: Callable[[str, str, list[int]], np.ndarray]) -> list[Path]:
    """One image grid per direction and subpopulation; `images(first, subpopulation, indices)` gives
    the examples (n × C × H × W in [0, 1]) as the comparison's first algorithm ("A" or "B") sees them.
    The grids are drawn aside and then put in place (`store.replace_outputs`): grids an earlier call
    drew (for more directions) are removed, every other file of the comparison stays."""
    return replace_outputs(directory, lambda staging: _draw_grids(staging, results, interpretation, images), is_grid)


def is_grid(name: str) -> bool:
    """Whether `name` is an image grid's file name, `<A-B|B-A>_dir<k>_<subpopulation>.png`."""
    return name.startswith(("A-B_dir", "B-A_dir")) and name.endswith(".png")


def _draw_grids(directory: Path, results: list[ResidualPCA], interpretation: Interpretation,
                images: Callable[[str, str, list[int]], np.ndarray]) -> list[Path]:
    members, written = interpretation.members, []
    for result in results:
        for direction in range(1, len(result.directions) + 1):
            for subpopulation in SUBPOPULATIONS:
                rows = members[(members["comparison"] == result.label) & (members["direction"] == direction)
                               & (members["subpopulation"] == subpopulation)]
                figure = image_grid(images(result.first, subpopulation, rows["index"].tolist()),
                                    rows["label"].to_numpy(), rows["value"].to_numpy(),
                                    grid_title(result.label, direction, subpopulation, interpretation.composition))
                written.append(save_png(figure, directory / f"{result.label}_dir{direction}_{subpopulation}.png"))
    return written
