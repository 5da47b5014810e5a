"""Coalesce campaigns: copy run directories from sources into a destination campaign.

Never moves, deletes or overwrites: each run is copied into a temp directory inside the destination
and renamed into place, so an interrupted merge leaves no half run (a leftover `.merge-*` temp
directory is ignored by every reader). Runs are de-duplicated by run_id (the first source wins),
so merging again adds nothing. The destination's index is rebuilt by the next analysis command.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pab_campaign.errors import CampaignError
from pab_campaign.store import is_campaign, iter_run_dirs, runs_dir


@dataclass
class MergeResult:
    """Run ids added to the destination, and (run_id, source, reason) of those skipped."""

    added: list[tuple[str, Path]] = field(default_factory=list)
    skipped: list[tuple[str, Path, str]] = field(default_factory=list)


def check_destination(dst: Path) -> None:
    """A destination must be missing, empty, or a campaign; anything else is refused."""
    if dst.exists() and not dst.is_dir():
        raise CampaignError(f"--dst {dst} is a file; name a new directory or an existing campaign")
    if dst.is_dir() and not is_campaign(dst) and any(dst.iterdir()):
        raise CampaignError(f"--dst {dst} exists and is not a campaign (no runs/ directory); "
                            "name a new directory or an existing campaign, nothing was copied")


def merge(sources: list[Path], dst: Path) -> MergeResult:
    """Copy every run directory of `sources` that `dst` lacks into `dst/runs/`."""
    sources, dst = [Path(s) for s in sources], Path(dst)
    for source in sources:
        if not is_campaign(source):
            raise CampaignError(f"--src {source} is not a campaign (no runs/ directory); nothing was copied")
    check_destination(dst)
    target = runs_dir(dst)
    target.mkdir(parents=True, exist_ok=True)
    result = MergeResult()
    seen: dict[str, Path] = {}
    for source in sources:
        same = source.resolve() == dst.resolve()
        for run in iter_run_dirs(source):
            run_id = run.name
            if run_id in seen:
                result.skipped.append((run_id, source, f"duplicate of the run from {seen[run_id]}"))
                continue
            seen[run_id] = source
            if same or (target / run_id).exists():
                result.skipped.append((run_id, source, "already in the destination"))
                continue
            if _copy_run(run, target / run_id):
                result.added.append((run_id, source))
            else:
                result.skipped.append((run_id, source, "appeared in the destination during the merge"))
    return result


def _copy_run(run: Path, final: Path) -> bool:
    """Copy `run` to a temp dir beside `final`, then rename it to `final`; False if `final` exists."""
    temp = Path(tempfile.mkdtemp(prefix=f".merge-{run.name}-", dir=final.parent))
    try:
        shutil.copytree(run, temp / run.name, symlinks=True)
        os.rename(temp / run.name, final)
    except FileExistsError:
        return False
    except OSError as exc:
        if final.exists():
            return False
        raise CampaignError(f"could not copy {run} to {final} ({exc}); nothing of this run was written") from None
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return True
