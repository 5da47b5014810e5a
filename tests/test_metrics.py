"""The metric registry: every probe records only (context, metric) pairs the registry knows, with a key
exactly when the registry says the metric has one; the analysis reads the same names."""
import math

import pytest

from pab_campaign.analysis.phases.hmm import LATENT_STATE_FEATURES
from pab_campaign.analysis.plots.style import metric_range, metric_unit
from pab_campaign.analysis.summary.trajectory import ROBUSTNESS_METRICS
from pab_campaign.metrics import LATENT_STATE_STATISTICS, METRICS, lookup
from pab_campaign.training.probes.registry import PROBES, build_probe
from pab_campaign.training.probes.spectra import LATENT_STATE_METRICS
from tests.helpers import make_context, make_model

# Parameters that make each probe emit everything it can, quickly.
PROBE_PARAMS = {"robustness": {"eps": [0.0, 0.1], "pgd_steps": 1, "samples": 8}, "fim": {"samples": 8}}


def _unknown(rows) -> list[tuple]:
    """Rows whose (context, metric) the registry does not know, or whose key contradicts it."""
    bad = []
    for context, metric, key, _ in rows:
        known = lookup(metric, context)
        if known is None or (key is not None and known.key is None):
            bad.append((context, metric, key))
    return bad


def test_every_probe_records_only_registered_metrics(synthetic_data):
    model = make_model(synthetic_data)
    seen = set()
    for name in PROBES.names():
        probe = build_probe(name, PROBE_PARAMS.get(name))
        state: dict = {}
        rows = probe.measure(make_context(synthetic_data, model, epoch=0, state=state))
        rows += probe.measure(make_context(synthetic_data, model, epoch=1, state=state))  # churn, cka_prev
        assert rows, name
        assert _unknown(rows) == [], f"probe {name} records metrics the registry (pab_campaign/metrics.py) lacks"
        seen |= {(context, metric) for context, metric, _, _ in rows}
    # ... and the registry lists nothing the probes and the training loop never record.
    loop = {("train", "lr"), ("train", "batch_loss")}
    assert {metric for _, metric in seen | loop} == set(METRICS)


def test_the_check_catches_an_unregistered_metric():
    assert _unknown([("probe", "fgsm_acc", "0.1", 0.5), ("probe", "my_metric", None, 1.0),
                     ("weights", "acc", None, 0.1), ("val", "loss", "3", 0.2)]) == [
        ("probe", "my_metric", None), ("weights", "acc", None), ("val", "loss", "3")]


def test_both_halves_read_the_same_names():
    assert tuple(m.name for m in LATENT_STATE_STATISTICS) == LATENT_STATE_METRICS
    assert len(LATENT_STATE_FEATURES) == 14
    assert tuple(f"weights/{name}" for name in LATENT_STATE_METRICS) == LATENT_STATE_FEATURES
    assert set(ROBUSTNESS_METRICS) == {"fgsm_acc", "pgd_acc", "consistency"}


@pytest.mark.parametrize(("label", "unit", "bounds"), [
    ("val/acc@3", "fraction", (0.0, 1.0)), ("probe/pgd_acc[0.1]", "fraction", (0.0, 1.0)),
    ("val/loss", "cross-entropy, nats", (0.0, math.inf)), ("val/gen_gap", "fraction", (-1.0, 1.0)),
    ("weights/code_sparsity[fc]", "ratio", (1.0, math.inf)), ("weights/comp_sparsity", "ratio", (-math.inf, math.inf)),
    ("acc_gap_final", "fraction", (-1.0, 1.0)), ("probe/my_metric", "as recorded", (-math.inf, math.inf)),
])
def test_units_and_ranges_come_from_the_registry(label, unit, bounds):
    assert (metric_unit(label), metric_range(label)) == (unit, bounds)
