"""Residual PCA on precomputed scores against the `modeldiff` package's own functions (run on the CPU),
the orientation and summaries of directions, the counterfactual statistics against scipy and
pingouin, the selection of two algorithms' runs by filters, and the score cache."""
from __future__ import annotations

import functools
import os
import re

import numpy as np
import pandas as pd
import pingouin
import pytest
import torch
from modeldiff import pca as reference
from scipy import stats as scipy_stats

from pab_campaign.analysis.campaign.naming import MAX_STEM
from pab_campaign.analysis.modeldiff import residual_pca as modeldiff
from pab_campaign.analysis.modeldiff.algorithms import Algorithms, Filter, select_algorithms
from pab_campaign.analysis.modeldiff.outputs import cached_scores, image_grid, save_scores
from pab_campaign.analysis.stats.descriptive import ci95_halfwidth
from pab_campaign.errors import CampaignError
from pab_campaign.store import RunRecord, RunStatus


def planted_scores(seed: int = 0, n: int = 150, m: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Scores of A and B (n × m) sharing two latent directions and each with two of its own, with a
    well-separated spectrum (so every principal direction is defined), plus a little noise."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(m, 6)))[0].T
    a = (rng.normal(size=(n, 4)) * [12.0, 7.0, 4.0, 2.0]) @ basis[[0, 1, 2, 3]]
    b = (rng.normal(size=(n, 4)) * [10.0, 6.0, 3.0, 1.5]) @ basis[[0, 1, 4, 5]]
    return a + 0.01 * rng.normal(size=(n, m)), b + 0.01 * rng.normal(size=(n, m))


@pytest.fixture
def cpu_reference(monkeypatch):
    """The modeldiff package's residual PCA with its variance computed on the CPU (it hard-codes CUDA)."""
    monkeypatch.setattr(reference, "get_variance_along_directions",
                        functools.partial(reference.get_variance_along_directions, device="cpu"))
    return reference


def test_residuals_equal_modeldiff(cpu_reference):
    a, b = planted_scores()
    ours = modeldiff.residual_scores(a, b)
    theirs = cpu_reference.get_residual_attributions(torch.tensor(a), torch.tensor(b))
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    # The residual is orthogonal to the row it was projected on.
    assert np.abs(np.einsum("ij,ij->i", ours, b)).max() < 1e-6 * np.abs(a).max() * np.abs(b).max() * a.shape[1]


@pytest.mark.parametrize("ours, first", [(modeldiff.a_minus_b, "A"), (modeldiff.b_minus_a, "B")])
def test_directions_projections_and_variances_equal_modeldiff(cpu_reference, ours, first):
    a, b = planted_scores(seed=3)
    result = ours(a, b, 3)
    scores = (a, b) if first == "A" else (b, a)
    theirs = cpu_reference.residual_pca(torch.tensor(scores[0]), torch.tensor(scores[1]), 3)
    signs = np.sign(np.sum(result.directions * theirs["directions"], axis=1))
    assert set(signs) <= {-1.0, 1.0}
    np.testing.assert_allclose(result.directions, signs[:, None] * theirs["directions"], atol=1e-6)
    np.testing.assert_allclose(result.projections, theirs["projections"] * signs, atol=1e-6 * np.abs(a).max())
    # modeldiff names the variances by the order of its arguments: 'A' is the minuend's.
    mine, other = (result.variance_a, result.variance_b) if first == "A" else (result.variance_b, result.variance_a)
    np.testing.assert_allclose(mine, theirs["variances"]["A"], atol=1e-6)
    np.testing.assert_allclose(other, theirs["variances"]["B"], atol=1e-6)
    assert result.label == f"{first}-{'B' if first == 'A' else 'A'}"


def test_directions_are_unit_orthogonal_and_carry_their_heavy_tail_positive():
    a, b = planted_scores(seed=5)
    result = modeldiff.b_minus_a(a, b, 4)
    np.testing.assert_allclose(result.directions @ result.directions.T, np.eye(4), atol=1e-10)
    assert (np.sum(result.directions ** 3, axis=1) > 0).all()
    assert (np.diff(result.residual_variance) <= 0).all()


def test_a_sparse_planted_subpopulation_is_found_at_the_positive_end():
    """B's scores of a third of the validation rows load (negatively) on 30 training examples A ignores:
    the top B−A direction puts those 30 at its positive end and those rows at one end of its projections."""
    rng = np.random.default_rng(7)
    n, m = 120, 300
    shared = rng.normal(size=(n, 5)) @ rng.normal(size=(5, m))
    a, b = shared + 0.3 * rng.normal(size=(n, m)), shared + 0.3 * rng.normal(size=(n, m))
    planted, rows = np.arange(30), rng.choice(n, 40, replace=False)
    b[np.ix_(rows, planted)] -= 3.0
    result = modeldiff.b_minus_a(a, b, 2)
    assert set(np.argsort(-result.directions[0])[:30]) == set(planted)
    ends = np.argsort(result.projections[:, 0])
    assert set(ends[:40]) == set(rows) or set(ends[-40:]) == set(rows)
    assert result.variance_b[0] > 5 * result.variance_a[0]


def test_variance_along_a_full_basis_is_the_total_variance_of_normalised_rows():
    a, _ = planted_scores(seed=2, n=40, m=30)
    basis = np.linalg.qr(np.random.default_rng(0).normal(size=(30, 30)))[0].T
    normalised = a / np.linalg.norm(a, axis=1, keepdims=True)
    total = normalised.var(axis=0).sum()
    assert modeldiff.variance_along(a, basis).sum() == pytest.approx(total, rel=1e-10)
    assert total <= 1.0


def test_zero_rows_are_kept_whole_not_nan():
    a, b = planted_scores(seed=1, n=10, m=20)
    b[3] = 0.0
    a[4] = 0.0
    residual = modeldiff.residual_scores(a, b)
    np.testing.assert_array_equal(residual[3], a[3])
    assert np.isfinite(residual).all()
    assert np.isfinite(modeldiff.variance_along(a, np.eye(20)[:2])).all()
    assert not modeldiff.row_normalise(a)[4].any()


def test_components_and_shapes_are_checked():
    a, b = planted_scores(n=10, m=20)
    with pytest.raises(CampaignError, match="--components 11"):
        modeldiff.a_minus_b(a, b, 11)
    with pytest.raises(CampaignError, match="same validation and training examples"):
        modeldiff.a_minus_b(a, b[:, :-1], 2)


def test_subpopulations_and_class_composition():
    rng = np.random.default_rng(0)
    a, b = planted_scores(n=30, m=60)
    result = modeldiff.a_minus_b(a, b, 2)
    train_labels, val_labels = rng.integers(0, 3, 60), rng.integers(0, 3, 30)
    members = modeldiff.subpopulations(result, train_labels, val_labels, top=5)
    assert len(members) == 2 * 4 * 5
    for (direction, name), group in members.groupby(["direction", "subpopulation"]):
        values = group.sort_values("rank")["value"].to_numpy()
        assert (np.diff(values) <= 0).all() if name.endswith("+") else (np.diff(values) >= 0).all()
        source = result.directions[direction - 1] if name.startswith("train") else result.projections[:, direction - 1]
        extreme = source.max() if name.endswith("+") else source.min()
        assert values[0] == pytest.approx(extreme)
        labels = train_labels if name.startswith("train") else val_labels
        assert (group["label"].to_numpy() == labels[group["index"].to_numpy()]).all()
    composition = modeldiff.class_composition(members)
    shares = composition.groupby(["comparison", "direction", "subpopulation"])["share"].sum()
    np.testing.assert_allclose(shares, 1.0)
    first = composition.groupby(["comparison", "direction", "subpopulation"]).head(1)
    assert (first["count"].to_numpy() == composition.groupby(["comparison", "direction", "subpopulation"])["count"]
            .max().to_numpy()).all()
    table = modeldiff.directions_table([result])
    assert list(table["direction"]) == [1, 2] and np.allclose(table["variance_a"], result.variance_a)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_shift_test_is_welchs_of_b_against_a_as_scipy_and_pingouin_compute_it(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0.0, 1.0, 6), rng.normal(0.8, 2.5, 9)
    shifts = pd.DataFrame({"algorithm": ["A"] * 6 + ["B"] * 9, "run_id": range(15), "shift": np.r_[a, b]})
    t, dof, p = modeldiff.shift_summary(shifts).iloc[0][["t", "dof", "p"]]
    reference_t = scipy_stats.ttest_ind(b, a, equal_var=False)
    assert t == pytest.approx(reference_t.statistic, rel=1e-10)
    assert p == pytest.approx(reference_t.pvalue, rel=1e-8)
    table = pingouin.ttest(b, a, correction=True)
    assert dof == pytest.approx(float(table["dof"].iloc[0]), rel=1e-8)
    assert p == pytest.approx(float(table["p_val"].iloc[0] if "p_val" in table else table["p-val"].iloc[0]),
                              rel=1e-6)


def test_the_shift_test_is_nan_where_it_is_undefined():
    for a, b in (([1.0], [1.0, 2.0]), ([1.0, 1.0], [2.0, 2.0])):
        shifts = pd.DataFrame({"algorithm": ["A"] * len(a) + ["B"] * len(b), "run_id": range(len(a) + len(b)),
                               "shift": a + b})
        assert modeldiff.shift_summary(shifts).iloc[0][["t", "dof", "p"]].isna().all()


def test_shift_summary_and_target_class():
    rng = np.random.default_rng(4)
    shifts = pd.DataFrame({"algorithm": ["A"] * 5 + ["B"] * 6, "run_id": [f"r{i}" for i in range(11)],
                           "accuracy_shift": rng.normal(0, 0.01, 11), "p3_shift": np.r_[rng.normal(0, 0.01, 5),
                                                                                         rng.normal(0.3, 0.05, 6)]})
    summary = modeldiff.shift_summary(shifts).set_index("quantity")
    row = summary.loc["p3_shift"]
    a, b = shifts["p3_shift"][:5], shifts["p3_shift"][5:]
    assert (row["n_a"], row["n_b"]) == (5, 6)
    assert row["mean_b"] == pytest.approx(b.mean()) and row["ci95_a"] == pytest.approx(ci95_halfwidth(a))
    assert row["p"] == pytest.approx(scipy_stats.ttest_ind(b, a, equal_var=False).pvalue, rel=1e-8)
    assert row["p"] < 0.01
    per_class = np.zeros((4, 10))
    per_class[:, 3] = 0.2
    per_class[:, 7] = -0.5
    assert modeldiff.choose_target_class(per_class) == 3


def _record(run_id: str, status: str = "completed", **hparams) -> RunRecord:
    return RunRecord(run_id=run_id, status=RunStatus(status), hparams={"seed": 0, **hparams})


def test_select_algorithms_by_filters():
    records = [_record("a1", **{"dataset.augment": True, "optimizer.lr": 0.1, "model.hidden": "[128, 64]"}),
               _record("a2", **{"dataset.augment": True, "optimizer.lr": 0.1, "model.hidden": "[128, 64]"}),
               _record("b1", **{"dataset.augment": False, "optimizer.lr": 0.1}),
               _record("b2", **{"dataset.augment": False, "optimizer.lr": 0.1}),
               _record("b3", status="failed", **{"dataset.augment": False}),
               _record("p1", **{"dataset.corner_patch.train_class": 8}),
               _record("p2", **{"dataset.corner_patch.train_class": 8})]
    chosen = select_algorithms(records, ["dataset.augment=true", "optimizer.lr=1e-1", "model.hidden=[128,64]"],
                               ["dataset.augment=false"])
    assert [r.run_id for r in chosen.a] == ["a1", "a2"] and [r.run_id for r in chosen.b] == ["b1", "b2"]
    assert chosen.name == "dataset.augment=true+optimizer.lr=0.1+model.hidden=_128_64__vs_dataset.augment=false"
    # A key a run does not record (an option left out while off) reads as null.
    patched = select_algorithms(records, ["dataset.corner_patch.train_class=null", "dataset.augment=true"],
                                ["dataset.corner_patch.train_class=8"])
    assert [r.run_id for r in patched.b] == ["p1", "p2"] and len(patched.a) == 2
    long = Algorithms(chosen.a, chosen.b, [Filter(f"k{i}", "v" * 20) for i in range(12)], chosen.b_filters)
    assert len(long.name) == MAX_STEM and long.name != Algorithms(chosen.a, chosen.b, long.a_filters[:11], []).name
    assert Filter.parse("optimizer.lr=0.1", "--a").matches(records[0])
    assert not Filter.parse("optimizer.lr=0.10001", "--a").matches(records[0])
    assert not Filter.parse("dataset.augment=1", "--a").matches(records[0])


@pytest.mark.parametrize("a, b, fragment", [
    (["dataset.augment=maybe"], ["dataset.augment=false"], "matches no completed run; dataset.augment takes"),
    (["optimizer.lr=0.1"], ["dataset.augment=false"], "match both --a and --b"),
    (["dataset.augment=true"], ["modle.name=mlp"], "no run of this campaign has the hyper-parameter 'modle.name'"),
    (["dataset.augment=true"], ["seed0"], "is not KEY=VALUE"),
    (["dataset.augment=true", "model.hidden=[128, 64]"], ["dataset.augment=false"],
     "matches 1 completed run (a1); ModelDiff needs at least 2 runs"),
])
def test_select_algorithms_refuses_bad_filters(a, b, fragment):
    records = [_record("a1", **{"dataset.augment": True, "optimizer.lr": 0.1, "model.hidden": "[128, 64]"}),
               _record("a2", **{"dataset.augment": True, "optimizer.lr": 0.1, "model.hidden": "[32]"}),
               _record("b1", **{"dataset.augment": False, "optimizer.lr": 0.1}),
               _record("b2", **{"dataset.augment": False, "optimizer.lr": 0.1})]
    with pytest.raises(CampaignError, match=re.escape(fragment)):
        select_algorithms(records, a, b)


def test_score_cache_reuses_only_a_matching_request(tmp_path):
    scores = np.random.default_rng(0).normal(size=(5, 7)).astype(np.float32)
    request = {"runs": ["r1", "r2"], "checkpoints": [{"run_id": "r1", "file": "last.pt", "epoch": 4}],
               "projection": {"dimension": 16, "seed": 0}, "val_examples": 5, "train_examples": 7}
    paths = save_scores(tmp_path, "a", scores, {**request, "timings": {"total_s": 1.0}})
    assert [p.name for p in paths] == ["scores_a.npy", "scores_a.json"]
    np.testing.assert_array_equal(cached_scores(tmp_path, "a", request), scores)
    assert cached_scores(tmp_path, "b", request) is None
    for change in ({"projection": {"dimension": 32, "seed": 0}}, {"runs": ["r1"]}, {"val_examples": 4}):
        assert cached_scores(tmp_path, "a", {**request, **change}) is None
    (tmp_path / "scores_a.json").write_text("{broken")
    assert cached_scores(tmp_path, "a", request) is None


def test_score_cache_reads_only_regular_files_inside_its_folder(tmp_path):
    """A stranger's cached scores: a FIFO, a link out of the folder or a pickled object array is a
    cache miss (the scores are computed again), never a hang, a read outside, or code run."""
    request = {"runs": ["r1"], "val_examples": 2, "train_examples": 3}
    scores = np.ones((2, 3), dtype=np.float32)
    save_scores(tmp_path, "a", scores, request)
    np.testing.assert_array_equal(cached_scores(tmp_path, "a", request), scores)
    outside = tmp_path.parent / f"{tmp_path.name}-outside.npy"
    os.replace(tmp_path / "scores_a.npy", outside)
    (tmp_path / "scores_a.npy").symlink_to(outside)
    assert cached_scores(tmp_path, "a", request) is None
    (tmp_path / "scores_a.npy").unlink()
    os.mkfifo(tmp_path / "scores_a.npy")
    assert cached_scores(tmp_path, "a", request) is None  # returns at once: a FIFO is not opened for reading
    (tmp_path / "scores_a.npy").unlink()
    np.save(tmp_path / "scores_a.npy", np.array([[{"x": 1}] * 3] * 2, dtype=object), allow_pickle=True)
    assert cached_scores(tmp_path, "a", request) is None


def test_image_grid_draws_every_image_with_its_caption():
    images = np.zeros((13, 1, 8, 8), dtype=np.float32)
    images[:, 0, 0, 0] = 1.0
    figure = image_grid(images, np.arange(13), np.linspace(-1, 1, 13), "title")
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert len(texts) == 13 and texts[0] == "0  -1" and texts[-1] == "12  +1"
    mosaic = figure.axes[0].get_images()[0].get_array()
    # 2 rows of tiles; each image's bright corner pixel survives, framed.
    assert mosaic.shape[2] == 3 and (mosaic == 1.0).all(axis=2).sum() >= 13
