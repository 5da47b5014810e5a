"""Track a training loop of your own with `pab_campaign.training.tracker.Tracker`.

    PYTHONPATH=. python scripts/track_own_loop.py --campaign outputs/own_loop --epochs 8 --seeds 0 1 2
    pab-campaign report outputs/own_loop --metrics val/acc,summary/loss_gap_final
    pab-campaign summarize outputs/own_loop/runs/<run_id>
    PYTHONPATH=. python scripts/track_own_loop.py --campaign outputs/own_loop --epochs 8 --seeds 0 1 2 --lr 0.2
    pab-campaign diff outputs/own_loop --a lr=0.05 --b lr=0.2 --proj-dim 32 \
        --model-factory scripts.track_own_loop:model --data-factory scripts.track_own_loop:data

The model, data pipeline and loop below are plain PyTorch (scikit-learn's digits, a small MLP that
is not one of the package's models); the Tracker records each epoch into the campaign as our own
runs are recorded. Interrupt it (Ctrl-C, kill -9) and start it again: each run resumes from its
last checkpoint, and its trajectory ends up as if it had never stopped.
"""
from __future__ import annotations

import argparse

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from pab_campaign.training.tracker import Tracker


class DigitsNet(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU())
        self.classifier = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(x))


def splits() -> tuple[TensorDataset, TensorDataset]:
    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    train, val = order[:1200], order[1200:]
    return TensorDataset(x[train], y[train]), TensorDataset(x[val], y[val])


def model(hparams: dict) -> DigitsNet:
    """The untrained network of a run, from its recorded hyper-parameters (`diff --model-factory`)."""
    return DigitsNet(int(hparams["hidden"]))


def data() -> tuple[TensorDataset, TensorDataset]:
    """(train, val), the examples the runs learnt from and those to attribute (`diff --data-factory`)."""
    return splits()


@torch.no_grad()
def scores(model: nn.Module, data: TensorDataset) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over `data`, model in eval mode."""
    model.eval()
    x, y = data.tensors
    logits = model(x)
    model.train()
    return F.cross_entropy(logits, y).item(), (logits.argmax(dim=1) == y).float().mean().item()


def train(campaign: str, epochs: int, seed: int, lr: float, hidden: int) -> None:
    train_set, val_set = splits()
    torch.manual_seed(seed)
    model = DigitsNet(hidden)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    hparams = {"model": "digits_net", "hidden": hidden, "lr": lr, "epochs": epochs, "seed": seed}
    with Tracker(campaign, hparams, tracking="default", probe_data=val_set.tensors, epochs=epochs,
                 features=lambda m, x: m.body(x)) as tracker:
        start = tracker.resume(model, optimizer)
        for epoch in range(start, epochs + 1):  # epoch 0 is measured before training
            if epoch > 0:
                for x, y in DataLoader(train_set, batch_size=64, shuffle=True):
                    optimizer.zero_grad()
                    F.cross_entropy(model(x), y).backward()
                    optimizer.step()
            train_loss, train_acc = scores(model, train_set)
            val_loss, val_acc = scores(model, val_set)
            tracker.epoch(model, epoch, train_loss=train_loss, train_acc=train_acc, val_loss=val_loss,
                          val_acc=val_acc, optimizer=optimizer)
            print(f"seed {seed} epoch {epoch}: train loss {train_loss:.3f}, val loss {val_loss:.3f} acc {val_acc:.3f}")
    print(f"run {tracker.run_id} {tracker.status}: {tracker.run_dir}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaign", default="outputs/own_loop", help="campaign directory (default outputs/own_loop)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--hidden", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for seed in args.seeds:
        train(args.campaign, args.epochs, seed, args.lr, args.hidden)


if __name__ == "__main__":
    main()
