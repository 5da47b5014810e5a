import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pab_campaign.analysis.summary.recommendations import Rules, recommend
from pab_campaign.analysis.summary.trajectory import (
    class_cutoffs,
    overfitting_onset,
    summarize_run,
    summarize_trajectory,
)
from pab_campaign.cli import main
from pab_campaign.store import TrajectoryBuffer, write_trajectory

VAL_LOSS = [2.0, 1.5, 1.2, 1.0, 0.9, 0.8, 0.82, 0.86, 0.9, 0.95, 1.0]
GAP = [0.0, 0.01, 0.02, 0.02, 0.03, 0.03, 0.05, 0.08, 0.1, 0.13, 0.15]
COLUMNS = ["epoch", "context", "metric", "key", "value"]


def _frame(val_loss=VAL_LOSS, gap=GAP, extra=()) -> pd.DataFrame:
    rows = [(e, "val", "loss", None, v) for e, v in enumerate(val_loss)]
    rows += [(e, "val", "gen_gap", None, v) for e, v in enumerate(gap)]
    rows += list(extra)
    return pd.DataFrame(rows, columns=COLUMNS)


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
    loss = np.array(VAL_LOSS[1:])  # epochs >= 1: after training began
    stability = np.abs(loss[:-1] - loss[1:]) / (np.abs(loss[:-1]) + 1e-12)
    assert summary["stability_mean"] == pytest.approx(stability.mean())
    assert summary["stability_std"] == pytest.approx(stability.std(ddof=0))
    assert summary["stability_max"] == pytest.approx(stability.max())
    assert summary["stability_max_epoch"] == 2 + int(np.argmax(stability))
    fit = stats.linregress(np.arange(1, len(GAP)), GAP[1:])
    assert summary["acc_gap_slope"] == pytest.approx(fit.slope)
    assert summary["acc_gap_final"] == GAP[-1] and summary["acc_gap_max"] == max(GAP[1:])
    assert summary["acc_gap_trend"] == pytest.approx(GAP[-1] - GAP[1])
    assert summary["early_stop_epoch"] == 5 and summary["early_stop_val_loss"] == 0.8
    assert math.isnan(summary["loss_gap_final"])  # neither val/loss_gap nor train/loss in this trajectory


def test_early_stopping_takes_the_first_minimum_and_gaps_fall_back_to_their_parts():
    extra = [(e, "train", "acc", None, 0.9) for e in range(3)] + [(e, "val", "acc", None, 0.8) for e in range(3)]
    extra += [(e, "train", "loss", None, v) for e, v in enumerate([1.0, 0.4, 0.3])]
    frame = _frame([1.0, 0.5, 0.5], [], extra)
    frame = frame[frame.metric != "gen_gap"]
    summary = summarize_trajectory(frame)
    assert summary["early_stop_epoch"] == 1
    assert summary["acc_gap_final"] == pytest.approx(0.1)
    assert summary["loss_gap_final"] == pytest.approx(0.2) and summary["loss_gap_max"] == pytest.approx(0.2)
    assert summary["loss_gap_trend"] == pytest.approx(0.2 - 0.1)


# ---- pabkit parity -------------------------------------------------------------------------------
def pabkit_evaluate(train_loss, val_loss, class_acc, robustness):
    """pabkit's `ProcessAwareBenchmark.evaluate_trajectory` and `summarize`, written out again from
    its definitions: lists hold one value per tracked epoch (after each training epoch)."""
    n = len(train_loss)
    stability = [abs(val_loss[i - 1] - val_loss[i]) / (val_loss[i - 1] + 1e-8) for i in range(1, n)]
    gap = [v - t for t, v in zip(train_loss, val_loss)]
    early, late = [], []
    for class_id, accs in class_acc.items():
        converged = next((i for i, acc in enumerate(accs) if acc >= 0.8), len(accs))
        if converged < n // 3:
            early.append(class_id)
        elif converged > 2 * n // 3:
            late.append(class_id)
    peak = max(robustness)
    result = {
        "stability_mean": sum(stability) / len(stability), "stability_std": float(np.std(stability)),
        "final_gap": gap[-1], "max_gap": max(gap), "gap_trend": "increasing" if gap[-1] > gap[0] else "decreasing",
        "early_stopping_epoch": val_loss.index(min(val_loss)) + 1, "early": sorted(early), "late": sorted(late),
        "peak_epoch": robustness.index(peak) + 1, "peak_value": peak, "final_value": robustness[-1],
        "degradation": (peak - robustness[-1]) / peak if peak > 0 else 0,
    }
    result["recommendations"] = [topic for topic, fires in (
        ("overfitting", result["gap_trend"] == "increasing"), ("robustness", result["degradation"] > 0.1),
        ("instability", result["stability_std"] > 0.1)) if fires]
    return result


def _curves(epochs: int, seed: int):
    """pabkit-style lists over epochs 1..E (random, with noise), class accuracies that cross 0.8 at
    random epochs (some never, some forgotten again), and a robustness curve."""
    rng = np.random.default_rng(seed)
    t = np.arange(1, epochs + 1)
    train = list(1.5 * np.exp(-t / 3) + rng.uniform(0, 0.05, epochs))
    val = list(1.5 * np.exp(-t / 4) + 0.02 * t * rng.uniform(0, 2) + rng.uniform(0, 0.3, epochs))
    classes = {}
    for c in range(6):
        learn_at = rng.integers(0, epochs + 2)  # epochs + 1: never within the run
        accs = [0.5 + 0.25 * rng.random() if i < learn_at else 0.8 + 0.2 * rng.random() for i in range(epochs)]
        if c == 5 and learn_at < epochs - 1:
            accs[-1] = 0.6  # forgotten at the end
        classes[str(c)] = accs
    robustness = list(rng.uniform(0.05, 0.6, epochs))
    return train, val, classes, robustness


def _our_trajectory(train, val, classes, robustness, loss_gap_rows: bool) -> pd.DataFrame:
    """The same run as our trajectory: epoch 0 measured before training, epochs 1..E the lists; the
    class-wise rows as the class-wise probe writes them (first-learned epoch, forgets)."""
    rows = []
    before = {"train_loss": 2.3, "val_loss": 2.31, "robustness": 0.95, "class_acc": 0.1}
    for epoch in range(len(train) + 1):
        tl = before["train_loss"] if epoch == 0 else train[epoch - 1]
        vl = before["val_loss"] if epoch == 0 else val[epoch - 1]
        rows += [(epoch, "train", "loss", None, tl), (epoch, "val", "loss", None, vl)]
        if loss_gap_rows:
            rows.append((epoch, "val", "loss_gap", None, vl - tl))
        rob = before["robustness"] if epoch == 0 else robustness[epoch - 1]
        rows.append((epoch, "probe", "pgd_acc", "0.1", rob))
        for c, accs in classes.items():
            history = [before["class_acc"], *accs[:epoch]]
            above = [acc >= 0.8 for acc in history]
            first = above.index(True) if any(above) else math.nan
            forgets = sum(1 for a, b in itertools.pairwise(above) if a and not b)
            rows += [(epoch, "val", "class_acc", c, history[-1]), (epoch, "val", "class_learned_epoch", c, first),
                     (epoch, "val", "class_forgets", c, float(forgets))]
    return pd.DataFrame(rows, columns=COLUMNS)


@pytest.mark.parametrize("epochs, seed, loss_gap_rows", [(3, 0, True), (6, 1, True), (7, 2, False), (10, 3, True),
                                                         (11, 4, False), (12, 5, True), (20, 6, True)])
def test_summarize_agrees_with_pabkits_formulas(epochs, seed, loss_gap_rows, tmp_path, capsys):
    train, val, classes, robustness = _curves(epochs, seed)
    expected = pabkit_evaluate(train, val, classes, robustness)
    frame = _our_trajectory(train, val, classes, robustness, loss_gap_rows)
    got = summarize_run(frame)
    values = got.values
    assert values["loss_gap_final"] == pytest.approx(expected["final_gap"], abs=1e-12)
    assert values["loss_gap_max"] == pytest.approx(expected["max_gap"], abs=1e-12)
    assert ("increasing" if values["loss_gap_trend"] > 0 else "decreasing") == expected["gap_trend"]
    assert values["stability_mean"] == pytest.approx(expected["stability_mean"], rel=1e-6)
    assert values["stability_std"] == pytest.approx(expected["stability_std"], rel=1e-6)
    assert values["early_stop_epoch"] == expected["early_stopping_epoch"]
    assert got.classes["early"] == expected["early"] and got.classes["late"] == expected["late"]
    assert values["class_early"] == len(expected["early"]) and values["class_late"] == len(expected["late"])
    assert set(got.classes["never"]) <= set(got.classes["late"])
    assert values["pgd_acc[0.1]_peak"] == expected["peak_value"]  # epoch 0's 0.95 before training is left out
    assert values["pgd_acc[0.1]_peak_epoch"] == expected["peak_epoch"]
    assert values["pgd_acc[0.1]_final"] == expected["final_value"]
    assert values["pgd_acc[0.1]_degradation_pct"] == pytest.approx(100 * expected["degradation"], abs=1e-9)
    assert [r.topic for r in got.recommendations] == expected["recommendations"]

    # and the command line prints the same, and writes it with --json
    buffer = TrajectoryBuffer()
    for row in frame.itertuples(index=False):
        buffer.add(row.epoch, row.context, row.metric, row.value, None if pd.isna(row.key) else row.key)
    write_trajectory(tmp_path, buffer.to_table())
    assert main(["summarize", str(tmp_path), "--json", str(tmp_path / "out" / "summary.json")]) == 0
    out = capsys.readouterr().out
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["summary"]["loss_gap_final"] == pytest.approx(expected["final_gap"])
    assert written["classes"]["early"] == expected["early"] and written["classes"]["late"] == expected["late"]
    assert [r["topic"] for r in written["recommendations"]] == expected["recommendations"]
    assert f"early: {', '.join(expected['early']) or '-'}" in out


def test_class_cutoffs_follow_the_fractions_given():
    # 9 measurements after epoch 0; first-learned positions 0..8 and never
    learned = {str(c): float(c + 1) for c in range(9)} | {"9": math.nan}
    rows = [(e, "val", "class_learned_epoch", c, v if v <= e else math.nan) for e in range(10)
            for c, v in learned.items()]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    pabkit = summarize_run(frame)  # early p < 3, late p > 6 (never learned: p = 9)
    assert pabkit.classes["early"] == ["0", "1", "2"] and pabkit.classes["late"] == ["7", "8", "9"]
    assert pabkit.classes["never"] == ["9"]
    quarters = summarize_run(frame, class_cutoffs("1/4", 0.5))  # early p < 2, late p > 4
    assert quarters.classes["early"] == ["0", "1"] and quarters.classes["late"] == ["5", "6", "7", "8", "9"]
    for bad in (("2/3", "1/3"), ("x", "1"), ("0", "3/2")):
        with pytest.raises(ValueError, match="cut-offs"):
            class_cutoffs(*bad)


def test_class_accuracies_unstable_classes_and_robustness():
    extra = []
    learned_at = {"0": 1, "1": 2, "2": 7, "3": None}  # 8 measurements after epoch 0: early p < 2, late p > 5
    for e in range(9):
        for c, first in learned_at.items():
            value = float(first) if first is not None and e >= first else math.nan
            extra.append((e, "val", "class_learned_epoch", c, value))
            extra.append((e, "val", "class_acc", c, 0.9 if value == value else 0.3))
            extra.append((e, "val", "class_forgets", c, 1.0 if c == "1" and e > 4 else 0.0))
        extra.append((e, "val", "classes_unstable", None, 1.0 if e > 4 else 0.0))
    for e, acc in zip((0, 4, 8), (0.9, 0.7, 0.5)):
        extra.append((e, "probe", "pgd_acc", "0.1", acc))
    summary = summarize_run(_frame(VAL_LOSS[:9], GAP[:9], extra))
    values = summary.values
    assert (values["class_early"], values["class_late"], values["class_never"]) == (2, 2, 1)
    assert summary.classes == {"early": ["0", "1"], "late": ["2", "3"], "never": ["3"], "unstable": ["1"]}
    assert values["class_unstable"] == 1
    assert values["class_learned_mean"] == pytest.approx(10 / 3)
    assert values["class_acc_min"] == 0.3 and values["class_acc_spread"] == pytest.approx(0.6)
    assert values["pgd_acc[0.1]_peak"] == 0.7 and values["pgd_acc[0.1]_peak_epoch"] == 4
    assert values["pgd_acc[0.1]_final"] == 0.5
    assert values["pgd_acc[0.1]_degradation_pct"] == pytest.approx(100 * 0.2 / 0.7)


def test_recommendations_quote_the_numbers_that_triggered_them():
    summary = {
        "loss_gap_trend": 0.3, "loss_gap_final": 0.35, "loss_gap_max": 0.4, "overfit_onset": 6.0,
        "early_stop_epoch": 4.0, "early_stop_val_loss": 0.41,
        "pgd_acc[0.1]_peak": 0.45, "pgd_acc[0.1]_peak_epoch": 3.0, "pgd_acc[0.1]_final": 0.3,
        "pgd_acc[0.1]_degradation_pct": 100 / 3, "consistency_degradation_pct": 5.0,
        "consistency_peak": 1.0, "consistency_peak_epoch": 1.0, "consistency_final": 0.95,
        "stability_std": 0.15, "stability_max": 0.6, "stability_max_epoch": 7.0,
    }
    found = recommend(summary)
    assert [r.topic for r in found] == ["overfitting", "robustness", "instability"]
    overfitting, robustness, instability = (r.message for r in found)
    for text in ("grew by 0.3 to 0.35", "max 0.4", "from epoch 6", "early stopping at epoch 4", "0.41"):
        assert text in overfitting
    for text in ("pgd_acc[0.1] peaked at 0.45 at epoch 3", "ended at 0.3", "33.3 %", "threshold 10 %"):
        assert text in robustness
    for text in ("std 0.15", "threshold 0.1", "max 0.6 at epoch 7"):
        assert text in instability
    assert found[1].evidence["pgd_acc[0.1]_peak_epoch"] == 3
    assert [r.topic for r in recommend(summary, Rules(robustness_degradation_pct=50, instability_std=0.2))] == [
        "overfitting"]
    assert "grew by" not in recommend(summary, Rules(loss_gap_growth=0.5))[0].message  # the onset alone remains
    still_falling = recommend({**summary, "overfit_onset": math.nan})[0].message
    assert "has not risen for good yet (lowest at epoch 4 (val loss 0.41))" in still_falling
    quiet = {"loss_gap_trend": -0.1, "overfit_onset": math.nan, "stability_std": 0.01}
    assert recommend(quiet) == []


def test_missing_columns_are_refused():
    with pytest.raises(ValueError, match="missing"):
        summarize_trajectory(pd.DataFrame({"epoch": [0]}))


def test_summarize_command(tmp_path, capsys):
    buffer = TrajectoryBuffer()
    for e, (loss, gap) in enumerate(zip(VAL_LOSS, GAP)):
        buffer.add(e, "val", "loss", loss)
        buffer.add(e, "val", "gen_gap", gap)
        buffer.add(e, "val", "loss_gap", gap * 2)
    write_trajectory(tmp_path, buffer.to_table())
    assert main(["summarize", str(tmp_path), "--json", str(tmp_path / "s.json")]) == 0
    output = capsys.readouterr().out
    assert "overfit_onset" in output and "early_stop_epoch" in output and "loss_gap_trend" in output
    assert "overfitting: the loss gap (val − train loss) grew by 0.28" in output
    written = json.loads((tmp_path / "s.json").read_text())
    assert written["summary"]["class_never"] is None  # NaN becomes null: standard JSON
    assert written["summary"]["overfit_onset"] == 7 and written["class_cutoffs"] == ["1/3", "2/3"]
    assert main(["summarize", str(tmp_path), "--class-cutoffs", "1/4,1/2"]) == 0
    assert "first 1/4 / after 1/2" in capsys.readouterr().out


def test_summarize_command_says_none_for_no_onset_and_marks_what_was_not_measured(tmp_path, capsys):
    buffer = TrajectoryBuffer()
    for e, loss in enumerate([2.0, 1.5, 1.2, 1.0, 0.9]):  # still falling: no overfitting onset
        buffer.add(e, "val", "loss", loss)
    write_trajectory(tmp_path, buffer.to_table())
    assert main(["summarize", str(tmp_path)]) == 0
    output = capsys.readouterr().out
    cells = {line.split("│")[1].strip(): line.split("│")[2].strip()
             for line in output.splitlines() if line.count("│") == 3}
    assert cells["overfit_onset"] == "none" and cells["early_stop_epoch"] == "4"
    assert cells["class_acc_min"] == "-" and cells["acc_gap_final"] == "-"  # no class or train metrics
    assert "nan" not in cells.values() and "-: not measured" in output


@pytest.mark.parametrize("args, message", [
    (["nope"], "not a directory"),
    (["empty"], "missing trajectory.parquet"),
    (["run", "--class-cutoffs", "1/3"], "give two fractions"),
    (["run", "--class-cutoffs", "2/3,1/3"], "early <= late"),
    (["run", "--json", "run"], "is a directory"),
])
def test_summarize_bad_input(tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    buffer = TrajectoryBuffer()
    buffer.add(0, "val", "loss", 1.0)
    write_trajectory(tmp_path / "run", buffer.to_table())
    before = sorted(p.name for p in tmp_path.rglob("*"))
    argv = [str(tmp_path / a) if a in ("nope", "empty", "run") else a for a in args]
    assert main(["summarize", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
