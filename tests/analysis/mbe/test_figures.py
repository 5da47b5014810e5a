"""The audit figure never misleads: signed ρ with its interval as measured (a CI across 0 is drawn
across 0), a zero line, raw and partial side by side, and points coloured by the hyper-parameter
that explains the candidate best, named in the legend."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy.stats import f_oneway

from pab_campaign.analysis.mbe.figures import audit_figure, colour_groups


def audit_rows() -> pd.DataFrame:
    row = {"group": "all", "n": 40, "raw_rho": -0.2, "raw_ci_low": -0.81, "raw_ci_high": 0.56, "raw_p": 0.2,
           "raw_p_adj": 0.4, "stage1": "FAIL", "partial_rho": 0.5, "partial_ci_low": 0.2, "partial_ci_high": 0.7,
           "partial_p": 0.001, "partial_p_adj": 0.003, "verdict": "PASS", "effect_class": "survives"}
    return pd.DataFrame([row, {**row, "group": "lr=0.1", "n": 20, "raw_rho": 0.3}])


def test_of_hparams_that_split_the_runs_alike_the_config_groups_choice_colours_them():
    hparams = pd.DataFrame({"model.channels": ["[16, 32]"] * 6 + [None] * 6,
                            "model.hidden": [64] * 6 + ["[128, 64]"] * 6, "model.name": ["cnn"] * 6 + ["mlp"] * 6})
    candidate = pd.Series(np.r_[np.linspace(20, 27, 6), np.linspace(38, 42, 6)])
    groups = colour_groups(candidate, hparams)
    assert groups.name.startswith("model.name (explains")
    assert list(groups.unique()) == ["cnn", "mlp"]


def test_the_interval_is_signed_not_folded_at_zero_and_points_are_coloured_by_the_best_hparam():
    rng = np.random.default_rng(0)
    hparams = pd.DataFrame({"lr": np.repeat([0.1, 0.01], 20), "width": np.tile([8, 16], 20), "seed": range(40)})
    candidate = np.where(hparams["lr"] == 0.1, 2.0, 1.0) + rng.normal(size=40)
    values = pd.DataFrame({"probe/x": candidate, "val/acc": rng.normal(size=40)})
    # η² from one-way ANOVA's F (an independent route): F·df_b / (F·df_b + df_w)
    f = f_oneway(candidate[:20], candidate[20:]).statistic
    assert colour_groups(values["probe/x"], hparams).name == f"lr (explains {f / (f + 38):.0%} of the variance)"
    figure = audit_figure(values, None, audit_rows(), "probe/x", "val/acc", "val/loss@3", "demo", 0.05, hparams)
    try:
        scatter, forest = figure.axes
        spans = sorted(tuple(np.round(np.sort(segment[:, 0]), 2)) for collection in forest.collections
                       for segment in collection.get_segments() if np.ptp(segment[:, 0]) > 0)
        assert (-0.81, 0.56) in spans and (0.2, 0.7) in spans  # never |ρ| folded to [0, 0.81]
        assert any(line.get_xdata()[0] == 0 and line.get_color() == "black" for line in forest.get_lines())
        assert forest.get_xlim() == pytest.approx((-1.05, 1.05))
        legend = scatter.get_legend()
        assert legend.get_title().get_text().startswith("colour: lr (explains")
        assert {text.get_text() for text in legend.get_texts()} >= {"0.01 (20)", "0.1 (20)"}
        assert "40 completed runs" in " ".join(text.get_text() for text in figure.texts)
    finally:
        plt.close(figure)
    outside = audit_rows().assign(raw_rho=0.6, raw_ci_low=-0.1, raw_ci_high=0.5)  # a percentile CI may miss ρ
    figure = audit_figure(values, None, outside, "probe/x", "val/acc", "val/loss@3", "demo", 0.05, hparams)
    try:
        forest = figure.axes[1]
        spans = [tuple(np.round(np.sort(segment[:, 0]), 2)) for collection in forest.collections
                 for segment in collection.get_segments() if np.ptp(segment[:, 0]) > 0]
        assert spans.count((-0.1, 0.5)) == 2 and any(list(line.get_xdata()) == [0.6] for line in forest.get_lines())
    finally:
        plt.close(figure)
