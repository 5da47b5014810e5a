"""Curve figures: a group's colour is the same in every panel and in the legend."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from pab_campaign.analysis.plots.curves import plot_curves


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
