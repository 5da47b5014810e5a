
import pytest
from omegaconf import OmegaConf

from pab_campaign.training.probes.registry import PROBES, build_probes
from tests.helpers import REPO

PRESETS = REPO / "conf" / "tracking"


def test_presets_grow_from_minimal_to_full():
    names = {}
    for preset in ("minimal", "default", "full"):
        config = OmegaConf.to_container(OmegaConf.load(PRESETS / f"{preset}.yaml"))
        assert (PRESETS / f"{preset}.yaml").read_text().startswith("#")
        names[preset] = {probe.name for probe in build_probes(config["probes"])}
    assert names["minimal"] == {"performance"}
    assert names["default"] == {"performance", "classwise", "churn", "spectra"}
    assert names["full"] == set(PROBES)


@pytest.mark.parametrize("config, match", [
    ({"nope": {}}, "unknown probe 'nope'"),
    ({"churn": {"evry": 2}}, r"no parameter\(s\) \['evry'\]"),
    ({"spectra": {"every": -1}}, "must be >= 0"),
])
def test_bad_tracking_config_is_one_clear_error(config, match):
    with pytest.raises(ValueError, match=match):
        build_probes(config)
