"""Runs from Weights & Biases offline run directories (`WANDB_MODE=offline` writes
`wandb/offline-run-<time>-<id>/run-<id>.wandb`), read without a network: every `run-*.wandb` file
under the directory given is one run, its W&B run id its identity.

The `.wandb` file is W&B's record log: a 7-byte header (`:W&B`, magic 0xBEE1, version 0), then
32 KiB blocks of records (4-byte checksum, 2-byte little-endian length, 1-byte type: full, first,
middle, last), each a `wandb_internal_pb2.Record` (imported from the `wandb` package). History rows
give the values by `_step` with `_timestamp` (Unix seconds); W&B's own keys (`_step`, `_runtime`,
`_timestamp`, `_wandb`) are not metrics. The config (nested keys flattened with dots) gives the
hyper-parameters; the exit record the status (code 0 → completed, else failed; none → running).
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

from pab_campaign.errors import CampaignError
from pab_campaign.store import RunStatus, Scalar
from pab_campaign.training.identity import flatten
from pab_campaign.workflows.importers.source import Point, SourceRun, parse_scalar

HEADER = b":W&B\xe1\xbe\x00"
BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
MAX_BYTES = 1 << 30


def records(path: Path) -> list[bytes]:
    """The serialized records of a `.wandb` file; CampaignError when it is not one or is cut short
    in a record (a record cut at the end, by a run still writing, is left out)."""
    data = path.read_bytes()
    if not data.startswith(HEADER):
        raise CampaignError(f"--from wandb {path}: not a W&B run file (header {data[:7]!r})")
    found, pending, position = [], b"", len(HEADER)
    while position + 7 <= len(data):
        left = BLOCK - position % BLOCK
        if left < 7:
            position += left
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[position:position + 7])
        position += 7
        if kind == 0 and length == 0:
            position += left - 7
            continue
        if kind not in (FULL, FIRST, MIDDLE, LAST) or position + length > len(data):
            break
        pending = (b"" if kind in (FULL, FIRST) else pending) + data[position:position + length]
        position += length
        if kind in (FULL, LAST):
            found.append(pending)
            pending = b""
    return found


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return text


def read_run_file(path: Path) -> SourceRun:
    """One offline run from its `.wandb` file."""
    from wandb.proto import wandb_internal_pb2

    config: dict[str, Any] = {}
    points: list[Point] = []
    name, started, status, ended, error = path.stem.removeprefix("run-"), None, RunStatus.RUNNING, None, None
    for raw in records(path):
        record = wandb_internal_pb2.Record()  # type: ignore[attr-defined]  # generated protobuf module
        try:
            record.ParseFromString(raw)
        except Exception:  # protobuf's DecodeError: a damaged record is left out
            continue
        kind = record.WhichOneof("record_type")
        if kind == "run":
            name = record.run.run_id or name
            started = float(record.run.start_time.seconds) or None
            config.update({item.key: _value(item.value_json) for item in record.run.config.update})
        elif kind == "config":
            config.update({item.key: _value(item.value_json) for item in record.config.update})
        elif kind == "history":
            row = {item.key or "/".join(item.nested_key): _value(item.value_json) for item in record.history.item}
            step, wall = row.get("_step", record.history.step.num), row.get("_timestamp")
            points += [Point(key, int(step), float(value), float(wall) if isinstance(wall, (int, float)) else None)
                       for key, value in row.items() if not key.startswith("_") and _is_number(value)]
        elif kind == "exit":
            code = record.exit.exit_code
            status = RunStatus.COMPLETED if code == 0 else RunStatus.FAILED
            error = None if code == 0 else f"W&B run exited with code {code}"
            ended = started + record.exit.runtime if started is not None else None
    config.pop("_wandb", None)
    hparams: dict[str, Scalar] = {key: parse_scalar(value) if not isinstance(value, str) else value
                                  for key, value in flatten(config).items()}
    return SourceRun("wandb", name, hparams, points, status, started, ended, error)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) or value in ("NaN", "Infinity",
                                                                                        "-Infinity")


def read_wandb(root: Path) -> list[SourceRun]:
    """Every offline run (`run-*.wandb`) under the directory `root`."""
    root = Path(root)
    if not root.is_dir():
        raise CampaignError(f"--from wandb {root}: no such directory; name the `wandb` directory of offline runs")
    files = sorted(Path(d) / f for d, _dirs, names in os.walk(root, followlinks=False)
                   for f in names if f.startswith("run-") and f.endswith(".wandb"))
    if not files:
        raise CampaignError(f"--from wandb {root}: no offline run files (run-<id>.wandb) under it; runs made with "
                            "WANDB_MODE=offline write them under wandb/offline-run-*/")
    for path in files:
        if path.stat().st_size > MAX_BYTES:
            raise CampaignError(f"--from wandb {path}: larger than 1 GiB")
    return [read_run_file(path) for path in files]
