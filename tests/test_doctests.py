"""The examples in the docstrings run: every ``>>>`` line of h3r_theory and trainers is a doctest.

Each module is imported and its docstrings are run with :mod:`doctest`; a failing example fails this test
with doctest's report. The modules known to hold examples must report some, so that an import that finds
no example (or a renamed module) cannot pass silently.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import h3r_theory
import trainers

# Modules whose docstrings hold examples (the codec protocol, the dataset specs).
WITH_EXAMPLES = {"h3r_theory.codecs", "trainers.data.specs"}


def _modules() -> list[str]:
    names = []
    for package in (h3r_theory, trainers):
        names.append(package.__name__)
        for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
            names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctest examples failed in {name}"
    if name in WITH_EXAMPLES:
        assert result.attempted > 0, f"{name} is expected to hold doctest examples, found none"


def test_the_known_example_modules_exist():
    assert WITH_EXAMPLES <= set(_modules())
