"""`ls` table cells (cli.runs)."""
from __future__ import annotations

import math

from pab_campaign.cli.runs import _Shown
from pab_campaign.render import fmt


def test_repeated_values_read_as_fmt_reads_each_and_equal_keys_of_other_types_stay_apart():
    shown = _Shown()
    values = [True, 1, 1.0, 0.1234567, "a", None, math.nan, 1, True, [1, 2], 0.1234567]
    assert [shown(value) for value in values] == [fmt(value) for value in values]
    assert [shown(True), shown(1), shown(1.0)] == ["True", "1", "1"]
