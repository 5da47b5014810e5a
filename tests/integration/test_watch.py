"""`pab-campaign ls --watch` follows a sweep while it trains and exits 0 by itself once every run ended."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import REPO, assert_one_line_error, cli, command_env, train_argv

pytestmark = pytest.mark.slow


def test_watch_follows_a_sweep_to_its_end(tmp_path):
    campaign = tmp_path / "watched"
    sweep = subprocess.Popen(train_argv(campaign, ["-m", "seed=0,1,2", "model=mlp", "optimizer.lr=0.05",
                                                   "train.epochs=8", "tracking=minimal", "runtime.verbose=false"]),
                             cwd=REPO, env=command_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    watched = subprocess.run([sys.executable, "-m", "pab_campaign.cli", "ls", str(campaign), "--watch",
                              "--interval", "0.3", "--expect", "3"], cwd=REPO, env=command_env(), capture_output=True,
                             text=True, timeout=300)
    assert sweep.wait(timeout=300) == 0, sweep.stderr.read()[-2000:]
    assert watched.returncode == 0, watched.stderr
    lines = watched.stdout.splitlines()
    assert any("running" in line for line in lines), watched.stdout
    assert "all 3 runs ended" in watched.stdout and watched.stdout.count("completed") >= 4


def test_watch_refuses_a_bad_interval(tmp_path):
    assert_one_line_error(cli(["ls", str(tmp_path), "--watch", "--interval", "0", "--expect", "2"]),
                          "--interval 0", "> 0")
