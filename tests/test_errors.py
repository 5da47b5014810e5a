"""`errors`: one line per error, and the close match a mistyped name is given."""
import pytest

from pab_campaign.errors import did_you_mean, one_line


@pytest.mark.parametrize(("given", "known", "hint"), [
    ("model.nme", ["model.name", "model.hidden", "seed"], " (did you mean model.name?)"),
    ("val/los", ["val/loss", "val/acc", "test/loss"], " (did you mean val/loss?)"),
    ("complted", ("running", "completed", "failed"), " (did you mean completed?)"),
    ("frobnicate", ["model.name", "seed"], ""),  # nothing close: no guess
    ("seed", [], ""),
])
def test_did_you_mean_names_the_closest_known_name_or_nothing(given, known, hint):
    assert did_you_mean(given, known) == hint


def test_one_line_keeps_the_first_line_and_a_new_cause():
    try:
        raise ValueError("bad\nmore") from OSError("disk full")
    except ValueError as exc:
        assert one_line(exc) == "bad (disk full)"
