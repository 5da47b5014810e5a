"""The analyses' CSV files in a campaign's summary/ are untrusted input to the page: a value of the
wrong kind (text, ±inf, a number past float or int range, an empty cell) or a missing column leaves
that file out with its reason, never an internal error or a page whose JSON has no valid form."""
from __future__ import annotations

import json
import math
import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from pab_campaign.analysis.campaign.campaign import open_campaign
from pab_campaign.analysis.page.inputs import SCHEMAS
from pab_campaign.analysis.page.render import build_page, render
from pab_campaign.store import summary_dir
from tests.helpers import make_grid

AUDIT_ROW = {"group": "all", "metric": "probe/x@3", "n": 4, "raw_rho": 0.5, "raw_ci_low": 0.1, "raw_ci_high": 0.8,
             "raw_p": 0.04, "raw_p_adj": 0.04, "stage1": "PASS", "partial_rho": 0.4, "partial_ci_low": 0.1,
             "partial_ci_high": 0.7, "partial_p": 0.03, "partial_p_adj": 0.03, "verdict": "PASS",
             "is_loss_proxy": False, "effect_class": "survives", "correction": "holm", "family_size": 1,
             "partial_family_size": 1, "alpha": 0.05, "diagnosis": "probe/x@3 carries signal"}
FILES = {
    "audit.csv": pd.DataFrame([AUDIT_ROW, {**AUDIT_ROW, "metric": "val/loss@1", "raw_p_adj": math.nan,
                                           "partial_p_adj": math.nan, "stage1": "", "verdict": "baseline",
                                           "effect_class": "baseline"}]),
    # as `write_audit` writes it: run_id, hyper-parameters (an imported one may have a '/'), baseline, target,
    # candidates
    "audit_runs.csv": pd.DataFrame({"run_id": list("abcd"), "model.name": ["mlp", "mlp", "cnn", "cnn"],
                                    "optim/lr": [0.1, 0.1, 0.01, 0.01],
                                    "seed": pd.array([0, 1, 1, None], dtype="Int64"),  # one run lacks it
                                    "val/loss@1": [2.0, 1.5, 1.2, 1.0],
                                    "test/acc": [0.5, 0.6, 0.7, 0.9], "probe/x@3": [1.0, 2.0, 3.0, 4.0]}),
    "states/selection.csv": pd.DataFrame({"k": [1, 2], "n_params": [4, 9], "heldout_ll": [-9.0, -5.0],
                                          "heldout_ll_se": [0.0, 1.0], "aic": [20.0, 15.0], "bic": [21.0, 17.0],
                                          "chosen": [False, True]}),
    "states/phases.csv": pd.DataFrame({"state": [0, 1], "epochs": [5, 5], "occupancy": [0.5, 0.5], "runs": [4, 4],
                                       "epoch_from": [0.0, 5.0], "epoch_to": [4.0, 9.0],
                                       "description": ["f0 high (+1.0 sd)", "f0 low (-1.0 sd)"]}),
    "states/transitions.csv": pd.DataFrame({"from_state": [0], "to_state": [1], "occurrences": [4], "runs": [4],
                                            "probability": [0.2], "rank": [1], "feature": ["weights/f0"],
                                            "smd": [-2.0]}),
    "states/detours.csv": pd.DataFrame({"state": [1], "runs_visiting": [2], "runs_not": [2], "p": [0.5],
                                        "p_holm": [0.5]}),
    "states/hyperparameters.csv": pd.DataFrame({"state": [1], "hparam": ["model.name"], "test": ["cramers_v"],
                                                "effect": [0.3], "p": [0.4], "p_holm": [0.4],
                                                "visit_rate_by_value": ["cnn: 50%; mlp: 50%"]}),
    "diff/a_vs_b/directions.csv": pd.DataFrame({"comparison": ["B-A"], "direction": [1], "variance_a": [0.01],
                                                "variance_b": [0.05], "residual_variance": [0.06]}),
    "diff/a_vs_b/composition.csv": pd.DataFrame({"comparison": ["B-A"], "direction": [1], "subpopulation": ["train+"],
                                                 "label": [8], "count": [45], "share": [0.9]}),
}
FIGURES = ("audit/probe_x_at3.png", "states/transitions.png")


def _campaign(root, damage: dict[str, tuple[str, str]] | None = None):
    """A campaign whose summary/ holds every analysis file the page reads, with `damage` {file:
    (column, value)}: that value in the first row of that column."""
    make_grid(root, seeds=1, epochs=3)
    summary = summary_dir(root)
    for name, frame in FILES.items():
        (summary / name).parent.mkdir(parents=True, exist_ok=True)
        frame = frame.astype(object)
        if name in (damage or {}):
            column, value = damage[name]
            frame.loc[0, column] = value
        frame.to_csv(summary / name, index=False)
    for name in FIGURES:
        (summary / name).parent.mkdir(parents=True, exist_ok=True)
        plt.imsave(summary / name, np.zeros((4, 4)))
    return root


def _page(root):
    page = build_page(open_campaign(root), "pab-campaign html c")
    html = render(page)
    for block in re.findall(r'<script type="application/json" class="chart-data">(.*?)</script>', html):
        json.loads(block, parse_constant=lambda name: pytest.fail(f"{name} in the page's JSON"))
    return {section.key: section for section in page.sections}


def test_intact_analysis_files_fill_their_sections_and_charts(tmp_path):
    sections = _page(_campaign(tmp_path / "c"))
    assert not any(sections[key].missing for key in ("audit", "states", "diff"))
    (audit_figure,) = sections["audit"].figures
    chart = audit_figure.chart
    assert len(chart["points"]) == 4 and chart["curve"]
    assert (chart["metric"], chart["target"]) == ("probe/x@3", "test/acc")
    # a '/' in a hyper-parameter's name; a seed some run lacks read back whole (the CSV's 0, not 0.0)
    assert chart["runs"][0]["hparams"] == ["model.name = mlp", "optim/lr = 0.1", "seed = 0"]
    assert chart["runs"][3]["hparams"] == ["model.name = cnn", "optim/lr = 0.01"]
    (transitions,) = [f for f in sections["states"].figures if f.key == "transitions"]
    assert transitions.chart["edges"][0]["features"] == ["weights/f0: SMD -2.00"]
    assert not any("left out" in note for key in ("audit", "states", "diff") for note in sections[key].notes)


# Rounds of damage, one cell in each of several files at once (a page build each).
ROUNDS = [
    {"audit.csv": ("n", "zz"), "states/phases.csv": ("state", "zz"), "states/transitions.csv": ("rank", "zz"),
     "diff/a_vs_b/directions.csv": ("variance_a", "inf")},
    {"audit.csv": ("n", "1e400"), "states/phases.csv": ("state", "2.5"), "states/transitions.csv": ("probability", ""),
     "diff/a_vs_b/composition.csv": ("share", "zz")},
    {"audit.csv": ("alpha", "x"), "states/phases.csv": ("runs", ""), "states/transitions.csv": ("smd", "zz"),
     "diff/a_vs_b/directions.csv": ("direction", "zz")},
    {"audit.csv": ("family_size", "-3"), "states/phases.csv": ("occupancy", "inf"),
     "states/transitions.csv": ("to_state", "1e400")},
    {"audit.csv": ("raw_rho", "zz"), "diff/a_vs_b/composition.csv": ("direction", "1.5")},
]


@pytest.mark.parametrize("damage", ROUNDS, ids=lambda damage: ",".join(f"{c}={v}" for c, v in damage.values()))
def test_a_value_of_the_wrong_kind_leaves_its_file_out_with_the_reason(tmp_path, damage):
    sections = _page(_campaign(tmp_path / "c", damage))
    for name, (column, value) in damage.items():
        section = sections[{"audit.csv": "audit", "states": "states", "diff": "diff"}[name.split("/")[0]]]
        said = [text for text in [*section.notes, section.missing.text if section.missing else ""]
                if name.rsplit("/", 1)[-1] in text]
        assert any(f"column {column!r} holds" in text for text in said), (name, value, said)


@pytest.mark.parametrize("name", ["audit.csv", "states/phases.csv", "states/transitions.csv",
                                  "diff/a_vs_b/directions.csv", "diff/a_vs_b/composition.csv"])
def test_a_missing_column_leaves_its_file_out_with_the_reason(tmp_path, name):
    root = _campaign(tmp_path / "c")
    path = summary_dir(root) / name
    frame = pd.read_csv(path)
    dropped = next(iter(SCHEMAS[path.stem]))
    frame.drop(columns=[dropped]).to_csv(path, index=False)
    sections = _page(root)
    said = " ".join(note for section in sections.values() for note in
                    [*section.notes, section.missing.text if section.missing else ""])
    assert path.name in said and (repr(dropped) in said or "earlier version" in said)


@pytest.mark.parametrize(("column", "value"), [("probe/x@3", "inf"), ("probe/x@3", "zz"), ("test/acc", "-inf"),
                                                ("test/acc", "")])
def test_a_run_without_two_finite_values_is_left_out_of_the_audit_chart(tmp_path, column, value):
    sections = _page(_campaign(tmp_path / "c", {"audit_runs.csv": (column, value)}))
    (figure,) = sections["audit"].figures
    chart = figure.chart
    assert len(chart["points"]) == 3
    assert np.isfinite(np.array(chart["curve"], dtype=float)).all()
    coloured = {chart["runs"][run]["id"]: chart["groups"][group] for _, _, group, run in chart["points"]}
    assert coloured == {"b": "mlp", "c": "cnn", "d": "cnn"}  # each run keeps its own colour
