"""Metric names both halves share: the registry of every metric a run records (its contexts, unit,
value range, direction, what its key names) and `context/metric[key]@epoch`, as commands take them.

The probes record exactly the metrics registered here (a test runs every probe against the
registry); the analysis reads units, ranges and the named groups (`LATENT_STATE_STATISTICS`,
`ROBUSTNESS_METRICS`, ...) from here instead of spelling names again."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from pab_campaign.errors import CampaignError

_SPEC = re.compile(r"^(?P<context>[^/@\[\]]+)/(?P<metric>[^/@\[\]]+)(\[(?P<key>[^\]]+)\])?(@(?P<epoch>\d+))?\Z")


@dataclass(frozen=True)
class MetricSpec:
    """`context/metric[key]@epoch` as typed on the command line (key and epoch optional)."""

    context: str
    metric: str
    key: str | None = None
    epoch: int | None = None

    @classmethod
    def parse(cls, text: str) -> MetricSpec:
        match = _SPEC.match(text.strip())
        if not match:
            raise CampaignError(
                f"'{text}' is not a metric name; write context/metric[key]@epoch, e.g. val/loss@3 or weights/erank"
            )
        epoch = match.group("epoch")
        return cls(match.group("context"), match.group("metric"), match.group("key"),
                   None if epoch is None else int(epoch))

    @property
    def label(self) -> str:
        key = f"[{self.key}]" if self.key else ""
        at = f"@{self.epoch}" if self.epoch is not None else ""
        return f"{self.context}/{self.metric}{key}{at}"


# What a run may record: `context/metric` or `context/metric[key]`. Context and metric are letters,
# digits, `_`, `.` and `-` (so every command can name them, `@epoch` and lists included); a key is any
# text without brackets, `@` or commas.
_PART = r"[A-Za-z0-9_][A-Za-z0-9_.\-]*"
_RECORDED = re.compile(rf"^(?P<context>{_PART})/(?P<metric>{_PART})(\[(?P<key>[^\[\]@,]+)\])?\Z")
# Contexts the commands give their own meaning (`summary/<name>`: a whole-run process summary).
RESERVED_CONTEXTS = frozenset({"summary"})
NAME_RULE = ("write context/metric or context/metric[key] with letters, digits, _ . - (e.g. val/f1, "
             "probe/sharpness, weights/norm[fc1]), so that commands can name it (audit --metric val/f1)")


def recorded_name(text: str) -> tuple[str, str, str | None]:
    """(context, metric, key) of a metric name a run records; CampaignError saying the rule otherwise."""
    match = _RECORDED.match(text) if isinstance(text, str) else None
    if not match:
        raise CampaignError(f"{text!r} is not a metric name to record; {NAME_RULE}")  # repr: a newline shows as \n
    if match.group("context") in RESERVED_CONTEXTS:
        raise CampaignError(f"'{text}': the context '{match.group('context')}' is reserved for whole-run summaries "
                            "(report --metrics summary/<name>); choose another context, e.g. val or probe")
    return match.group("context"), match.group("metric"), match.group("key")


def label(context: str, metric: str, key: str | None = None) -> str:
    """`context/metric[key]`, the name commands take."""
    return f"{context}/{metric}" + (f"[{key}]" if key is not None else "")


# ---- the registry: every metric a run records -----------------------------------------------------
# Contexts of the trajectory (the `context` column).
SPLITS = ("train", "val", "test")
HELD_OUT = ("val", "test")
PROBE = "probe"
WEIGHTS = "weights"

# Units, as axis labels print them.
FRACTION = "fraction"
NATS = "cross-entropy, nats"
RATIO_01 = "ratio 0–1"
DIMENSIONS = "dimensions"
CLASSES = "classes"
EPOCH = "epoch"
WEIGHT_UNITS = "weight units"
WEIGHT_UNITS_SQUARED = "weight units²"


@dataclass(frozen=True)
class Metric:
    """One metric a run records: the `contexts` it is recorded under, its `name`, `unit`, the values
    it can take (`low`..`high`, inclusive), whether lower is better (None: neither), what its key
    names (None: a scalar, key null) and a one-line `description`."""

    name: str
    contexts: tuple[str, ...]
    unit: str
    low: float = -math.inf
    high: float = math.inf
    lower_is_better: bool | None = None
    key: str | None = None
    description: str = ""

    def label(self, context: str | None = None, key: str | None = None) -> str:
        """`context/name[key]` (the first context by default; no key when `key` is None; `*` for every key)."""
        suffix = f"[{key}]" if key is not None else ""
        return f"{context or self.contexts[0]}/{self.name}{suffix}"


def _unit_interval(name: str, contexts: tuple[str, ...], description: str, key: str | None = None,
                   lower_is_better: bool | None = False) -> Metric:
    return Metric(name, contexts, FRACTION, 0.0, 1.0, lower_is_better, key, description)


def _non_negative(name: str, contexts: tuple[str, ...], unit: str, description: str, key: str | None = None,
                  lower_is_better: bool | None = None) -> Metric:
    return Metric(name, contexts, unit, 0.0, math.inf, lower_is_better, key, description)


# performance probe (and the training loop)
LOSS = _non_negative("loss", SPLITS, NATS, "mean cross-entropy over the split", lower_is_better=True)
ACC = _unit_interval("acc", SPLITS, "accuracy over the split")
PRECISION = _unit_interval("precision", SPLITS, "macro precision over the classes present in the split")
RECALL = _unit_interval("recall", SPLITS, "macro recall over the classes present in the split")
F1 = _unit_interval("f1", SPLITS, "macro F1 over the classes present in the split")
GEN_GAP = Metric("gen_gap", HELD_OUT, FRACTION, -1.0, 1.0, True, None,
                 "train acc − split acc (positive = overfitting)")
LOSS_GAP = Metric("loss_gap", HELD_OUT, NATS, -math.inf, math.inf, True, None,
                  "split loss − train loss (positive = overfitting)")
LR = _non_negative("lr", ("train",), "learning rate", "learning rate of the first parameter group")
BATCH_LOSS = _non_negative("batch_loss", ("train",), NATS, "mean training loss over the epoch's batches",
                           lower_is_better=True)
# classwise probe
CLASS_ACC = _unit_interval("class_acc", SPLITS, "accuracy on the examples of one class", key="class")
CLASS_LEARNED_EPOCH = _non_negative("class_learned_epoch", SPLITS, EPOCH,
                                    "first epoch with class_acc ≥ τ (NaN while never)", key="class")
CLASS_FORGETS = _non_negative("class_forgets", SPLITS, "times", "times the class fell back below τ", key="class")
CLASSES_LEARNED = _non_negative("classes_learned", SPLITS, CLASSES, "classes at or above τ now")
CLASSES_UNSTABLE = _non_negative("classes_unstable", SPLITS, CLASSES, "classes forgotten at least once")
# churn, representation and FIM probes
CHURN = _unit_interval("churn", (PROBE,), "fraction of probe predictions changed since the last measurement",
                       lower_is_better=None)
_HOOKPOINT = "hookpoint (null: the penultimate features)"
CKA_INIT = Metric("cka_init", (PROBE,), RATIO_01, 0.0, 1.0, None, _HOOKPOINT, "linear CKA of features vs epoch 0")
CKA_PREV = Metric("cka_prev", (PROBE,), RATIO_01, 0.0, 1.0, None, _HOOKPOINT,
                  "linear CKA of features vs the previous measurement")
FIM_NORM = Metric("fim_norm", (PROBE,), RATIO_01, 0.0, 1.0, None, None,
                  "normalised effective rank of the empirical Fisher")
FIM_TRACE = _non_negative("fim_trace", (PROBE,), "squared gradient norm", "trace of the empirical Fisher")
# robustness probe
CLEAN_ACC = _unit_interval("clean_acc", (PROBE,), "accuracy on the attacked probe examples, unperturbed")
FGSM_ACC = _unit_interval("fgsm_acc", (PROBE,), "accuracy under FGSM", key="epsilon")
PGD_ACC = _unit_interval("pgd_acc", (PROBE,), "accuracy under PGD-k", key="epsilon")
CONSISTENCY = _unit_interval("consistency", (PROBE,), "fraction of predictions unchanged under augmentation")
# spectra probe: per layer (key = layer name) and for the whole model (key null)
_LAYER = "layer (null: the whole model)"
ERANK = _non_negative("erank", (WEIGHTS,), DIMENSIONS, "effective rank exp(H(σ/Σσ))", key=_LAYER)
SCI = Metric("sci", (WEIGHTS,), RATIO_01, 0.0, 1.0, None, _LAYER, "erank / min(n_out, n_in)")
STABLE_RANK = _non_negative("stable_rank", (WEIGHTS,), DIMENSIONS, "Σσ² / σ_max²", key=_LAYER)
NUCLEAR = _non_negative("nuclear", (WEIGHTS,), WEIGHT_UNITS, "Σσ (trace norm)", key=_LAYER)
L1 = _non_negative("l1", (WEIGHTS,), WEIGHT_UNITS, "Σ|W|", key=_LAYER)
L2 = _non_negative("l2", (WEIGHTS,), WEIGHT_UNITS, "Frobenius norm", key=_LAYER)
TRACE = Metric("trace", (WEIGHTS,), WEIGHT_UNITS, key=_LAYER, description="Σ_i W_ii")
SPECTRAL = _non_negative("spectral", (WEIGHTS,), WEIGHT_UNITS, "σ_max", key=_LAYER)
SPECTRAL_ENTROPY = _non_negative("spectral_entropy", (WEIGHTS,), "entropy, nats", "H(σ/Σσ), the log of erank",
                                 key=_LAYER)
SV_MIN = _non_negative("sv_min", (WEIGHTS,), WEIGHT_UNITS, "smallest σ above 1e-10", key=_LAYER)
RANK_MAX = _non_negative("rank_max", (WEIGHTS,), DIMENSIONS, "min(n_out, n_in), the largest rank possible",
                         key=_LAYER)
CODE_SPARSITY = Metric("code_sparsity", (WEIGHTS,), "ratio", 1.0, math.inf, None, _LAYER, "l1 / l2 (≥ 1)")
COMP_SPARSITY = Metric("comp_sparsity", (WEIGHTS,), "ratio", key=_LAYER, description="trace / spectral")
SV_MEAN = _non_negative("sv_mean", (WEIGHTS,), WEIGHT_UNITS, "mean σ (σ < 1e-5 as 0)", key=_LAYER)
SV_VAR = _non_negative("sv_var", (WEIGHTS,), WEIGHT_UNITS_SQUARED, "sample variance of σ (σ < 1e-5 as 0)",
                       key=_LAYER)
W_MEAN = Metric("w_mean", (WEIGHTS,), WEIGHT_UNITS, key=_LAYER, description="mean weight")
W_MEDIAN = Metric("w_median", (WEIGHTS,), WEIGHT_UNITS, key=_LAYER, description="lower median weight")
W_VAR = _non_negative("w_var", (WEIGHTS,), WEIGHT_UNITS_SQUARED, "sample variance of the weights", key=_LAYER)
B_MEAN = Metric("b_mean", (WEIGHTS,), WEIGHT_UNITS, key=_LAYER, description="mean bias")
B_MEDIAN = Metric("b_median", (WEIGHTS,), WEIGHT_UNITS, key=_LAYER, description="lower median bias")
B_VAR = _non_negative("b_var", (WEIGHTS,), WEIGHT_UNITS_SQUARED, "sample variance of the biases", key=_LAYER)

# Named groups.
PERFORMANCE_METRICS = (LOSS, ACC, PRECISION, RECALL, F1, GEN_GAP, LOSS_GAP)
CLASSWISE_METRICS = (CLASS_ACC, CLASS_LEARNED_EPOCH, CLASS_FORGETS, CLASSES_LEARNED, CLASSES_UNSTABLE)
ADVERSARIAL_METRICS = (FGSM_ACC, PGD_ACC)
ROBUSTNESS_METRICS = (CLEAN_ACC, *ADVERSARIAL_METRICS, CONSISTENCY)
SPECTRA_METRICS = (ERANK, SCI, STABLE_RANK, NUCLEAR, SPECTRAL_ENTROPY, SV_MIN, RANK_MAX, L1, L2, TRACE, SPECTRAL,
                   CODE_SPARSITY, COMP_SPARSITY, SV_MEAN, SV_VAR, W_MEAN, W_MEDIAN, W_VAR, B_MEAN, B_MEDIAN, B_VAR)
# The 14 statistics of the latent-state work (Hu et al. 2023), in its order.
LATENT_STATE_STATISTICS = (W_MEAN, W_MEDIAN, W_VAR, B_MEAN, B_MEDIAN, B_VAR, L1, L2, TRACE, SPECTRAL,
                           CODE_SPARSITY, COMP_SPARSITY, SV_MEAN, SV_VAR)
# Statistics of the model's concatenated parameters in the whole-model row (not a mean over layers).
WHOLE_MODEL_STATISTICS = (W_MEAN, W_MEDIAN, W_VAR, B_MEAN, B_MEDIAN, B_VAR)
METRICS: dict[str, Metric] = {m.name: m for m in (
    *PERFORMANCE_METRICS, LR, BATCH_LOSS, *CLASSWISE_METRICS, CHURN, CKA_INIT, CKA_PREV, FIM_NORM, FIM_TRACE,
    *ROBUSTNESS_METRICS, *SPECTRA_METRICS)}


def names(metrics: tuple[Metric, ...]) -> tuple[str, ...]:
    """The names of `metrics`, in order."""
    return tuple(m.name for m in metrics)


def lookup(name: str, context: str | None = None) -> Metric | None:
    """The registered metric `name` (recorded under `context`, when given); None when unknown."""
    metric = METRICS.get(name)
    return metric if metric is not None and (context is None or context in metric.contexts) else None
