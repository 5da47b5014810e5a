import numpy as np
import pytest
import torch

from pab_campaign.training.probes.representation import RepresentationProbe, linear_cka
from tests.helpers import make_context, make_model


def _cka_reference(x: np.ndarray, y: np.ndarray) -> float:
    """HSIC form with centring matrix H on Gram matrices (an independent route to linear CKA)."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    gram_x, gram_y = h @ x @ x.T @ h, h @ y @ y.T @ h
    return float((gram_x * gram_y).sum() / np.sqrt((gram_x * gram_x).sum() * (gram_y * gram_y).sum()))


def test_cka_of_identical_features_is_one():
    x = torch.randn(50, 7, generator=torch.Generator().manual_seed(0))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


def test_cka_is_invariant_to_rotation_and_scale_and_matches_the_gram_form():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 6, generator=g)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g))
    assert linear_cka(x, 3.0 * x @ q) == pytest.approx(1.0, abs=1e-10)
    y = torch.randn(40, 9, generator=g)
    assert linear_cka(x, y) == pytest.approx(_cka_reference(x.double().numpy(), y.double().numpy()), rel=1e-10)
    assert 0 <= linear_cka(x, y) < 1


def test_cka_refuses_different_examples():
    with pytest.raises(ValueError, match="same examples"):
        linear_cka(torch.zeros(3, 2), torch.zeros(4, 2))


def test_probe_compares_with_previous_and_initial_features(synthetic_data):
    model = make_model(synthetic_data)
    probe, state = RepresentationProbe(), {}
    rows0 = probe.measure(make_context(synthetic_data, model, 0, state))
    assert rows0 == [("probe", "cka_init", None, pytest.approx(1.0))]
    with torch.no_grad():
        model.features[0].weight.mul_(-1.0)
    rows1 = {r[1]: r[3] for r in probe.measure(make_context(synthetic_data, model, 1, state))}
    assert rows1["cka_prev"] == pytest.approx(rows1["cka_init"])
    assert rows1["cka_prev"] < 1
    assert model.training
