"""The MBE audit on campaigns written in the real on-disk format from constructed values, and once
on the small real campaign of the test suite; the command's bad paths."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from pab_campaign import store
from pab_campaign.analysis.audit import AuditRequest, run_audit
from pab_campaign.analysis.campaign import MetricSpec, open_campaign
from pab_campaign.errors import CampaignError
from tests.helpers import assert_one_line_error, cli

EARLY, LAST = 5, 10


def write_campaign(directory, hparams: list[dict], values: dict[str, np.ndarray]) -> None:
    """One completed run per row: `values` maps `context/metric` to per-run values at EARLY; the
    target `val/acc` is written at LAST (and val/loss at both, so the target epoch is the last)."""
    for index, params in enumerate(hparams):
        buffer = store.TrajectoryBuffer()
        for name, column in values.items():
            context, metric = name.split("/")
            buffer.add(EARLY, context, metric, float(column[index]))
        buffer.add(LAST, "val", "loss", float(values["val/loss"][index]))
        run_id = f"run{index:03d}"
        directory_ = store.run_dir(directory, run_id)
        store.write_run_json(directory_, store.RunRecord(run_id, store.RunStatus.COMPLETED, hparams=params,
                                                         epochs_done=LAST))
        store.write_trajectory(directory_, buffer.to_table())


@pytest.fixture(scope="module")
def constructed(tmp_path_factory):
    """60 runs: early val loss drives the final accuracy; `proxy` is a noisy copy of the loss, `signal`
    an independent predictor of the accuracy, `noise` unrelated, `flat` constant."""
    rng = np.random.default_rng(0)
    n = 60
    loss = rng.normal(size=n)
    signal = rng.normal(size=n)
    accuracy = -loss + 0.8 * signal + 0.3 * rng.normal(size=n)
    values = {"val/loss": loss, "probe/proxy": loss + 0.05 * rng.normal(size=n), "probe/signal": signal,
              "probe/noise": rng.normal(size=n), "probe/flat": np.full(n, 0.5), "val/acc": accuracy}
    hparams = [{"dataset.label_noise": float(rng.choice([0.0, 0.2, 0.4])),
                "model.norm": ["batchnorm", "layernorm"][i % 2],
                "seed": i} for i in range(n)]
    directory = tmp_path_factory.mktemp("audit") / "constructed"
    write_campaign(directory, hparams, values)
    # The target is val/acc at the last epoch: write it there (the constructed accuracy), not at EARLY.
    for index in range(n):
        run = store.run_dir(directory, f"run{index:03d}")
        buffer = store.TrajectoryBuffer.from_table(store.read_trajectory(run))
        buffer.add(LAST, "val", "acc", float(accuracy[index]))
        store.write_trajectory(run, buffer.to_table())
    return directory, values, hparams


def _request(**kwargs) -> AuditRequest:
    defaults = dict(metrics=[MetricSpec.parse(m) for m in ("probe/proxy", "probe/signal", "probe/noise")],
                    baseline=MetricSpec.parse(f"val/loss@{EARLY}"), target=MetricSpec.parse("val/acc"), n_boot=200)
    return AuditRequest(**{**defaults, **kwargs})


def test_loss_proxy_washes_out_and_an_independent_signal_survives(constructed):
    directory, values, _ = constructed
    result = run_audit(open_campaign(directory), _request())
    table = result.table.set_index("metric")
    assert list(table.index) == [f"val/loss@{EARLY}", f"probe/proxy@{EARLY}", f"probe/signal@{EARLY}",
                                 f"probe/noise@{EARLY}"]
    assert table.loc[f"val/loss@{EARLY}", "verdict"] == "baseline"
    assert table.loc[f"probe/proxy@{EARLY}", "verdict"] == "washout"
    assert table.loc[f"probe/signal@{EARLY}", "verdict"] == "survives"
    proxy = table.loc[f"probe/proxy@{EARLY}"]
    assert proxy["raw_rho"] == pytest.approx(scipy_stats.spearmanr(values["probe/proxy"], values["val/acc"]).statistic,
                                             abs=1e-12)
    assert proxy["raw_ci_low"] < proxy["raw_rho"] < proxy["raw_ci_high"]
    assert proxy["partial_ci_low"] < proxy["partial_rho"] < proxy["partial_ci_high"]
    assert (table["n"] == 60).all()


def test_groupby_categorical_control_and_drivers(constructed):
    directory, values, hparams = constructed
    request = _request(controls=["model.norm", "dataset.label_noise"], groupby="model.norm",
                       drivers=["dataset.label_noise"])
    result = run_audit(open_campaign(directory), request)
    assert set(result.table["group"]) == {"all", "model.norm=batchnorm", "model.norm=layernorm"}
    assert set(result.table.groupby("group")["n"].max()) == {60, 30}
    drivers = result.drivers.set_index(["group", "metric"])
    noise = np.array([h["dataset.label_noise"] for h in hparams])
    even = np.arange(60) % 2 == 0
    expected = scipy_stats.spearmanr(values["probe/signal"][even], noise[even]).statistic
    assert drivers.loc[("model.norm=batchnorm", f"probe/signal@{EARLY}"), "rho"] == pytest.approx(expected, abs=1e-12)
    assert len(result.drivers) == 3 * 5  # (all + 2 groups) x (baseline + 3 candidates + target)


def test_fewer_than_five_runs_in_a_group_is_insufficient_data_not_a_crash(tmp_path):
    rng = np.random.default_rng(1)
    loss = rng.normal(size=9)
    values = {"val/loss": loss, "probe/proxy": loss + rng.normal(size=9), "val/acc": -loss}
    write_campaign(tmp_path / "c", [{"model.norm": "layernorm" if i < 3 else "batchnorm"} for i in range(9)], values)
    request = _request(metrics=[MetricSpec.parse("probe/proxy")], groupby="model.norm",
                       baseline=MetricSpec.parse("val/loss@5"),
                       target=MetricSpec.parse("val/acc@5"))
    table = run_audit(open_campaign(tmp_path / "c"), request).table
    small = table[table["group"] == "model.norm=layernorm"]
    assert set(small["verdict"]) == {"insufficient-data"} and set(small["n"]) == {3}
    assert table.loc[table["group"] == "all", "n"].tolist() == [9, 9]


def test_a_constant_metric_gets_a_clear_message(constructed):
    directory, _, _ = constructed
    result = run_audit(open_campaign(directory), _request(metrics=[MetricSpec.parse("probe/flat"),
                                                                   MetricSpec.parse("probe/signal")]))
    assert result.table.set_index("metric").loc[f"probe/flat@{EARLY}", "verdict"] == "constant"
    assert any("probe/flat" in note and "constant" in note for note in result.notes)
    with pytest.raises(CampaignError, match="every candidate is constant"):
        run_audit(open_campaign(directory), _request(metrics=[MetricSpec.parse("probe/flat")]))
    with pytest.raises(CampaignError, match="probe/flat@5 is constant"):
        run_audit(open_campaign(directory), _request(baseline=MetricSpec.parse("probe/flat@5")))


def test_cli_writes_the_table_csv_drivers_and_one_png_per_metric(constructed):
    directory, _, _ = constructed
    result = cli(["audit", str(directory), "--all-metrics", "--baseline", f"val/loss@{EARLY}", "--target", "val/acc",
                  "--drivers", "dataset.label_noise", "--n-boot", "100"])
    assert result.returncode == 0, result.stderr
    assert "washout" in result.stdout and "survives" in result.stdout and "constant" in result.stdout
    audit = pd.read_csv(directory / "summary" / "audit.csv")
    assert set(audit["metric"]) == {f"val/loss@{EARLY}", *(f"probe/{m}@{EARLY}" for m in
                                                          ("proxy", "signal", "noise", "flat"))}
    assert (directory / "summary" / "audit_drivers.csv").exists()
    figures = sorted(p.name for p in (directory / "summary" / "audit").glob("*.png"))
    assert figures == sorted(f"probe_{m}_at{EARLY}.png" for m in ("flat", "noise", "proxy", "signal"))
    assert all((directory / "summary" / "audit" / f).read_bytes()[:4] == b"\x89PNG" for f in figures)


@pytest.mark.parametrize(("extra", "fragments"), [
    (["--groupby", "model.width"], ("--groupby 'model.width' is not a hyper-parameter", "model.norm")),
    (["--drivers", "model.norm"], ("driver 'model.norm' is not numeric",)),
    (["--controls", "depth"], ("control 'depth' is not a hyper-parameter",)),
    (["--controls", "probe/nothing"], ("probe/nothing", "never tracked")),
    (["--at-epoch", "7"], ("no value at epoch 7",)),
    (["--n-boot", "0"], ("--n-boot 0 must be >= 1",)),
])
def test_cli_bad_paths_are_one_line(constructed, extra, fragments):
    directory, _, _ = constructed
    audit_csv = directory / "summary" / "audit.csv"
    before = audit_csv.read_bytes() if audit_csv.exists() else None
    result = cli(["audit", str(directory), "--metric", "probe/signal", "--baseline", f"val/loss@{EARLY}",
                  "--target", "val/acc", *extra])
    assert_one_line_error(result, *fragments)
    after = audit_csv.read_bytes() if audit_csv.exists() else None
    assert after == before


def test_all_metrics_on_a_real_campaign(demo_campaign):
    result = cli(["audit", str(demo_campaign), "--all-metrics", "--baseline", "val/loss@2", "--target", "val/acc",
                  "--controls", "model.name", "--groupby", "model.name", "--n-boot", "50", "--no-plots"])
    assert result.returncode == 0, result.stderr
    audit = pd.read_csv(demo_campaign / "summary" / "audit.csv")
    assert {"weights/erank@2", "train/loss@2"} <= set(audit["metric"])
    assert set(audit["group"]) == {"all", "model.name=cnn", "model.name=mlp"}
    valid = {"baseline", "washout", "sign-inversion", "reverse-inversion", "hidden-after-control", "survives",
             "weak-or-mixed", "insufficient-data", "constant"}
    assert set(audit["verdict"]) <= valid
    assert audit["partial_rho"].dropna().between(-1, 1).all()


def test_heterogeneous_grid_is_the_seeded_draw_and_composes_to_it(tmp_path):
    import subprocess
    import sys

    from tests.helpers import REPO, compose_config

    check = subprocess.run([sys.executable, str(REPO / "scripts" / "make_mbe_grid.py"), "--check"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from make_mbe_grid import N_CONFIGS, draw
    finally:
        sys.path.remove(str(REPO / "scripts"))
    rows = draw()
    assert N_CONFIGS >= 30 and len({(r["lr"], r["weight_decay"]) for r in rows}) == N_CONFIGS
    for sample in ("c00", f"c{N_CONFIGS - 1:02d}"):
        cfg = compose_config(["+experiment=mbe_heterogeneous_grid", f"mbe.sample={sample}"], tmp_path / "c")
        row = rows[int(sample[1:])]
        assert (cfg.optimizer.lr, cfg.optimizer.weight_decay, list(cfg.model.hidden), cfg.dataset.train_fraction,
                cfg.dataset.label_noise, cfg.seed) == (row["lr"], row["weight_decay"], row["hidden"],
                                                       row["train_fraction"], row["label_noise"], row["seed"])
