"""The sweep's end: every job leaves a pointer to its run; the launching process prints one
status table over them (completed / failed / diverged / preempted, with the error line) and ends
with exit status 1 when a job failed. What a job did is read from its pointer, never from state
kept in the launching process. Each pointer carries the launch it belongs to (`LAUNCH_ENV`, set by
the launching process and inherited by its jobs), so a table never shows the jobs of an earlier
sweep into the same `hydra.sweep.dir`."""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from pab_campaign.errors import StoreError
from pab_campaign.store import RunStatus, atomic_write_bytes, read_run_json

POINTER = "pab_run.json"
# The environment variable naming the launch (a sweep) a job belongs to.
LAUNCH_ENV = "PAB_CAMPAIGN_LAUNCH"


def _write_pointer(job_output_dir: Path, payload: dict[str, Any]) -> None:
    payload = {**payload, "launch": os.environ.get(LAUNCH_ENV)}
    atomic_write_bytes(job_output_dir / POINTER, json.dumps(payload).encode())


def write_job_pointer(job_output_dir: Path, outcome: Any) -> None:
    """Record in Hydra's per-job directory which run this job trained, whether it was skipped, and
    why when not because it finished before (`outcome.note`, e.g. another process is writing it)."""
    _write_pointer(job_output_dir, {"run_id": outcome.run_id, "run_dir": str(outcome.directory),
                                    "skipped": outcome.skipped, "note": getattr(outcome, "note", None)})


def write_lost_job(job_output_dir: Path, overrides: list[str], error: str) -> None:
    """Record a job that ended without running its task to the end (killed, cancelled): no run to
    point at, so the pointer carries the overrides and the error for the status table."""
    _write_pointer(job_output_dir, {"run_id": None, "run_dir": None, "skipped": False,
                                    "overrides": overrides, "error": error})


def run_failed(job_output_dir: Path) -> bool:
    """Whether the job whose Hydra output directory is `job_output_dir` left no run, or a run that
    ended `failed`."""
    try:
        job = json.loads((job_output_dir / POINTER).read_text())
        return job["run_dir"] is None or read_run_json(Path(job["run_dir"])).status == RunStatus.FAILED
    except (OSError, ValueError, KeyError, StoreError):
        return True


def sweep_rows(sweep_dir: Path, launch: str | None = None) -> list[dict[str, Any]]:
    """One row per job of the sweep in `sweep_dir` (of the launch `launch` only, when given): job
    number, run id, status, epochs, error."""
    rows = []
    pointers = sorted(sweep_dir.glob(f"*/{POINTER}"),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    for pointer in pointers:
        job = json.loads(pointer.read_text())
        if launch is not None and job.get("launch") != launch:
            continue  # a job of an earlier sweep into the same folder
        row = {"job": pointer.parent.name, "run_id": job["run_id"] or "-", "skipped": job["skipped"],
               "note": job.get("note")}
        if job["run_dir"] is None:
            row.update(status=str(RunStatus.FAILED), epochs=None, overrides=" ".join(job["overrides"]),
                       error=job["error"])
        else:
            try:
                record = read_run_json(Path(job["run_dir"]))
                row.update(status=str(record.status), epochs=record.epochs_done, overrides=" ".join(record.overrides),
                           error=record.error or "")
            except StoreError as exc:
                row.update(status="unknown", epochs=None, overrides="", error=str(exc))
        rows.append(row)
    return rows


def render_table(rows: list[dict[str, Any]]) -> None:
    """Print the sweep status table (one row per job, status in its colour) and a count per status."""
    from pab_campaign.render import print_line, print_table, status_text

    def skipped(row: dict[str, Any]) -> str:
        if not row["skipped"]:
            return ""
        return f" (skipped: {row.get('note') or 'done before'})"

    cells = [[row["job"], row["run_id"], status_text(row["status"], skipped(row)),
              str(row["epochs"]), row["overrides"], row["error"]] for row in rows]
    print_table("sweep status", ["job", "run_id", "status", "epochs", "overrides", "error"], cells)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    print_line("sweep: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))


def failed_jobs(rows: list[dict[str, Any]]) -> list[str]:
    """The jobs of `rows` (`sweep_rows`) that failed or left no run."""
    return [row["job"] for row in rows if row["status"] == RunStatus.FAILED]


class SweepStatusCallback(Callback):
    """Prints the status table once all jobs of a multirun have returned, then ends the command with
    exit status 1 when a job failed (SystemExit passes through Hydra; later callbacks do not run)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        os.environ[LAUNCH_ENV] = uuid.uuid4().hex  # the jobs (in this process or started from it) inherit it

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if OmegaConf.select(config, "hydra.launcher.detach", default=False):
            record = OmegaConf.select(config, "hydra.launcher.detach_record", default=None)
            campaign = OmegaConf.select(config, "campaign.dir", default=None)
            print("sweep submitted and detached" + (f" (job ids in {record})" if record else "")
                  + "; follow with `squeue`" + (f", then `pab-campaign ls {campaign}`" if campaign else ""))
            return
        rows = sweep_rows(Path(config.hydra.sweep.dir), os.environ.pop(LAUNCH_ENV, None))
        if rows:
            render_table(rows)
        if failed_jobs(rows):
            raise SystemExit(1)
