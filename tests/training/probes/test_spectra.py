import math

import numpy as np
import pytest
import torch
from metric_audit.sci_tracker import sci_spectrum
from omegaconf import OmegaConf
from sklearn.datasets import load_digits
from torch import nn

from pab_campaign.training.models import build_model
from pab_campaign.training.probes.spectra import (
    LATENT_STATE_METRICS,
    METRICS,
    effective_rank,
    spectra_rows,
    spectrum_stats,
)


@pytest.mark.parametrize("n", [1, 4, 9])
def test_erank_of_identity_is_n(n):
    stats = spectrum_stats(torch.eye(n))
    assert stats["erank"] == pytest.approx(n)
    assert stats["sci"] == pytest.approx(1.0)
    assert stats["stable_rank"] == pytest.approx(n)
    assert stats["nuclear"] == pytest.approx(n)
    assert stats["trace"] == pytest.approx(n)
    assert stats["comp_sparsity"] == pytest.approx(n)


def test_all_statistics_match_numpy_for_a_conv_layer():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3)
    stats = spectrum_stats(conv.weight, conv.bias)
    w = conv.weight.detach().double().numpy().reshape(5, -1)
    b = conv.bias.detach().double().numpy()
    s = np.linalg.svd(w, compute_uv=False)
    p = s / s.sum()
    l1, l2, trace = np.abs(w).sum(), np.sqrt((w ** 2).sum()), np.trace(w)
    expected = {
        "erank": np.exp(-(p * np.log(p)).sum()), "sci": np.exp(-(p * np.log(p)).sum()) / 5,
        "stable_rank": (s ** 2).sum() / s.max() ** 2, "nuclear": s.sum(), "spectral_entropy": -(p * np.log(p)).sum(),
        "sv_min": s.min(), "rank_max": 5, "l1": l1, "l2": l2, "trace": trace,
        "spectral": s.max(), "code_sparsity": l1 / l2, "comp_sparsity": trace / s.max(), "sv_mean": s.mean(),
        "sv_var": s.var(ddof=1), "w_mean": w.mean(), "w_median": np.sort(w.ravel())[(w.size - 1) // 2],
        "w_var": w.var(ddof=1), "b_mean": b.mean(), "b_median": np.sort(b)[(b.size - 1) // 2], "b_var": b.var(ddof=1),
    }
    assert set(stats) == set(METRICS) == set(expected)
    for metric, value in expected.items():
        assert stats[metric] == pytest.approx(value, rel=1e-9), metric


@pytest.mark.parametrize("shape", [(6, 4), (3, 9), (5, 5)])
@pytest.mark.parametrize("rank", [None, 2])
def test_spectrum_statistics_equal_mbe_evals_sci_spectrum(shape, rank):
    """mbe-eval's `sci_spectrum` (metric_audit.sci_tracker) as the reference, full rank and rank 2."""
    rng = np.random.default_rng(sum(shape))
    w = rng.normal(size=shape)
    if rank is not None:
        w = rng.normal(size=(shape[0], rank)) @ rng.normal(size=(rank, shape[1]))
    reference = sci_spectrum(w)
    ours = spectrum_stats(torch.from_numpy(w))
    for theirs, mine in [("sci", "sci"), ("erank", "erank"), ("rank_max", "rank_max"),
                         ("spectral_entropy", "spectral_entropy"), ("sv_max", "spectral"), ("sv_min", "sv_min"),
                         ("stable_rank", "stable_rank"), ("nuclear_norm", "nuclear"), ("spectral_norm", "spectral")]:
        assert ours[mine] == pytest.approx(reference[theirs], rel=1e-9), theirs
    if rank is not None:
        assert ours["sv_min"] > 1e-3 and ours["erank"] < rank + 1e-9  # the numerically zero σ are skipped


def test_a_zero_matrix_has_zero_entropy_and_sv_min_as_in_mbe_eval():
    stats = spectrum_stats(torch.zeros(3, 4))
    reference = sci_spectrum(np.zeros((3, 4)))
    assert (stats["spectral_entropy"], stats["sv_min"], stats["rank_max"]) == (
        reference["spectral_entropy"], reference["sv_min"], reference["rank_max"]) == (0.0, 0.0, 3)


def test_trace_is_the_diagonal_sum_and_can_be_negative():
    w = torch.tensor([[-2.0, 1.0, 5.0], [0.5, -1.0, 3.0]])
    stats = spectrum_stats(w)
    assert stats["trace"] == pytest.approx(-3.0)
    assert stats["comp_sparsity"] == pytest.approx(-3.0 / float(torch.linalg.matrix_norm(w.double(), 2)))


def test_tiny_singular_values_are_zeroed_for_sv_mean_and_sv_var():
    w = torch.diag(torch.tensor([3.0, 1.0, 1e-7], dtype=torch.float64))
    stats = spectrum_stats(w)
    assert stats["sv_mean"] == pytest.approx(4.0 / 3.0)
    assert stats["sv_var"] == pytest.approx(np.var([3.0, 1.0, 0.0], ddof=1))
    assert math.isnan(spectrum_stats(torch.ones(1, 4))["sv_var"])  # one singular value: no sample variance


def test_zero_matrix_and_missing_bias():
    stats = spectrum_stats(torch.zeros(3, 4))
    assert stats["erank"] == 0 and math.isnan(stats["code_sparsity"]) and math.isnan(stats["b_mean"])
    assert effective_rank(torch.zeros(3)) == 0.0


def test_whole_model_rows_concatenate_weights_and_biases():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 3, bias=False), nn.ReLU(), nn.Linear(3, 2))
    rows = spectra_rows(model)
    per_key = {(metric, key): value for _, metric, key, value in rows}
    weights = torch.cat([model[0].weight.flatten(), model[2].weight.flatten()]).detach().double()
    assert per_key[("l1", None)] == pytest.approx((per_key[("l1", "0")] + per_key[("l1", "2")]) / 2)
    assert per_key[("w_mean", None)] == pytest.approx(float(weights.mean()))
    assert per_key[("w_var", None)] == pytest.approx(float(weights.var()))
    assert per_key[("w_median", None)] == pytest.approx(float(weights.median()))
    assert per_key[("b_mean", None)] == pytest.approx(per_key[("b_mean", "2")])  # the one layer with a bias
    assert len(rows) == 3 * len(METRICS)


def test_a_non_finite_weight_makes_the_model_row_nan():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    per_key = {(metric, key): value for _, metric, key, value in spectra_rows(model)}
    assert all(math.isnan(per_key[(metric, None)]) for metric in LATENT_STATE_METRICS)
    assert not math.isnan(per_key[("l1", "2")])


def _trained_mlp() -> nn.Module:
    """The package's MLP (hidden 32, 16) after 3 epochs of SGD on digits."""
    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(digits.target)
    cfg = OmegaConf.create({"name": "mlp", "hidden": [32, 16], "norm": "none", "dropout": 0.0})
    model = build_model(cfg, (1, 8, 8), 10)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    for _ in range(3):
        for i in range(0, len(x), 64):
            optimiser.zero_grad()
            nn.functional.cross_entropy(model(x[i:i + 64]), y[i:i + 64]).backward()
            optimiser.step()
    return model


def _reference_statistics(model: nn.Module) -> dict[str, float]:
    """The 14 statistics re-computed with the latent-state reference code's own formulas: per Linear
    layer vector norms, torch.trace, the 2-norm, torch.svd with σ < 1e-5 zeroed and torch.var
    (unbiased), averaged over layers (nanmean for the singular-value variance); mean, torch.var and
    torch.median of the concatenated weights and of the concatenated biases."""
    per_layer = []
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    for layer in linears:
        x = layer.weight.detach().double()
        singular = torch.svd(x, compute_uv=False).S
        singular[singular < 1e-5] = 0.0
        l1, l2 = torch.linalg.vector_norm(x, ord=1).item(), torch.linalg.vector_norm(x, ord=2).item()
        trace, spectral = torch.trace(x).item(), torch.linalg.matrix_norm(x, ord=2).item()
        per_layer.append({"l1": l1, "l2": l2, "trace": trace, "spectral": spectral, "code_sparsity": l1 / l2,
                          "comp_sparsity": trace / spectral, "sv_mean": torch.mean(singular).item(),
                          "sv_var": torch.var(singular).item()})
    out = {key: float(np.mean([layer[key] for layer in per_layer])) for key in per_layer[0] if key != "sv_var"}
    out["sv_var"] = float(np.nanmean([layer["sv_var"] for layer in per_layer]))
    for prefix, tensors in (("w", [m.weight for m in linears]), ("b", [m.bias for m in linears])):
        flat = torch.cat([t.detach().double().flatten() for t in tensors])
        out.update({f"{prefix}_mean": torch.mean(flat).item(), f"{prefix}_var": torch.var(flat).item(),
                    f"{prefix}_median": torch.median(flat).item()})
    return out


def test_the_14_statistics_equal_the_reference_formulas_on_a_trained_model():
    model = _trained_mlp()
    ours = {metric: value for _, metric, key, value in spectra_rows(model) if key is None}
    reference = _reference_statistics(model)
    assert set(reference) == set(LATENT_STATE_METRICS)
    for metric in LATENT_STATE_METRICS:
        assert ours[metric] == pytest.approx(reference[metric], rel=1e-6), metric
