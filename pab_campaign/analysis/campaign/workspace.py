"""Where the analysis of a campaign keeps its index and writes its outputs.

Reading a campaign never needs write access to it. The place is, in this order, the first that
this user can write to:

1. the campaign's own `summary/`;
2. a per-user cache, `$XDG_CACHE_HOME/pab_campaign/<key>` (default `~/.cache/pab_campaign/<key>`),
   `<key>` the campaign folder's name as a safe stem (`naming.file_stem`) and a hash of its resolved
   path (a colleague's read-only campaign, an archive, a campaign on a full disk);
3. none: the index is built in memory for this command only, and a command that writes files
   (report, curves, audit) says there is nowhere to write them.

Every place but the first is said in one note. A write that fails later because the disk filled
up or the directory turned read-only moves on to the next place (`fallback`).
"""
from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pab_campaign import confined
from pab_campaign.analysis.campaign import provenance
from pab_campaign.analysis.campaign.naming import file_stem
from pab_campaign.errors import CampaignError
from pab_campaign.store import UNWRITABLE_ERRNOS, create_temp_file, remove_stale_temps, runs_dir, summary_dir

CACHE_APP = "pab_campaign"


@dataclass(frozen=True)
class Workspace:
    """`directory`: where the index and the outputs go (None: memory only); `note`: what to tell the
    user about it (None for the campaign's own summary/); `campaign`: the campaign directory."""

    campaign: Path
    directory: Path | None
    note: str | None = None

    @property
    def is_summary(self) -> bool:
        return self.directory == summary_dir(self.campaign)

    def output_dir(self) -> Path:
        """Where a command writes its files; CampaignError when there is nowhere."""
        if self.directory is None:
            raise CampaignError(f"nowhere to write the outputs: neither {summary_dir(self.campaign)} nor "
                                f"{cache_dir(self.campaign)} is writable; set XDG_CACHE_HOME to a writable directory")
        return self.directory


def output_folder(base: Path, *parts: str) -> Path:
    """The folder `base/part/...` (an output folder's sub-folder, e.g. `summary/states`) when each part
    is a real directory or missing (made as it is written); CampaignError naming the first part that
    is a link or no directory. A campaign's summary/ is untrusted: a link there would send this
    command's files, and its removal of its earlier files, wherever it leads."""
    folder = Path(base)
    for part in parts:
        folder = folder / part
        try:
            mode = os.lstat(folder).st_mode
        except FileNotFoundError:
            break  # nothing below a missing folder exists either
        if stat.S_ISLNK(mode) or not stat.S_ISDIR(mode):
            raise CampaignError(f"{folder} is {confined.kind(mode)}, not a folder: outputs are written only into the "
                                "folders they make; remove it, or choose --output-folder")
    return Path(base).joinpath(*parts)


def cache_dir(campaign_dir: Path) -> Path:
    """This user's cache directory for `campaign_dir` (see the module docstring)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    key = hashlib.sha1(str(Path(campaign_dir).resolve()).encode()).hexdigest()[:16]
    return Path(base) / CACHE_APP / f"{file_stem(Path(campaign_dir).resolve().name)}-{key}"


def is_unwritable(exc: OSError) -> bool:
    """Whether `exc` says the place cannot be written (read-only, no permission, disk full)."""
    return exc.errno in UNWRITABLE_ERRNOS


def write_error(directory: Path) -> OSError | None:
    """Why this process cannot create `directory` and write a byte into a file there; None if it can."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = create_temp_file(directory / "write-probe")
    except OSError as exc:
        return exc
    try:
        with open(probe, "wb") as handle:
            handle.write(b"\0")
            handle.flush()
            os.fsync(handle.fileno())
        return None
    except OSError as exc:
        return exc
    finally:
        probe.unlink(missing_ok=True)


def file_in_the_way(path: Path) -> Path | None:
    """The first existing ancestor of the file `path` that is not a directory (so `path` cannot be
    created: `report.html` inside a file), else None."""
    for parent in Path(path).parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def writable(directory: Path) -> bool:
    return write_error(directory) is None


def _reason(exc: OSError | None) -> str:
    if exc is not None and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "is on a full disk"
    return "cannot be written here"


def unwritable_message(path: Path, exc: OSError, fix: str) -> str:
    """One line saying that `path` could not be written, why (naming a full disk), and `fix`."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"cannot write {path}: the disk of {path.parent} is full ({exc.strerror}); free space or {fix}"
    return f"cannot write {path}: {path.parent} {_reason(exc)} ({exc.strerror}); {fix}"


def _places(campaign_dir: Path) -> list[Path]:
    """Where the index and outputs may go, in order; never a `summary/` that is a link leading out of
    the campaign (what is written there would land outside it)."""
    own = [summary_dir(campaign_dir)] if _summary_inside(campaign_dir) else []
    return [*own, cache_dir(campaign_dir)]


def _summary_inside(campaign_dir: Path) -> bool:
    return confined.inside(summary_dir(campaign_dir), [campaign_dir])


def _note(campaign_dir: Path, directory: Path | None, reason: str) -> str:
    where = f"kept in {directory}" if directory is not None else "built in memory for this command only"
    return f"{campaign_dir} {reason}: its index is {where}"


def choose(campaign_dir: Path) -> Workspace:
    """The first writable place (module docstring); stale temp files a killed command left there
    (and in `runs/`, from a merge) are removed on the way."""
    campaign_dir = Path(campaign_dir)
    first_error = None
    reason = None if _summary_inside(campaign_dir) else "has a summary/ that leads outside it"
    for place in _places(campaign_dir):
        error = write_error(place)
        if error is None:
            remove_stale_temps(place)
            if place == summary_dir(campaign_dir):
                remove_stale_temps(runs_dir(campaign_dir))
                provenance.claim(place)  # caches that came with the campaign are made again here
                return Workspace(campaign_dir, place)
            return Workspace(campaign_dir, place, _note(campaign_dir, place, reason or _reason(first_error)))
        first_error = first_error or error
    reason = reason or _reason(first_error)
    return Workspace(campaign_dir, None, _note(campaign_dir, None, f"{reason} and neither can the cache"))


def fallback(workspace: Workspace, exc: OSError) -> Workspace:
    """The next place after a write to `workspace.directory` failed with `exc` (unwritable)."""
    places = _places(workspace.campaign)
    later = places[places.index(workspace.directory) + 1:] if workspace.directory in places else []
    for place in later:
        if writable(place):
            return Workspace(workspace.campaign, place, _note(workspace.campaign, place, _reason(exc)))
    return Workspace(workspace.campaign, None, _note(workspace.campaign, None, _reason(exc)))
