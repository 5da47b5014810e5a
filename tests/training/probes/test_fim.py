import pytest
import torch
from torch.nn import functional as F

from pab_campaign.training.probes.fim import FimProbe, dual_gram, fim_norm_from_gradients, per_sample_gradients
from tests.helpers import make_context, make_model


def test_orthogonal_equal_norm_gradients_give_one():
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(50, 8, generator=g, dtype=torch.float64))
    assert fim_norm_from_gradients([3.0 * q.T]) == pytest.approx(1.0, rel=1e-12)


def test_identical_gradients_give_one_over_n_and_zero_gives_nan():
    assert fim_norm_from_gradients([torch.ones(10, 6)]) == pytest.approx(0.1)
    assert torch.isnan(torch.tensor(fim_norm_from_gradients([torch.zeros(4, 3)])))


def test_blocks_and_column_chunks_give_the_gram_of_the_whole_matrix():
    g = torch.randn(6, 11, generator=torch.Generator().manual_seed(1))
    whole = g.double() @ g.double().T / 6
    torch.testing.assert_close(dual_gram([g[:, :4], g[:, 4:]], column_chunk=3), whole)


@pytest.mark.parametrize("chunk_size", [5, 128])
def test_vmap_gradients_equal_a_per_sample_backward_loop_with_batchnorm(synthetic_data, chunk_size):
    model = make_model(synthetic_data, norm="batchnorm")
    model(synthetic_data.train.x[:32])  # move the running statistics away from their init
    model.eval()
    x, y = synthetic_data.val.x[:12], synthetic_data.val.y[:12]
    blocks = per_sample_gradients(model, x, y, chunk_size=chunk_size)
    assert [b.shape for b in blocks] == [(12, p.numel()) for p in model.parameters()]
    rows = []
    for i in range(len(x)):
        model.zero_grad()
        F.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    loop = torch.stack(rows)
    torch.testing.assert_close(torch.cat(blocks, dim=1), loop, rtol=1e-4, atol=1e-6)
    assert fim_norm_from_gradients(blocks) == pytest.approx(fim_norm_from_gradients([loop]), rel=1e-5)


def test_probe_restores_train_mode_and_leaves_grads_alone(synthetic_data):
    model = make_model(synthetic_data, norm="batchnorm")
    model.train()
    rows = dict((r[1], r[3]) for r in FimProbe(samples=16).measure(make_context(synthetic_data, model)))
    assert 0 < rows["fim_norm"] <= 1 and rows["fim_trace"] > 0
    assert model.training and all(p.grad is None for p in model.parameters())


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="samples"):
        FimProbe(samples=1)
