"""One number format and one duration format for the terminal and the HTML page."""
import math

import pytest

from pab_campaign.analysis.page.sections import _number
from pab_campaign.formatting import duration, group_label, number
from pab_campaign.render import fmt


@pytest.mark.parametrize(("seconds", "text"), [
    (0.2, "1 s"), (45, "45 s"), (59.5, "1 min 00 s"), (200, "3 min 20 s"), (3600, "1 h 00 min"),
    (7500, "2 h 05 min"), (math.nan, "–"),
])
def test_duration(seconds, text):
    assert duration(seconds) == text


def test_terminal_and_page_write_numbers_alike():
    values = [0.123456, 1234567.0, 7, "a[b]"]
    assert [number(v) for v in values] == ["0.1235", "1.235e+06", "7", "a[b]"]
    assert [fmt(v, 3) for v in values] == [_number(v, 3).text for v in values] == ["0.123", "1.23e+06", "7", "a[b]"]
    assert (fmt(None), fmt(math.nan)) == ("-", "nan")  # the terminal tells a missing value from NaN
    assert (_number(None).text, _number(math.nan).text) == ("–", "–")


def test_a_group_label_names_a_value_its_runs_lack_missing():
    assert group_label(["model.name", "model.channels"], ("mlp", math.nan)) == "model.name=mlp, model.channels=missing"
    assert group_label(["a"], (None,)) == "a=missing" and group_label(["a"], (0.0,)) == "a=0.0"
    assert group_label([], ()) == "all runs"
