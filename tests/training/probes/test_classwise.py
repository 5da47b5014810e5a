import math

import pytest
import torch

from pab_campaign.training.probes.classwise import ClasswiseProbe, class_accuracy, update_learning
from tests.helpers import make_context, make_model


def test_class_accuracy_by_hand():
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    predictions = torch.tensor([0, 1, 1, 1, 0, 0])
    accuracy = class_accuracy(predictions, labels, 4)
    assert accuracy[:3].tolist() == pytest.approx([0.5, 2 / 3, 0.0])
    assert math.isnan(accuracy[3])


def test_first_learned_epoch_and_forgetting_by_hand():
    state: dict = {}
    history = {1: [0.9, 0.1, 0.85], 2: [0.5, 0.8, 0.9], 3: [0.95, 0.7, 0.9], 4: [0.95, 0.9, 0.9]}
    for epoch, accuracy in history.items():
        update_learning(state, torch.tensor(accuracy, dtype=torch.float64), epoch, tau=0.8)
    assert state["first_learned"].tolist() == [1, 2, 1]
    assert state["forgets"].tolist() == [1, 1, 0]


def test_probe_rows(synthetic_data):
    model = make_model(synthetic_data)
    state: dict = {}
    rows = ClasswiseProbe(tau=0.0001).measure(make_context(synthetic_data, model, epoch=0, state=state))
    by_metric = {}
    for context, metric, key, value in rows:
        assert context == "val"
        by_metric.setdefault(metric, {})[key] = value
    evaluation = make_context(synthetic_data, model).evaluations["val"]
    expected = class_accuracy(evaluation.predictions, synthetic_data.val.y, synthetic_data.num_classes)
    assert [by_metric["class_acc"][str(c)] for c in range(4)] == pytest.approx(expected.tolist())
    learned = [c for c in range(4) if expected[c] >= 0.0001]
    assert by_metric["classes_learned"][None] == len(learned)
    assert all(by_metric["class_learned_epoch"][str(c)] == 0 for c in learned)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="tau"):
        ClasswiseProbe(tau=1.5)
    with pytest.raises(ValueError, match="split"):
        ClasswiseProbe(split="probe")
