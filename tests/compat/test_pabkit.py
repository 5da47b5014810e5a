"""pabkit's API (`compat.pabkit`) over the Tracker: its numbers against pabkit's own formulas (written
out in tests/analysis/summary), its files as our runs', its plots."""
from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from pab_campaign.compat.pabkit import ProcessAwareBenchmark, compare_models, evaluate_trajectory
from pab_campaign.compat.pabkit.visualization import (
    plot_class_progression,
    plot_learning_trajectory,
    plot_pab_summary,
)
from pab_campaign.store import RunStatus, read_run_json
from tests.analysis.summary.test_trajectory_summary import _curves, pabkit_evaluate
from tests.helpers import REPO


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


@pytest.mark.parametrize("epochs, seed", [(6, 1), (10, 3)])
def test_a_pabkit_loop_gives_pabkits_numbers(tmp_path, epochs, seed):
    train, val, classes, robustness = _curves(epochs, seed)
    expected = pabkit_evaluate(train, val, classes, robustness)
    accuracy = [0.3 + 0.05 * e for e in range(epochs)]
    model = _model()
    with ProcessAwareBenchmark(checkpoint_dir=tmp_path / "pab", save_frequency=5, track_representations=False) as pab:
        for epoch in range(1, epochs + 1):
            pab.track_epoch(model, epoch, train_loss=train[epoch - 1], val_loss=val[epoch - 1],
                            train_acc=accuracy[epoch - 1] + 0.05, val_acc=accuracy[epoch - 1],
                            class_accuracies={int(c): accs[epoch - 1] for c, accs in classes.items()},
                            adversarial_acc=robustness[epoch - 1])
    metrics = pab.metrics
    assert metrics["train_loss"] == pytest.approx(train) and metrics["val_loss"] == pytest.approx(val)
    assert metrics["val_acc"] == pytest.approx(accuracy)
    assert metrics["gen_efficiency"] == pytest.approx([v - t for t, v in zip(train[1:], val[1:])])
    assert metrics["stability"] == pytest.approx([abs(a - b) / a for a, b in itertools.pairwise(val)], rel=1e-6)
    assert metrics["class_accuracy"][0] == pytest.approx(classes["0"])
    assert metrics["adversarial_robustness"] == pytest.approx(robustness)
    result = pab.evaluate_trajectory()
    assert result["overall_stability"]["mean"] == pytest.approx(expected["stability_mean"], rel=1e-6)
    assert result["overall_stability"]["std"] == pytest.approx(expected["stability_std"], rel=1e-6)
    gen = result["generalization"]
    assert gen["final_gap"] == pytest.approx(expected["final_gap"]) and gen["max_gap"] == pytest.approx(
        expected["max_gap"])
    assert (gen["gap_trend"], gen["early_stopping_epoch"]) == (expected["gap_trend"], expected["early_stopping_epoch"])
    patterns = result["class_patterns"]
    assert patterns["early_classes"] == [int(c) for c in expected["early"]]
    assert patterns["late_classes"] == [int(c) for c in expected["late"]]
    rob = result["robustness"]
    assert (rob["peak_epoch"], rob["peak_value"], rob["final_value"]) == (
        expected["peak_epoch"], pytest.approx(expected["peak_value"]), pytest.approx(expected["final_value"]))
    assert rob["degradation"] == pytest.approx(expected["degradation"])
    assert sorted(result["recommendations"]) == sorted(expected["recommendations"])
    text = pab.summarize()
    assert f"Optimal early stopping: epoch {expected['early_stopping_epoch']}" in text
    # the run is ours: completed, numbered checkpoints every save_frequency epochs
    assert read_run_json(pab.run_dir).status == RunStatus.COMPLETED
    numbered = sorted(p.name for p in (pab.run_dir / "checkpoints").glob("epoch_*.pt"))
    assert numbered == [f"epoch_{e:04d}.pt" for e in range(5, epochs + 1, 5)]
    state = torch.load(pab.run_dir / "checkpoints" / numbered[0], weights_only=True)
    assert set(state["model"]) == set(model.state_dict())
    assert evaluate_trajectory(tmp_path / "pab")["generalization"] == gen
    assert list(compare_models([tmp_path / "pab", tmp_path / "empty"], ["a", "b"])) == ["a"]


def test_accuracies_given_at_some_epochs_keep_their_epochs(tmp_path):
    """pabkit's own example gives the adversarial accuracy every 5th epoch: its peak is an epoch given."""
    model = _model()
    with ProcessAwareBenchmark(tmp_path / "pab", track_representations=False) as pab:
        for epoch in range(1, 11):
            sparse = epoch % 5 == 0
            pab.track_epoch(model, epoch, 1.0 / epoch, 1.1 / epoch, 0.5, 0.5,
                            class_accuracies={0: 0.9 if epoch == 5 else 0.5} if sparse else None,
                            adversarial_acc={5: 0.5, 10: 0.2}[epoch] if sparse else None)
    assert pab.metrics["adversarial_robustness"] == [0.5, 0.2] and pab.metrics["class_accuracy"][0] == [0.9, 0.5]
    epochs = pab.metrics["epochs"]
    assert epochs["adversarial_robustness"] == [5, 10] and epochs["class_accuracy"] == {0: [5, 10]}
    assert epochs["train_loss"] == list(range(1, 11))
    result = pab.evaluate_trajectory()
    assert (result["robustness"]["peak_epoch"], result["robustness"]["final_value"]) == (5, 0.2)
    assert result["class_patterns"]["early_classes"] == [] and result["class_patterns"]["late_classes"] == []
    figure = plot_pab_summary(pab.metrics)  # each list drawn at its epochs, not at 1, 2
    lines = {line.get_label(): list(line.get_xdata()) for ax in figure.axes for line in ax.get_lines()}
    assert lines["adversarial accuracy"] == [5, 10] and lines["clean (val) accuracy"] == list(range(1, 11))
    classes = plot_pab_summary({"class_accuracy": {0: [0.9, 0.95], 1: [0.2, 0.3, 0.8]},
                                "epochs": {"class_accuracy": {0: [5, 10], 1: [2, 6, 10]}}})
    lines = {line.get_label(): list(line.get_xdata()) for line in classes.axes[2].get_lines()}
    assert lines == {"class 0 (early)": [5, 10], "class 1 (late)": [2, 6, 10]}


def test_stability_and_its_minimum_read_the_same_epochs(tmp_path):
    """A loop tracking epoch 0 (before training, as track_learning_curve does): `metrics["stability"]`
    and every one of mean, std, max and min read the epochs after training began."""
    val = [1.0, 0.99, 0.7, 0.6, 0.5, 0.45]
    with ProcessAwareBenchmark(tmp_path / "pab", track_representations=False) as pab:
        for epoch, loss in enumerate(val):
            pab.track_epoch(_model(), epoch, loss, loss, 0.5, 0.5)
    stability, listed = pab.evaluate_trajectory()["overall_stability"], pab.metrics["stability"]
    assert listed == pytest.approx([abs(a - b) / a for a, b in itertools.pairwise(val[1:])])
    assert pab.metrics["epochs"]["stability"] == [2, 3, 4, 5]
    assert (stability["min"], stability["max"]) == pytest.approx((min(listed), max(listed)))
    assert stability["mean"] == pytest.approx(sum(listed) / len(listed))
    assert "Training duration: 5 epochs" in pab.summarize()


def test_a_class_measured_no_more_is_still_classified_as_pabkit_does(tmp_path):
    """pabkit pads a shorter class list: class 0, learned at its second entry, is early there and here."""
    pab = ProcessAwareBenchmark(tmp_path / "pab")
    pab.metrics = {"train_loss": [1.0, 0.7, 0.5, 0.4, 0.35, 0.3], "val_loss": [1.1, 0.8, 0.7, 0.72, 0.75, 0.8],
                   "class_accuracy": {0: [0.5, 0.85, 0.9], 1: [0.1, 0.2, 0.3, 0.5, 0.7, 0.85]}}
    assert pab.evaluate_trajectory()["class_patterns"]["early_classes"] == [0]


def test_track_learning_curve_with_adversarial_test_measures_robustness_every_epoch(tmp_path):
    from pab_campaign.compat.pabkit import track_learning_curve

    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.arange(64) % 3
    pab = track_learning_curve(nn.Linear(4, 3), ((x, y), (x, y)), epochs=2, batch_size=32, device="cpu",
                               checkpoint_dir=tmp_path, adversarial_test=True)
    assert pab.metrics["epochs"]["adversarial_robustness"] == [0, 1, 2]
    robustness = pab.evaluate_trajectory()["robustness"]
    assert robustness["final_value"] == pytest.approx(pab.metrics["adversarial_robustness"][-1])
    assert "Training duration: 2 epochs" in pab.summarize()


def test_a_non_finite_loss_ends_the_run_diverged_and_the_loop_goes_on(tmp_path, caplog):
    model = _model()
    with ProcessAwareBenchmark(tmp_path / "pab", track_representations=False) as pab:
        for epoch, loss in enumerate([1.0, 0.8, float("nan"), 0.5], start=1):
            pab.track_epoch(model, epoch, loss, loss, 0.5, 0.5)
    assert read_run_json(pab.run_dir).status == RunStatus.DIVERGED
    assert len(pab.metrics["train_loss"]) == 3 and "tracking stopped" in caplog.text


def test_metrics_set_from_pabkits_lists_are_evaluated_as_pabkit_does(tmp_path):
    train, val, classes, robustness = _curves(9, 4)
    expected = pabkit_evaluate(train, val, classes, robustness)
    pab = ProcessAwareBenchmark(tmp_path / "pab")
    pab.metrics = {"train_loss": train, "val_loss": val, "train_acc": [0.5] * 9, "val_acc": [0.4] * 9,
                   "class_accuracy": {int(c): accs for c, accs in classes.items()},
                   "adversarial_robustness": robustness}
    result = pab.evaluate_trajectory()
    assert result["generalization"]["early_stopping_epoch"] == expected["early_stopping_epoch"]
    assert result["overall_stability"]["mean"] == pytest.approx(expected["stability_mean"], rel=1e-6)
    assert result["class_patterns"]["early_classes"] == [int(c) for c in expected["early"]]
    assert result["robustness"]["peak_epoch"] == expected["peak_epoch"]
    assert pab.metrics["val_loss"] == pytest.approx(val) and not (tmp_path / "pab").exists()
    with pytest.raises(ValueError, match="new ProcessAwareBenchmark"):
        pab.track_epoch(_model(), 1, 1.0, 1.0, 0.5, 0.5)


def test_our_probes_fill_the_class_lists_from_probe_data(tmp_path):
    x, y = torch.randn(48, 4), torch.arange(48) % 3
    model = _model()
    pab = ProcessAwareBenchmark(tmp_path / "pab", track_representations=True, probe_data=(x, y),
                                tracking={"probes": {"performance": {"every": 1}, "classwise": {"every": 1},
                                                     "representation": {"every": 1}}},
                                features=lambda model, x: model[1](model[0](x)))
    for epoch in range(3):
        pab.track_epoch(model, epoch, 1.0, 1.1, 0.5, 0.4, feature_extractor=None)
    pab.close()
    metrics = pab.metrics
    assert sorted(metrics["class_accuracy"]) == [0, 1, 2]
    assert all(len(v) == 3 for v in metrics["class_accuracy"].values())
    assert len(metrics["rule_evolution"]) == 2  # CKA with the previous measurement, from the second epoch


def test_a_program_that_raises_leaves_the_run_failed_and_one_that_ends_completed(tmp_path):
    script = ("import sys, torch\nfrom torch import nn\nfrom pab_campaign.compat.pabkit import ProcessAwareBenchmark\n"
              "pab = ProcessAwareBenchmark(sys.argv[1], track_representations=False)\n"
              "pab.track_epoch(nn.Linear(2, 2), 1, 1.0, 1.0, 0.5, 0.5)\n"
              "print(pab.run_dir)\n"
              "if sys.argv[2] == 'raise':\n    raise RuntimeError('out of memory')\n")
    for mode, status in (("raise", RunStatus.FAILED), ("end", RunStatus.COMPLETED)):
        done = subprocess.run([sys.executable, "-c", script, str(tmp_path / mode), mode], cwd=REPO, text=True,
                              capture_output=True, timeout=120)
        record = read_run_json(Path(done.stdout.strip().splitlines()[-1]))
        assert record.status == status
        assert (record.error or "") == ("RuntimeError: out of memory" if mode == "raise" else "")


def test_bad_save_frequency_is_refused():
    with pytest.raises(ValueError, match="save_frequency=0 must be a whole number >= 1"):
        ProcessAwareBenchmark(save_frequency=0)


def test_the_plots_draw_pabkits_lists_at_dpi_300(tmp_path):
    plot_learning_trajectory(train_losses=[1.0, 0.7, 0.5], val_losses=[1.1, 0.9, 0.8], train_accs=[0.5, 0.7, 0.8],
                             val_accs=[0.45, 0.6, 0.62], save_path=tmp_path / "trajectory.png")
    figure = plot_class_progression(class_accuracies={c: [0.1 * c, 0.2 * c, 0.25 * c] for c in range(1, 5)},
                                    save_path=tmp_path / "classes.png")
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert labels == ["class 4 (early)", "class 3 (early)", "class 1 (late)", "class 2 (late)", "learned (0.7)"]
    for name in ("trajectory.png", "classes.png"):
        with Image.open(tmp_path / name) as image:
            assert image.info["dpi"] == pytest.approx((300, 300), abs=0.1)


def test_a_dataset_that_is_not_train_and_val_and_a_model_that_is_not_a_module_are_said(tmp_path):
    from pab_campaign.compat.pabkit import track_learning_curve

    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    for dataset in ((x, y), [(x, y)], ((x, y), x)):
        with pytest.raises(ValueError, match=r"dataset must be \(train, val\)"):
            track_learning_curve(nn.Linear(4, 3), dataset, epochs=1, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match=r"model must be a torch\.nn\.Module, not object"):
        ProcessAwareBenchmark(tmp_path / "pab").track_epoch(object(), 1, 1.0, 1.0, 0.5, 0.5)
    assert not (tmp_path / "runs").exists()


def _pabkit_class_wise_progression(class_accuracies, threshold=0.8):
    """pabkit's `pab.metrics.class_wise_progression`, written out from its definition (lists of one
    length: its zero padding does not apply)."""
    early, late, unstable = [], [], []
    n = max(len(v) for v in class_accuracies.values())
    for class_id, accs in class_accuracies.items():
        first = next((i for i, a in enumerate(accs) if a >= threshold), None)
        if first is None:
            late.append(class_id)
            continue
        if any(a < threshold for a in accs[first:]):
            unstable.append(class_id)
        if first < n // 3:
            early.append(class_id)
        elif first >= (2 * n) // 3:
            late.append(class_id)
    return early, late, unstable


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pabkits_metric_functions_give_pabkits_numbers(seed):
    import numpy as np

    from pab_campaign.compat.pabkit import (
        class_wise_progression,
        generalization_efficiency,
        learning_stability,
        robustness_evolution,
        rule_evolution,
    )

    train, val, classes, robustness = _curves(9, seed)
    for previous, current in itertools.pairwise(val):
        assert learning_stability(previous, current) == pytest.approx(abs(previous - current) / (previous + 1e-8))
    assert generalization_efficiency(train[0], val[0]) == val[0] - train[0]
    assert class_wise_progression(classes) == _pabkit_class_wise_progression(classes)
    clean = [0.5 + 0.04 * e for e in range(9)]
    result = robustness_evolution(clean, robustness)
    peak = int(np.argmax(robustness))
    assert (result["peak_epoch"], result["peak_value"], result["final_value"]) == (
        peak + 1, robustness[peak], robustness[-1])
    assert result["degradation"] == pytest.approx((robustness[peak] - robustness[-1]) / (robustness[peak] + 1e-8))
    assert result["robustness_ratio"] == pytest.approx([a / (c + 1e-8) for a, c in zip(robustness, clean)])
    a, b = np.random.default_rng(seed).normal(size=(2, 4, 3))
    reference = np.linalg.norm(a.ravel() / np.linalg.norm(a) - b.ravel() / np.linalg.norm(b))
    assert rule_evolution(torch.tensor(a), b) == pytest.approx(reference)


def test_every_pabkit_plot_draws_the_lists_given(tmp_path):
    from pab_campaign.compat.pabkit.visualization import (
        compare_learning_trajectories,
        plot_generalization_gap,
        plot_pab_summary,
        plot_robustness_curve,
    )

    train, val, classes, robustness = _curves(8, 5)
    clean = [0.5 + 0.05 * e for e in range(8)]
    figure = plot_robustness_curve(clean, robustness, save_path=tmp_path / "robustness.png")
    lines = {line.get_label(): list(line.get_ydata()) for line in figure.axes[0].get_lines()}
    assert lines["clean accuracy"] == clean and lines["adversarial accuracy"] == robustness
    figure = plot_generalization_gap(train, val, save_path=tmp_path / "gap.png")
    assert list(figure.axes[0].get_lines()[0].get_ydata()) == pytest.approx([v - t for t, v in zip(train, val)])
    metrics = {"train_loss": train, "val_loss": val, "val_acc": clean, "stability": [0.1] * 7,
               "class_accuracy": {int(c): v for c, v in classes.items()}, "adversarial_robustness": robustness}
    figure = plot_pab_summary(metrics, save_path=tmp_path / "summary.png")
    assert [ax.get_title() for ax in figure.axes] == ["Loss", "Learning stability", "Class-wise learning progression",
                                                      "Adversarial robustness"]
    figure = compare_learning_trajectories({"a": metrics, "b": {}}, "train_loss", save_path=tmp_path / "compare.png")
    assert [line.get_label() for line in figure.axes[0].get_lines()] == ["a"] and "b: not tracked" in (
        figure.axes[0].get_title())
    for name in ("robustness", "gap", "summary", "compare"):
        assert Image.open(tmp_path / f"{name}.png").info["dpi"] == pytest.approx((300, 300), abs=0.5)


def test_pabkits_utils_against_sklearn_and_an_attack_written_out():
    from sklearn.metrics import recall_score

    from pab_campaign.compat.pabkit.utils import compute_class_accuracies, evaluate_adversarial_robustness

    torch.manual_seed(3)
    x, y = torch.randn(90, 4), torch.randint(0, 3, (90,))
    model = _model()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    with torch.no_grad():
        predicted = model(x).argmax(dim=1)
    expected = recall_score(y, predicted, labels=[0, 1, 2], average=None, zero_division=0)
    assert compute_class_accuracies(model, loader, 3, device="cpu") == pytest.approx(dict(enumerate(expected)))
    model.train()
    result = evaluate_adversarial_robustness(model, loader, device="cpu", epsilon=0.5)
    attacked = x.clone().requires_grad_(True)
    model.eval()
    nn.functional.cross_entropy(model(attacked), y, reduction="sum").backward()
    with torch.no_grad():
        reference = (model(x + 0.5 * attacked.grad.sign()).argmax(dim=1) == y).double().mean().item()
    clean = (predicted == y).double().mean().item()
    assert result["clean_accuracy"] == pytest.approx(clean)
    assert result["adversarial_accuracy"] == pytest.approx(reference)
    assert result["robustness_ratio"] == pytest.approx(reference / clean)
    model.zero_grad(set_to_none=True)
    model.train()
    evaluate_adversarial_robustness(model, loader, device="cpu")
    assert model.training and all(p.grad is None for p in model.parameters())  # mode kept, no gradients left
