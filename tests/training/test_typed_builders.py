"""The builders take their typed config: the schema's dataclass itself, or the DictConfig Hydra composes
for it, give the same model, optimiser, schedule and data."""
import torch
from omegaconf import OmegaConf

from pab_campaign.training.config import CnnConfig, CosineScheduleConfig, SgdConfig, SyntheticConfig
from pab_campaign.training.data import build_dataset
from pab_campaign.training.models import build_model, check_model
from pab_campaign.training.optim import build_optimizer, lr_factor

CNN = CnnConfig(name="cnn", channels=[4], hidden=8, norm="batchnorm", dropout=0.1)
SGD = SgdConfig(name="sgd", lr=0.1, weight_decay=0.0, momentum=0.9, nesterov=False)
COSINE = CosineScheduleConfig(name="cosine", warmup_epochs=1, min_lr_ratio=0.1)
DATA = SyntheticConfig(name="synthetic", val_fraction=0.2, split_seed=0, train_fraction=1.0, label_noise=0.0,
                       test_fraction=0.2, n_samples=80, n_classes=4, side=8, noise=1.0)


def test_a_dataclass_and_its_dictconfig_build_the_same_things():
    models = []
    for cfg in (CNN, OmegaConf.structured(CNN)):
        check_model(cfg)
        torch.manual_seed(0)
        models.append(build_model(cfg, (1, 8, 8), 4))
    assert all(torch.equal(a, b) for a, b in zip(models[0].state_dict().values(), models[1].state_dict().values()))
    optimizers = [build_optimizer(cfg, models[0]) for cfg in (SGD, OmegaConf.structured(SGD))]
    assert optimizers[0].defaults == optimizers[1].defaults
    assert [lr_factor(COSINE, e, 5) for e in range(5)] == [lr_factor(OmegaConf.structured(COSINE), e, 5)
                                                            for e in range(5)]
    bundles = [build_dataset(cfg) for cfg in (DATA, OmegaConf.structured(DATA))]
    assert torch.equal(bundles[0].train.x, bundles[1].train.x) and torch.equal(bundles[0].val.y, bundles[1].val.y)
