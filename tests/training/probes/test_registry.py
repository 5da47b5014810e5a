
import pytest
from omegaconf import OmegaConf

from pab_campaign.errors import ConfigError
from pab_campaign.training.probes.registry import PROBES, build_probes
from tests.helpers import REPO

PRESETS = REPO / "pab_campaign" / "conf" / "tracking"


def test_presets_grow_from_minimal_to_full():
    names = {}
    for preset in ("minimal", "default", "full"):
        config = OmegaConf.to_container(OmegaConf.load(PRESETS / f"{preset}.yaml"))
        assert (PRESETS / f"{preset}.yaml").read_text().startswith("#")
        names[preset] = {probe.name for probe in build_probes(config["probes"])}
    assert names["minimal"] == {"performance"}
    assert names["default"] == {"performance", "classwise", "churn", "spectra"}
    assert names["full"] == set(PROBES)


def test_parameters_take_their_dataclass_types_over_its_defaults():
    robustness, classwise = build_probes({"robustness": {"eps": [0.05, 1], "samples": None}, "classwise": None})
    assert robustness.eps == (0.05, 1.0) and robustness.samples is None and robustness.pgd_steps == 5
    assert classwise.tau == 0.8 and classwise.every == 1


@pytest.mark.parametrize("config, match", [
    ({"nope": {}}, "unknown probe 'nope'"),
    ({"churn": {"evry": 2}}, r"no parameter\(s\) \['evry'\]"),
    ({"spectra": {"every": -1}}, "must be >= 0"),
    ({"classwise": {"tau": "high"}}, r"tracking.probes.classwise.tau='high': .* tau takes float"),
    ({"robustness": {"eps": ["wide"]}},
     r"tracking.probes.robustness.eps\[0\]='wide': .* eps takes tuple\[float, ...\]"),
])
def test_bad_tracking_config_is_one_clear_error(config, match):
    with pytest.raises(ConfigError, match=match):
        build_probes(config)
