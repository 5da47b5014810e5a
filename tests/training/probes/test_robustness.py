import pytest
import torch

from pab_campaign.training.probes.robustness import RobustnessProbe, fgsm
from tests.helpers import make_context, make_model


def test_fgsm_at_zero_eps_equals_clean_accuracy(synthetic_data):
    model = make_model(synthetic_data)
    rows = RobustnessProbe(eps=[0.0, 0.5], pgd_steps=3).measure(make_context(synthetic_data, model))
    values = {(r[1], r[2]): r[3] for r in rows}
    assert values[("fgsm_acc", "0")] == values[("clean_acc", None)]
    assert values[("pgd_acc", "0")] == values[("clean_acc", None)]
    assert 0 <= values[("consistency", None)] <= 1


def test_fgsm_moves_each_input_by_exactly_eps(synthetic_data):
    model = make_model(synthetic_data).eval()
    x, y = synthetic_data.val.x[:8], synthetic_data.val.y[:8]
    moved = (fgsm(model, x, y, 0.25) - x).abs()
    assert torch.allclose(moved[moved > 0], torch.tensor(0.25))


def test_attacks_lower_accuracy_of_a_trained_model(synthetic_data):
    model = make_model(synthetic_data)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(25):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(synthetic_data.train.x), synthetic_data.train.y).backward()
        optimizer.step()
    values = {(r[1], r[2]): r[3] for r in RobustnessProbe(eps=[1.0]).measure(make_context(synthetic_data, model))}
    assert values[("clean_acc", None)] > 0.8
    assert values[("pgd_acc", "1")] <= values[("fgsm_acc", "1")] < values[("clean_acc", None)]


def test_probe_uses_no_global_rng_and_is_reproducible(synthetic_data):
    model = make_model(synthetic_data)
    before = torch.get_rng_state()
    first = RobustnessProbe().measure(make_context(synthetic_data, model, epoch=3, seed=7))
    assert torch.equal(before, torch.get_rng_state())
    assert first == RobustnessProbe().measure(make_context(synthetic_data, model, epoch=3, seed=7))
    assert model.training and all(p.grad is None for p in model.parameters())


def test_no_consistency_row_without_augmentation(synthetic_data):
    from dataclasses import replace
    data = replace(synthetic_data, augment=None)
    rows = RobustnessProbe().measure(make_context(data, make_model(data)))
    assert "consistency" not in {r[1] for r in rows}


def test_attacks_use_the_first_samples_and_consistency_the_whole_probe_set(synthetic_data):
    model = make_model(synthetic_data)
    context = make_context(synthetic_data, model)
    rows = {(r[1], r[2]): r[3] for r in RobustnessProbe(eps=[0.0], samples=5).measure(context)}
    clean = context.probe_outputs()[1].argmax(dim=1)
    labels = context.probe_set.y
    assert rows[("clean_acc", None)] == float((clean[:5] == labels[:5]).double().mean())
    assert rows[("fgsm_acc", "0")] == rows[("clean_acc", None)]
    whole = {(r[1], r[2]): r[3] for r in RobustnessProbe(eps=[0.0]).measure(context)}
    assert rows[("consistency", None)] == whole[("consistency", None)]


@pytest.mark.parametrize("params, match", [({"eps": [-0.1]}, "eps"), ({"eps": ["x"]}, "numbers"),
                                           ({"pgd_steps": 0}, "pgd_steps"), ({"samples": 0}, "samples")])
def test_bad_parameters_are_refused(params, match):
    with pytest.raises(ValueError, match=match):
        RobustnessProbe(**params)
