"""The examples in the docstrings of the compat modules run and print what they show, and every
public name of them has one."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import pab_campaign.compat

MODULES = sorted(m.name for m in pkgutil.walk_packages(pab_campaign.compat.__path__, "pab_campaign.compat."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_pass(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (printed above)"
    documented = {test.name.rsplit(".", 1)[-1] for test in doctest.DocTestFinder().find(module) if test.examples}
    own = [name for name in getattr(module, "__all__", []) if getattr(module, name).__module__ == module.__name__]
    missing = [name for name in own if name not in documented]
    assert not missing, f"public names without a runnable example: {missing}"
