"""Curve figures: a group's colour is the same in every panel and in the legend; bands stay within
the values a metric can take; epochs are ticked as whole numbers."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from pab_campaign.analysis.plots.curves import plot_curves, robustness_figure
from pab_campaign.analysis.plots.style import save_png


def curves_frame() -> pd.DataFrame:
    """Curves of two metrics: group lr=0.1 has both, group lr=0.02 only the second."""
    rows = []
    for label, groups in (("weights/erank[features.0]", [0.1]), ("weights/erank[head]", [0.02, 0.1])):
        for lr in groups:
            for epoch in range(3):
                rows.append({"optimizer.lr": lr, "label": label, "epoch": epoch, "runs": 3,
                             "mean": lr * 10 + epoch, "std": 0.1, "ci95": 0.2})
    return pd.DataFrame(rows)


def test_a_group_keeps_its_colour_in_every_panel_and_in_the_legend():
    figure = plot_curves(curves_frame(), ["optimizer.lr"], "demo")
    try:
        colour = {}
        for ax in figure.axes:
            for line in ax.get_lines():
                colour.setdefault(line.get_label(), set()).add(line.get_color())
        assert set(colour) == {"optimizer.lr=0.02", "optimizer.lr=0.1"}
        assert all(len(seen) == 1 for seen in colour.values())
        assert colour["optimizer.lr=0.02"] != colour["optimizer.lr=0.1"]
        (legend,) = figure.legends
        shown = {text.get_text(): line.get_color() for text, line in zip(legend.get_texts(), legend.get_lines())}
        assert shown == {name: next(iter(seen)) for name, seen in colour.items()}
        assert list(shown) == ["optimizer.lr=0.02", "optimizer.lr=0.1"]
    finally:
        plt.close(figure)


def band_limits(ax) -> tuple[float, float]:
    """The lowest and highest y of the CI bands drawn in `ax`."""
    ys = np.concatenate([path.vertices[:, 1] for band in ax.collections for path in band.get_paths()])
    return float(ys.min()), float(ys.max())


def test_bands_stay_within_the_values_a_metric_can_take_and_epochs_are_whole_numbers():
    rows = [{"label": label, "epoch": epoch, "runs": 2, "mean": mean, "std": 0.5, "ci95": 0.6}
            for label, mean in (("val/acc", 0.8), ("val/gen_gap", 0.05), ("val/loss", 0.2)) for epoch in range(4)]
    figure = plot_curves(pd.DataFrame(rows), [], "demo")
    try:
        accuracy, gap, loss = figure.axes[:3]
        assert band_limits(accuracy) == pytest.approx((0.2, 1.0))
        assert band_limits(gap) == pytest.approx((-0.55, 0.65))
        assert band_limits(loss) == pytest.approx((0.0, 0.8))
        for ax in (accuracy, gap, loss):
            ticks = ax.get_xticks()
            assert len(ticks) >= 2 and np.all(ticks == np.round(ticks))
    finally:
        plt.close(figure)


def test_a_dollar_in_a_group_name_is_text_not_tex(tmp_path):
    frame = curves_frame().replace({"optimizer.lr": {0.1: "price$_{$mlp"}})
    figure = plot_curves(frame, ["optimizer.lr"], "camp$aign")
    save_png(figure, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_the_robustness_figure_draws_every_group_past_the_palettes_length():
    rows = [{"optimizer.lr": lr, "label": label, "epoch": 3, "runs": 2, "mean": 0.5, "std": 0.1, "ci95": 0.1}
            for lr in range(10) for label in ("probe/clean_acc", "probe/fgsm_acc[0.1]", "probe/pgd_acc[0.1]")]
    figure = robustness_figure(pd.DataFrame(rows), ["optimizer.lr"], "demo")
    try:
        assert len(figure.axes[0].get_lines()) == 20
    finally:
        plt.close(figure)
