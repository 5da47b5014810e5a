"""Curve figures: a group's colour is the same in every panel and in the legend; bands stay within
the values a metric can take; epochs are ticked as whole numbers."""
from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from pab_campaign.analysis.plots.curves import plot_curves, robustness_figure
from pab_campaign.analysis.plots.style import save_png, write_png


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
        assert legend.get_title().get_text() == "optimizer.lr"
        shown = {text.get_text(): line.get_color() for text, line in zip(legend.get_texts(), legend.get_lines())}
        assert shown == {name.removeprefix("optimizer.lr="): next(iter(seen)) for name, seen in colour.items()}
        assert list(shown) == ["0.02", "0.1"]
    finally:
        plt.close(figure)


def test_a_group_of_runs_lacking_the_hyper_parameter_is_labelled_missing():
    frame = curves_frame().astype({"optimizer.lr": object})
    frame.loc[frame["optimizer.lr"] == 0.02, "optimizer.lr"] = np.nan  # as build_curves groups runs lacking it
    figure = plot_curves(frame, ["optimizer.lr"], "demo")
    try:
        (legend,) = figure.legends
        assert [text.get_text() for text in legend.get_texts()] == ["0.1", "missing"]
        assert {line.get_label() for ax in figure.axes for line in ax.get_lines()} == {
            "optimizer.lr=0.1", "optimizer.lr=missing"}
    finally:
        plt.close(figure)


def test_the_title_and_the_legend_of_many_groups_do_not_overlap():
    rows = [{"model.name": model, "optimizer.name": name, "optimizer.lr": lr, "label": label, "epoch": epoch,
             "runs": 5, "mean": lr + epoch / 10, "std": 0.01, "ci95": 0.02}
            for model in ("cnn", "mlp") for name in ("adam", "sgd") for lr in (0.001, 0.01, 0.1)
            for label in ("val/acc", "val/loss", "test/acc", "test/loss") for epoch in range(5)]
    figure = plot_curves(pd.DataFrame(rows), ["model.name", "optimizer.name", "optimizer.lr"], "a_campaign_name")
    try:
        write_png(figure, io.BytesIO())
        renderer = figure.canvas.get_renderer()
        title, (legend,) = figure.get_suptitle(), figure.legends
        assert title.startswith("a_campaign_name: 4 metrics")
        assert not figure._suptitle.get_window_extent(renderer).overlaps(legend.get_window_extent(renderer))
        assert [text.get_text() for text in legend.get_texts()][:2] == ["cnn, adam, 0.001", "cnn, adam, 0.01"]
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


def many_groups(count: int, epochs: int = 4, decades: float = 0.0) -> pd.DataFrame:
    """val/loss curves of `count` groups of lr (3 runs each); group i ends at loss i + 1 and the
    curves fall over `decades` decades."""
    rows = [{"optimizer.lr": float(i), "label": "val/loss", "epoch": e, "runs": 3,
             "mean": (i + 1) * 10 ** (decades * (1 - e / (epochs - 1))), "std": 0.1, "ci95": 0.2}
            for i in range(count) for e in range(epochs)]
    return pd.DataFrame(rows)


def test_thirteen_groups_get_thirteen_distinct_styles_and_past_twelve_the_best_are_shown():
    from pab_campaign.analysis.plots.groups import MAX_GROUPS, group_style

    triples = {(s.colour, s.line, s.marker) for s in map(group_style, range(13))}
    assert len(triples) == 13 and len({(s.colour, s.line) for s in map(group_style, range(32))}) == 32
    figure = plot_curves(many_groups(13), ["optimizer.lr"], "demo")
    try:
        lines = [line for line in figure.axes[0].get_lines()]
        assert len(lines) == MAX_GROUPS
        drawn = {(line.get_color(), line.get_linestyle(), line.get_marker()) for line in lines}
        assert len(drawn) == MAX_GROUPS
        # the highest final loss (group lr=12.0) is the one left out, and the caption says so
        assert "optimizer.lr=12.0" not in {line.get_label() for line in lines}
        caption = figure.get_supxlabel().replace("\n", " ")
        assert "12 of 13 groups shown (lowest final val/loss); 1 left out" in caption
        assert "39 completed runs" in caption and "CI95" in caption
    finally:
        plt.close(figure)


def test_loss_curves_spanning_more_than_two_decades_default_to_log_scale_and_log_y_forces_it():
    for decades, log_y, scale in ((3.0, None, "log"), (1.0, None, "linear"), (1.0, True, "log"),
                                  (3.0, False, "linear")):
        figure = plot_curves(many_groups(2, decades=decades), ["optimizer.lr"], "demo", log_y=log_y)
        try:
            assert figure.axes[0].get_yscale() == scale, (decades, log_y)
        finally:
            plt.close(figure)
