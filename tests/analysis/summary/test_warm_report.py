"""warm_report's groups equal build_report's summary row for row, and best_order orders groups as
pandas' sort_values does (the full path's former implementation, an independent reference)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pab_campaign.analysis.campaign.campaign import open_campaign
from pab_campaign.analysis.campaign.warm import read_warm
from pab_campaign.analysis.summary.report import build_report
from pab_campaign.analysis.summary.report_plan import best_order
from pab_campaign.analysis.summary.warm_report import warm_report
from tests.helpers import make_grid, write_run


def _same(a: object, b: object) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize("epoch", ["last", "best"])
def test_warm_rows_equal_the_full_summary(tmp_path, epoch):
    make_grid(tmp_path, seeds=3, epochs=3)
    write_run(tmp_path, "zz-lone", {"model.name": "rnn", "optimizer.lr": 0.5, "seed": 0},
              {("val", "loss"): [1.0, math.inf], ("val", "acc"): [0.1, 0.2]})
    report = build_report(open_campaign(tmp_path), epoch=epoch)  # builds the index
    warm = warm_report(read_warm(tmp_path), None, None, None, epoch)
    assert warm is not None and warm.groupby == report.groupby and warm.metrics == report.metrics
    assert warm.notes == report.notes and len(warm.rows) == len(report.summary) == 5
    for ours, theirs in zip(warm.rows, report.summary.to_dict("records")):
        assert list(ours) == list(theirs)
        assert all(_same(ours[k], theirs[k]) for k in ours), (ours, theirs)


def test_best_order_equals_pandas_sort_values():
    rng = np.random.default_rng(0)
    means = rng.choice([0.1, 0.2, 0.3, np.nan], size=40)  # ties and NaN
    frame = pd.DataFrame({"g": range(40), "val/acc.mean": means, "val/loss.mean": means})
    rows = frame.to_dict("records")
    for metric, ascending in (("val/acc", False), ("val/loss", True)):
        expected = frame.sort_values(f"{metric}.mean", ascending=ascending, na_position="last", kind="stable")
        assert best_order(rows, [metric], metric, None) == expected.index.tolist()
        assert best_order(rows, [metric], metric, 7) == expected.index.tolist()[:7]
    assert best_order(rows, ["val/acc"], None, 3) == [0, 1, 2]
