"""The examples in the docstrings of the training modules that carry them run and print what they show."""
from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["pab_campaign.training.evaluate", "pab_campaign.training.models",
           "pab_campaign.training.probes.hookpoints"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_pass(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, report=True)
    assert result.attempted > 0 and result.failed == 0, f"{result.failed} of {result.attempted} examples failed"
