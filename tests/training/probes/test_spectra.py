import math

import numpy as np
import pytest
import torch
from torch import nn

from pab_campaign.training.probes.spectra import METRICS, effective_rank, spectra_rows, spectrum_stats


@pytest.mark.parametrize("n", [1, 4, 9])
def test_erank_of_identity_is_n(n):
    stats = spectrum_stats(torch.eye(n))
    assert stats["erank"] == pytest.approx(n)
    assert stats["sci"] == pytest.approx(1.0)
    assert stats["stable_rank"] == pytest.approx(n)
    assert stats["comp_sparsity"] == pytest.approx(n)


def test_all_statistics_match_numpy_for_a_conv_layer():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3)
    stats = spectrum_stats(conv.weight, conv.bias)
    w = conv.weight.detach().double().numpy().reshape(5, -1)
    b = conv.bias.detach().double().numpy()
    s = np.linalg.svd(w, compute_uv=False)
    p = s / s.sum()
    expected = {
        "erank": np.exp(-(p * np.log(p)).sum()), "sci": np.exp(-(p * np.log(p)).sum()) / 5,
        "stable_rank": (s ** 2).sum() / s.max() ** 2, "l1": np.abs(w).sum(), "l2": np.sqrt((w ** 2).sum()),
        "trace": s.sum(), "spectral": s.max(), "code_sparsity": np.abs(w).sum() / np.sqrt((w ** 2).sum()),
        "comp_sparsity": s.sum() / s.max(), "sv_mean": s.mean(), "sv_var": s.var(),
        "w_mean": w.mean(), "w_median": np.sort(w.ravel())[(w.size - 1) // 2], "w_var": w.var(),
        "b_mean": b.mean(), "b_median": np.sort(b)[(b.size - 1) // 2], "b_var": b.var(),
    }
    assert set(stats) == set(METRICS) == set(expected)
    for metric, value in expected.items():
        assert stats[metric] == pytest.approx(value, rel=1e-9), metric


def test_zero_matrix_and_missing_bias():
    stats = spectrum_stats(torch.zeros(3, 4))
    assert stats["erank"] == 0 and math.isnan(stats["code_sparsity"]) and math.isnan(stats["b_mean"])
    assert effective_rank(torch.zeros(3)) == 0.0


def test_rows_per_layer_and_layer_mean_skips_missing_biases():
    model = nn.Sequential(nn.Linear(4, 3, bias=False), nn.ReLU(), nn.Linear(3, 2))
    rows = spectra_rows(model)
    per_key = {(metric, key): value for _, metric, key, value in rows}
    assert per_key[("l1", None)] == pytest.approx((per_key[("l1", "0")] + per_key[("l1", "2")]) / 2)
    assert per_key[("b_mean", None)] == pytest.approx(per_key[("b_mean", "2")])
    assert len(rows) == 3 * len(METRICS)
