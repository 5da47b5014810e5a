"""Checkpoints of one run: save atomically, load with `weights_only=True`, find the latest, prune.

Layout under `<run>/checkpoints/`: `epoch_NNNN.pt` every k epochs, `last.pt` (what resume reads)
and `best.pt` (best by the chosen validation metric).
"""
from __future__ import annotations

import pickle
import random
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pab_campaign import confined
from pab_campaign.errors import StoreError
from pab_campaign.store import CHECKPOINTS, atomic_write, run_boundary

LAST = "last.pt"
BEST = "best.pt"
_NUMBERED = re.compile(r"^epoch_(\d{4,})\.pt\Z")


def checkpoint_dir(run_directory: Path) -> Path:
    return Path(run_directory) / CHECKPOINTS


def numbered_name(epoch: int) -> str:
    return f"epoch_{epoch:04d}.pt"


def capture_rng() -> dict[str, Any]:
    """Global RNG states of torch, numpy and python, in types `weights_only` loading accepts."""
    state = np.random.get_state(legacy=True)
    assert isinstance(state, tuple)  # legacy=True: the (name, keys, pos, has_gauss, cached) tuple
    _, keys, pos, has_gauss, cached = state
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state((
        "MT19937", numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
        numpy_state["has_gauss"], numpy_state["cached"],
    ))
    python_state = state["python"]
    random.setstate((python_state["version"], tuple(python_state["internal"]), python_state["gauss"]))


def save(path: Path, state: dict[str, Any], copies: Sequence[Path] = ()) -> None:
    """Write `state` (tensors, numbers, strings, lists, dicts) to `path` atomically, then copy that
    file to each of `copies` in order, each atomically: the state is serialised once."""
    atomic_write(Path(path), lambda tmp: torch.save(state, tmp))
    for copy in copies:
        atomic_write(Path(copy), lambda tmp: shutil.copyfile(path, tmp))


def load(path: Path) -> dict[str, Any]:
    """Load a checkpoint without unpickling arbitrary objects (`weights_only=True`, never anything
    else: a checkpoint may come from someone else). StoreError naming the file when it is not a
    regular file, is truncated or not a torch file, holds objects other than tensors and plain
    values, or is not a dict."""
    path = Path(path)
    # a run's checkpoints/ may itself be a link: what it holds must still lie inside the campaign
    inside = run_boundary(path.parent.parent) if path.parent.name == CHECKPOINTS else path.parent
    reason = confined.problem(path, [inside])
    if reason is not None:
        raise StoreError(f"{reason}; a checkpoint must be a regular file inside its run")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError):
        raise StoreError(f"{path}: not a checkpoint that can be read safely: truncated, of another format, or "
                         "holding objects other than tensors and plain values (never unpickled: they could run "
                         "code); restore the file or train the run again") from None
    except (RuntimeError, ValueError, OSError) as exc:
        raise StoreError(f"{path}: not a readable torch checkpoint, truncated or of another format "
                         f"({_first_line(exc)}); restore the file or train the run again") from None
    if not isinstance(state, dict):
        raise StoreError(f"{path}: the checkpoint holds a {type(state).__name__}, not the dict pab_campaign writes")
    return state


def weights(path: Path, key: str) -> dict[str, torch.Tensor]:
    """The model weights stored under `key` in the checkpoint at `path` (`load`); StoreError naming the
    file when it has none."""
    state = load(path).get(key)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise StoreError(f"{path}: the checkpoint has no model weights under '{key}'; use checkpoints written by "
                         "pab_campaign")
    return state


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:200] if lines else type(exc).__name__


def latest(run_directory: Path) -> Path | None:
    """The checkpoint a resume starts from: `last.pt`, else the highest-numbered one, else None."""
    directory = checkpoint_dir(run_directory)
    if (directory / LAST).exists():
        return directory / LAST
    numbered = numbered_checkpoints(directory)
    return numbered[-1][1] if numbered else None


def numbered_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(epoch, path) of every `epoch_NNNN.pt` in `directory`, by epoch."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _NUMBERED.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def prune(directory: Path, keep_last_n: int, keep_every_n: int) -> list[Path]:
    """Delete numbered checkpoints except the newest `keep_last_n` and those whose epoch is a
    multiple of `keep_every_n` (0 = none kept for that reason). `last.pt`/`best.pt` are never
    touched. Returns the deleted paths."""
    numbered = numbered_checkpoints(Path(directory))
    keep_recent = {epoch for epoch, _ in numbered[-keep_last_n:]} if keep_last_n > 0 else set()
    removed = []
    for epoch, path in numbered:
        if epoch in keep_recent or (keep_every_n > 0 and epoch % keep_every_n == 0):
            continue
        path.unlink()
        removed.append(path)
    return removed
