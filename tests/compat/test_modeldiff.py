"""ModelDiff's API (`compat.modeldiff`) against the modeldiff package's residual PCA, on scores and on
two tiny models trained here."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from modeldiff.pca import get_residual_attributions, get_variance_along_directions
from sklearn.decomposition import PCA
from torch import nn

from pab_campaign.compat.modeldiff import ModelDiff


def _reference(scores_a: np.ndarray, scores_b: np.ndarray, k: int) -> dict:
    """modeldiff.pca.residual_pca on the CPU (the package's variance step defaults to CUDA)."""
    residual = get_residual_attributions(torch.tensor(scores_a), torch.tensor(scores_b))
    pca = PCA(n_components=k).fit(residual)
    directions = torch.tensor(pca.components_, dtype=torch.float32)
    return {"directions": pca.components_, "projections": pca.transform(residual),
            "A": get_variance_along_directions(torch.tensor(scores_a), directions, device="cpu"),
            "B": get_variance_along_directions(torch.tensor(scores_b), directions, device="cpu")}


def _flipped(reference: dict) -> dict:
    """modeldiff's B − A dict keys the variances by argument position ('A' = the first, algorithm B's
    scores); ours keys them by algorithm."""
    return {**reference, "A": reference["B"], "B": reference["A"]}


def _assert_equal_up_to_sign(ours: dict, reference: dict) -> None:
    signs = np.sign(np.sum(ours["directions"] * reference["directions"], axis=1))
    assert np.allclose(ours["directions"], signs[:, None] * reference["directions"], atol=1e-6)
    assert np.allclose(ours["projections"], signs[None, :] * reference["projections"], atol=1e-5)
    assert np.allclose(ours["variances"]["A"], reference["A"], rtol=1e-4, atol=1e-7)
    assert np.allclose(ours["variances"]["B"], reference["B"], rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("flip", [False, True])
def test_from_scores_equals_modeldiffs_residual_pca(flip):
    rng = np.random.default_rng(5)
    scores_a, scores_b = rng.normal(size=(40, 60)), rng.normal(size=(40, 60))
    differ = ModelDiff()
    if flip:
        ours = differ.get_B_minus_A_from_scores(scores_a, scores_b, 3)
        reference = _flipped(_reference(scores_b, scores_a, 3))
    else:
        ours, reference = differ.get_A_minus_B_from_scores(scores_a, scores_b, 3), _reference(scores_a, scores_b, 3)
    _assert_equal_up_to_sign(ours, reference)


def _trained_checkpoints(x, y, weight_decay: float, seeds=(0, 1)) -> list[dict]:
    ckpts = []
    for seed in seeds:
        torch.manual_seed(seed)
        model = _factory()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5, weight_decay=weight_decay)
        for _ in range(30):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        ckpts.append({k: v.clone() for k, v in model.state_dict().items()})
    return ckpts


def _factory() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))


def test_two_models_from_a_factory_checkpoints_and_loaders(tmp_path):
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(48, 6, generator=generator), torch.randint(0, 3, (48,), generator=generator)
    train = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:36], y[:36]), batch_size=10)
    val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[36:], y[36:]), batch_size=5)
    ckpts_a, ckpts_b = _trained_checkpoints(x[:36], y[:36], 0.0), _trained_checkpoints(x[:36], y[:36], 0.05)
    torch.save({"model": ckpts_b[0]}, tmp_path / "b0.pt")  # a file of ours holds its weights under "model"
    differ = ModelDiff(_factory, _factory(), ckpts_a, [tmp_path / "b0.pt", ckpts_b[1]], train, proj_dim=32,
                       device="cpu")
    a_minus_b = differ.get_A_minus_B(val, num_pca_comps=2)
    scores_a, scores_b = a_minus_b["scores"]["A"], a_minus_b["scores"]["B"]
    assert scores_a.shape == scores_b.shape == (12, 36) and not np.allclose(scores_a, scores_b)
    _assert_equal_up_to_sign(a_minus_b, _reference(scores_a, scores_b, 2))
    b_minus_a = differ.get_B_minus_A(val, num_pca_comps=2)
    assert np.array_equal(b_minus_a["scores"]["A"], scores_a)  # scored once per loader, kept
    _assert_equal_up_to_sign(b_minus_a, _flipped(_reference(scores_b, scores_a, 2)))
    same = ModelDiff(_factory, _factory, ckpts_a, ckpts_a, train, proj_dim=32, device="cpu")
    scores = same.get_A_minus_B(val, 1)["scores"]
    assert np.allclose(scores["A"], scores["B"])  # the same seed gives the same scores


def test_a_new_loader_or_new_checkpoints_are_scored_afresh():
    """Scores are kept only for the same objects: a list made anew for each call (whose id Python
    reuses once the last one is freed) and replaced checkpoints are scored again."""
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(48, 6, generator=generator), torch.randint(0, 3, (48,), generator=generator)
    ckpts = _trained_checkpoints(x[:36], y[:36], 0.0)
    differ = ModelDiff(_factory, _factory, ckpts, ckpts, [(x[:36], y[:36])], proj_dim=16, device="cpu")
    firsts = [differ.get_A_minus_B([(x[36 + 4 * i:40 + 4 * i], y[36 + 4 * i:40 + 4 * i])], 1)["scores"]["A"][0]
              for i in range(3)]
    assert not np.allclose(firsts[0], firsts[1]) and not np.allclose(firsts[1], firsts[2])
    val = [(x[36:], y[36:])]
    before = differ.get_A_minus_B(val, 1)["scores"]["A"]
    differ.modelA_ckpts = _trained_checkpoints(x[:36], y[:36], 0.05)
    assert not np.allclose(differ.get_A_minus_B(val, 1)["scores"]["A"], before)


def test_scoring_without_models_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="use get_A_minus_B_from_scores"):
        ModelDiff().get_A_minus_B([(torch.zeros(1, 2), torch.zeros(1))])


def test_a_shuffling_loader_and_no_checkpoints_are_refused_with_the_fix():
    """A shuffled training loader would score its examples in another order each pass, so score
    column i would not be example i (ModelDiff's own code takes it silently)."""
    x, y = torch.randn(12, 6), torch.arange(12) % 3
    data = torch.utils.data.TensorDataset(x, y)
    ckpts = [_factory().state_dict()]
    shuffled = torch.utils.data.DataLoader(data, batch_size=4, shuffle=True)
    with pytest.raises(ValueError, match="train_loader shuffles its examples; give a DataLoader with shuffle=False"):
        ModelDiff(_factory, _factory, ckpts, ckpts, shuffled, device="cpu").get_A_minus_B([(x, y)])
    ordered = torch.utils.data.DataLoader(data, batch_size=4)
    with pytest.raises(ValueError, match="modelB_ckpts is empty"):
        ModelDiff(_factory, _factory, ckpts, [], ordered, device="cpu").get_A_minus_B([(x, y)])
    with pytest.raises(ValueError, match="val_loader yields no batch"):
        ModelDiff(_factory, _factory, ckpts, ckpts, ordered, device="cpu").get_A_minus_B([])


def test_scores_that_cannot_be_compared_are_one_error_naming_the_argument():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(6, 9))
    with_nan = scores.copy()
    with_nan[2, 3] = np.nan
    cases = [((scores[0], scores[0], 1), r"scoresA has shape \(9,\)"),
             ((scores, with_nan, 1), "scoresB holds 1 values that are NaN"),
             ((scores, scores[:5], 1), r"scoresA \(6, 9\) and scoresB \(5, 9\)"),
             ((scores, scores, 7), r"num_pca_comps=7 must be a whole number in 1 \.\. 6")]
    for (a, b, k), message in cases:
        with pytest.raises(ValueError, match=message):
            ModelDiff().get_A_minus_B_from_scores(a, b, num_pca_comps=k)
    tensors = torch.tensor(scores), torch.tensor(scores + rng.normal(size=(6, 9)))
    diff = ModelDiff().get_B_minus_A_from_scores(*tensors, num_pca_comps=2)
    assert diff["scores"]["A"] is tensors[0] and diff["scores"]["B"] is tensors[1]  # as given, as ModelDiff's
