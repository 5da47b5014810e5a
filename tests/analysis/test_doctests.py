"""The examples in the docstrings of the analysis package (and of errors.py) run and print what they
show; the public analysis functions keep their examples."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import pab_campaign.analysis
from pab_campaign.analysis.mbe.audit import run_audit
from pab_campaign.analysis.stats.bootstrap import bootstrap_rho_cis
from pab_campaign.analysis.stats.correlation import partial_spearman
from pab_campaign.analysis.stats.descriptive import ci95_halfwidth
from pab_campaign.analysis.summary.report import build_report
from pab_campaign.analysis.summary.trajectory import summarize_trajectory

MODULES = sorted(["pab_campaign.errors", "pab_campaign.metrics",
                  *(m.name for m in pkgutil.walk_packages(pab_campaign.analysis.__path__, "pab_campaign.analysis."))])
DOCUMENTED = [partial_spearman, ci95_halfwidth, bootstrap_rho_cis, build_report, run_audit, summarize_trajectory]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_pass(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (printed above)"


@pytest.mark.parametrize("function", DOCUMENTED, ids=lambda f: f.__name__)
def test_public_analysis_functions_have_numpy_style_docs_with_examples(function):
    doc = function.__doc__ or ""
    for section in ("Parameters\n", "Returns\n", "Notes\n", "Examples\n"):
        assert section in doc, f"{function.__name__}'s docstring lacks {section.strip()}"
    examples = doctest.DocTestFinder().find(function, module=importlib.import_module(function.__module__))
    assert sum(len(test.examples) for test in examples) >= 2
