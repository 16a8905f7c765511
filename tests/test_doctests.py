"""Every docstring example in the installed chipcut package runs and gives the output it shows.

Modules are imported under their installed names (``chipcut.core.ir``), which pytest's
``--doctest-modules`` cannot do here: the repository root is the package, so it would import
them as ``core.ir`` and load a second copy of every module.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import tomllib
from pathlib import Path

import pytest

import chipcut

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
# What setuptools installs; the root also holds folders that are not part of it (benchmarks/).
INSTALLED = frozenset(tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["packages"])


def installed_modules() -> list[str]:
    """chipcut and every module of its installed packages, by import name."""
    names = ["chipcut"]
    for info in pkgutil.walk_packages(chipcut.__path__, "chipcut."):
        package = info.name if info.ispkg else info.name.rpartition(".")[0]
        if package in INSTALLED:
            names.append(info.name)
    return names


def runnable(test: doctest.DocTest) -> list[doctest.Example]:
    return [e for e in test.examples if not e.options.get(doctest.SKIP)]


def doctests(name: str) -> list[doctest.DocTest]:
    """The docstrings of module ``name`` with an example that runs (not all ``+SKIP``)."""
    module = importlib.import_module(name)
    return [t for t in doctest.DocTestFinder().find(module) if runnable(t)]


MODULES = installed_modules()
DOCTESTS = {name: tests for name in MODULES if (tests := doctests(name))}


def test_every_installed_package_is_searched() -> None:
    # walk_packages skips a package whose __init__ fails to import, without a word.
    assert INSTALLED <= set(MODULES)
    assert {"chipcut.core.ir", "chipcut.compiler.capture", "chipcut.passes.manager"} <= set(MODULES)


def test_enough_examples_run() -> None:
    assert sum(len(runnable(t)) for tests in DOCTESTS.values() for t in tests) >= 10
    assert {"chipcut", "chipcut.compiler.capture", "chipcut.core.files"} <= set(DOCTESTS)


@pytest.mark.parametrize("name", sorted(DOCTESTS))
def test_examples_pass(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    runner = doctest.DocTestRunner(verbose=False)
    report: list[str] = []
    results = [runner.run(test, out=report.append) for test in DOCTESTS[name]]
    assert sum(r.attempted for r in results) > 0
    assert sum(r.failed for r in results) == 0, "".join(report)
