"""Sharing a campaign: files made under umask 022 are readable by other users; every analysis
command works on a read-only campaign (a real read-only bind mount) and on a full disk, keeping its
index in the user's cache and saying so in one line; temp files a killed command left are cleaned
by the next command, those of a live one are not."""
from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pab_campaign import store
from pab_campaign.analysis.campaign.provenance import MARKER
from pab_campaign.analysis.campaign.workspace import cache_dir
from pab_campaign.training.run import execute
from tests.helpers import REPO, command_env, compose_config, make_grid, write_run

COMMANDS = [
    ["ls"], ["properties"], ["report"], ["curves", "--metrics", "val/acc"],
    ["audit", "--metric", "test/acc@3", "--baseline", "val/loss@3", "--target", "val/acc", "--n-boot", "50"],
    ["states", "--metrics", "val/loss", "val/acc", "--max-states", "2", "--restarts", "1", "--jobs", "1", "--no-plots"],
]
NOBODY = 65534


def _temps(folder: Path) -> list[Path]:
    """Hidden files in `folder` but the marker a command keeps there (`provenance.MARKER`)."""
    return [p for p in folder.glob(".*") if p.name != MARKER]


def _run(args: list[str], env: dict[str, str], prefix: list[str] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "pab_campaign.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


@contextlib.contextmanager
def _umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def shared_dir():
    """A directory other users may enter (pytest's own temp directories are private)."""
    directory = Path(tempfile.mkdtemp(prefix="pab_shared_"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_a_campaign_made_under_umask_022_is_readable_by_another_user(shared_dir):
    campaign = shared_dir / "c"
    with _umask(0o022):
        outcome = execute(compose_config(["train.epochs=2", "runtime.verbose=false", "tracking=minimal",
                                          "checkpoint.every=1"], campaign))
        make_grid(campaign, seeds=1, epochs=4)
        for command in (["report", "--metrics", "val/acc"], ["curves", "--metrics", "val/acc"]):
            result = _run([command[0], str(campaign), *command[1:]], command_env())
            assert result.returncode == 0, result.stderr
    assert outcome.status == "completed"
    files = [p for p in campaign.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"run.json", "trajectory.parquet", "last.pt", "epoch_0001.pt", "runs.parquet",
                                       "trajectories.parquet"}
    for path in [campaign, *campaign.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o044 == 0o044, f"{path} is {oct(mode)}: others cannot read it"
        if path.is_dir():
            assert mode & 0o011 == 0o011, f"{path} is {oct(mode)}: others cannot enter it"
    if os.geteuid() == 0:  # and, for real, as another user
        read = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "sh", "-c",
                               'for f in "$@"; do cat "$f" > /dev/null || exit 1; done', "sh", *map(str, files)],
                              capture_output=True, text=True, timeout=60)
        assert read.returncode == 0, read.stderr


@contextlib.contextmanager
def _read_only_view(campaign: Path, where: Path):
    """`campaign` seen read-only at `where`: a read-only bind mount where this machine allows one,
    else a copy without write permission (read by a process that cannot override permissions)."""
    where.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(campaign), str(where)], capture_output=True).returncode == 0
    if mounted:
        try:
            assert subprocess.run(["mount", "-o", "remount,ro,bind", str(where)]).returncode == 0
            yield where, []
        finally:
            subprocess.run(["umount", str(where)], check=True)
        return
    shutil.copytree(campaign, where, dirs_exist_ok=True)
    for path in [where, *where.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)
    try:
        yield where, (["setpriv", "--bounding-set=-dac_override,-fowner"] if os.geteuid() == 0 else [])
    finally:
        for path in [where, *where.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)


def test_every_analysis_command_works_on_a_read_only_campaign(tmp_path, monkeypatch):
    campaign = tmp_path / "c"
    ids = make_grid(campaign, seeds=2, epochs=4)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    env = command_env()
    with _read_only_view(campaign, tmp_path / "ro") as (view, prefix):
        with pytest.raises(OSError):
            (view / "summary").mkdir()
        printed = {}
        for command in [*COMMANDS, ["summarize"]]:
            target = store.run_dir(view, ids[0]) if command[0] == "summarize" else view
            result = _run([command[0], str(target), *command[1:]], env, prefix)
            assert result.returncode == 0, f"{command[0]}: {result.stderr[-2000:]}"
            printed[command[0]] = result.stdout
            if command[0] != "summarize":
                notes = [line for line in result.stdout.splitlines() if "cannot be written here" in line]
                assert len(notes) == 1 and str(cache_dir(view)) in " ".join(result.stdout.split()), result.stdout
        written = {p.name for p in cache_dir(view).iterdir()}
        assert {"runs.parquet", "trajectories.parquet", "curve_aggregates.parquet", "audit.csv", "states"} <= written
        again = _run(["curves", str(view), "--metrics", "val/acc"], env, prefix)  # from the aggregates kept there
        assert again.returncode == 0 and again.stdout == printed["curves"], again.stderr[-2000:]
        assert any(name.startswith("summary_") for name in written)
        assert not (view / "summary").exists()


@pytest.fixture
def full_disk(tmp_path):
    """A small tmpfs holding a campaign, then filled up to the last byte (needs mount rights)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root), so a full disk cannot be made")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_analysis_works_on_a_full_disk(full_disk, tmp_path, monkeypatch):
    campaign = full_disk / "c"
    make_grid(campaign, seeds=2, epochs=4)
    with contextlib.suppress(OSError), open(full_disk / "filler", "wb", buffering=0) as filler:
        while True:
            filler.write(b"\0" * 4096)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    env = command_env()
    for command in COMMANDS[:2] + COMMANDS[3:4]:
        result = _run([command[0], str(campaign), *command[1:]], env)
        assert result.returncode == 0, f"{command[0]}: {result.stderr[-2000:]}"
        assert f"note: {campaign} is on a full disk: its index is kept in {cache_dir(campaign)}" in " ".join(
            result.stdout.split())
    assert _temps(campaign / "summary") == []  # no temp file left behind by the failed writes


def test_outputs_that_fill_the_disk_go_to_the_cache_or_say_the_disk_is_full(full_disk, tmp_path, monkeypatch):
    """The index is in summary/ already and one page of the disk is left: the report's CSV and the
    page do not fit, so they go to the cache with the note; a file the user named on the full disk
    is one line naming it (exit 2); nothing half-written is left."""
    campaign = full_disk / "c"
    for i in range(12):  # long group names: the summary CSV needs more than the page that is left
        write_run(campaign, f"r{i:02d}", {"model.name": f"{'m' * 600}{i}", "seed": i},
                  {("val", "acc"): [0.1, 0.5 + i / 100], ("val", "loss"): [1.0, 0.5]})
    (full_disk / "out").mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    env = command_env()
    assert _run(["curves", str(campaign), "--metrics", "val/acc"], env).returncode == 0  # the index, in summary/
    with contextlib.suppress(OSError), open(full_disk / "filler", "wb", buffering=0) as filler:
        while True:
            filler.write(b"\0" * 4096)
    os.truncate(full_disk / "filler", (full_disk / "filler").stat().st_size - 4096)
    cache, note = cache_dir(campaign), f"note: {campaign} is on a full disk: its index is kept in {cache_dir(campaign)}"
    for command, output in ((["report", "--groupby", "model.name"], "summary_model.name_last.csv"),
                            (["html"], "report.html")):
        result = _run([command[0], str(campaign), *command[1:]], env)
        assert result.returncode == 0, f"{command[0]}: {result.stderr[-2000:]}"
        out = " ".join(result.stdout.split())
        assert f"wrote {cache / output}" in out and note in out and (cache / output).stat().st_size > 4096
        assert not (campaign / "summary" / output).exists()
    result = _run(["html", str(campaign), "--out", str(full_disk / "out" / "page.html")], env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"cannot write {full_disk / 'out' / 'page.html'}: the disk of {full_disk / 'out'} is full" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert _temps(campaign / "summary") == [] and not list((full_disk / "out").iterdir())


def test_a_killed_commands_temp_files_are_cleaned_by_the_next_one_a_live_ones_kept(tmp_path):
    campaign = tmp_path / "c"
    make_grid(campaign, seeds=1, epochs=2)
    summary, runs = store.summary_dir(campaign), store.runs_dir(campaign)
    summary.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    live = subprocess.Popen(["sleep", "60"])
    try:
        def temp(target: Path, pid: int, suffix: str) -> Path:
            return target.parent / f".{target.name}~{store.host_name()}~{pid}~0badc0de{suffix}"

        stale = [temp(summary / "runs.parquet", dead.pid, ".tmp"), temp(summary / "trajectories.parquet", dead.pid,
                                                                          ".snap")]
        kept = [temp(summary / "runs.parquet", live.pid, ".tmp")]
        for path in stale + kept:
            path.write_bytes(b"half")
        stale_merge, live_merge = temp(runs / "merge-x", dead.pid, ""), temp(runs / "merge-y", live.pid, "")
        (stale_merge / "x").mkdir(parents=True)
        (live_merge / "y").mkdir(parents=True)
        result = _run(["ls", str(campaign)], command_env())
        assert result.returncode == 0, result.stderr
        assert not any(p.exists() for p in [*stale, stale_merge])
        assert all(p.exists() for p in [*kept, live_merge])
    finally:
        live.kill()
        live.wait()
