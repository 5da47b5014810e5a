"""The examples in the docstrings of the workflow modules that carry them run and print what they show."""
from __future__ import annotations

import doctest

from pab_campaign.workflows import factories


def test_factories_examples_pass():
    result = doctest.testmod(factories, optionflags=doctest.ELLIPSIS, report=True)
    assert result.attempted > 0 and result.failed == 0
