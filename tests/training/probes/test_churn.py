import torch

from pab_campaign.training.probes import predict
from pab_campaign.training.probes.churn import ChurnProbe
from tests.helpers import make_context, make_model


def test_churn_is_the_fraction_of_changed_predictions(synthetic_data):
    model = make_model(synthetic_data)
    probe, state = ChurnProbe(), {}
    assert probe.measure(make_context(synthetic_data, model, 0, state)) == []
    assert probe.measure(make_context(synthetic_data, model, 1, state)) == [("probe", "churn", None, 0.0)]
    current = predict(model, synthetic_data.probe(64).x)
    flipped = current.clone()
    flipped[:16] = (flipped[:16] + 1) % synthetic_data.num_classes
    state["predictions"] = flipped
    assert probe.measure(make_context(synthetic_data, model, 2, state)) == [("probe", "churn", None, 0.25)]
    assert torch.equal(state["predictions"], current)
