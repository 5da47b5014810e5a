"""A short, seeded run of scripts/fuzz_campaigns.py (hostile campaigns through every analysis command),
and its judge: what counts as a failure."""
from __future__ import annotations

import importlib.util
import sys

from tests.helpers import REPO


def _fuzzer():
    spec = importlib.util.spec_from_file_location("fuzz_campaigns", REPO / "scripts" / "fuzz_campaigns.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_the_judge_accepts_only_clean_exits_and_sees_writes(tmp_path):
    fuzz = _fuzzer()
    ok = fuzz.Outcome
    assert fuzz.judge("ls", ok(0, "table", "")) is None
    assert fuzz.judge("ls", ok(2, "", "pab-campaign: error: bad thing; fix it\n")) is None
    assert fuzz.judge("merge", ok(1, "conflict: r1 from a ...", "")) is None
    assert fuzz.judge("ls", ok(None, "", ""))[0] == "hang"
    assert fuzz.judge("ls", ok(1, "", "Traceback (most recent call last):\n  x\n"))[0] == "traceback"
    assert fuzz.judge("html", ok(1, "", "pab-campaign: internal error: ZeroDivisionError"))[0] == "internal error"
    assert fuzz.judge("ls", ok(2, "", "error one\nerror two\n"))[0] == "exit 2 without one line"
    assert fuzz.judge("report", ok(1, "", ""))[0] == "exit 1 without a listed reason"
    before = fuzz.snapshot(tmp_path)
    (tmp_path / "pwned.csv").write_text("owned")
    assert fuzz.changes(before, fuzz.snapshot(tmp_path)) == [f"created {tmp_path / 'pwned.csv'}"]


def test_a_short_seeded_fuzz_run_finds_nothing():
    tally = _fuzzer().run(examples=3, seed=21, only_mine=True)
    assert tally.campaigns >= 2 and tally.commands >= 11 * tally.campaigns
    assert not tally.failures, "\n".join(f"{k}: {v}" for k, v in tally.examples.items())
