"""`ls` table cells (cli.runs)."""
from __future__ import annotations

import math

from pab_campaign.cli.runs import _formatted
from pab_campaign.render import fmt


def test_repeated_values_read_as_fmt_reads_each_and_equal_keys_of_other_types_stay_apart():
    values = [True, 1, 1.0, 0.1234567, "a", None, math.nan, 1, True, 0.1234567, -0.0, float("inf")]
    assert _formatted(values) == [fmt(value) for value in values]
    assert _formatted([True, 1, 1.0]) == ["True", "1", "1"]
    assert _formatted([[1, 2], 1, [1, 2]]) == ["[1, 2]", "1", "[1, 2]"]  # an unhashable value
