"""The training loop's state as one object: what a checkpoint saves and what resume restores.

`TrainingState.state_dict()` and `load_state_dict()` are the only places that name the checkpoint's
keys, so saving and resuming cannot drift apart. The dict holds tensors, numbers, strings, lists and
dicts only, which `torch.load(weights_only=True)` accepts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from pab_campaign.training.checkpoint import capture_rng, restore_rng

EPOCH = "epoch"
MODEL = "model"
OPTIMIZER = "optimizer"
SCHEDULER = "scheduler"
BATCH_ORDER = "batch_order"
RNG = "rng"
PROBE_STATES = "probe_states"
BEST_VALUE = "best_value"
RECORDED_EPOCHS = "recorded_epochs"
REQUIRED_KEYS = (EPOCH, MODEL, RNG, PROBE_STATES)


@dataclass
class TrainingState:
    """Model, optimiser, schedule, batch order and probe memory of one run after epoch `epoch`.

    `epoch` is the last epoch whose measurements are saved (0 = measured before training, -1 =
    nothing yet), so training goes on at `next_epoch`. `best_value` is the best value so far of the
    metric that selects `best.pt` (None before the first finite one). `recorded_epochs` are the epochs
    the trajectory held when the state was saved (what a resume checks its history against; None in
    a checkpoint that does not say). Optional parts (a loop without a scheduler or a seeded batch
    order) are saved only when present.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer | None = None
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    batch_order: torch.Generator | None = None
    probe_states: dict[str, dict[str, Any]] = field(default_factory=dict)
    epoch: int = -1
    best_value: float | None = None
    recorded_epochs: list[int] | None = None

    @property
    def next_epoch(self) -> int:
        return self.epoch + 1

    def state_dict(self) -> dict[str, Any]:
        """Everything to resume from, with the global RNG states of torch, numpy and python."""
        state: dict[str, Any] = {
            EPOCH: self.epoch, MODEL: self.model.state_dict(), RNG: capture_rng(),
            PROBE_STATES: self.probe_states, BEST_VALUE: self.best_value,
        }
        if self.optimizer is not None:
            state[OPTIMIZER] = self.optimizer.state_dict()
        if self.scheduler is not None:
            state[SCHEDULER] = self.scheduler.state_dict()
        if self.batch_order is not None:
            state[BATCH_ORDER] = self.batch_order.get_state()
        if self.recorded_epochs is not None:
            state[RECORDED_EPOCHS] = list(self.recorded_epochs)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict()` into this state's model, optimiser, ... and the global RNGs.

        ValueError naming the missing keys when `state` lacks what this state holds."""
        wanted = [*REQUIRED_KEYS, *(key for key, part in ((OPTIMIZER, self.optimizer), (SCHEDULER, self.scheduler),
                                                          (BATCH_ORDER, self.batch_order)) if part is not None)]
        missing = [key for key in wanted if key not in state]
        if missing:
            raise ValueError(f"checkpoint lacks {missing}; it was not written by this version's training loop")
        self.model.load_state_dict(state[MODEL])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state[OPTIMIZER])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state[SCHEDULER])
        if self.batch_order is not None:
            self.batch_order.set_state(state[BATCH_ORDER])
        restore_rng(state[RNG])
        self.probe_states = state[PROBE_STATES]
        self.epoch = int(state[EPOCH])
        self.best_value = state.get(BEST_VALUE)
        recorded = state.get(RECORDED_EPOCHS)
        self.recorded_epochs = None if recorded is None else [int(e) for e in recorded]
