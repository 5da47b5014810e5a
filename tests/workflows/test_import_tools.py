"""`import` from the tools' own writers: TensorBoard's SummaryWriter (HParams plugin and directory-name
hyper-parameters, steps per epoch), an MLflow SQLite store, W&B offline runs; values as written."""
from __future__ import annotations

import contextlib
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from pab_campaign import cli
from pab_campaign.store import iter_run_dirs, read_run_json, read_steps, read_trajectory, summary_dir

pytest.importorskip("tensorboard")


def _frame(campaign) -> pd.DataFrame:
    """Every trajectory row of `campaign` with its run's hyper-parameters as columns."""
    frames = []
    for directory in iter_run_dirs(campaign):
        frame = read_trajectory(directory).to_pandas().astype({"context": str, "metric": str})
        for name, value in read_run_json(directory).hparams.items():
            frame[name] = value
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _main(capsys, argv):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out + err


def test_tensorboard_runs_import_with_their_values_and_audit(tmp_path, capsys):
    from torch.utils.tensorboard import SummaryWriter

    rng = np.random.default_rng(0)
    written = {}
    for index in range(6):
        lr, seed = (0.1, 0.01)[index % 2], index
        directory = tmp_path / "tb" / f"lr={lr},seed={seed}"
        with SummaryWriter(str(directory)) as writer:
            for epoch in range(4):
                loss, accuracy = float(rng.uniform(0.2, 2)), float(rng.uniform(0, 1))
                writer.add_scalar("val/loss", loss, epoch)
                writer.add_scalar("eval/accuracy", accuracy, epoch)
                written[(lr, seed, epoch)] = (loss, accuracy)
            if index == 0:  # the HParams plugin, as add_hparams writes it (a sub-directory): it wins over the name
                writer.add_hparams({"lr": lr, "seed": seed, "optimizer": "sgd"}, {"hparam/x": 1.0})
    code, out = _main(capsys, ["import", str(tmp_path / "c"), "--from", "tensorboard", str(tmp_path / "tb"),
                               "--map", "eval/accuracy=val/acc"])
    assert code == 0 and "imported 6 of 6 runs" in out, out
    frame = _frame(tmp_path / "c")
    assert set(frame["context"] + "/" + frame["metric"]) == {"val/loss", "val/acc"}  # no hparam/x run or metric
    for (lr, seed, epoch), (loss, accuracy) in written.items():
        rows = frame[(frame["lr"] == lr) & (frame["seed"] == seed) & (frame["epoch"] == epoch)]
        got = dict(zip(rows["metric"], rows["value"]))
        assert got["loss"] == pytest.approx(loss, rel=1e-6) and got["acc"] == pytest.approx(accuracy, rel=1e-6)
    assert frame["optimizer"].eq("sgd").sum() == 8  # run 0's hyper-parameters came from the HParams plugin
    code, out = _main(capsys, ["audit", str(tmp_path / "c"), "--metric", "val/acc@2", "--baseline", "val/loss@1",
                               "--target", "val/loss@3", "--n-boot", "20", "--no-plots"])
    assert code == 0, out
    assert pd.read_csv(summary_dir(tmp_path / "c") / "audit.csv")["n"].max() == 6


def test_steps_per_epoch_puts_every_step_in_steps_parquet(tmp_path, capsys):
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(tmp_path / "tb" / "seed=0")) as writer:
        for step in range(9):
            writer.add_scalar("train_loss", 10.0 - step, step)
    code, out = _main(capsys, ["import", str(tmp_path / "c"), "--from", "tensorboard", str(tmp_path / "tb"),
                               "--steps-per-epoch", "4"])
    assert code == 0, out
    (directory,) = iter_run_dirs(tmp_path / "c")
    trajectory = read_trajectory(directory).to_pandas()
    # epoch = ceil(step / 4): step 0 → 0, steps 1..4 → 1, steps 5..8 → 2; each epoch's last step's value
    assert trajectory["epoch"].tolist() == [0, 1, 2] and trajectory["value"].tolist() == [10.0, 6.0, 2.0]
    assert set(trajectory["metric"].astype(str)) == {"loss"} and set(trajectory["context"].astype(str)) == {"train"}
    steps = read_steps(directory).to_pandas()
    assert steps["step"].tolist() == list(range(9)) and steps["value"].tolist() == [10.0 - s for s in range(9)]
    assert steps["epoch"].tolist() == [0, 1, 1, 1, 1, 2, 2, 2, 2] and steps["wall_time"].notna().all()


def test_a_store_that_is_not_mlflows_is_refused_and_left_as_it_was(tmp_path, capsys):
    """MLflow added its ~30 tables to any SQLite file named, and a .trash folder to any directory."""
    pytest.importorskip("mlflow")
    import sqlite3

    with contextlib.closing(sqlite3.connect(tmp_path / "notes.db")) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
        connection.commit()
    before = (tmp_path / "notes.db").read_bytes()
    (tmp_path / "folder" / "d").mkdir(parents=True)
    for source, fragment in ((f"sqlite:///{tmp_path / 'notes.db'}", "an SQLite database without MLflow's tables"),
                             (str(tmp_path / "folder"), "no experiment in it")):
        code, out = _main(capsys, ["import", str(tmp_path / "c"), "--from", "mlflow", source])
        assert code == 2 and fragment in out and len(out.splitlines()) == 1, out
    assert (tmp_path / "notes.db").read_bytes() == before
    assert sorted(os.listdir(tmp_path / "folder")) == ["d"] and not (tmp_path / "c").exists()


def test_mlflow_store_imports_params_history_and_status(tmp_path, capsys):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("sweep")
    for lr, status in ((0.1, "FINISHED"), (0.01, "FAILED")):
        run = client.create_run(experiment, run_name=f"lr{lr}")
        client.log_param(run.info.run_id, "lr", str(lr))
        client.log_param(run.info.run_id, "model", "mlp")
        for epoch in range(3):
            client.log_metric(run.info.run_id, "val_loss", lr * (3 - epoch), step=epoch)
        client.log_metric(run.info.run_id, "val_loss", math.nan, step=3)
        client.set_terminated(run.info.run_id, status)
    source = (tmp_path / "mlflow.db").read_bytes()
    code, out = _main(capsys, ["import", str(tmp_path / "c"), "--from", "mlflow", uri])
    assert code == 0, out
    assert (tmp_path / "mlflow.db").read_bytes() == source  # read from a copy: the source is not written
    records = {read_run_json(d).hparams["lr"]: (read_run_json(d), read_trajectory(d).to_pandas())
               for d in iter_run_dirs(tmp_path / "c")}
    assert records[0.1][0].status.value == "completed" and records[0.01][0].status.value == "failed"
    assert records[0.1][0].hparams == {"lr": 0.1, "model": "mlp"}
    values = records[0.01][1]["value"].tolist()
    assert values[:3] == pytest.approx([0.03, 0.02, 0.01]) and math.isnan(values[3])
    code, out = _main(capsys, ["import", str(tmp_path / "c"), "--from", "mlflow", uri])
    assert code == 0 and "imported 0 of 2 runs" in out, out


WANDB_RUNS = """
import wandb
for lr in (0.1, 0.01):
    run = wandb.init(project="p", dir=DIR, config={"optimizer": {"lr": lr}, "seed": 1}, mode="offline")
    for epoch in range(3):
        run.log({"val/loss": lr * (epoch + 1), "val_acc": 0.1 * epoch}, step=epoch)
    run.finish()
"""


def test_wandb_offline_runs_import(tmp_path, capsys):
    pytest.importorskip("wandb")
    script = f"DIR = {str(tmp_path)!r}\n" + textwrap.dedent(WANDB_RUNS)
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=300,
                   env={"WANDB_MODE": "offline", "WANDB_SILENT": "true", "HOME": str(tmp_path),
                        "PATH": "/usr/bin:/bin"})
    code, out = _main(capsys, ["import", str(tmp_path / "c"), "--from", "wandb", str(tmp_path / "wandb")])
    assert code == 0 and "imported 2 of 2 runs" in out, out
    frame = _frame(tmp_path / "c")
    loss = frame[frame["metric"] == "loss"].sort_values(["optimizer.lr", "epoch"])
    assert loss["value"].tolist() == pytest.approx([0.01, 0.02, 0.03, 0.1, 0.2, 0.3])
    assert set(frame.loc[frame["metric"] == "acc", "context"]) == {"val"}
    assert {read_run_json(d).status.value for d in iter_run_dirs(tmp_path / "c")} == {"completed"}


def test_tag_names_already_ours_are_kept_and_split_tags_take_a_colon_or_space():
    from pab_campaign.workflows.importers.source import metric_for_tag

    assert metric_for_tag("val/class_acc[3]", {}) == ("val", "class_acc", "3")
    assert metric_for_tag("weights/norm[layer1/conv]", {}) == ("weights", "norm", "layer1/conv")
    assert metric_for_tag("weights/norm/fc1", {}) == ("weights", "norm", "fc1")
    assert metric_for_tag("test:acc", {}) == ("test", "acc", None)
    assert metric_for_tag("val acc", {}) == ("val", "acc", None)
    assert metric_for_tag("lr", {}) == ("train", "lr", None)


def test_event_files_that_are_links_or_pipes_are_refused(tmp_path, capsys):
    import os

    (tmp_path / "tb" / "a").mkdir(parents=True)
    os.mkfifo(tmp_path / "tb" / "a" / "events.out.tfevents.1.host")
    code, out = _main(capsys, ["import", str(tmp_path / "c"), "--from", "tensorboard", str(tmp_path / "tb")])
    assert code == 2 and "is a link or not a regular file" in out and len(out.splitlines()) == 1, out
    (tmp_path / "tb" / "a" / "events.out.tfevents.1.host").unlink()
    (tmp_path / "tb" / "a" / "events.out.tfevents.2.host").symlink_to("/etc/passwd")
    code, out = _main(capsys, ["import", str(tmp_path / "c"), "--from", "tensorboard", str(tmp_path / "tb")])
    assert code == 2 and "is a link or not a regular file" in out and not (tmp_path / "c").exists(), out
    os.mkfifo(tmp_path / "table.csv")  # --hparams and --from csv of a pipe: waited on forever, or "no such file"
    (tmp_path / "tb" / "a" / "events.out.tfevents.2.host").unlink()
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(tmp_path / "tb" / "a")) as writer:
        writer.add_scalar("val/loss", 1.0, 0)
    code, out = _main(capsys, ["import", str(tmp_path / "c"), "--from", "tensorboard", str(tmp_path / "tb"),
                               "--hparams", str(tmp_path / "table.csv")])
    assert code == 2 and "not a regular file" in out and len(out.splitlines()) == 1, out
    code, out = _main(capsys, ["import", str(tmp_path / "c"), "--from", "csv", str(tmp_path / "table.csv")])
    assert code == 2 and "not a regular file (a pipe, a folder)" in out and len(out.splitlines()) == 1, out


def test_runs_without_scalars_or_with_a_negative_step_are_left_out_with_a_note(tmp_path, capsys):
    from mlflow.tracking import MlflowClient
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(tmp_path / "tb" / "histograms")) as writer:
        writer.add_histogram("weights", np.arange(10.0), 0)
    code, out = _main(capsys, ["import", str(tmp_path / "c"), "--from", "tensorboard", str(tmp_path / "tb")])
    assert code == 2 and "no run of the source can be imported" in out and "no scalar values" in out, out
    with SummaryWriter(str(tmp_path / "tb" / "seed=1")) as writer:
        writer.add_scalar("val/loss", 0.5, 1)
    code, out = _main(capsys, ["import", str(tmp_path / "c"), "--from", "tensorboard", str(tmp_path / "tb")])
    assert code == 0 and "imported 1 of 1 runs" in out and "'histograms': no scalar values" in out, out
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("sweep")
    for lr, first_step in ((0.1, 0), (0.01, -1)):
        run = client.create_run(experiment, run_name=f"lr{lr}")
        client.log_param(run.info.run_id, "lr", str(lr))
        client.log_metric(run.info.run_id, "val_loss", 1.0, step=first_step)
        client.log_metric(run.info.run_id, "val_loss", 0.5, step=1)
    code, out = _main(capsys, ["import", str(tmp_path / "m"), "--from", "mlflow", uri])
    assert code == 0 and "imported 1 of 1 runs" in out and "has step -1" in out and "left out" in out, out
    assert [read_run_json(d).hparams["lr"] for d in iter_run_dirs(tmp_path / "m")] == [0.1]
    (tmp_path / "file").write_text("x")
    code, out = _main(capsys, ["import", str(tmp_path / "file"), "--from", "mlflow", uri])
    assert code == 2 and f"campaign {tmp_path / 'file'} is a file" in out and "--dst" not in out, out


def test_text_with_a_leading_zero_stays_text_and_an_experiment_is_chosen_by_name_or_id(tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    from pab_campaign.workflows.importers.source import parse_scalar

    assert [parse_scalar(t) for t in ("007", "0912", "0", "0.25", "-3", "1e3")] == ["007", "0912", 0, 0.25, -3, 1000.0]
    # an underscore is text (Python reads 1_000 as 1000), and so are nan and inf, no number run.json holds
    assert [parse_scalar(t) for t in ("1_000", "v1_0", "nan", "inf", "-Infinity")] == ["1_000", "v1_0", "nan", "inf",
                                                                                      "-Infinity"]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    for name in ("a", "b"):
        experiment = client.create_experiment(name)
        run = client.create_run(experiment, run_name=name)
        client.log_param(run.info.run_id, "agent", "007")
        client.log_metric(run.info.run_id, "val_loss", 0.5, step=1)
    chosen = client.get_experiment_by_name("b").experiment_id
    code, out = _main(capsys, ["import", str(tmp_path / "c"), "--from", "mlflow", uri, "--experiment", chosen])
    assert code == 0 and "imported 1 of 1 runs" in out, out
    (directory,) = iter_run_dirs(tmp_path / "c")
    assert read_run_json(directory).hparams == {"agent": "007"}
