"""Every bad input of the foundation: one line on stderr naming the problem, non-zero exit, no traceback."""
import shutil

import pytest

from pab_campaign import store
from tests.helpers import assert_one_line_error, cli, make_grid, train


@pytest.mark.parametrize(("overrides", "fragments"), [
    (["train.epochs=abc"], ("train.epochs=abc", "could not be converted to Integer", "train.epochs takes int")),
    (["optimizer.lr=fast"], ("optimizer.lr=fast", "could not be converted to Float", "optimizer.lr takes float")),
    (["model=resnet18", "model.width=1.5"], ("model.width=1.5", "model.width takes int")),
    (["runtime.threads=many"], ("runtime.threads=many", "runtime.threads takes int | None")),
    (["no_such_key=1"], ("no_such_key=1", "the top level has no key 'no_such_key'", "train, campaign")),
    (["optimizer.lrr=0.1"], ("optimizer.lrr=0.1", "optimizer has no key 'lrr'", "lr, weight_decay")),
    (["dataset.classes=3"], ("dataset has no key 'classes'", "test_fraction")),
    (["model=vit"], ("model/vit", "mlp")),
])
def test_config_refused_at_composition(tmp_path, overrides, fragments):
    """A wrong type, an unknown key or option: refused while Hydra composes, so nothing is written."""
    result = train(overrides, tmp_path / "c")
    assert result.returncode == 2
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(("overrides", "fragments"), [
    (["optimizer.lr=-0.5"], ("optimizer.lr=-0.5 must be > 0",)),
    (["train.epochs=-3"], ("train.epochs=-3 must be >= 1",)),
    (["+train.epoch=3"], ("train.epoch is not a config key",)),
    (["model.norm=bogus"], ("unknown normalisation 'bogus' in model.norm", "['batchnorm', 'layernorm', 'none']")),
    (["model.name=vit"], ("unknown model 'vit' in model.name", "'transformer'")),
    (["model.name=mlpp"], ("unknown model 'mlpp' in model.name (did you mean mlp?)",)),
    (["tracking.probes.churn.every=-1"], ("tracking.probes.churn.every=-1 must be >= 0",)),
    (["+experiment=mbe_heterogeneous_grid", "mbe.sample=c99"], ("optimizer.lr: Interpolation key 'mbe.draws.c99.lr'",)),
])
def test_config_refused_before_a_run_directory_exists(tmp_path, overrides, fragments):
    """Ranges, names, keys added past the schema and values read through an interpolation: refused by
    the run's checks before `runs/` exists; all but the last before Hydra writes its output folder
    (<campaign>/hydra/<time>/ was left behind)."""
    result = train(overrides, tmp_path / "c")
    assert result.returncode == 2
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "c" / "runs").exists()
    if "Interpolation" not in fragments[0]:  # read as the run starts, named by key there
        assert not (tmp_path / "c").exists()


def test_missing_campaign_path(tmp_path):
    assert_one_line_error(cli(["report", str(tmp_path / "nope")]), "does not exist")


def test_campaign_without_completed_runs(tmp_path):
    campaign = tmp_path / "empty"
    store.runs_dir(campaign).mkdir(parents=True)
    store.write_run_json(store.run_dir(campaign, "r1"), store.RunRecord("r1", store.RunStatus.FAILED))
    assert_one_line_error(cli(["report", str(campaign)]), "no usable completed run", "failed")


def test_audit_over_fewer_than_five_runs(demo_campaign, tmp_path):
    small = tmp_path / "small"
    for directory in list(store.iter_run_dirs(demo_campaign))[:4]:
        shutil.copytree(directory, store.run_dir(small, directory.name))
    result = cli(["audit", str(small), "--metric", "weights/erank", "--baseline", "val/loss@2", "--target", "val/acc"])
    assert_one_line_error(result, "only 4", "at least 5")


def test_audit_of_a_metric_never_tracked(demo_campaign):
    result = cli(["audit", str(demo_campaign), "--metric", "probe/fim_norm", "--baseline", "val/loss@2",
                  "--target", "val/acc"])
    assert_one_line_error(result, "probe/fim_norm", "never tracked")


def test_malformed_metric_name(demo_campaign):
    result = cli(["audit", str(demo_campaign), "--metric", "erank", "--baseline", "val/loss@2", "--target", "val/acc"])
    assert_one_line_error(result, "'erank' is not a metric name")


@pytest.mark.parametrize(("args", "fragment"), [
    ([], "required: COMMAND"),
    (["report"], "required: CAMPAIGN_DIR"),
    (["audit", "outputs/demo", "--metric", "val/acc"], "required: --baseline, --target"),
    (["report", "outputs/demo", "--epoch", "soon"], "--epoch soon"),
    (["frobnicate", "outputs/demo"], "invalid choice"),
])
def test_usage_errors_are_one_line(args, fragment):
    assert_one_line_error(cli(args), fragment)


def test_an_output_place_that_cannot_be_written_is_one_line_and_nothing_is_written(tmp_path):
    make_grid(tmp_path / "c", seeds=2)
    run_json = next((tmp_path / "c" / "runs").iterdir()) / "run.json"
    before = run_json.read_bytes()
    (tmp_path / "file").write_text("x")
    for args, fragment in ((["report", "--output-folder", str(tmp_path / "file" / "x")], "which is a file"),
                           (["report", "--output-folder", str(run_json / "x")], "whose files belong to the runs"),
                           (["curves", "--output-folder", "/proc/pab"], "cannot write there"),
                           (["html", "--out", "/proc/page.html"], "cannot write in /proc")):
        result = cli([args[0], str(tmp_path / "c"), *args[1:]])
        assert result.returncode == 2
        assert_one_line_error(result, fragment)
    assert run_json.read_bytes() == before
