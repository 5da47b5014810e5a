import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pab_campaign.analysis.trajectory_summary import overfitting_onset, summarize_trajectory
from pab_campaign.cli import main
from pab_campaign.store import TrajectoryBuffer, write_trajectory

VAL_LOSS = [2.0, 1.5, 1.2, 1.0, 0.9, 0.8, 0.82, 0.86, 0.9, 0.95, 1.0]
GAP = [0.0, 0.01, 0.02, 0.02, 0.03, 0.03, 0.05, 0.08, 0.1, 0.13, 0.15]


def _frame(val_loss=VAL_LOSS, gap=GAP, extra=()) -> pd.DataFrame:
    rows = [(e, "val", "loss", None, v) for e, v in enumerate(val_loss)]
    rows += [(e, "val", "gen_gap", None, v) for e, v in enumerate(gap)]
    rows += list(extra)
    return pd.DataFrame(rows, columns=["epoch", "context", "metric", "key", "value"])


def _series(values):
    return pd.Series(values, index=range(len(values)), dtype=float)


def test_onset_is_the_first_epoch_staying_five_percent_above_the_minimum():
    # minimum 0.8 at epoch 5; line 0.84; epoch 6 (0.82) is within 5 %, from epoch 7 on it stays above
    assert overfitting_onset(_series(VAL_LOSS), _series(GAP)) == 7
    assert summarize_trajectory(_frame())["overfit_onset"] == 7


def test_no_onset_when_val_loss_comes_back_or_keeps_falling():
    returns = [*VAL_LOSS[:8], 0.9, 0.83]
    assert math.isnan(overfitting_onset(_series(returns), _series(GAP[:10])))
    assert math.isnan(overfitting_onset(_series(sorted(VAL_LOSS, reverse=True)), _series(GAP)))


def test_no_onset_when_the_gap_shrinks():
    shrinking = [0.2 - 0.01 * e for e in range(len(VAL_LOSS))]
    assert math.isnan(overfitting_onset(_series(VAL_LOSS), _series(shrinking)))


def test_onset_waits_for_the_gap_to_rise():
    gap = [0.1] * 8 + [0.09, 0.2, 0.3]
    # a dip at epoch 8 does not matter: the slope over epochs 6..10 is positive, so the onset is 7 ...
    assert overfitting_onset(_series(VAL_LOSS), _series(gap)) == 7
    gap = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.4, 0.3, 0.2, 0.25]
    # ... but with the gap falling until epoch 9, the first rising window is 9..10, so the onset is 10
    assert overfitting_onset(_series(VAL_LOSS), _series(gap)) == 10


def test_stability_gap_and_early_stopping_match_independent_computations():
    summary = summarize_trajectory(_frame())
    loss = np.array(VAL_LOSS)
    stability = np.abs(loss[:-1] - loss[1:]) / (np.abs(loss[:-1]) + 1e-12)
    assert summary["stability_mean"] == pytest.approx(stability.mean())
    assert summary["stability_std"] == pytest.approx(stability.std(ddof=1))
    assert summary["stability_max"] == pytest.approx(stability.max())
    fit = stats.linregress(np.arange(1, len(GAP)), GAP[1:])
    assert summary["gap_slope"] == pytest.approx(fit.slope)
    assert summary["gap_final"] == GAP[-1] and summary["gap_max"] == max(GAP)
    assert summary["early_stop_epoch"] == 5 and summary["early_stop_val_loss"] == 0.8


def test_early_stopping_takes_the_first_minimum_and_gap_falls_back_to_accuracies():
    extra = [(e, "train", "acc", None, 0.9) for e in range(3)] + [(e, "val", "acc", None, 0.8) for e in range(3)]
    frame = _frame([1.0, 0.5, 0.5], [], extra)
    frame = frame[frame.metric != "gen_gap"]
    summary = summarize_trajectory(frame)
    assert summary["early_stop_epoch"] == 1
    assert summary["gap_final"] == pytest.approx(0.1)


def test_class_patterns_and_robustness():
    extra = []
    learned_at = {"0": 1, "1": 2, "2": 7, "3": None}  # 8 epochs: early <= 2, late > 4
    for e in range(9):
        for c, first in learned_at.items():
            value = float(first) if first is not None and e >= first else math.nan
            extra.append((e, "val", "class_learned_epoch", c, value))
            extra.append((e, "val", "class_acc", c, 0.9 if value == value else 0.3))
        extra.append((e, "val", "classes_unstable", None, 1.0 if e > 4 else 0.0))
    for e, acc in zip((0, 4, 8), (0.2, 0.7, 0.5)):
        extra.append((e, "probe", "pgd_acc", "0.1", acc))
    summary = summarize_trajectory(_frame(VAL_LOSS[:9], GAP[:9], extra))
    assert (summary["class_early"], summary["class_late"], summary["class_never"]) == (2, 1, 1)
    assert summary["class_unstable"] == 1
    assert summary["class_learned_mean"] == pytest.approx(10 / 3)
    assert summary["class_acc_min"] == 0.3 and summary["class_acc_spread"] == pytest.approx(0.6)
    assert summary["pgd_acc[0.1]_peak"] == 0.7 and summary["pgd_acc[0.1]_final"] == 0.5
    assert summary["pgd_acc[0.1]_degradation"] == pytest.approx(0.2)


def test_missing_columns_are_refused():
    with pytest.raises(ValueError, match="missing"):
        summarize_trajectory(pd.DataFrame({"epoch": [0]}))


def test_summarize_command(tmp_path, capsys):
    buffer = TrajectoryBuffer()
    for e, (loss, gap) in enumerate(zip(VAL_LOSS, GAP)):
        buffer.add(e, "val", "loss", loss)
        buffer.add(e, "val", "gen_gap", gap)
    write_trajectory(tmp_path, buffer.to_table())
    assert main(["summarize", str(tmp_path)]) == 0
    output = capsys.readouterr().out
    assert "overfit_onset" in output and "early_stop_epoch" in output
    assert main(["summarize", str(tmp_path / "nope")]) == 2
    assert "not a directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["summarize", str(tmp_path / "empty")]) == 2
    assert "missing trajectory.parquet" in capsys.readouterr().err
