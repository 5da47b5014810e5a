"""Build the probes a tracking preset names, validating their parameters."""
from __future__ import annotations

from dataclasses import fields

from pab_campaign.training.probes import Probe
from pab_campaign.training.probes.churn import ChurnProbe
from pab_campaign.training.probes.classwise import ClasswiseProbe
from pab_campaign.training.probes.fim import FimProbe
from pab_campaign.training.probes.performance import PerformanceProbe
from pab_campaign.training.probes.representation import RepresentationProbe
from pab_campaign.training.probes.robustness import RobustnessProbe
from pab_campaign.training.probes.spectra import SpectraProbe

PROBES: dict[str, type[Probe]] = {
    probe.name: probe
    for probe in (PerformanceProbe, ClasswiseProbe, ChurnProbe, SpectraProbe, RepresentationProbe,
                  RobustnessProbe, FimProbe)
}


def build_probes(config: dict) -> list[Probe]:
    """One probe per entry of `tracking.probes` (name → parameters such as `every`)."""
    probes = []
    for name, params in config.items():
        if name not in PROBES:
            raise ValueError(f"unknown probe '{name}' in tracking.probes; choose from {sorted(PROBES)}")
        allowed = {f.name for f in fields(PROBES[name])}
        unknown = set(params or {}) - allowed
        if unknown:
            raise ValueError(
                f"probe '{name}' has no parameter(s) {sorted(unknown)}; allowed: {sorted(allowed)}"
            )
        probe = PROBES[name](**dict(params or {}))
        if probe.every < 0:
            raise ValueError(f"tracking.probes.{name}.every={probe.every} must be >= 0 (0 = off)")
        probes.append(probe)
    return probes
