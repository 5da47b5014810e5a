"""Build the probes a tracking preset names, checking their parameters against each probe's dataclass."""
from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from pab_campaign.errors import ConfigError, one_line
from pab_campaign.training.config import schema_keys
from pab_campaign.training.probes import Probe
from pab_campaign.training.probes.churn import ChurnProbe
from pab_campaign.training.probes.classwise import ClasswiseProbe
from pab_campaign.training.probes.fim import FimProbe
from pab_campaign.training.probes.performance import PerformanceProbe
from pab_campaign.training.probes.representation import RepresentationProbe
from pab_campaign.training.probes.robustness import RobustnessProbe
from pab_campaign.training.probes.spectra import SpectraProbe
from pab_campaign.training.registry import Registry

PROBES: Registry[type[Probe]] = Registry("probe", "tracking.probes")
for _probe in (PerformanceProbe, ClasswiseProbe, ChurnProbe, SpectraProbe, RepresentationProbe, RobustnessProbe,
               FimProbe):
    PROBES.add(_probe.name, _probe)


def build_probe(name: str, params: dict[str, Any] | None) -> Probe:
    """The probe `name` with `params` (its dataclass fields, e.g. `every`) over its defaults;
    ConfigError naming the key for an unknown probe or parameter or a value of the wrong type."""
    probe_class = PROBES.get(name)
    keys = schema_keys(probe_class)
    unknown = set(params or {}) - set(keys)
    if unknown:
        raise ConfigError(f"probe '{name}' has no parameter(s) {sorted(unknown)} in tracking.probes.{name}; "
                          f"allowed: {sorted(keys)}")
    try:
        probe = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(probe_class), params or {}))
    except ValidationError as exc:
        key = str(exc.full_key).split("[")[0]
        raise ConfigError(f"tracking.probes.{name}.{exc.full_key}={exc.value!r}: {one_line(exc)}; "
                          f"{key} takes {keys[key]}") from None
    assert isinstance(probe, Probe)  # PROBES holds Probe dataclasses
    if probe.every < 0:
        raise ConfigError(f"tracking.probes.{name}.every={probe.every} must be >= 0 (0 = off)")
    return probe


def build_probes(config: dict[str, Any]) -> list[Probe]:
    """One probe per entry of `tracking.probes` (name → parameters such as `every`)."""
    return [build_probe(name, params) for name, params in config.items()]
