"""mbe-eval's API (`compat.mbe_eval`, `compat.metric_audit`) against mbe-eval 0.1.0 itself."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from mbe_eval import MBEEvaluator as ReferenceEvaluator
from metric_audit import sci_tracker
from PIL import Image
from torch import nn

from pab_campaign.analysis.mbe.arrays import simulate
from pab_campaign.compat.mbe_eval import MBEEvaluator, simulate_mbe_evaluation
from pab_campaign.compat.metric_audit import NumpySCITracker, pytorch_sci, sci_spectrum
from pab_campaign.compat.modeldiff import ModelDiff

MBE_EVAL_FIELDS = ["metric_name", "baseline_name", "absolute_r", "absolute_p", "partial_r", "partial_p",
                   "is_loss_proxy"]


@pytest.mark.parametrize("metric", ["loss_proxy", "independent"])
def test_evaluator_equals_mbe_eval_on_its_demo(tmp_path, capsys, metric):
    runs = simulate()
    values = getattr(runs, metric)
    reference = ReferenceEvaluator("Gradient L2 Norm", "Early Val Loss").evaluate(
        values, runs.early_loss, runs.final_acc, output_dir=str(tmp_path / "theirs"))
    capsys.readouterr()
    ours = MBEEvaluator("Gradient L2 Norm", "Early Val Loss").evaluate(
        values, runs.early_loss, runs.final_acc, output_dir=tmp_path / "ours")
    printed = capsys.readouterr().out
    fields = [f.name for f in dataclasses.fields(ours)]
    assert set(MBE_EVAL_FIELDS) <= set(fields)
    for name in MBE_EVAL_FIELDS:
        expected = getattr(reference, name)
        if isinstance(expected, str | bool | np.bool_):
            assert getattr(ours, name) == expected, name
        else:
            assert getattr(ours, name) == pytest.approx(float(expected), rel=1e-9), name
    assert ours.is_loss_proxy is (metric == "loss_proxy")
    for text in ("MBE Evaluation Results", "1: Absolute", "4: MBE Control", "Controlling for Early Val Loss",
                 f"{reference.absolute_r:.3f}", f"{reference.partial_p:.2e}", "DIAGNOSIS: Gradient L2 Norm"):
        assert text in printed
    figure = tmp_path / "ours" / "mbe_report_Gradient_L2_Norm.png"
    assert (tmp_path / "theirs" / figure.name).exists()  # the same file name as mbe-eval's
    with Image.open(figure) as image:
        assert image.info["dpi"] == pytest.approx((300, 300), abs=0.1)
        assert image.size[0] > 2000


def test_mbe_evals_positional_order_gives_mbe_evals_verdict(tmp_path):
    """The order that silently flipped our array API's verdict is mbe-eval's order here."""
    runs = simulate()
    report = MBEEvaluator().evaluate(runs.loss_proxy, runs.early_loss, runs.final_acc, 0.05, str(tmp_path))
    assert report.is_loss_proxy is True and report.absolute_r == pytest.approx(-0.952, abs=1e-3)


def test_a_metric_name_with_a_slash_stays_inside_output_dir(tmp_path):
    runs = simulate(n_runs=12)
    MBEEvaluator("../probe/fim norm").evaluate(runs.independent, runs.early_loss, runs.final_acc,
                                               output_dir=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["mbe_report_.._probe_fim_norm.png"]  # one file, in output_dir


def test_simulate_mbe_evaluation_prints_the_demos_stage_1(capsys):
    report = simulate_mbe_evaluation()
    assert "r = -0.938 (p = 1.872e-14)" in capsys.readouterr().out
    assert report.is_loss_proxy is True


@pytest.mark.parametrize("shape", [(7, 3), (4, 4), (5, 2, 3, 3)])
def test_numpy_matrices_give_mbe_evals_spectrum(shape):
    w = np.random.default_rng(len(shape)).normal(size=shape)
    reference = sci_tracker.sci_spectrum(w.reshape(shape[0], -1))
    ours = sci_spectrum(w)
    for key, value in reference.items():
        assert ours[key] == pytest.approx(value, rel=1e-9), key


def test_numpy_sci_tracker_equals_mbe_evals_on_a_numpy_mlp():
    class NumpyMLP:
        def __init__(self) -> None:
            rng = np.random.default_rng(3)
            self.W = [rng.normal(size=(16, 8)), rng.normal(size=(8, 16)) @ np.diag([1.0] * 4 + [0.0] * 12),
                      rng.normal(size=(3, 8))]

    model = NumpyMLP()
    theirs, ours = sci_tracker.NumpySCITracker(model), NumpySCITracker(model)
    (their_layers, their_net), (our_layers, our_net) = theirs.compute(), ours.compute()
    assert our_layers == pytest.approx(their_layers, rel=1e-9) and our_net == pytest.approx(their_net, rel=1e-9)
    for mine, reference in zip(ours.compute_full(), theirs.compute_full()):
        assert mine["sv_min"] == pytest.approx(reference["sv_min"], rel=1e-9)
        assert mine["spectral_entropy"] == pytest.approx(reference["spectral_entropy"], rel=1e-9)
    assert NumpySCITracker(model.W).compute() == ours.compute()  # a plain list of arrays too
    one = NumpySCITracker(model.W[0]).compute()  # one 2-D array is one layer, not a list of rows
    assert one == ([sci_spectrum(model.W[0])["sci"]], sci_spectrum(model.W[0])["sci"])


def test_a_diverged_matrix_gives_nan_statistics_and_its_rank_bound():
    stats = sci_spectrum(np.array([[1.0, np.nan], [0.0, 1.0]]))
    assert stats["rank_max"] == 2 and np.isnan(stats["sci"]) and np.isnan(stats["erank"])


def test_numpy_scalars_are_taken_where_python_numbers_are(tmp_path, capsys):
    rng = np.random.default_rng(0)
    metric = rng.normal(size=12)
    baseline, target = metric + rng.normal(size=12), metric + rng.normal(size=12)
    reports = [MBEEvaluator().evaluate(metric, baseline, target, alpha=alpha, output_dir=tmp_path)
               for alpha in (0.05, np.float32(0.05), np.float64(0.05))]
    assert len({repr({**dataclasses.asdict(r), "alpha": round(r.alpha, 6)}) for r in reports}) == 1
    scores = rng.normal(size=(6, 9))
    noisy = scores + rng.normal(size=(6, 9))
    diff = ModelDiff().get_A_minus_B_from_scores(scores, noisy, num_pca_comps=np.int64(2))
    assert len(diff["directions"]) == 2


def test_pytorch_sci_equals_mbe_evals_for_a_torch_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 36, 10))
    theirs, ours = sci_tracker.pytorch_sci(model), pytorch_sci(model)
    assert set(theirs) == set(ours)
    assert ours["network_sci"] == pytest.approx(theirs["network_sci"], rel=1e-6)
    for name in ("0", "2"):
        for key in ("sci", "erank", "sv_min", "spectral_entropy", "rank_max", "stable_rank"):
            assert ours[name][key] == pytest.approx(theirs[name][key], rel=1e-6), (name, key)


def test_pytorch_sci_reads_mbe_evals_layers_by_default_and_any_module_with_a_weight():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Embedding(12, 6), nn.Conv1d(6, 5, 3), nn.Flatten(), nn.Linear(5 * 4, 3))
    theirs, ours = sci_tracker.pytorch_sci(model), pytorch_sci(model)
    assert set(ours) == set(theirs) == {"3", "network_sci"}  # Linear and Conv2d alone by default
    assert ours["network_sci"] == pytest.approx(theirs["network_sci"], rel=1e-6)
    embedding = (nn.Embedding,)
    theirs, ours = sci_tracker.pytorch_sci(model, layer_types=embedding), pytorch_sci(model, layer_types=embedding)
    assert ours["0"]["sci"] == pytest.approx(theirs["0"]["sci"], rel=1e-6)  # a module without a bias
    assert type(ours["0"]["rank_max"]) is type(theirs["0"]["rank_max"]) is int
    assert np.isnan(pytorch_sci(model, layer_types=())["network_sci"])
    assert np.isnan(sci_tracker.pytorch_sci(model, layer_types=())["network_sci"])


def test_columns_of_one_value_per_run_work_and_the_figure_keeps_mbe_evals_name(tmp_path, capsys):
    runs = simulate()
    column = np.asarray(runs.loss_proxy)[:, None]
    report = MBEEvaluator("FIM norm@20", "Early Val Loss").evaluate(
        column, np.asarray(runs.early_loss)[:, None], runs.final_acc, output_dir=tmp_path)
    flat = MBEEvaluator("FIM norm@20", "Early Val Loss").evaluate(
        runs.loss_proxy, runs.early_loss, runs.final_acc, output_dir=tmp_path / "flat")
    assert report.partial_r == flat.partial_r and (tmp_path / "mbe_report_FIM_norm@20.png").is_file()
    MBEEvaluator("val/acc", "Early Val Loss").evaluate(runs.loss_proxy, runs.early_loss, runs.final_acc,
                                                      output_dir=tmp_path / "slash")
    assert [p.name for p in (tmp_path / "slash").iterdir()] == ["mbe_report_val_acc.png"]
    from pab_campaign.errors import ConfigError

    with pytest.raises(ConfigError, match=r"metric_vals has shape \(2, 3\); give one value per run"):
        MBEEvaluator("m", "b").evaluate(np.zeros((2, 3)), [1, 2], [1, 2], output_dir=tmp_path)
    with pytest.raises(ConfigError, match="target_vals must hold numbers"):
        MBEEvaluator("m", "b").evaluate([1, 2], [1, 2], ["a", "b"], output_dir=tmp_path)
    capsys.readouterr()


def test_compute_fim_norm_equals_mbe_evals():
    from mbe_eval.utils import compute_fim_norm as reference

    from pab_campaign.compat.metric_audit import compute_fim_norm

    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3))
    x, y = torch.randn(12, 5), torch.randint(0, 3, (12,))
    theirs = reference(model, nn.CrossEntropyLoss(), x, y)
    model.zero_grad(set_to_none=True)
    model.train()
    ours = compute_fim_norm(model, nn.CrossEntropyLoss(), x, y)
    assert ours == pytest.approx(theirs, rel=1e-5) and 0 < ours <= 1
    assert model.training and all(p.grad is None for p in model.parameters())
