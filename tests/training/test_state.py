"""TrainingState: one object saves and restores everything a resume needs, under named keys."""
import pytest
import torch

from pab_campaign.training import checkpoint
from pab_campaign.training.state import BATCH_ORDER, SCHEDULER, TrainingState


def _state(seed: int) -> TrainingState:
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    return TrainingState(model, optimizer, scheduler, torch.Generator().manual_seed(seed), {"churn": {}})


def _step(state: TrainingState) -> None:
    state.optimizer.zero_grad()
    loss = state.model(torch.randn(8, 4, generator=state.batch_order)).square().mean()
    loss.backward()
    state.optimizer.step()
    state.scheduler.step()


def test_a_saved_state_restores_weights_optimizer_schedule_batch_order_and_rngs(tmp_path):
    saved = _state(0)
    _step(saved)
    saved.epoch, saved.best_value, saved.probe_states = 1, 0.25, {"churn": {"previous": torch.arange(3)}}
    checkpoint.save(tmp_path / "last.pt", saved.state_dict())
    expected_draw = torch.rand(3)

    restored = _state(1)
    restored.load_state_dict(checkpoint.load(tmp_path / "last.pt"))
    assert torch.equal(torch.rand(3), expected_draw)  # the global torch RNG came back too
    assert (restored.epoch, restored.next_epoch, restored.best_value) == (1, 2, 0.25)
    assert torch.equal(restored.probe_states["churn"]["previous"], torch.arange(3))
    for a, b in zip(saved.model.parameters(), restored.model.parameters()):
        assert torch.equal(a, b)
    assert restored.scheduler.get_last_lr() == saved.scheduler.get_last_lr() == [0.05]
    _step(saved)
    _step(restored)
    for a, b in zip(saved.model.parameters(), restored.model.parameters()):
        assert torch.equal(a, b)


def test_optional_parts_are_left_out_and_a_checkpoint_lacking_what_is_held_is_refused():
    bare = TrainingState(torch.nn.Linear(2, 2))
    state = bare.state_dict()
    assert SCHEDULER not in state and BATCH_ORDER not in state and state["epoch"] == -1
    full = _state(0)
    with pytest.raises(ValueError, match=r"checkpoint lacks \['optimizer', 'scheduler', 'batch_order'\]"):
        full.load_state_dict(state)
