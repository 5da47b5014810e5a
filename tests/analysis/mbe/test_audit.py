"""The MBE audit on campaigns written in the real on-disk format from constructed values, and once
on the small real campaign of the test suite; the command's bad paths."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

from pab_campaign import store
from pab_campaign.analysis.campaign.campaign import open_campaign
from pab_campaign.analysis.mbe.audit import AuditRequest, run_audit
from pab_campaign.errors import CampaignError, ConfigError
from pab_campaign.metrics import MetricSpec
from tests.helpers import assert_one_line_error, cli

EARLY, LAST = 5, 10


def write_campaign(directory, hparams: list[dict], values: dict[str, np.ndarray]) -> None:
    """One completed run per row of campaign `directory.name`: `values` maps `context/metric` to per-run
    values at EARLY; the target `val/acc` is written at LAST (and val/loss at both, so the target epoch
    is the last)."""
    for index, params in enumerate(hparams):
        buffer = store.TrajectoryBuffer()
        for name, column in values.items():
            context, metric = name.split("/")
            buffer.add(EARLY, context, metric, float(column[index]))
        buffer.add(LAST, "val", "loss", float(values["val/loss"][index]))
        run_id = f"run{index:03d}"
        directory_ = store.run_dir(directory, run_id)
        store.write_run_json(directory_, store.RunRecord(run_id, store.RunStatus.COMPLETED, campaign=directory.name,
                                                         hparams=params, epochs_done=LAST))
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


def test_loss_proxy_is_flagged_and_an_independent_signal_passes(constructed):
    directory, values, _ = constructed
    result = run_audit(open_campaign(directory), _request())
    table = result.table.set_index("metric")
    assert list(table.index) == [f"val/loss@{EARLY}", f"probe/proxy@{EARLY}", f"probe/signal@{EARLY}",
                                 f"probe/noise@{EARLY}"]
    assert table.loc[f"val/loss@{EARLY}", ["verdict", "effect_class"]].tolist() == ["baseline", "baseline"]
    proxy, signal = table.loc[f"probe/proxy@{EARLY}"], table.loc[f"probe/signal@{EARLY}"]
    # mbe-eval's verdict first; over 60 runs the partial's interval is too wide to call it a washout.
    assert [proxy["stage1"], proxy["verdict"], proxy["is_loss_proxy"], proxy["effect_class"]] == \
        ["PASS", "loss proxy", True, "inconclusive"]
    assert [signal["stage1"], signal["verdict"], signal["is_loss_proxy"], signal["effect_class"]] == \
        ["PASS", "PASS", False, "survives"]
    assert proxy["diagnosis"].startswith(f"probe/proxy@{EARLY} is a loss proxy")
    proxy = table.loc[f"probe/proxy@{EARLY}"]
    assert proxy["raw_rho"] == pytest.approx(scipy_stats.spearmanr(values["probe/proxy"], values["val/acc"]).statistic,
                                             abs=1e-12)
    assert proxy["raw_ci_low"] < proxy["raw_rho"] < proxy["raw_ci_high"]
    assert proxy["partial_ci_low"] < proxy["partial_rho"] < proxy["partial_ci_high"]
    assert (table["n"] == 60).all()
    assert (table["family_size"] == 3).all() and (table["correction"] == "holm").all()
    tested = table.iloc[1:]
    for kind in ("raw", "partial"):
        expected = multipletests(tested[f"{kind}_p"], method="holm")[1]
        np.testing.assert_allclose(tested[f"{kind}_p_adj"], expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("correction", ["holm", "fdr_bh", "none"])
def test_the_family_spans_every_candidate_and_group(constructed, correction):
    directory, _, _ = constructed
    request = _request(groupby="model.norm", drivers=["dataset.label_noise"], correction=correction, alpha=0.1)
    result = run_audit(open_campaign(directory), request)
    table = result.table
    tested = table[table["verdict"].isin(["PASS", "loss proxy"])]
    assert result.family == len(tested) == 9 and (table["family_size"] == 9).all()
    for kind in ("raw", "partial"):
        expected = tested[f"{kind}_p"] if correction == "none" else \
            multipletests(tested[f"{kind}_p"], method=correction)[1]
        np.testing.assert_allclose(tested[f"{kind}_p_adj"], expected, rtol=0, atol=1e-12)
        assert table.loc[table["verdict"] == "baseline", f"{kind}_p_adj"].isna().all()
    assert (tested["verdict"] == np.where(tested["partial_p_adj"] > 0.1, "loss proxy", "PASS")).all()
    assert (tested["stage1"] == np.where(tested["raw_p_adj"] < 0.1, "PASS", "FAIL")).all()
    drivers = result.drivers
    assert result.driver_family == drivers["p"].notna().sum() == 15
    expected = drivers["p"] if correction == "none" else multipletests(drivers["p"], method=correction)[1]
    np.testing.assert_allclose(drivers["p_adj"], expected, rtol=0, atol=1e-12)


def test_bad_alpha_or_correction_in_the_request_is_a_config_error(constructed):
    directory, _, _ = constructed
    with pytest.raises(ConfigError, match=r"alpha 1.5 is not a significance level in \(0, 1\)"):
        run_audit(open_campaign(directory), _request(alpha=1.5))
    with pytest.raises(ConfigError, match="unknown correction 'bonferroni'"):
        run_audit(open_campaign(directory), _request(correction="bonferroni"))


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
    assert set(small["verdict"]) == set(small["effect_class"]) == {"insufficient-data"} and set(small["n"]) == {3}
    assert small["is_loss_proxy"].isna().all()
    assert table.loc[table["group"] == "all", "n"].tolist() == [9, 9]


def test_a_target_constant_within_a_group_is_insufficient_data(tmp_path):
    rng = np.random.default_rng(2)
    loss = rng.normal(size=12)
    accuracy = np.where(np.arange(12) < 6, 0.9, -loss)
    values = {"val/loss": loss, "probe/proxy": loss + rng.normal(size=12), "val/acc": accuracy}
    write_campaign(tmp_path / "c", [{"model.norm": "layernorm" if i < 6 else "batchnorm"} for i in range(12)], values)
    request = _request(metrics=[MetricSpec.parse("probe/proxy")], groupby="model.norm",
                       baseline=MetricSpec.parse("val/loss@5"), target=MetricSpec.parse("val/acc@5"))
    table = run_audit(open_campaign(tmp_path / "c"), request).table.set_index(["group", "metric"])
    flat = table.loc[("model.norm=layernorm", "probe/proxy@5")]
    assert flat["verdict"] == "insufficient-data" and "target is constant" in flat["diagnosis"]
    assert table.loc[("model.norm=batchnorm", "probe/proxy@5"), "verdict"] in {"PASS", "loss proxy"}


def test_a_groupby_with_one_value_is_audited_once(tmp_path):
    rng = np.random.default_rng(3)
    loss = rng.normal(size=10)
    values = {"val/loss": loss, "probe/proxy": loss + rng.normal(size=10), "val/acc": -loss + rng.normal(size=10)}
    write_campaign(tmp_path / "c", [{"model.norm": "none", "seed": i} for i in range(10)], values)
    request = _request(metrics=[MetricSpec.parse("probe/proxy")], groupby="model.norm",
                       baseline=MetricSpec.parse("val/loss@5"), target=MetricSpec.parse("val/acc@5"))
    result = run_audit(open_campaign(tmp_path / "c"), request)
    assert set(result.table["group"]) == {"all"} and result.family == 1
    assert any("--groupby model.norm has one value" in note for note in result.notes)


def test_a_constant_metric_gets_a_clear_message(constructed):
    directory, _, _ = constructed
    result = run_audit(open_campaign(directory), _request(metrics=[MetricSpec.parse("probe/flat"),
                                                                   MetricSpec.parse("probe/signal")]))
    flat = result.table.set_index("metric").loc[f"probe/flat@{EARLY}"]
    assert flat["verdict"] == flat["effect_class"] == "constant" and flat["is_loss_proxy"] is None
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
    for words in ("loss proxy", "PASS", "survives", "constant", "p → adjusted",
                  "family of 3 candidate × group tests per stage", f"DIAGNOSIS probe/proxy@{EARLY} is a loss proxy"):
        assert words in result.stdout, words
    audit = pd.read_csv(directory / "summary" / "audit.csv")
    assert set(audit["metric"]) == {f"val/loss@{EARLY}", *(f"probe/{m}@{EARLY}" for m in
                                                          ("proxy", "signal", "noise", "flat"))}
    proxy = audit.set_index("metric").loc[f"probe/proxy@{EARLY}"]
    assert proxy["is_loss_proxy"] and proxy["verdict"] == "loss proxy" and "\n" not in proxy["diagnosis"]
    assert audit["diagnosis"].notna().all()
    assert (directory / "summary" / "audit_drivers.csv").exists()
    figures = sorted(p.name for p in (directory / "summary" / "audit").glob("*.png"))
    assert figures == sorted(f"probe_{m}_at{EARLY}.png" for m in ("flat", "noise", "proxy", "signal"))
    assert all((directory / "summary" / "audit" / f).read_bytes()[:4] == b"\x89PNG" for f in figures)


def _png_width(path) -> int:
    """Pixel width from a PNG's IHDR chunk."""
    return int.from_bytes(path.read_bytes()[16:20], "big")


def test_an_audit_replaces_its_figure_folder_and_takes_dpi(constructed):
    directory, _, _ = constructed
    summary = directory / "summary"
    args = ["audit", str(directory), "--baseline", f"val/loss@{EARLY}", "--target", "val/acc", "--n-boot", "20"]
    assert cli([*args, "--metric", "probe/proxy", "probe/signal", "--drivers", "dataset.label_noise"]).returncode == 0
    assert (summary / "audit_drivers.csv").exists()
    wide = _png_width(summary / "audit" / f"probe_signal_at{EARLY}.png")
    result = cli([*args, "--metric", "probe/signal", "--dpi", "75"])
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (summary / "audit").iterdir()) == [f"probe_signal_at{EARLY}.png"]
    assert not [p for p in summary.iterdir() if p.name.startswith(".audit")]  # no staging folder left
    assert not (summary / "audit_drivers.csv").exists()  # the earlier audit's driver table is gone too
    assert _png_width(summary / "audit" / f"probe_signal_at{EARLY}.png") == pytest.approx(wide / 2, rel=0.05)
    assert cli([*args, "--metric", "probe/proxy", "--no-plots"]).returncode == 0
    assert not (summary / "audit").exists()  # no figure of an earlier audit beside this one's table


def test_campaign_id_output_folder_and_precision(constructed, tmp_path):
    directory, _, _ = constructed
    args = ["audit", str(directory), "--metric", "probe/signal", "--baseline", f"val/loss@{EARLY}", "--target",
            "val/acc", "--n-boot", "20"]
    result = cli([*args, "--campaign-id", "constructed", "--output-folder", str(tmp_path / "out"), "--precision", "6"])
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["audit_constructed", "audit_constructed.csv",
                                                                     "audit_runs_constructed.csv"]
    assert [p.name for p in (tmp_path / "out" / "audit_constructed").iterdir()] == [f"probe_signal_at{EARLY}.png"]
    raw = pd.read_csv(tmp_path / "out" / "audit_constructed.csv").set_index("metric").loc[f"probe/signal@{EARLY}",
                                                                                          "raw_rho"]
    assert f"{raw:.6g} [" in result.stdout and f"{raw:.3g} [" not in result.stdout
    assert f"{raw:.2g} [" in cli([*args, "--precision", "2", "--no-plots"]).stdout


@pytest.mark.parametrize(("extra", "fragments"), [
    (["--groupby", "model.width"], ("--groupby 'model.width' is not a hyper-parameter", "model.norm")),
    (["--drivers", "model.norm"], ("driver 'model.norm' is not numeric",)),
    (["--controls", "depth"], ("control 'depth' is not a hyper-parameter",)),
    (["--controls", "probe/nothing"], ("probe/nothing", "never tracked")),
    (["--at-epoch", "7"], ("no value at epoch 7",)),
    (["--n-boot", "0"], ("--n-boot 0 must be a whole number from 1 to 1000000",)),
    (["--n-boot", "99999999999"], ("--n-boot 99999999999 must be a whole number from 1",)),  # was a MemoryError
    (["--seed", "-1"], ("--seed -1 must be a whole number from 0 to 4294967295",)),  # was an internal error
    (["--alpha", "0"], ("--alpha 0 must be a number in (0, 1)",)),
    (["--alpha", "1.5"], ("--alpha 1.5 must be a number in (0, 1)",)),
    (["--alpha", "five"], ("--alpha five must be a number in (0, 1)",)),
    (["--correction", "bonferroni"], ("invalid choice: 'bonferroni'", "holm", "fdr_bh", "none")),
    (["--precision", "0"], ("--precision 0 must be a whole number from 1 to 17",)),
    (["--dpi", "5"], ("--dpi 5 must be a whole number from 30",)),
    (["--campaign-id", "elsewhere"], ("no run of campaign elsewhere",)),
])
def test_cli_bad_paths_are_one_line(constructed, extra, fragments):
    directory, _, _ = constructed
    audit_csv = directory / "summary" / "audit.csv"
    before = audit_csv.read_bytes() if audit_csv.exists() else None
    result = cli(["audit", str(directory), "--metric", "probe/signal", "--baseline", f"val/loss@{EARLY}",
                  "--target", "val/acc", *extra])
    assert_one_line_error(result, *fragments)
    assert result.returncode == 2
    after = audit_csv.read_bytes() if audit_csv.exists() else None
    assert after == before


def test_an_output_folder_that_is_a_file_is_refused(constructed, tmp_path):
    directory, _, _ = constructed
    (tmp_path / "taken").write_text("x")
    result = cli(["audit", str(directory), "--metric", "probe/signal", "--baseline", f"val/loss@{EARLY}",
                  "--target", "val/acc", "--output-folder", str(tmp_path / "taken")])
    assert_one_line_error(result, "--output-folder", "is a file")
    assert (tmp_path / "taken").read_text() == "x"


def test_the_clis_corrections_are_the_statistics_ones():
    from pab_campaign.analysis.stats.multicomp import CORRECTIONS
    from pab_campaign.cli import audit as audit_cli

    assert audit_cli.CORRECTIONS == CORRECTIONS


def test_all_metrics_on_a_real_campaign(demo_campaign):
    result = cli(["audit", str(demo_campaign), "--all-metrics", "--baseline", "val/loss@2", "--target", "val/acc",
                  "--controls", "model.name", "--groupby", "model.name", "--n-boot", "50", "--no-plots"])
    assert result.returncode == 0, result.stderr
    audit = pd.read_csv(demo_campaign / "summary" / "audit.csv")
    assert {"weights/erank@2", "train/loss@2"} <= set(audit["metric"])
    assert set(audit["group"]) == {"all", "model.name=cnn", "model.name=mlp"}
    classes = {"baseline", "washout", "sign-inversion", "reverse-inversion", "hidden-after-control", "survives",
               "inconclusive", "insufficient-data", "constant"}
    assert set(audit["effect_class"]) <= classes
    assert set(audit["verdict"]) <= {"baseline", "PASS", "loss proxy", "insufficient-data", "constant"}
    tested = audit[audit["verdict"].isin(["PASS", "loss proxy"])]
    assert (tested["family_size"] == len(tested)).all()
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


def test_a_candidate_the_baseline_ranks_entirely_is_not_in_the_stage_4_family(tmp_path):
    rng = np.random.default_rng(3)
    n = 20
    loss, signal = rng.normal(size=n), rng.normal(size=n)
    values = {"val/loss": loss, "probe/copy": 2 * loss, "probe/signal": signal,
              "val/acc": -loss + signal + 0.3 * rng.normal(size=n)}
    write_campaign(tmp_path / "c", [{"seed": i} for i in range(n)], values)
    request = _request(metrics=[MetricSpec.parse(m) for m in ("probe/copy", "probe/signal")],
                       target=MetricSpec.parse(f"val/acc@{EARLY}"))
    table = run_audit(open_campaign(tmp_path / "c"), request).table.set_index("metric")
    copy, signal = table.loc[f"probe/copy@{EARLY}"], table.loc[f"probe/signal@{EARLY}"]
    assert math.isnan(copy["partial_p"]) and copy["family_size"] == 2 and copy["partial_family_size"] == 1
    assert signal["partial_p_adj"] == pytest.approx(signal["partial_p"], rel=1e-12)  # a family of one
    stage1 = multipletests([copy["raw_p"], signal["raw_p"]], method="holm")[1]  # two tests in stage 1
    assert [copy["raw_p_adj"], signal["raw_p_adj"]] == pytest.approx(list(stage1), rel=1e-12)


def test_groupby_on_a_hyperparameter_some_runs_lack_gives_them_a_group(tmp_path):
    rng = np.random.default_rng(4)
    n = 12
    loss = rng.normal(size=n)
    values = {"val/loss": loss, "probe/signal": rng.normal(size=n), "val/acc": -loss}
    write_campaign(tmp_path / "c", [{"seed": i, **({"wd": 0.1, "norm": "batch"} if i % 2 else {})} for i in range(n)],
                   values)
    request = _request(metrics=[MetricSpec.parse("probe/signal")], target=MetricSpec.parse(f"val/acc@{EARLY}"),
                       groupby="wd", n_boot=20)
    result = run_audit(open_campaign(tmp_path / "c"), request)
    assert set(result.table["group"]) == {"all", "wd=0.1", "wd=missing"}
    assert not any("one value" in note for note in result.notes)
    controlled = run_audit(open_campaign(tmp_path / "c"), _request(
        metrics=[MetricSpec.parse("probe/signal")], target=MetricSpec.parse(f"val/acc@{EARLY}"), controls=["norm"],
        n_boot=20))
    assert controlled.table["n"].max() == n  # a categorical control some runs lack: a 'missing' category
    drawn = cli(["audit", str(tmp_path / "c"), "--metric", "probe/signal", "--baseline", f"val/loss@{EARLY}",
                 "--target", f"val/acc@{EARLY}", "--groupby", "wd", "--n-boot", "20"])  # its figure, too
    assert drawn.returncode == 0, drawn.stderr
    assert (store.summary_dir(tmp_path / "c") / "audit" / f"probe_signal_at{EARLY}.png").read_bytes()[:4] == b"\x89PNG"


def test_a_baseline_that_names_its_epoch_keeps_it_under_at_epoch_and_says_so(constructed):
    directory, _, _ = constructed
    request = _request(metrics=[MetricSpec.parse("val/loss")], at_epoch=LAST)
    result = run_audit(open_campaign(directory), request)
    assert list(result.table["metric"]) == [f"val/loss@{EARLY}", f"val/loss@{LAST}"]
    assert any(f"baseline val/loss@{EARLY} keeps the epoch it names; the candidates are at epoch {LAST}" in note
               for note in result.notes)
    same = run_audit(open_campaign(directory), _request(at_epoch=EARLY))
    assert not any("keeps the epoch" in note for note in same.notes)


def test_all_metrics_leaves_out_a_recorded_name_no_option_could_name(tmp_path):
    """A campaign from someone else may record a context like 'val</x>': --all-metrics audits the
    others and says which it left out (it refused the whole audit, blaming the command)."""
    rng = np.random.default_rng(2)
    n = 8
    values = {"val/loss": rng.normal(size=n), "probe/x": rng.normal(size=n), "val/acc": rng.normal(size=n)}
    directory = tmp_path / "odd"
    write_campaign(directory, [{"seed": i} for i in range(n)], values)
    for index in range(n):
        run = store.run_dir(directory, f"run{index:03d}")
        buffer = store.TrajectoryBuffer.from_table(store.read_trajectory(run))
        buffer.add(EARLY, "val</x>", "acc", float(index))
        store.write_trajectory(run, buffer.to_table())
    request = _request(metrics=[], all_metrics=True, target=MetricSpec.parse(f"val/acc@{EARLY}"))
    result = run_audit(open_campaign(directory), request)
    assert f"probe/x@{EARLY}" in set(result.table["metric"])
    assert any("1 recorded metric(s) left out" in note and "'val</x>/acc'" in note for note in result.notes)
