"""The sweep's end: every job leaves a pointer to its run; the launching process prints one
status table over them (completed / failed / diverged / preempted, with the error line)."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from pab_campaign.errors import StoreError
from pab_campaign.store import atomic_write_bytes, read_run_json

POINTER = "pab_run.json"
FAILED_RUNS: list[str] = []


def _write_pointer(job_output_dir: Path, payload: dict[str, Any]) -> None:
    atomic_write_bytes(job_output_dir / POINTER, json.dumps(payload).encode())


def write_job_pointer(job_output_dir: Path, outcome: Any) -> None:
    """Record in Hydra's per-job directory which run this job trained and whether it was skipped."""
    _write_pointer(job_output_dir, {"run_id": outcome.run_id, "run_dir": str(outcome.directory),
                                    "skipped": outcome.skipped})


def write_lost_job(job_output_dir: Path, overrides: list[str], error: str) -> None:
    """Record a job that ended without running its task to the end (killed, cancelled): no run to
    point at, so the pointer carries the overrides and the error for the status table."""
    _write_pointer(job_output_dir, {"run_id": None, "run_dir": None, "skipped": False,
                                    "overrides": overrides, "error": error})


def sweep_rows(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job of the sweep in `sweep_dir`: job number, run id, status, epochs, error."""
    rows = []
    for pointer in sorted(sweep_dir.glob(f"*/{POINTER}"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0):
        job = json.loads(pointer.read_text())
        if job["run_dir"] is None:
            record = {"status": "failed", "error": job["error"], "epochs_done": None, "overrides": job["overrides"]}
        else:
            try:
                record = read_run_json(Path(job["run_dir"]))
            except StoreError as exc:
                record = {"status": "unknown", "error": str(exc), "epochs_done": None}
        rows.append({
            "job": pointer.parent.name, "run_id": job["run_id"] or "-", "status": record["status"],
            "skipped": job["skipped"], "epochs": record.get("epochs_done"),
            "overrides": " ".join(record.get("overrides") or []), "error": record.get("error") or "",
        })
    return rows


def render_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    styles = {"completed": "green", "failed": "bold red", "diverged": "yellow", "preempted": "magenta"}
    table = Table(title="sweep status")
    for column in ("job", "run_id", "status", "epochs", "overrides", "error"):
        table.add_column(column, overflow="fold")
    for row in rows:
        status = row["status"] + (" (skipped: done before)" if row["skipped"] else "")
        style = styles.get(row["status"])
        table.add_row(row["job"], row["run_id"], f"[{style}]{status}" if style else status,
                      str(row["epochs"]), row["overrides"], row["error"])
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    print("sweep: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))


class SweepStatusCallback(Callback):
    """Prints the status table once all jobs of a multirun have returned."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if OmegaConf.select(config, "hydra.launcher.detach", default=False):
            record = OmegaConf.select(config, "hydra.launcher.detach_record", default=None)
            campaign = OmegaConf.select(config, "campaign.dir", default=None)
            print("sweep submitted and detached" + (f" (job ids in {record})" if record else "")
                  + "; follow with `squeue`" + (f", then `pab-campaign ls {campaign}`" if campaign else ""))
            return
        rows = sweep_rows(Path(config.hydra.sweep.dir))
        if rows:
            render_table(rows)
        FAILED_RUNS.extend(row["run_id"] for row in rows if row["status"] == "failed")
